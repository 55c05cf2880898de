"""The reading desk in a real browser, from the worklist to the clinic's acknowledgement.

A radiologist claims a fresh study and submits a preliminary with a critical
result; the auditor corrects and signs it and sees the correction in the
history; the township's technologist acknowledges the critical result and
reads the report; a clinician cannot open the reading desk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlmodel import Session, select

from integration.database import Database
from integration.settings import Settings
from models import CriticalResult, Report, ReportRevision
from models.enums import ReportStatus
from tests.hub_helpers import study_for_reading
from tests.portal.browsing import DEMO_PASSWORD, UI_TIMEOUT_MS, Portal, shot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def database(portal: Portal) -> Iterator[Database]:
    database = Database.from_settings(Settings(data_dir=portal.data_dir))
    yield database
    database.dispose()


@pytest.fixture
def fresh_study(database: Database) -> int:
    """A study from township QL-T01 that arrived a few minutes ago at QL-H01."""
    with database.session() as session:
        study_id, _ = study_for_reading(
            session,
            clinic_code="QL-T01",
            uid=f"2.25.{int(datetime.now(UTC).timestamp() * 1000)}",
            completed_at=datetime.now(UTC) - timedelta(minutes=3),
        )
    return study_id


def _as(browser: Browser, portal: Portal, username: str) -> Page:
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="zh-CN", base_url=portal.url
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, username, DEMO_PASSWORD)
    from playwright.sync_api import expect

    expect(page.get_by_test_id("user-name")).to_be_visible()
    return page


def test_claim_report_audit_critical_and_clinic(
    browser: Browser, portal: Portal, fresh_study: int, database: Database
) -> None:
    from playwright.sync_api import expect

    # The radiologist: the menu, the worklist, the claim, the preliminary with a critical result.
    reader = _as(browser, portal, "radiologist")
    expect(reader.get_by_test_id("nav").get_by_text("阅片工作列表")).to_be_visible()
    reader.get_by_test_id("nav").get_by_text("阅片工作列表").click()
    row = reader.locator(f'[data-testid="worklist-row"][data-study="{fresh_study}"]')
    expect(row).to_be_visible()
    expect(row.locator("[data-clock]").first).to_have_attribute("data-clock", "running")
    shot(reader, "10-worklist")
    row.get_by_test_id("claim").click()
    expect(reader).to_have_url(re.compile(rf"/reading/{fresh_study}/?$"))
    expect(reader.get_by_test_id("case-status")).to_have_text("待初步报告")
    reader.get_by_test_id("submit-preliminary").click()  # empty: messages under the fields
    expect(reader.get_by_test_id("impression-error")).to_have_text("请填写诊断意见。")
    reader.get_by_test_id("use-template").click()
    expect(reader.get_by_test_id("input-findings")).not_to_have_value("")
    reader.get_by_test_id("input-impression").fill("右侧气胸，右肺压缩约70%。")
    reader.get_by_test_id("input-critical").fill("右侧大量气胸，请立即处理")
    shot(reader, "11-editor-preliminary")
    reader.get_by_test_id("submit-preliminary").click()
    expect(reader.get_by_test_id("notice")).to_contain_text("初步报告已提交")
    expect(reader.get_by_test_id("case-status")).to_have_text("待审核")
    expect(reader.get_by_test_id("critical")).to_contain_text("右侧大量气胸")
    reader.context.close()

    # The auditor corrects the impression and signs; the history shows what changed.
    auditor = _as(browser, portal, "auditor")
    auditor.goto("/worklist")
    auditor.get_by_test_id("view-awaiting_audit").click()
    auditor.locator(f'[data-testid="worklist-row"][data-study="{fresh_study}"]').get_by_role(
        "link"
    ).first.click()
    expect(auditor.get_by_test_id("input-impression")).to_have_value("右侧气胸，右肺压缩约70%。")
    auditor.get_by_test_id("input-impression").fill("右侧大量气胸，右肺压缩约70%，纵隔左移。")
    auditor.get_by_test_id("sign-final").click()  # no grade yet
    expect(auditor.get_by_test_id("grade-error")).to_be_visible()
    auditor.get_by_role("radio", name="B").click()
    auditor.get_by_test_id("sign-final").click()
    expect(auditor.get_by_test_id("notice")).to_contain_text("报告已签发")
    expect(auditor.get_by_test_id("report-status")).to_have_text("已终审")
    newest = auditor.get_by_test_id("revision").first
    expect(newest.get_by_text("有修改")).to_be_visible()
    expect(newest.get_by_test_id("diff-added").first).to_be_visible()
    shot(auditor, "12-signed-with-history")
    # A change after signing needs a reason and becomes a corrected version.
    auditor.get_by_test_id("open-amend").click()
    auditor.get_by_test_id("input-impression").fill(
        "右侧大量气胸，右肺压缩约70%，纵隔左移。建议急诊胸腔闭式引流。"
    )
    auditor.get_by_test_id("amend").click()
    expect(auditor.get_by_test_id("reason-error")).to_have_text("请填写修改原因。")
    auditor.get_by_test_id("input-amend-reason").fill("补充处理建议")
    auditor.get_by_test_id("amend").click()
    expect(auditor.get_by_test_id("report-status")).to_have_text("已更正")
    expect(auditor.get_by_test_id("revision")).to_have_count(3)
    auditor.context.close()

    with Session(database.engine) as session:
        report = session.exec(select(Report).where(Report.study_id == fresh_study)).one()
        assert report.finalised_at is not None and report.corrected and report.critical
        versions = session.exec(
            select(ReportRevision.version).where(ReportRevision.report_id == report.id)
        ).all()
        assert report.status is ReportStatus.corrected
        assert sorted(versions) == [1, 2, 3]

    # The township: the critical result waits for someone to acknowledge it.
    clinic = _as(browser, portal, "technologist")
    clinic.get_by_test_id("nav").get_by_text("本机构检查").click()
    banner = clinic.get_by_test_id("clinic-critical").filter(has_text="右侧大量气胸")
    expect(banner).to_be_visible()
    shot(clinic, "13-clinic-critical")
    banner.get_by_test_id("acknowledge").click()
    expect(clinic.get_by_test_id("notice")).to_have_text("已确认危急值。")
    expect(banner).to_have_count(0)
    clinic.goto(f"/report/{fresh_study}")
    expect(clinic.get_by_test_id("report-impression")).to_have_text(
        "右侧大量气胸，右肺压缩约70%，纵隔左移。建议急诊胸腔闭式引流。"
    )
    shot(clinic, "14-returned-report")
    with clinic.expect_download() as download:
        clinic.get_by_test_id("download-pdf").click()
    assert download.value.suggested_filename.endswith(".pdf")
    clinic.context.close()

    with Session(database.engine) as session:
        result = session.exec(
            select(CriticalResult).where(CriticalResult.study_id == fresh_study)
        ).one()
        assert result.acknowledged_at is not None and result.notified_at is not None


def test_a_clinician_cannot_open_the_reading_desk(
    browser: Browser, portal: Portal, fresh_study: int
) -> None:
    from playwright.sync_api import expect

    clinician = _as(browser, portal, "clinician")
    expect(clinician.get_by_test_id("nav").get_by_text("阅片工作列表")).to_have_count(0)
    clinician.goto("/worklist")
    expect(clinician).to_have_url(re.compile(re.escape(portal.url) + r"/?$"))
    clinician.goto(f"/reading/{fresh_study}")
    expect(clinician).to_have_url(re.compile(re.escape(portal.url) + r"/?$"))
    expect(clinician.get_by_test_id("input-findings")).to_have_count(0)
    clinician.context.close()
