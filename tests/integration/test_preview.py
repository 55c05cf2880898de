"""Report-editor previews rendered from stored DICOM files, and the report templates."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from sqlalchemy import Engine
from sqlmodel import Session

from integration.preview import render_jpeg, study_previews
from integration.report_templates import family_for, template_for, templates
from models import Instance, Series, Study, migrate
from models.enums import StudyStatus
from tests.hub_helpers import add_township


def _stored(tmp_path: Path, name: str) -> Path:
    source = get_testdata_file(name)
    assert source is not None
    target = tmp_path / "dicom" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return target


def test_a_ct_slice_becomes_a_small_grey_jpeg(tmp_path: Path) -> None:
    jpeg = render_jpeg(_stored(tmp_path, "CT_small.dcm"), max_side=64)
    picture = Image.open(io.BytesIO(jpeg))
    assert picture.format == "JPEG" and picture.mode == "L"
    assert max(picture.size) == 64
    low, high = picture.getextrema()  # type: ignore[misc]
    assert high - low > 100  # windowed to use the grey range, not a flat image


def test_previews_of_a_study_one_per_series(tmp_path: Path, database_engine: Engine) -> None:
    migrate.upgrade(database_engine)
    ct = _stored(tmp_path, "CT_small.dcm")
    broken = tmp_path / "dicom" / "broken.dcm"
    broken.write_bytes(b"DICM but not really")
    with Session(database_engine) as session:
        facility = add_township(session.connection(), "QL-T99")
        study = Study(
            study_instance_uid="2.25.77", facility_id=facility, status=StudyStatus.complete
        )
        session.add(study)
        session.flush()
        assert study.id is not None
        for number, path in ((1, ct), (2, broken)):
            series = Series(
                study_id=study.id,
                series_instance_uid=f"2.25.77.{number}",
                number=number,
                modality="CT",
                description=f"series {number}",
            )
            session.add(series)
            session.flush()
            assert series.id is not None
            session.add(
                Instance(
                    series_id=series.id,
                    study_id=study.id,
                    sop_instance_uid=f"2.25.77.{number}.1",
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                    transfer_syntax_uid="1.2.840.10008.1.2.1",
                    path=str(path.relative_to(tmp_path)),
                    size_bytes=path.stat().st_size,
                    sha256="0" * 64,
                )
            )
        session.commit()
        previews = study_previews(session, study_id=study.id, data_dir=tmp_path)
    assert [p.series_number for p in previews] == [1, 2]
    assert previews[0].data_url.startswith("data:image/jpeg;base64,")
    Image.open(io.BytesIO(base64.b64decode(previews[0].data_url.split(",", 1)[1]))).verify()
    assert previews[1].data_url == ""  # undecodable: said, not raised


@pytest.mark.parametrize(
    ("modality", "body_part", "family"),
    [
        ("DX", "CHEST", "chest_xray"),
        ("CT", "HEAD", "head_ct"),
        ("US", "THYROID", "thyroid_us"),
        ("MG", "BREAST", "mammography"),
        ("XA", "HEART", "generic"),
        ("CT", "", "generic"),
    ],
)
def test_templates_follow_the_exam_family(modality: str, body_part: str, family: str) -> None:
    assert family_for(modality, body_part) == family
    chosen = template_for(modality, body_part)
    assert chosen.key == family and chosen.findings and chosen.impression


def test_every_family_has_a_worded_template() -> None:
    from integration.demo.vocabulary import REPORT_FAMILIES

    shipped = templates()
    assert set(shipped) == set(REPORT_FAMILIES)
    for template in shipped.values():
        assert template.name_zh and template.name_en
        assert template.impression.endswith("。") and len(template.findings) >= 15
