"""Portal tests: import the Reflex app without compiling it (no JS tooling runs).

`__REFLEX_SKIP_COMPILE` is Reflex's internal switch (re-check it on upgrades);
it must be set before reflex is first imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
