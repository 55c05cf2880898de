"""The prior-exam check and the refusal audit in a real browser.

A study from QL-T01 is reported and signed at QL-H01 (through the hub's own
use-cases, into the portal's database); the clinician at QL-T02 finds the
patient by resident ID, sees the prior as recognisable and refuses it with a
reason; the QC officer draws and reviews a month's sample.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlmodel import Session, select

from integration import reading_desk
from integration.database import Database
from integration.settings import Settings
from models import (
    AvoidableExam,
    ExamType,
    Facility,
    PatientIdentifier,
    QcQualification,
    RecognitionDecision,
    Study,
    User,
)
from models.enums import IdentifierKind, RecognitionSource, RefusalReason
from tests.hub_helpers import study_for_reading
from tests.portal.browsing import DEMO_PASSWORD, UI_TIMEOUT_MS, Portal, shot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _signed_prior(portal: Portal) -> tuple[str, str, str]:
    """(resident ID, exam code, exam name) of a freshly signed, recognisable prior."""
    settings = Settings(data_dir=portal.data_dir)
    database = Database.from_settings(settings)
    now = datetime.now(UTC)
    try:
        with database.session() as session:
            study_id, _ = study_for_reading(
                session,
                clinic_code="QL-T01",
                uid=f"2.25.{int(now.timestamp() * 1000) + 7}",
                completed_at=now - timedelta(hours=1),
            )
            study = session.get(Study, study_id)
            assert study is not None
            exam = session.get(ExamType, study.exam_type_id)
            assert exam is not None
            exam.recognised, exam.validity_days = True, 180
            session.add(exam)
            t01 = session.exec(select(Facility).where(Facility.code == "QL-T01")).one()
            session.add(QcQualification(facility_id=int(t01.id or 0), valid_from=date(2020, 1, 1)))
            resident = session.exec(
                select(PatientIdentifier.value).where(
                    PatientIdentifier.patient_id == study.patient_id,
                    PatientIdentifier.kind == IdentifierKind.resident_id,
                )
            ).one()
            readers = {
                name: reading_desk.load_actor(
                    session,
                    user_id=int(
                        session.exec(select(User.id).where(User.username == name)).one() or 0
                    ),
                    settings=settings,
                )
                for name in ("radiologist", "auditor")
            }
            exam_code, exam_name = exam.code, exam.name_zh
        with database.session() as session:
            reading_desk.write_preliminary(
                session,
                actor=readers["radiologist"],
                study_id=study_id,
                findings="两肺纹理清晰。",
                impression="胸部未见明显异常。",
                now=now - timedelta(minutes=50),
                settings=settings,
            )
            reading_desk.sign(
                session,
                actor=readers["auditor"],
                study_id=study_id,
                findings="两肺纹理清晰。",
                impression="胸部未见明显异常。",
                grade="A",
                now=now - timedelta(minutes=40),
                settings=settings,
            )
        return resident, exam_code, exam_name
    finally:
        database.dispose()


def _as(browser: Browser, portal: Portal, username: str) -> Page:
    from playwright.sync_api import expect

    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="zh-CN", base_url=portal.url
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, username, DEMO_PASSWORD)
    expect(page.get_by_test_id("user-name")).to_be_visible()
    return page


def test_clinician_checks_priors_and_refuses_with_a_reason(
    browser: Browser, portal: Portal
) -> None:
    from playwright.sync_api import expect

    resident, exam_code, exam_name = _signed_prior(portal)
    clinician = _as(browser, portal, "clinician")
    clinician.get_by_test_id("nav").get_by_text("检查互认查询").click()
    expect(clinician).to_have_url(re.compile(r"/priors/?$"))
    clinician.get_by_test_id("input-term").fill("王")
    clinician.get_by_test_id("search").click()
    expect(clinician.get_by_test_id("term-error")).to_be_visible()
    clinician.get_by_test_id("input-term").fill(resident)
    clinician.get_by_test_id("search").click()
    clinician.get_by_test_id("patient-hit").first.click()
    clinician.get_by_test_id("choose-exam").click()
    clinician.get_by_role("option", name=re.compile(re.escape(exam_code))).click()
    clinician.get_by_test_id("run-check").click()
    recognisable = clinician.get_by_test_id("verdict").filter(
        has=clinician.get_by_test_id("verdict-yes")
    )
    expect(recognisable.first).to_be_visible()
    shot(clinician, "20-prior-check")
    recognisable.first.get_by_test_id("refuse-prior").click()
    clinician.get_by_test_id("record-refusal").click()
    expect(clinician.get_by_test_id("reason-error")).to_have_text("请选择不采用的原因。")
    clinician.get_by_test_id("refusal-reason").click()
    clinician.get_by_role("option", name="病情变化").click()
    clinician.get_by_test_id("refusal-comment").fill("胸痛加重一天")
    clinician.get_by_test_id("record-refusal").click()
    expect(clinician.get_by_test_id("notice")).to_contain_text("已记录不采用原因")
    clinician.context.close()

    database = Database.from_settings(Settings(data_dir=portal.data_dir))
    try:
        with Session(database.engine) as session:
            decision = session.exec(
                select(RecognitionDecision)
                .where(RecognitionDecision.source == RecognitionSource.portal)
                .order_by(RecognitionDecision.id.desc())  # type: ignore[union-attr]
            ).first()
            assert decision is not None
            assert decision.refusal_reason is RefusalReason.condition_changed
            assert decision.comment == "胸痛加重一天"
    finally:
        database.dispose()
    assert exam_name


def test_qc_draws_and_reviews_a_months_sample(browser: Browser, portal: Portal) -> None:
    from playwright.sync_api import expect

    qc = _as(browser, portal, "qc")
    qc.goto("/refusal-audit")
    qc.get_by_test_id("input-month").fill("2026-10")
    qc.get_by_role("button", name="显示").click()
    expect(qc.get_by_test_id("audit-refusals")).not_to_have_text("0")
    qc.get_by_test_id("draw-sample").click()
    rows = qc.get_by_test_id("sampled-refusal")
    expect(rows.first).to_be_visible()
    drawn = int(qc.get_by_test_id("audit-drawn").inner_text())
    refusals = int(qc.get_by_test_id("audit-refusals").inner_text())
    assert drawn == -(-refusals // 10) and rows.count() == drawn
    rows.first.get_by_test_id("mark-unjustified").click()
    expect(rows.first.get_by_test_id("review-error")).to_be_visible()
    rows.first.get_by_test_id("review-note").fill("病历未见病情变化记录")
    rows.first.get_by_test_id("mark-unjustified").click()
    expect(qc.get_by_test_id("audit-reviewed")).to_have_text("1")
    expect(rows.first.get_by_test_id("review-verdict")).to_have_text("理由不充分")
    shot(qc, "21-refusal-audit")
    qc.context.close()


def test_qc_sees_the_months_avoidable_exams_with_their_cost(
    browser: Browser, portal: Portal
) -> None:
    from playwright.sync_api import expect

    database = Database.from_settings(Settings(data_dir=portal.data_dir))
    try:  # what the nightly check lists (tests/integration/test_prior_check.py finds them)
        with database.session() as session:
            october = session.exec(
                select(Study)
                .where(
                    Study.completed_at >= datetime(2026, 10, 5, tzinfo=UTC),  # type: ignore[operator]
                    Study.completed_at < datetime(2026, 10, 25, tzinfo=UTC),  # type: ignore[operator]
                )
                .order_by(Study.id)  # type: ignore[arg-type]
                .limit(2)
            ).all()
            fees = []
            for study in october:
                exam = session.get(ExamType, study.exam_type_id)
                assert exam is not None and study.patient_id is not None
                fees.append(exam.fee_fen)
                session.add(
                    AvoidableExam(
                        study_id=int(study.id or 0),
                        patient_id=study.patient_id,
                        exam_type_id=exam.id,
                        facility_id=study.facility_id,
                        performed_on=(study.completed_at or datetime.now(UTC)).date(),
                        prior_key=f"2.25.{study.id}0",
                        prior_facility="青岚县中心卫生院",
                        prior_performed_on=date(2026, 9, 1),
                        fee_fen=exam.fee_fen,
                        found_at=datetime.now(UTC),
                    )
                )
    finally:
        database.dispose()
    qc = _as(browser, portal, "qc")
    qc.goto("/refusal-audit")
    qc.get_by_test_id("input-month").fill("2026-10")
    qc.get_by_role("button", name="显示").click()
    expect(qc.get_by_test_id("avoidable-exam")).to_have_count(2)
    expect(qc.get_by_test_id("avoidable-count")).to_have_text("2")
    expect(qc.get_by_test_id("avoidable-fee")).to_have_text(f"{sum(fees) / 100:,.2f}")
    expect(qc.get_by_test_id("avoidable-exam").first).to_contain_text("青岚县中心卫生院 2026-09-01")
    shot(qc, "22-avoidable-exams")
    qc.get_by_test_id("input-month").fill("2026-08")
    qc.get_by_role("button", name="显示").click()
    expect(qc.get_by_test_id("avoidable-none")).to_be_visible()
    expect(qc.get_by_test_id("avoidable-count")).to_have_text("0")
    qc.context.close()
