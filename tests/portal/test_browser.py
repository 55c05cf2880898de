"""The real portal in Debian's chromium: sign-in, home, language switch, sign-out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.portal.browsing import (
    DEMO_PASSWORD,
    Portal,
    demo_user,
    home_url,
    login_url,
    shot,
    sign_in,
    unlock,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_portal_listens_on_loopback_only(portal: Portal) -> None:
    listening: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == portal.port and fields[3] == "0A":  # 0A: LISTEN
                listening.append(address)
    assert listening, "nothing listens on the portal's port"
    loopback = {"0100007F", "00000000000000000000000001000000"}
    assert set(listening) <= loopback, listening


def test_wrong_password_stays_on_login_with_a_message(page: Page) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    expect(page.get_by_test_id("sign-in")).to_be_enabled()
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    shot(page, "01-login-zh")

    page.get_by_test_id("sign-in").click()  # nothing filled in
    expect(page.get_by_test_id("username-error")).to_have_text("请输入用户名。")

    sign_in(page, "radiologist", "not-the-password")
    expect(page.get_by_test_id("form-error")).to_have_text("用户名或密码不正确。")
    expect(page.get_by_test_id("username-error")).to_have_count(0)
    expect(page).to_have_url(login_url())
    shot(page, "02-login-wrong-password")

    sign_in(page, "no-such-user", DEMO_PASSWORD)  # reads exactly the same
    expect(page.get_by_test_id("form-error")).to_have_text("用户名或密码不正确。")
    expect(page).to_have_url(login_url())


def test_a_locked_account_says_until_when(page: Page, portal: Portal) -> None:
    from zoneinfo import ZoneInfo

    from playwright.sync_api import expect

    from portal.i18n import format_local_time

    try:
        for _ in range(5):
            sign_in(page, "qc", "still-wrong")
            expect(page.get_by_test_id("form-error")).to_be_visible()
        until = demo_user(portal, "qc").locked_until
        assert until is not None
        hhmm = format_local_time(until, ZoneInfo("Asia/Shanghai"))
        expect(page.get_by_test_id("form-error")).to_contain_text(f"北京时间 {hhmm}")
        shot(page, "03-login-locked")
    finally:
        unlock(portal, "qc")


def test_radiologist_signs_in_switches_language_and_signs_out(page: Page, portal: Portal) -> None:
    from playwright.sync_api import expect

    radiologist = demo_user(portal, "radiologist")
    sign_in(page, "radiologist", DEMO_PASSWORD)
    expect(page).to_have_url(home_url(portal))
    expect(page.get_by_test_id("user-name")).to_have_text(radiologist.display_name)
    expect(page.get_by_test_id("user-role")).to_have_text("放射科医师")
    expect(page.get_by_test_id("facility-name")).not_to_be_empty()
    expect(page.get_by_test_id("count-orders_today")).to_have_text(re.compile(r"^\d+$"))
    expect(page.get_by_text("今日申请")).to_be_visible()
    expect(page.get_by_text("待初步报告", exact=True)).to_be_visible()
    expect(page.get_by_text("待审核", exact=True)).to_be_visible()
    expect(page.get_by_text("今日终审")).to_be_visible()
    expect(page.get_by_test_id("status-line")).not_to_be_empty()
    expect(page.get_by_test_id("sign-out")).to_have_text("退出登录")
    shot(page, "04-home-zh")

    page.get_by_test_id("lang-en").click()
    expect(page.get_by_test_id("sign-out")).to_have_text("Sign out")
    expect(page.get_by_test_id("user-role")).to_have_text("Radiologist")
    expect(page.get_by_text("Orders today")).to_be_visible()
    expect(page.get_by_test_id("lang-en")).to_have_attribute("aria-pressed", "true")
    shot(page, "05-home-en")

    page.reload()  # the choice lasts for the browser session
    expect(page.get_by_test_id("sign-out")).to_have_text("Sign out")
    expect(page.get_by_test_id("user-name")).to_have_text(radiologist.display_name)

    page.get_by_test_id("sign-out").click()
    expect(page).to_have_url(login_url())
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "06-login-en-after-sign-out")

    page.goto("/")
    expect(page).to_have_url(login_url())
    expect(page.get_by_test_id("user-name")).to_have_count(0)

    page.get_by_test_id("lang-zh-CN").click()
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
