"""The running portal for browser tests: start it, open a chromium page, sign in.

`scripts/portal.sh` (Reflex prod mode, one port on 127.0.0.1) runs against a
tiny seeded demo region; playwright drives Debian's chromium. Screenshots land
in test-artifacts/portal/. The first build of a clean checkout installs bun
and the frontend packages from the npm registry. The fixtures are in
conftest.py so that every browser test module shares one portal.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from integration.database import Database
from integration.settings import Settings
from models import User

if TYPE_CHECKING:
    from playwright.sync_api import Page

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
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


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login_url() -> re.Pattern[str]:
    return re.compile(r"/login/?$")


def home_url(portal: Portal) -> re.Pattern[str]:
    return re.compile(re.escape(portal.url) + r"/?$")


def sign_in(page: Page, username: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    expect(page.get_by_test_id("sign-in")).to_be_enabled()  # hydrated: events reach the server
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.get_by_test_id("sign-in").click()


def demo_user(portal: Portal, username: str) -> User:
    database = Database.from_settings(Settings(data_dir=portal.data_dir))
    try:
        with Session(database.engine) as session:
            user = session.exec(select(User).where(User.username == username)).one()
            session.expunge(user)
            return user
    finally:
        database.dispose()


def unlock(portal: Portal, username: str) -> None:
    """Tests share one portal, so a test that locks an account gives it back."""
    database = Database.from_settings(Settings(data_dir=portal.data_dir))
    try:
        with Session(database.engine) as session:
            user = session.exec(select(User).where(User.username == username)).one()
            user.locked_until, user.failed_logins = None, 0
            session.add(user)
            session.commit()
    finally:
        database.dispose()
