"""Seeded mutators for the fuzz suite: byte edits and JSON-structure edits.

Each takes a ``random.Random`` so a failing case is reproduced by its seed
and index, which the tests print.
"""

from __future__ import annotations

import copy
import random
from typing import Any

# Values that trip type checks, bounds and encoders.
NASTY_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**63,
    1e308,
    "",
    " ",
    "x" * 5000,
    "\u0000",
    "患者\ud7ff\U0001f600",
    "Patient/../../etc/passwd",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    [],
    [None],
    {},
    {"resourceType": "Patient"},
)


BYTE_EDITS = ("flip", "insert", "delete", "repeat", "cut", "special")


def mutate_bytes(
    data: bytes, rng: random.Random, *, edits: int = 3, kinds: tuple[str, ...] = BYTE_EDITS
) -> bytes:
    """Flip, insert, delete, duplicate or cut bytes, ``edits`` times."""
    raw = bytearray(data)
    for _ in range(edits):
        kind = rng.choice(kinds)
        at = rng.randrange(len(raw) + 1)
        if kind == "insert":
            raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == "special":
            raw[at:at] = rng.choice((b"\x0b", b"\x1c", b"\r", b"\x1c\r", b"|", b"^", b"\xff\xfe"))
        elif not raw or at >= len(raw):
            continue
        elif kind == "flip":
            raw[at] ^= 1 << rng.randrange(8)
        elif kind == "delete":
            del raw[at : at + rng.randint(1, 16)]
        elif kind == "repeat":
            raw[at:at] = raw[at : at + rng.randint(1, 64)]
        else:
            del raw[at:]
    return bytes(raw)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def mutate_json(document: Any, rng: random.Random, *, edits: int = 2) -> Any:
    """A copy of ``document`` with ``edits`` structural changes at random places."""
    result = copy.deepcopy(document)
    for _ in range(edits):
        path = rng.choice(_paths(result))
        if not path:
            result = rng.choice(NASTY_VALUES) if rng.random() < 0.1 else result
            continue
        parent = result
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        kind = rng.choice(("delete", "replace", "duplicate", "wrap", "rename"))
        if kind == "delete":
            del parent[key]
        elif kind == "replace":
            parent[key] = copy.deepcopy(rng.choice(NASTY_VALUES))
        elif kind == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif kind == "wrap":
            parent[key] = [parent[key]] if rng.random() < 0.5 else {"value": parent[key]}
        elif kind == "rename" and isinstance(parent, dict):
            parent[f"{key}_"] = parent.pop(key)
        else:
            parent[key] = copy.deepcopy(rng.choice(NASTY_VALUES))
    return result
