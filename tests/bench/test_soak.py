"""The soak (``bench/soak.py``) for one minute: under mixed load nothing acknowledged is lost.

HL7 orders, C-STOREs and CDS Hooks calls at once on a county hub that pushes
to a province hub (real processes on 127.0.0.1). The script checks the
databases itself; this test holds it to a clean exit, a met ``soak-loss``
goal and every stream having moved something. Speeds are only printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_a_one_minute_soak_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), "--minutes", "1", "--data-dir", str(tmp_path / "soak")],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    said = done.stdout + done.stderr[-3000:]
    assert done.returncode == 0, said[-6000:]
    goals = dict(re.findall(r"^GOAL (soak-[a-z]+): (.*)$", done.stdout, re.MULTILINE))
    assert set(goals) == {
        "soak-mllp",
        "soak-dicom",
        "soak-cds",
        "soak-push",
        "soak-memory",
        "soak-loss",
    }, said[-6000:]
    assert goals["soak-loss"].startswith("0 lost, 0 duplicated;"), goals["soak-loss"]
    assert goals["soak-loss"].endswith(": met"), goals["soak-loss"]
    moved = {
        name: int(n)
        for name, n in re.findall(r"(hl7|instances|cds|bundles) (\d+)", goals["soak-loss"])
    }
    assert set(moved) == {"hl7", "instances", "cds", "bundles"}, goals["soak-loss"]
    assert all(n > 0 for n in moved.values()), moved
