"""The analytics pages in a real browser over the seeded demo county.

The leader opens the dashboard (key figures with the month before, charts),
every topic page draws its charts and tables, a table exports as CSV and as
Excel, the settlement page gives the signable statement PDF, and a clinician
cannot open any of it.
"""

from __future__ import annotations

import csv
import io
import re
from typing import TYPE_CHECKING

import pytest
from openpyxl import load_workbook

from integration.analytics_portal import TABLES, Topic
from tests.portal.browsing import DEMO_PASSWORD, UI_TIMEOUT_MS, Portal, shot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LOAD_MS = 60_000  # the first page builds the analytics snapshot of the demo year
TITLES = {
    Topic.turnaround: "时效",
    Topic.quality: "质控",
    Topic.recognition: "互认",
    Topic.equipment: "设备",
    Topic.consultations: "会诊",
    Topic.settlement: "结算",
}


def _as(browser: Browser, portal: Portal, username: str) -> Page:
    from playwright.sync_api import expect

    context = browser.new_context(
        viewport={"width": 1366, "height": 768},
        locale="zh-CN",
        base_url=portal.url,
        accept_downloads=True,
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, username, DEMO_PASSWORD)
    expect(page.get_by_test_id("user-name")).to_be_visible()
    return page


def test_leader_dashboard_topics_and_exports(browser: Browser, portal: Portal) -> None:
    from playwright.sync_api import expect

    leader = _as(browser, portal, "leader")
    leader.get_by_test_id("nav").get_by_text("统计分析").click()
    expect(leader).to_have_url(re.compile(r"/analytics/overview/?$"))
    cards = leader.get_by_test_id("key-figure")
    expect(cards.first).to_be_visible(timeout=LOAD_MS)
    assert cards.count() == 15
    exams = leader.locator('[data-testid="key-figure"][data-key="exams"]')
    expect(exams.get_by_test_id("kf-value")).to_have_text(re.compile(r"^[\d,]+$"))
    expect(leader.locator(".js-plotly-plot").first).to_be_visible()
    assert leader.locator(".js-plotly-plot").count() == 4
    shot(leader, "40-analytics-overview")

    with leader.expect_download() as got:
        leader.locator('[data-testid="panel"][data-table="sla_trend"]').get_by_test_id(
            "export-csv"
        ).click()
    text = got.value.path().read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:2] == ["月份", "合计"] and len(rows) == 13  # a header and twelve months

    for topic in [t for t in Topic if t is not Topic.overview]:
        leader.get_by_test_id(f"topic-{topic.value}").click()
        expect(leader).to_have_url(re.compile(rf"/analytics/{topic.value}/?$"))
        first_table = TABLES[topic][0]
        panel = leader.locator(f'[data-testid="panel"][data-table="{first_table}"]')
        expect(panel).to_be_visible(timeout=LOAD_MS)
        expect(leader.get_by_role("heading", name=re.compile("统计分析"))).to_contain_text(
            TITLES[topic]
        )
        expect(leader.get_by_test_id("panel")).to_have_count(len(TABLES[topic]))
        expect(leader.locator(".js-plotly-plot").first).to_be_visible()
        shot(leader, f"41-analytics-{topic.value}")

    with leader.expect_download() as got:
        leader.locator('[data-testid="panel"][data-table="by_clinic"]').get_by_test_id(
            "export-xlsx"
        ).click()
    sheet = load_workbook(io.BytesIO(got.value.path().read_bytes())).active
    assert sheet is not None and sheet.cell(1, 1).value == "半年度" and sheet.max_row > 2

    with leader.expect_download() as got:
        leader.get_by_test_id("statement-pdf").click()
    assert got.value.path().read_bytes().startswith(b"%PDF")
    leader.context.close()


def test_a_clinician_cannot_open_analytics(browser: Browser, portal: Portal) -> None:
    from playwright.sync_api import expect

    clinician = _as(browser, portal, "clinician")
    expect(clinician.get_by_test_id("nav").get_by_text("统计分析")).to_have_count(0)
    clinician.goto("/analytics/overview")
    expect(clinician).to_have_url(re.compile(re.escape(portal.url) + r"/?$"))
    clinician.context.close()
