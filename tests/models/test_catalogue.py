from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from models import ExamType
from models.catalogue import CATALOGUE_COLUMNS, load_catalogue, read_catalogue, sync_catalogue
from models.enums import Modality
from models.errors import ValidationError
from models.migrate import upgrade


def test_shipped_catalogue_covers_the_common_exams() -> None:
    entries = load_catalogue()
    assert len(entries) >= 30
    by_modality = Counter(entry.modality for entry in entries)
    for modality in (Modality.DX, Modality.CR, Modality.CT, Modality.MR, Modality.US, Modality.MG):
        assert by_modality[modality] >= 1, modality
    codes = {entry.code for entry in entries}
    assert {"CT-HEAD-PLAIN", "CT-CHEST-PLAIN"} <= codes
    for entry in entries:
        assert entry.name_zh and entry.name_en and entry.body_part
        assert entry.fee_fen > 0
        assert entry.body_part_count >= 1
        assert not entry.recognised or entry.validity_days > 0
        if entry.loinc:
            number, check = entry.loinc.split("-")
            assert number.isdigit() and check.isdigit()


def _csv(*rows: str) -> list[str]:
    return [",".join(CATALOGUE_COLUMNS), *rows]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("X,胸片,Chest,ZZ,CHEST,1,,60.00,true,14", "column modality: unknown modality"),
        ("X,胸片,Chest,DX,CHEST,1,,sixty,true,14", "column fee_yuan: not a number"),
        ("X,胸片,Chest,DX,CHEST,1,,60.001,true,14", "at most 2 decimals"),
        ("X,胸片,Chest,DX,CHEST,1,,60.00,yes,14", "column recognised"),
        ("X,胸片,Chest,DX,CHEST,0,,60.00,true,14", "out of range"),
    ],
)
def test_bad_rows_name_line_and_column(row: str, message: str) -> None:
    with pytest.raises(
        ValidationError, match=f"line 2, {message}" if "column" in message else message
    ):
        list(read_catalogue(_csv(row)))


def test_duplicate_codes_are_refused() -> None:
    row = "X,胸片,Chest,DX,CHEST,1,,60.00,true,14"
    with pytest.raises(ValidationError, match="line 3: duplicate code X"):
        list(read_catalogue(_csv(row, row)))


def test_sync_is_idempotent_and_applies_edits(database_engine: Engine, tmp_path: Path) -> None:
    upgrade(database_engine)
    shipped = load_catalogue()
    with Session(database_engine) as session:
        assert sync_catalogue(session, entries=shipped) == len(shipped)
        session.commit()
        assert sync_catalogue(session, entries=shipped) == 0

    edited = tmp_path / "catalogue.csv"
    edited.write_text(
        "\n".join(
            _csv(
                "CT-HEAD-PLAIN,头颅CT平扫,Head CT,CT,HEAD,1,30799-1,188.50,false,45",
                "LOCAL-X,本地项目,Local exam,US,ABDOMEN,1,,80.00,false,0",
            )
        ),
        encoding="utf-8",
    )
    with Session(database_engine) as session:
        assert sync_catalogue(session, entries=load_catalogue(edited)) == 2
        session.commit()
        head = session.exec(select(ExamType).where(ExamType.code == "CT-HEAD-PLAIN")).one()
        assert (head.fee_fen, head.recognised, head.validity_days) == (18850, False, 45)
        assert session.exec(select(ExamType).where(ExamType.code == "LOCAL-X")).one()
