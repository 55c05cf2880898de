"""The audit-trail page in a real browser at 1366x768.

The QC officer opens 审计日志 from the menu, finds their own sign-in, narrows
the search to themselves and to sign-ins, and downloads the result as a FHIR
Bundle of AuditEvents; the export shows up on the trail. A radiologist who
types /audit-trail is sent home.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlmodel import Session, col, select

from integration.database import Database
from integration.settings import Settings
from models import AuditEvent
from models.enums import AuditAction
from tests.portal.browsing import DEMO_PASSWORD, Portal, home_url, shot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_qc_searches_the_trail_and_exports_it(page: Page, portal: Portal, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    sign_in(page, "qc", DEMO_PASSWORD)
    expect(page.get_by_test_id("user-name")).to_be_visible()
    page.get_by_test_id("nav").get_by_text("审计日志", exact=True).click()
    expect(page).to_have_url(re.compile(r"/audit-trail/?$"))
    expect(page.get_by_test_id("trail-row").first).to_be_visible()
    shot(page, "40-audit-trail")

    page.get_by_test_id("trail-person").fill("qc")
    page.get_by_test_id("trail-search").click()
    page.get_by_test_id("trail-action").click()
    page.get_by_role("option", name="登录", exact=True).click()
    rows = page.get_by_test_id("trail-row")
    expect(rows.first).to_contain_text("qc")
    expect(rows.first).to_contain_text("登录")
    for text in rows.all_inner_texts():
        assert "qc" in text and "登录" in text

    page.get_by_test_id("trail-since").fill("2026-12-31")
    page.get_by_test_id("trail-until").fill("2026-01-01")
    page.get_by_test_id("trail-search").click()
    expect(page.get_by_test_id("trail-since-error")).to_have_text("起始日期不能晚于截止日期。")
    page.get_by_test_id("trail-since").fill("")
    page.get_by_test_id("trail-until").fill("")
    page.get_by_test_id("trail-search").click()
    expect(page.get_by_test_id("trail-since-error")).to_have_count(0)
    shot(page, "41-audit-trail-filtered")

    with page.expect_download() as download:
        page.get_by_test_id("trail-export").click()
    assert download.value.suggested_filename.startswith("audit-events-")
    saved = tmp_path / "audit.json"
    download.value.save_as(saved)
    bundle = Bundle.model_validate_json(saved.read_text(encoding="utf-8"))
    assert bundle.type == "collection" and bundle.entry
    assert all(entry.resource.get_resource_type() == "AuditEvent" for entry in bundle.entry)
    expect(page.get_by_test_id("notice")).to_contain_text("已导出事件数")

    database = Database.from_settings(Settings(data_dir=portal.data_dir))
    try:
        with Session(database.engine) as session:
            exported = session.exec(
                select(AuditEvent)
                .where(AuditEvent.action == AuditAction.export, AuditEvent.actor == "qc")
                .order_by(col(AuditEvent.id).desc())
            ).first()
    finally:
        database.dispose()
    assert exported is not None and exported.entity_type == "Bundle"
    assert json.loads(exported.detail)["events"] == len(bundle.entry)


def test_a_radiologist_is_sent_home_from_the_trail(page: Page, portal: Portal) -> None:
    from playwright.sync_api import expect

    sign_in(page, "radiologist", DEMO_PASSWORD)
    expect(page.get_by_test_id("user-name")).to_be_visible()
    expect(page.get_by_test_id("nav").get_by_text("审计日志", exact=True)).to_have_count(0)
    page.goto("/audit-trail")
    expect(page).to_have_url(home_url(portal))
