"""C-FIND matching rules (PS3.4 C.2.2.2) and response building shared by worklist and Q/R.

Universal matching: an empty key (or one of only ``*``) matches everything
and is represented as ``None``. Wildcards ``*`` and ``?`` work on string
keys; person names match case-insensitively and against any of their
component groups (alphabetic, ideographic, phonetic), with or without the
``^`` separators. Date and time keys take single values and ranges, open at
either end, and a date range with a time range is one combined range.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, tzinfo
from functools import lru_cache
from typing import Any

from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from dicom.errors import IDENTIFIER_MISMATCH, UNABLE_TO_PROCESS, DicomError
from dicom.instance import parse_da, parse_tm

__all__ = [
    "DateRange",
    "TimeRange",
    "combined_range",
    "element",
    "fill_response",
    "fit",
    "in_time_of_day",
    "key_text",
    "key_values",
    "match_any",
    "name_matches",
    "parse_date_range",
    "parse_time_range",
    "wildcard_matches",
]

DateRange = tuple[date | None, date | None]
TimeRange = tuple[time | None, time | None]

_MAX_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "IS": 12, "LO": 64, "SH": 16, "UI": 64}
_CS_FORBIDDEN = re.compile(r"[^A-Z0-9 _]")


# --- reading keys -----------------------------------------------------------------------------


def _decoded(identifier: Dataset, keyword: str) -> Any:
    try:
        return identifier.get(keyword)
    except Exception as exc:
        raise DicomError(
            f"query key {keyword} cannot be decoded: {exc}", field=keyword, status=UNABLE_TO_PROCESS
        ) from None


def key_values(identifier: Dataset, keyword: str) -> list[str]:
    """A key's values as text, ``[]`` for universal matching (absent, empty or only ``*``)."""
    value = _decoded(identifier, keyword)
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    texts = [str(item).strip() for item in items]
    texts = [text for text in texts if text]
    if not texts or all(set(text) <= {"*"} for text in texts):
        return []
    return texts


def key_text(identifier: Dataset, keyword: str) -> str | None:
    """A single-valued key as text, or None for universal matching."""
    values = key_values(identifier, keyword)
    if not values:
        return None
    if len(values) > 1:
        raise DicomError(
            f"{keyword} takes a single value in a query, got {len(values)}",
            field=keyword,
            status=IDENTIFIER_MISMATCH,
        )
    return values[0]


# --- wildcards and names ----------------------------------------------------------------------


@lru_cache(maxsize=512)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_matches(value: str, pattern: str | None, *, ignore_case: bool = False) -> bool:
    """Single value or wildcard matching; None (universal) matches anything."""
    if pattern is None:
        return True
    value = value.strip()
    if "*" not in pattern and "?" not in pattern:
        return value.casefold() == pattern.casefold() if ignore_case else value == pattern
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


def match_any(value: str, patterns: tuple[str, ...], *, ignore_case: bool = False) -> bool:
    """Matching against a multi-valued key: any of its values (empty tuple: universal)."""
    if not patterns:
        return True
    return any(wildcard_matches(value, p, ignore_case=ignore_case) for p in patterns)


def _name_forms(name: str) -> set[str]:
    """The forms a stored person name may be queried by."""
    forms = {name.rstrip("^= ")}
    for group in name.split("="):
        group = group.rstrip("^ ")
        if not group:
            continue
        parts = [part.strip() for part in group.split("^") if part.strip()]
        forms.update({group, "^".join(parts), " ".join(parts), "".join(parts)})
    return {form for form in forms if form}


def name_matches(name: str, pattern: str | None) -> bool:
    """PN matching: case-insensitive, on the whole value or any component group.

    ``LI*`` and ``li^jianguo`` match ``Li^Jianguo=李^建国``; so do ``李*``,
    ``李^建国`` and ``李建国``. Trailing empty components are ignored on both sides.
    """
    if pattern is None:
        return True
    wanted = pattern.rstrip("^= ")
    if not wanted or set(wanted) <= {"*"}:
        return True
    forms = _name_forms(name)
    if not forms:
        return False
    candidates = {wanted}
    if "=" in wanted:
        candidates.update(group.rstrip("^ ") for group in wanted.split("=") if group.strip("^ *"))
    return any(
        wildcard_matches(form, candidate, ignore_case=True)
        for form in forms
        for candidate in candidates
    )


# --- dates and times --------------------------------------------------------------------------


def _split_range(value: str) -> tuple[str, str, bool]:
    text = value.strip()
    if "-" not in text:
        return text, text, False
    low, high = (part.strip() for part in text.split("-", 1))
    return low, high, True


