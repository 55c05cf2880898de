"""Hostile text in a real browser: a patient name, an HL7 field and a report that carry HTML.

A name arrives from a clinic's HIS (PID-5), a clinical reason from OBR-31, a
report from a radiologist's keyboard; any of them may hold markup. The portal
must show it as the characters it is and never run it. Reflex renders text
nodes, never HTML, and the portal uses no raw-HTML component; this proves it
where it matters, in chromium: no dialog opens, no injected handler runs, no
injected element exists, and the literal text is on the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlmodel import Session, select

from integration.database import Database
from integration.settings import Settings
from models import Order, Patient, Report, Study, User
from models.enums import ReadingStatus, ReportStatus, Sex
from tests.hub_helpers import study_for_reading
from tests.portal.browsing import DEMO_PASSWORD, UI_TIMEOUT_MS, Portal, shot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAME = "<script>alert(1)</script><img src=x onerror=alert(2)>"  # 53 of PID-5's 64 characters
REASON = '咳嗽<img src=x onerror="window.__huren_xss=1;alert(3)">"><svg onload=alert(4)>'
FINDINGS = "双肺纹理清晰。</pre><script>window.__huren_xss=2;alert(5)</script>"
IMPRESSION = "未见异常<iframe src=javascript:alert(6)></iframe><b onmouseover=alert(7)>粗</b>"
INJECTED = "img[src='x'], iframe, [onerror], [onload], [onmouseover]"  # elements the text carried
INJECTED_SCRIPTS = "[...document.scripts].filter(s => /alert\\(|__huren_xss/.test(s.text)).length"


@pytest.fixture
def hostile(portal: Portal) -> Iterator[tuple[int, int]]:
    """(a reported study, a study awaiting its preliminary) of one patient with a hostile name."""
    database = Database.from_settings(Settings(data_dir=portal.data_dir))
    stamp = int(datetime.now(UTC).timestamp() * 1000)
    try:
        with database.session() as session:
            patient = Patient(name=NAME, sex=Sex.female)
            session.add(patient)
            session.flush()
            assert patient.id is not None
            studies = []
            for offset, suffix in ((4, 1), (2, 2)):
                study_id, order_id = study_for_reading(
                    session,
                    clinic_code="QL-T01",
                    uid=f"2.25.{stamp}{suffix}",
                    completed_at=datetime.now(UTC) - timedelta(minutes=offset),
                )
                order, study = session.get(Order, order_id), session.get(Study, study_id)
                assert order is not None and study is not None
                order.patient_id = study.patient_id = patient.id
                order.reason = REASON
                studies.append(study)
            reported = studies[0]
            radiologist = _user(session, "radiologist")
            auditor = _user(session, "auditor")
            now = datetime.now(UTC)
            reported.reading_status = ReadingStatus.final
            session.add(
                Report(
                    study_id=reported.id,
                    order_id=reported.order_id,
                    reading_centre_id=reported.reading_centre_id,
                    status=ReportStatus.final,
                    findings=FINDINGS,
                    impression=IMPRESSION,
                    author_id=radiologist,
                    auditor_id=auditor,
                    preliminary_at=now - timedelta(minutes=1),
                    finalised_at=now,
                )
            )
            session.commit()
            assert studies[0].id is not None and studies[1].id is not None
            yield studies[0].id, studies[1].id
    finally:
        database.dispose()


def _user(session: Session, username: str) -> int:
    found = session.exec(select(User.id).where(User.username == username)).one()
    assert found is not None
    return int(found)


def _signed_in(browser: Browser, portal: Portal, username: str) -> tuple[Page, list[str]]:
    """A fresh session as ``username``, recording every dialog that would open."""
    from playwright.sync_api import expect

    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="zh-CN", base_url=portal.url
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    dialogs: list[str] = []

    def dismissed(dialog: object) -> None:
        dialogs.append(str(getattr(dialog, "message", "")))
        dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", dismissed)
    sign_in(page, username, DEMO_PASSWORD)
    expect(page.get_by_test_id("user-name")).to_be_visible()
    return page, dialogs


def _inert(page: Page, dialogs: list[str], *texts: str) -> None:
    """Each text is on the page as text; nothing it carried became markup or ran."""
    from playwright.sync_api import expect

    for text in texts:
        expect(page.get_by_text(text, exact=False).first).to_be_visible()
    page.wait_for_timeout(500)  # give an injected onerror/onload the time it would need
    assert dialogs == []
    assert page.evaluate("window.__huren_xss") is None
    assert page.locator(INJECTED).count() == 0
    assert page.evaluate(INJECTED_SCRIPTS) == 0
    body = page.evaluate("document.body.innerHTML")
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)" in body


def test_hostile_name_reason_and_report_are_shown_as_text(
    browser: Browser, portal: Portal, hostile: tuple[int, int]
) -> None:
    reported, waiting = hostile

    clinic, dialogs = _signed_in(browser, portal, "technologist")
    clinic.get_by_test_id("nav").get_by_text("本机构检查").click()
    _inert(clinic, dialogs, NAME)
    shot(clinic, "safe-rendering-clinic")
    clinic.goto(f"/report/{reported}")
    _inert(clinic, dialogs, NAME, FINDINGS, IMPRESSION)
    shot(clinic, "safe-rendering-report")
    clinic.context.close()

    reader, dialogs = _signed_in(browser, portal, "radiologist")
    reader.goto(f"/reading/{waiting}")
    _inert(reader, dialogs, NAME, REASON)
    shot(reader, "safe-rendering-reading")
    reader.context.close()
