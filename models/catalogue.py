"""The exam catalogue (ExamType) and loading it from the shipped CSV or another one."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, Session, SQLModel, select

from models.enums import Modality
from models.errors import ValidationError
from models.types import text_enum

CATALOGUE_COLUMNS = (
    "code",
    "name_zh",
    "name_en",
    "modality",
    "body_part",
    "body_part_count",
    "loinc",
    "fee_yuan",
    "recognised",
    "validity_days",
)


class ExamType(SQLModel, table=True):
    """One orderable exam. Fees are kept in fen (0.01 yuan) so totals are exact."""

    __tablename__ = "exam_type"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name_zh: str = Field(max_length=64)
    name_en: str = Field(max_length=128)
    modality: Modality = Field(sa_type=text_enum(Modality, 4))
    body_part: str = Field(max_length=16)
    body_part_count: int = 1
    loinc: str | None = Field(default=None, max_length=16, index=True)
    fee_fen: int = 0
    recognised: bool = False  # on the mutual-recognition (HR) list
    validity_days: int = 0
    active: bool = True


class ExamCodeAlias(SQLModel, table=True):
    """A facility's local exam code (OBR-4) that stands for a catalogue exam type.

    ``facility_id`` None makes the alias region-wide.
    """

    __tablename__ = "exam_code_alias"
    __table_args__ = (UniqueConstraint("facility_id", "code", name="uq_exam_code_alias"),)

    id: int | None = Field(default=None, primary_key=True)
    facility_id: int | None = Field(default=None, foreign_key="facility.id")
    code: str = Field(max_length=64, index=True)
    exam_type_id: int = Field(foreign_key="exam_type.id")


@dataclass(frozen=True)
class CatalogueEntry:
    code: str
    name_zh: str
    name_en: str
    modality: Modality
    body_part: str
    body_part_count: int
    loinc: str | None
    fee_fen: int
    recognised: bool
    validity_days: int


def _parse_row(row: dict[str, str], line: int) -> CatalogueEntry:
    def fail(column: str, why: str) -> ValidationError:
        return ValidationError(f"exam catalogue line {line}, column {column}: {why}", field=column)

    missing = [column for column in CATALOGUE_COLUMNS if column not in row]
    if missing:
        raise fail(missing[0], "column missing")
    code = row["code"].strip()
    if not code:
        raise fail("code", "empty")
    try:
        modality = Modality(row["modality"].strip())
    except ValueError:
        raise fail("modality", f"unknown modality {row['modality']!r}") from None
    try:
        fee = Decimal(row["fee_yuan"].strip())
    except InvalidOperation:
        raise fail("fee_yuan", f"not a number: {row['fee_yuan']!r}") from None
    if fee < 0 or fee != fee.quantize(Decimal("0.01")):
        raise fail("fee_yuan", "must be a non-negative amount with at most 2 decimals")
    recognised_text = row["recognised"].strip().lower()
    if recognised_text not in {"true", "false"}:
        raise fail("recognised", "must be true or false")
    try:
        parts = int(row["body_part_count"])
        validity = int(row["validity_days"])
    except ValueError as exc:
        raise fail("body_part_count/validity_days", f"not an integer ({exc})") from None
    if parts < 1 or validity < 0:
        raise fail("body_part_count/validity_days", "out of range")
    return CatalogueEntry(
        code=code,
        name_zh=row["name_zh"].strip(),
        name_en=row["name_en"].strip(),
        modality=modality,
        body_part=row["body_part"].strip().upper(),
        body_part_count=parts,
        loinc=row["loinc"].strip() or None,
        fee_fen=int(fee * 100),
        recognised=recognised_text == "true",
        validity_days=validity,
    )


def read_catalogue(lines: Iterable[str]) -> Iterator[CatalogueEntry]:
    seen: set[str] = set()
    for line, row in enumerate(csv.DictReader(lines), start=2):
        entry = _parse_row(row, line)
        if entry.code in seen:
            raise ValidationError(f"exam catalogue line {line}: duplicate code {entry.code}")
        seen.add(entry.code)
        yield entry


def load_catalogue(path: Path | None = None) -> list[CatalogueEntry]:
    """The catalogue at ``path``, or the one shipped in ``models/data/exam_types.csv``."""
    if path is None:
        text = resources.files("models").joinpath("data/exam_types.csv").read_text("utf-8")
        return list(read_catalogue(text.splitlines()))
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(read_catalogue(handle))


def sync_catalogue(session: Session, *, entries: Iterable[CatalogueEntry]) -> int:
    """Insert or update exam types by code; returns how many rows changed."""
    existing = {exam.code: exam for exam in session.exec(select(ExamType)).all()}
    changed = 0
    for entry in entries:
        exam = existing.get(entry.code) or ExamType(
            code=entry.code, name_zh="", name_en="", modality=entry.modality, body_part=""
        )
        values = {
            "name_zh": entry.name_zh,
            "name_en": entry.name_en,
            "modality": entry.modality,
            "body_part": entry.body_part,
            "body_part_count": entry.body_part_count,
            "loinc": entry.loinc,
            "fee_fen": entry.fee_fen,
            "recognised": entry.recognised,
            "validity_days": entry.validity_days,
        }
        if exam.id is None or any(getattr(exam, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(exam, key, value)
            session.add(exam)
            changed += 1
    return changed
