"""The administration pages in a real browser at 1366x768.

The demo admin creates a user (a wrong entry first: the message stands under
its field), gives a township its HL7 return endpoint (a bad port first) and
changes an exam's fee (too many decimals first); a radiologist who types
/admin/users is sent home.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from sqlmodel import select

from integration.database import Database
from integration.settings import Settings
from models import ExamType, Facility, User
from models.enums import ProfessionalTitle, Role
from tests.portal.browsing import DEMO_PASSWORD, Portal, home_url, shot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def database(portal: Portal) -> Iterator[Database]:
    database = Database.from_settings(Settings(data_dir=portal.data_dir))
    yield database
    database.dispose()


def _choose(page: Page, select_test_id: str, option: str) -> None:
    page.get_by_test_id(select_test_id).click()
    page.get_by_role("option", name=option, exact=True).click()


def _signed_in_admin(page: Page) -> None:
    from playwright.sync_api import expect

    sign_in(page, "admin", DEMO_PASSWORD)
    expect(page.get_by_test_id("user-name")).to_be_visible()


def test_admin_creates_a_user_after_a_message_under_the_field(
    page: Page, database: Database
) -> None:
    from playwright.sync_api import expect

    _signed_in_admin(page)
    nav = page.get_by_test_id("nav")
    for label in ("用户管理", "机构管理", "检查项目"):
        expect(nav.get_by_text(label, exact=True)).to_be_visible()
    nav.get_by_text("用户管理", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/users/?$"))
    expect(page.get_by_test_id("user-row").first).to_be_visible()
    expect(page.locator('[data-testid="user-row"][data-username="admin"]')).to_be_visible()
    shot(page, "30-admin-users")

    username = f"li.aud{int(time.time()) % 100000}"
    page.get_by_test_id("new-user").click()
    page.get_by_test_id("input-username").fill(username)
    page.get_by_test_id("input-display_name").fill("李审核")
    _choose(page, "select-role", "审核医师")
    _choose(page, "select-title", "住院医师")
    page.get_by_test_id("input-password").fill("Qinglan-audit-2026")
    page.get_by_test_id("create-user").click()
    expect(page.get_by_test_id("title-error")).to_have_text("审核医师须具有主治医师及以上职称。")
    expect(page.get_by_test_id("username-error")).to_have_count(0)
    expect(page.get_by_test_id("input-username")).to_have_value(username)  # kept
    shot(page, "31-admin-user-field-error")

    _choose(page, "select-title", "主治医师")
    page.get_by_test_id("create-user").click()  # no facility chosen yet
    expect(page.get_by_test_id("facility_id-error")).to_have_text(
        "请选择您管理范围内的已启用机构。"
    )
    expect(page.get_by_test_id("title-error")).to_have_count(0)
    page.get_by_test_id("select-facility_id").click()
    page.get_by_role("option", name=re.compile(r"^QL-H01 ")).click()
    page.get_by_test_id("create-user").click()
    expect(page.get_by_test_id("admin-notice")).to_have_text("用户已创建。")
    row = page.locator(f'[data-testid="user-row"][data-username="{username}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("审核医师")
    shot(page, "32-admin-user-created")

    with database.session() as session:
        created = session.exec(select(User).where(User.username == username)).one()
        centre = session.get(Facility, created.facility_id)
    assert created.role is Role.auditor and created.title is ProfessionalTitle.attending
    assert centre is not None and centre.code == "QL-H01"
    assert created.password_hash.startswith("$argon2")

    # The editor opens with the account's values; English reads the same page.
    row.get_by_test_id("edit-user").click()
    expect(page.get_by_test_id("input-display_name")).to_have_value("李审核")
    page.get_by_test_id("lang-en").click()
    expect(page.get_by_test_id("reset-password")).to_have_text("Reset password")
    shot(page, "33-admin-user-edit-en")
    page.get_by_test_id("lang-zh-CN").click()


def test_admin_sets_a_facility_hl7_endpoint(page: Page, database: Database) -> None:
    from playwright.sync_api import expect

    _signed_in_admin(page)
    page.goto("/admin/facilities")
    expect(page.get_by_test_id("facility-row").first).to_be_visible()
    shot(page, "34-admin-facilities")
    page.get_by_test_id("facility-search").fill("QL-T04")
    page.get_by_test_id("facility-search").press("Enter")
    row = page.locator('[data-testid="facility-row"][data-code="QL-T04"]')
    expect(row).to_be_visible()
    expect(page.get_by_test_id("facility-row")).to_have_count(1 + _villages(database, "QL-T04"))
    row.get_by_test_id("edit-facility").click()
    expect(page.get_by_test_id("facility-heading")).to_contain_text("QL-T04")

    page.get_by_test_id("input-hl7_host").fill("his.t04.qinglan.example")
    page.get_by_test_id("input-hl7_port").fill("70000")
    page.get_by_test_id("save-hl7").click()
    expect(page.get_by_test_id("hl7_port-error")).to_have_text(
        "端口须为 1–65535 的整数（已填写主机时必填）。"
    )
    shot(page, "35-admin-facility-port-error")
    page.get_by_test_id("input-hl7_port").fill("2575")
    _choose(page, "select-hl7_charset", "GB 18030")
    page.get_by_test_id("save-hl7").click()
    expect(page.get_by_test_id("admin-notice")).to_have_text("已保存。")
    expect(page.get_by_test_id("hl7_port-error")).to_have_count(0)
    shot(page, "36-admin-facility-saved")

    with database.session() as session:
        t04 = session.exec(select(Facility).where(Facility.code == "QL-T04")).one()
    assert (t04.hl7_host, t04.hl7_port, t04.hl7_charset) == (
        "his.t04.qinglan.example",
        2575,
        "GB 18030",
    )
    page.get_by_test_id("back").click()
    expect(page.locator('[data-testid="facility-row"][data-code="QL-T04"]')).to_contain_text(
        "his.t04.qinglan.example:2575"
    )


def _villages(database: Database, code: str) -> int:
    with database.session() as session:
        return len(session.exec(select(Facility).where(Facility.code.startswith(f"{code}-"))).all())  # type: ignore[attr-defined]


def test_admin_changes_an_exam_fee(page: Page, database: Database) -> None:
    from playwright.sync_api import expect

    _signed_in_admin(page)
    page.goto("/admin/catalogue")
    expect(page.get_by_test_id("exam-row").first).to_be_visible()
    shot(page, "37-admin-catalogue")
    page.get_by_test_id("exam-search").fill("US-THYROID")
    page.get_by_test_id("exam-search").press("Enter")
    row = page.locator('[data-testid="exam-row"][data-code="US-THYROID"]')
    expect(row).to_be_visible()
    expect(page.get_by_test_id("exam-row")).to_have_count(1)
    row.get_by_test_id("edit-exam").click()
    page.get_by_test_id("input-fee").fill("95.505")
    page.get_by_test_id("save-exam").click()
    expect(page.get_by_test_id("fee-error")).to_have_text("费用须为 0–100000 元，最多两位小数。")
    shot(page, "38-admin-exam-fee-error")
    page.get_by_test_id("input-fee").fill("95.50")
    page.get_by_test_id("save-exam").click()
    expect(page.get_by_test_id("admin-notice")).to_have_text("已保存。")
    expect(page.get_by_test_id("input-fee")).to_have_value("95.50")
    shot(page, "39-admin-exam-saved")
    with database.session() as session:
        exam = session.exec(select(ExamType).where(ExamType.code == "US-THYROID")).one()
    assert exam.fee_fen == 9550


def test_a_radiologist_cannot_open_the_admin_pages(page: Page, portal: Portal) -> None:
    from playwright.sync_api import expect

    sign_in(page, "radiologist", DEMO_PASSWORD)
    expect(page.get_by_test_id("user-name")).to_be_visible()
    expect(page.get_by_test_id("nav").get_by_text("用户管理")).to_have_count(0)
    for route in ("/admin/users", "/admin/facilities", "/admin/catalogue"):
        page.goto(route)
        expect(page).to_have_url(home_url(portal))
        expect(page.get_by_test_id("users-table")).to_have_count(0)


def test_the_catalogue_pages_and_sorts_on_the_server(page: Page, database: Database) -> None:
    from playwright.sync_api import expect

    with database.session() as session:
        codes = sorted(exam.code for exam in session.exec(select(ExamType)).all())
    pages = -(-len(codes) // 20)
    assert pages >= 2, "the demo catalogue should fill more than one page"
    _signed_in_admin(page)
    page.goto("/admin/catalogue")
    rows = page.get_by_test_id("exam-row")
    expect(page.get_by_test_id("page-of")).to_have_text(f"1 / {pages}")
    expect(rows.first).to_have_attribute("data-code", codes[0])
    page.get_by_test_id("page-next").click()
    expect(page.get_by_test_id("page-of")).to_have_text(f"2 / {pages}")
    expect(rows.first).to_have_attribute("data-code", codes[20])
    page.get_by_test_id("page-prev").click()
    expect(rows.first).to_have_attribute("data-code", codes[0])
    page.get_by_test_id("sort-code").click()  # the current column again: the order turns round
    expect(rows.first).to_have_attribute("data-code", codes[-1])
    expect(page.get_by_test_id("page-of")).to_have_text(f"1 / {pages}")
    page.get_by_test_id("sort-code").click()
    expect(rows.first).to_have_attribute("data-code", codes[0])
