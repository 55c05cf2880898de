"""ER7 parse speed: the hub's own parser against hl7apy on the same ORM^O01.

Goal: >= 5,000 messages/s for one core (hl7apy manages about 60/s, which
is why intake has its own parser). The bound, measured in the same run, is
hl7apy parsing the same message without validation (``find_groups=False``,
as the cross-check tests use it); the ratio is ours divided by hl7apy's.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from hl7apy.parser import parse_message as hl7apy_parse

from hl7.er7 import parse_message
from hl7.orders import map_message

GOAL_MESSAGES_PER_SECOND = 5000
SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "hl7" / "orm_o01_v231_obr18.hl7"


def _per_message(work: Callable[[], object], count: int) -> float:
    """Best of three runs, seconds per call: the least disturbed figure."""
    work()  # warm caches (hl7apy loads its structure tables on first use)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            work()
        best = min(best, (time.perf_counter() - started) / count)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000, help="parses per run (ours)")
    parser.add_argument("--small", action="store_true", help="2,000 parses (50 with hl7apy)")
    args = parser.parse_args()
    ours_count = 2_000 if args.small else args.messages
    hl7apy_count = max(20, ours_count // 40)

    raw = SAMPLE.read_bytes()
    zone = ZoneInfo("Asia/Shanghai")
    ours = _per_message(lambda: parse_message(raw), ours_count)
    ours_mapped = _per_message(lambda: map_message(parse_message(raw), zone=zone), ours_count)
    bound = _per_message(lambda: hl7apy_parse(raw.decode("utf-8"), find_groups=False), hl7apy_count)
    grouped = _per_message(lambda: hl7apy_parse(raw.decode("utf-8")), max(10, hl7apy_count // 2))

    segments = raw.count(b"\r")
    print(f"sample {SAMPLE.name} ({len(raw)} bytes, {segments} segments)")
    print(f"huren er7 parse:              {ours * 1e3:8.4f} ms/msg")
    print(f"huren er7 parse + map_message:{ours_mapped * 1e3:8.4f} ms/msg")
    print(f"hl7apy find_groups=False:     {bound * 1e3:8.4f} ms/msg")
    print(f"hl7apy find_groups=True:      {grouped * 1e3:8.4f} ms/msg")
    rate, bound_rate = 1 / ours, 1 / bound
    verdict = "met" if rate >= GOAL_MESSAGES_PER_SECOND else "missed"
    print(
        f"GOAL er7-parse: {rate:.0f} msg/s (bound hl7apy {bound_rate:.0f} msg/s, "
        f"ratio {rate / bound_rate:.0f}) goal >={GOAL_MESSAGES_PER_SECOND} msg/s: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