def parse_date_range(value: str | None, *, keyword: str = "date") -> DateRange | None:
    """A DA key: ``D``, ``D1-D2``, ``D1-``, ``-D2``; None when universal."""
    if value is None or not value.strip():
        return None
    low, high, is_range = _split_range(value)
    start = parse_da(low) if low else None
    end = parse_da(high) if high else None
    if (low and start is None) or (high and end is None) or (is_range and not low and not high):
        raise DicomError(
            f"{keyword} {value!r} is not a DA value or range",
            field=keyword,
            status=IDENTIFIER_MISMATCH,
        )
    if start and end and start > end:
        raise DicomError(
            f"{keyword} range {value!r} ends before it starts",
            field=keyword,
            status=IDENTIFIER_MISMATCH,
        )
    return start, end


def parse_time_range(value: str | None, *, keyword: str = "time") -> TimeRange | None:
    """A TM key: single value or range; a bound covers its precision (``12``: 12:00-12:59:59)."""
    if value is None or not value.strip():
        return None
    low, high, is_range = _split_range(value)
    start = parse_tm(low) if low else None
    end = parse_tm(high, upper=True) if high else None
    if (low and start is None) or (high and end is None) or (is_range and not low and not high):
        raise DicomError(
            f"{keyword} {value!r} is not a TM value or range",
            field=keyword,
            status=IDENTIFIER_MISMATCH,
        )
    return start, end


def combined_range(
    dates: DateRange | None, times: TimeRange | None, zone: tzinfo
) -> tuple[datetime | None, datetime | None]:
    """A date range and a time range as one range of aware datetimes (PS3.4 C.2.2.2.5.2).

    Only meaningful when a date range is given; the caller handles a
    time-only key as a time of day.
    """
    if dates is None:
        return None, None
    low_day, high_day = dates
    low_time = times[0] if times and times[0] else time(0, 0)
    high_time = times[1] if times and times[1] else time(23, 59, 59, 999999)
    start = datetime.combine(low_day, low_time, tzinfo=zone) if low_day else None
    end = datetime.combine(high_day, high_time, tzinfo=zone) if high_day else None
    return start, end


def in_time_of_day(moment: datetime, times: TimeRange | None, zone: tzinfo) -> bool:
    """Time-only matching: the local time of day of ``moment`` lies in ``times``."""
    if times is None:
        return True
    clock = moment.astimezone(zone).time().replace(tzinfo=None)
    low, high = times
    return (low is None or clock >= low) and (high is None or clock <= high)


# --- building responses -----------------------------------------------------------------------


def fit(vr: str, value: str) -> str:
    """Keep a text value inside its VR (length, CS characters) so responses stay valid.

    Backslash separates values, each fitted on its own.
    """
    if vr in ("LT", "ST", "UT"):
        return value
    return "\\".join(_fit_one(vr, part) for part in value.split("\\"))


def _fit_one(vr: str, value: str) -> str:
    if vr == "CS":
        value = _CS_FORBIDDEN.sub("_", value.upper())
    if vr == "PN":
        return "=".join(group[:64] for group in value.split("=")[:3])
    limit = _MAX_LENGTH.get(vr)
    return value[:limit] if limit else value


def _vr_of(elem: DataElement) -> str:
    try:
        return str(dictionary_VR(elem.tag))
    except KeyError:
        return str(elem.VR)


def element(tag: BaseTag | int, vr: str, value: Any) -> DataElement:
    """A response element; values were fitted already, so pydicom's warnings are not wanted."""
    if isinstance(value, str):
        value = fit(vr, value)
    return DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE)


Filler = Callable[[Dataset], Dataset]


def fill_response(
    identifier: Dataset,
    values: Mapping[str, Any],
    sequences: Mapping[str, Filler] | None = None,
) -> Dataset:
    """A response holding exactly the identifier's keys, filled from ``values``.

    ``values`` maps keywords to text (or ints); keys the hub does not hold
    come back empty, as PS3.4 allows. ``sequences`` maps a sequence keyword
    to a function building its single item from the requested item.
    Specific Character Set is left to the caller.
    """
    response = Dataset()
    for elem in identifier:
        tag = BaseTag(elem.tag)
        if tag.element == 0 or tag.group in (0x0000, 0x0002) or tag == 0x00080005:
            continue
        vr = _vr_of(elem)
        keyword = elem.keyword
        if vr == "SQ":
            builder = (sequences or {}).get(keyword)
            items = []
            if builder is not None:
                requested = elem.value[0] if elem.value else Dataset()
                items = [builder(requested)]
            response.add(DataElement(tag, "SQ", Sequence(items)))
            continue
        value = values.get(keyword) if keyword else None
        if value is None or value == "":
            response.add(DataElement(tag, vr, None, validation_mode=pydicom_config.IGNORE))
        else:
            response.add(element(tag, vr, str(value) if vr not in ("US", "UL") else value))
    return response
