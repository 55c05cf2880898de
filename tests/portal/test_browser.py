"""The real portal in Debian's chromium: sign-in, home, language switch, sign-out.

Starts `scripts/portal.sh` (Reflex prod mode, one port on 127.0.0.1) against a
tiny seeded demo region, and drives it with playwright. Screenshots land in
test-artifacts/portal/. The first build of a clean checkout installs bun and
the frontend packages from the npm registry.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import Session, select

from integration.database import Database
from integration.settings import Settings
from models import User

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "portal"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FIRST_BUILD_TIMEOUT = 300.0
UI_TIMEOUT_MS = 20_000
DEMO_PASSWORD = "huren-demo"
NETWORK_ERRORS = (
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "ETIMEDOUT",
    "ECONNRESET",
    "network request",
    "getaddrinfo",
)


@dataclass(frozen=True)
class Portal:
    url: str
    port: int
    data_dir: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the portal's whole process group: reflex, granian and its workers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):  # workers outliving their parent
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def portal(demo_data_dir: Path) -> Iterator[Portal]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    if shutil.which("npm") is None and not (ROOT / ".tools" / "bin" / "bun").exists():
        pytest.skip("neither npm nor a local bun is available to build the portal")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {
        **os.environ,
        "HUREN_DATA_DIR": str(demo_data_dir),
        "HUREN_PORTAL_PORT": str(port),
    }
    for name in (
        "HUREN_DATABASE_URL",
        "HUREN_ENV",
        "__REFLEX_SKIP_COMPILE",
        "HUREN_PORTAL_BACKEND_PORT",
    ):
        env.pop(name, None)
    log_path = ARTIFACTS / "portal.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "portal.sh")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + FIRST_BUILD_TIMEOUT
        while not (_answers(f"{url}/ping") and _answers(f"{url}/login/")):
            if process.poll() is not None:
                output = log_path.read_text(encoding="utf-8", errors="replace")
                if "installing bun" in output and any(e in output for e in NETWORK_ERRORS):
                    pytest.skip(
                        f"bun could not be installed, the network is down:\n{output[-2000:]}"
                    )
                pytest.fail(f"the portal exited with {process.returncode}:\n{output[-4000:]}")
            if time.monotonic() > deadline:
                output = log_path.read_text(encoding="utf-8", errors="replace")
                pytest.fail(
                    f"the portal did not answer within {FIRST_BUILD_TIMEOUT:.0f} s:\n"
                    f"{output[-4000:]}"
                )
            time.sleep(0.5)
        yield Portal(url=url, port=port, data_dir=demo_data_dir)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, portal: Portal) -> Iterator[Page]:
    """A fresh browser context: a new tab session, so a new Reflex session."""
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="zh-CN", base_url=portal.url
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _login_url() -> re.Pattern[str]:
    return re.compile(r"/login/?$")


def _home_url(portal: Portal) -> re.Pattern[str]:
    return re.compile(re.escape(portal.url) + r"/?$")


def _sign_in(page: Page, username: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    expect(page.get_by_test_id("sign-in")).to_be_enabled()  # hydrated: events reach the server
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.get_by_test_id("sign-in").click()


def _user(portal: Portal, username: str) -> User:
    database = Database.from_settings(Settings(data_dir=portal.data_dir))
    try:
        with Session(database.engine) as session:
            user = session.exec(select(User).where(User.username == username)).one()
            session.expunge(user)
            return user
    finally:
        database.dispose()


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
    _shot(page, "01-login-zh")

    page.get_by_test_id("sign-in").click()  # nothing filled in
    expect(page.get_by_test_id("username-error")).to_have_text("请输入用户名。")

    _sign_in(page, "radiologist", "not-the-password")
    expect(page.get_by_test_id("form-error")).to_have_text("用户名或密码不正确。")
    expect(page.get_by_test_id("username-error")).to_have_count(0)
    expect(page).to_have_url(_login_url())
    _shot(page, "02-login-wrong-password")

    _sign_in(page, "no-such-user", DEMO_PASSWORD)  # reads exactly the same
    expect(page.get_by_test_id("form-error")).to_have_text("用户名或密码不正确。")
    expect(page).to_have_url(_login_url())


def test_a_locked_account_says_until_when(page: Page, portal: Portal) -> None:
    from playwright.sync_api import expect

    for _ in range(5):
        _sign_in(page, "qc", "still-wrong")
        expect(page.get_by_test_id("form-error")).to_be_visible()
    until = _user(portal, "qc").locked_until
    assert until is not None
    from zoneinfo import ZoneInfo

    from portal.i18n import format_local_time

    hhmm = format_local_time(until, ZoneInfo("Asia/Shanghai"))
    expect(page.get_by_test_id("form-error")).to_contain_text(f"北京时间 {hhmm}")
    _shot(page, "03-login-locked")


def test_radiologist_signs_in_switches_language_and_signs_out(page: Page, portal: Portal) -> None:
    from playwright.sync_api import expect

    radiologist = _user(portal, "radiologist")
    _sign_in(page, "radiologist", DEMO_PASSWORD)
    expect(page).to_have_url(_home_url(portal))
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
    _shot(page, "04-home-zh")

    page.get_by_test_id("lang-en").click()
    expect(page.get_by_test_id("sign-out")).to_have_text("Sign out")
    expect(page.get_by_test_id("user-role")).to_have_text("Radiologist")
    expect(page.get_by_text("Orders today")).to_be_visible()
    expect(page.get_by_test_id("lang-en")).to_have_attribute("aria-pressed", "true")
    _shot(page, "05-home-en")

    page.reload()  # the choice lasts for the browser session
    expect(page.get_by_test_id("sign-out")).to_have_text("Sign out")
    expect(page.get_by_test_id("user-name")).to_have_text(radiologist.display_name)

    page.get_by_test_id("sign-out").click()
    expect(page).to_have_url(_login_url())
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    _shot(page, "06-login-en-after-sign-out")

    page.goto("/")
    expect(page).to_have_url(_login_url())
    expect(page.get_by_test_id("user-name")).to_have_count(0)

    page.get_by_test_id("lang-zh-CN").click()
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
