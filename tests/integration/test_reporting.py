"""Preliminary, audit and amendment on a real SQLite file, with the ORU queued on signing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlmodel import Session

from hl7.er7 import parse_message
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.outbox import OUTBOX
from integration.reporting import (
    Signer,
    amend,
    is_correction,
    may_audit,
    revisions,
    sign_final,
    submit_preliminary,
)
from integration.settings import Settings
from models import Order, Study, User, metadata
from models.enums import (
    ImageGrade,
    OrderStatus,
    ProfessionalTitle,
    ReadingStatus,
    ReportStatus,
    Role,
    StudyStatus,
)
from models.errors import PermissionDenied, TransitionError, ValidationError
from tests.databases import DemoSnapshots

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def test_only_attending_or_above_audits() -> None:
    for title, allowed in (
        (ProfessionalTitle.resident, False),
        (ProfessionalTitle.attending, True),
        (ProfessionalTitle.chief, True),
    ):
        assert may_audit(Signer(1, Role.auditor, title, 1)) is allowed
    assert not may_audit(Signer(1, Role.radiologist, ProfessionalTitle.chief, 1))


def test_correction_ignores_whitespace_only() -> None:
    assert not is_correction(("双肺纹理清晰。", "未见异常。"), ("双肺纹理清晰。 ", "未见异常。\n"))
    assert is_correction(("双肺纹理清晰。", "未见异常。"), ("双肺纹理清晰。", "右肺下叶小结节。"))


@pytest.fixture
def desk(
    tmp_path: Path, database_url: str, demo_snapshots: DemoSnapshots
) -> Iterator[tuple[Database, Settings, int, Signer, Signer]]:
    """A demo county plus one complete study awaiting its preliminary at QL-H01."""
    settings = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=9, exams=200, until=date(2026, 11, 20), progress=False),
    )
    with Session(database.engine) as session:
        radiologist = session.exec(select(User).where(User.username == "radiologist")).scalar_one()  # type: ignore[call-overload]
        auditor = session.exec(select(User).where(User.username == "auditor")).scalar_one()  # type: ignore[call-overload]
        order = (
            session.exec(select(Order).where(Order.status == OrderStatus.scheduled))
            .scalars()
            .first()
        )  # type: ignore[call-overload]
        assert order is not None and order.id is not None
        study = Study(
            study_instance_uid="2.25.424242",
            order_id=order.id,
            patient_id=order.patient_id,
            exam_type_id=order.exam_type_id,
            facility_id=order.performing_facility_id,
            reading_centre_id=radiologist.facility_id,
            accession_number=order.accession_number,
            status=StudyStatus.complete,
            reading_status=ReadingStatus.awaiting_preliminary,
            received_at=NOW - timedelta(minutes=5),
            completed_at=NOW,
        )
        session.add(study)
        session.execute(
            update(metadata.tables["facility"])
            .where(metadata.tables["facility"].c.id == order.ordering_facility_id)
            .values(hl7_host="127.0.0.1", hl7_port=1)
        )
        session.commit()
        assert study.id is not None
        yield (
            database,
            settings,
            study.id,
            Signer(radiologist.id, radiologist.role, radiologist.title, radiologist.facility_id),
            Signer(auditor.id, auditor.role, auditor.title, auditor.facility_id),
        )
    database.dispose()


def test_preliminary_audit_correction_and_amendment(
    desk: tuple[Database, Settings, int, Signer, Signer],
) -> None:
    database, settings, study_id, radiologist, auditor = desk
    with database.session() as session:
        with pytest.raises(ValidationError) as missing:
            submit_preliminary(
                session,
                study_id=study_id,
                signer=radiologist,
                findings="双肺纹理清晰。",
                impression=" ",
                now=NOW,
                settings=settings,
            )
        assert missing.value.field == "impression"
        report = submit_preliminary(
            session,
            study_id=study_id,
            signer=radiologist,
            findings="双肺纹理清晰，未见实变。",
            impression="胸部未见明显异常。",
            now=NOW + timedelta(minutes=12),
            settings=settings,
        )
    with database.session() as session:
        study = session.get(Study, study_id)
        assert study is not None and study.reading_status is ReadingStatus.awaiting_audit
        with pytest.raises(PermissionDenied):
            sign_final(
                session,
                study_id=study_id,
                signer=radiologist,
                findings="x",
                impression="y",
                grade=ImageGrade.A,
                now=NOW,
                settings=settings,
            )
        final = sign_final(
            session,
            study_id=study_id,
            signer=auditor,
            findings="双肺纹理清晰，未见实变。",
            impression="胸部未见明显异常。右肺下叶小结节，建议随访。",
            grade=ImageGrade.B,
            now=NOW + timedelta(minutes=25),
            settings=settings,
        )
        assert final.status is ReportStatus.final and final.corrected
        assert final.id == report.id
    with database.session() as session:
        history = revisions(session, report_id=final.id)  # type: ignore[arg-type]
        assert [(r.version, r.status, r.reason) for r in history] == [
            (1, ReportStatus.preliminary, ""),
            (2, ReportStatus.final, "审核修改"),
        ]
        order = session.get(Order, session.get(Study, study_id).order_id)  # type: ignore[union-attr]
        assert order is not None and order.status is OrderStatus.completed
        with pytest.raises(TransitionError):
            submit_preliminary(
                session,
                study_id=study_id,
                signer=radiologist,
                findings="a",
                impression="b",
                now=NOW,
                settings=settings,
            )
    with database.session() as session:
        with pytest.raises(ValidationError) as no_reason:
            amend(
                session,
                study_id=study_id,
                signer=auditor,
                findings="双肺纹理清晰。",
                impression="更正。",
                reason="",
                status=ReportStatus.corrected,
                now=NOW,
                settings=settings,
            )
        assert no_reason.value.field == "reason"
        amend(
            session,
            study_id=study_id,
            signer=auditor,
            findings="双肺纹理清晰，未见实变。",
            impression="右肺下叶小结节（6mm），建议3个月后复查。",
            reason="临床反馈后复核",
            status=ReportStatus.corrected,
            now=NOW + timedelta(hours=3),
            settings=settings,
        )

    with database.engine.connect() as connection:
        queued = connection.execute(
            select(OUTBOX.c.idempotency_key, OUTBOX.c.payload).order_by(OUTBOX.c.id)
        ).all()
        grades = connection.execute(
            text("SELECT grade FROM qc_event WHERE study_id = :s"), {"s": study_id}
        ).all()
    assert [key for key, _ in queued] == [f"oru:{final.id}:v2", f"oru:{final.id}:v3"]
    statuses = [parse_message(bytes(p)).segment("OBR").get(25) for _, p in queued]  # type: ignore[union-attr]
    assert statuses == ["F", "C"]
    assert [g[0] for g in grades] == ["B"]


def test_a_study_of_another_centre_is_not_yours(
    desk: tuple[Database, Settings, int, Signer, Signer],
) -> None:
    database, _settings, study_id, radiologist, _auditor = desk
    stranger = Signer(
        radiologist.user_id, radiologist.role, radiologist.title, radiologist.facility_id + 1
    )
    with database.session() as session, pytest.raises(PermissionDenied):
        submit_preliminary(
            session,
            study_id=study_id,
            signer=stranger,
            findings="a",
            impression="b",
            now=NOW,
            settings=_settings,
        )
