"""Portal tests: import the Reflex app without compiling it (no JS tooling runs).

`__REFLEX_SKIP_COMPILE` is Reflex's internal switch (re-check it on upgrades);
it must be set before reflex is first imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.portal.browsing import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    FIRST_BUILD_TIMEOUT,
    NETWORK_ERRORS,
    ROOT,
    UI_TIMEOUT_MS,
    Portal,
    answers,
    free_port,
    stop,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

os.environ.setdefault("__REFLEX_SKIP_COMPILE", "true")

DEMO_UNTIL = "2026-11-20"
DEMO_PASSWORD = "huren-demo"


def huren_command() -> list[str]:
    """The `huren` CLI of the interpreter running the tests."""
    beside = Path(sys.executable).with_name("huren")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("huren")
    if found:
        return [found]
    return [sys.executable, "-c", "from integration.cli import main; main()"]


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny seeded demo region (users radiologist, auditor, ... with the demo password)."""
    data_dir = tmp_path_factory.mktemp("portal-demo")
    env = {**os.environ, "HUREN_DATA_DIR": str(data_dir)}
    env.pop("HUREN_DATABASE_URL", None)
    subprocess.run(
        [*huren_command(), "demo", "seed", "--scale", "tiny", "--until", DEMO_UNTIL, "--quiet"],
        cwd=data_dir,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return data_dir


@pytest.fixture(scope="session")
def portal(demo_data_dir: Path) -> Iterator[Portal]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    if shutil.which("npm") is None and not (ROOT / ".tools" / "bin" / "bun").exists():
        pytest.skip("neither npm nor a local bun is available to build the portal")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
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
        while not (answers(f"{url}/ping") and answers(f"{url}/login/")):
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
        stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API keeps an event loop running in the main thread while
    it is open, which would break ``asyncio.run`` in any test that happens to run later."""
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
