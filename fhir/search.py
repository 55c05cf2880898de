"""FHIR search, without I/O: what to index of a resource, and what a search asks for.

``index_of`` reads the search values out of a resource's JSON when it is
stored; ``parse_search`` turns a query string into a :class:`SearchQuery`
that the data access layer runs with bound parameters only. Unsupported
parameters, bad dates and bad counts raise :class:`SearchError`, which the
API answers with a 400 OperationOutcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from models.errors import ValidationError

__all__ = [
    "SEARCH_PARAMETERS",
    "SUPPORTED_TYPES",
    "DateFilter",
    "SearchError",
    "SearchIndex",
    "SearchQuery",
    "TokenFilter",
    "index_of",
    "parse_search",
    "reference_id",
    "split_search_value",
    "unescape_search_value",
]

# The resource types the API serves, with the search parameters each supports (besides
# the result parameters _count, _sort, _include, _summary, _offset).
SEARCH_PARAMETERS: Mapping[str, Mapping[str, str]] = {
    "Patient": {"identifier": "token", "name": "string", "birthdate": "date"},
    "ServiceRequest": {
        "patient": "reference",
        "identifier": "token",
        "status": "token",
        "authored": "date",
    },
    "ImagingStudy": {
        "patient": "reference",
        "identifier": "token",
        "modality": "token",
        "started": "date",
        "status": "token",
    },
    "DiagnosticReport": {
        "patient": "reference",
        "identifier": "token",
        "status": "token",
        "date": "date",
        "based-on": "reference",
    },
    "Organization": {"identifier": "token"},
    "Practitioner": {"identifier": "token"},
    "PractitionerRole": {"identifier": "token"},
    "Endpoint": {"identifier": "token"},
}
SUPPORTED_TYPES = frozenset(SEARCH_PARAMETERS)
SORTABLE = {"date", "-date", "_lastUpdated", "-_lastUpdated"}
MAX_COUNT = 200
DEFAULT_COUNT = 20
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_SUPPORTED_PREFIXES = ("eq", "gt", "lt", "ge", "le")
_ESCAPED = re.compile(r"\\([\\|,$])")


class SearchError(ValidationError):
    """A search the API cannot run as asked; the message says which parameter and why."""


@dataclass(frozen=True)
class SearchIndex:
    """What a stored resource is found by."""

    subject_id: str | None = None
    status: str = ""
    sort_date: datetime | None = None
    birth_date: date | None = None
    name_text: str = ""
    tokens: tuple[tuple[str, str, str], ...] = ()  # (parameter, system, value)


@dataclass(frozen=True)
class TokenFilter:
    """``parameter=[system|]value[,…]``: any of ``values`` matches (system None: any)."""

    parameter: str
    values: tuple[tuple[str | None, str], ...]


@dataclass(frozen=True)
class DateFilter:
    """A date comparison; ``start``/``end`` bound the value's precision (end exclusive)."""

    prefix: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    tokens: tuple[TokenFilter, ...] = ()
    subjects: tuple[str, ...] | None = None  # Patient logical ids, any of
    statuses: tuple[str, ...] | None = None
    dates: tuple[DateFilter, ...] = ()  # on the sort date (authored/started/date)
    birthdates: tuple[DateFilter, ...] = ()
    name: str | None = None
    count: int = DEFAULT_COUNT
    offset: int = 0
    sort: str | None = None
    summary_count: bool = False
    includes: tuple[str, ...] = field(default=())


# --- indexing ---------------------------------------------------------------------------------


def reference_id(reference: str | None, resource_type: str) -> str | None:
    """The logical id in ``Type/id`` (relative or absolute); None for another type or a urn."""
    if not reference or reference.startswith(("urn:", "#")):
        return None
    parts = reference.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2 or parts[-2] != resource_type:
        return None
    return parts[-1] or None


def parse_instant(value: str | None) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime (dates at 00:00 UTC)."""
    if not value:
        return None
    try:
        if len(value) == 4:
            return datetime(int(value), 1, 1, tzinfo=UTC)
        if len(value) == 7:
            return datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC)
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _identifier_tokens(resource: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    for identifier in resource.get("identifier") or []:
        value = identifier.get("value")
        if value:
            found.append(("identifier", identifier.get("system") or "", str(value)))
    return found


def _coding_tokens(
    parameter: str, concepts: Iterable[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    return [
        (parameter, coding.get("system") or "", str(coding["code"]))
        for concept in concepts
        for coding in concept.get("coding") or []
        if coding.get("code")
    ]


def _reference_tokens(
    parameter: str, references: Iterable[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    return [
        (parameter, "", str(reference["reference"]))
        for reference in references
        if isinstance(reference, Mapping) and reference.get("reference")
    ]


def _patient_name_text(resource: Mapping[str, Any]) -> str:
    words: list[str] = []
    for name in resource.get("name") or []:
        if name.get("text"):
            words.append(str(name["text"]))
        family = name.get("family") or ""
        given = "".join(name.get("given") or [])
        if family or given:
            words.append(f"{family}{given}")
            words.extend(str(part) for part in [family, *(name.get("given") or [])] if part)
    return " ".join(dict.fromkeys(words)).lower()[:255]


def index_of(resource: Mapping[str, Any]) -> SearchIndex:
    """The search values of one resource (JSON as stored)."""
    kind = resource.get("resourceType")
    tokens = _identifier_tokens(resource)
    tokens += [
        ("_tag", tag.get("system") or "", str(tag["code"]))
        for tag in (resource.get("meta") or {}).get("tag") or []
        if tag.get("code")
    ]
    subject = reference_id((resource.get("subject") or {}).get("reference"), "Patient")
    status = str(resource.get("status") or "")
    if kind == "Patient":
        birth = resource.get("birthDate")
        return SearchIndex(
            status="active" if resource.get("active", True) else "inactive",
            birth_date=date.fromisoformat(birth) if birth and len(birth) == 10 else None,
            name_text=_patient_name_text(resource),
            tokens=tuple(tokens),
        )
    if kind == "ServiceRequest":
        tokens += _coding_tokens("code", [resource.get("code") or {}])
        return SearchIndex(
            subject_id=subject,
            status=status,
            sort_date=parse_instant(resource.get("authoredOn")),
            tokens=tuple(tokens),
        )
    if kind == "ImagingStudy":
        modalities = list(resource.get("modality") or [])
        modalities += [
            series["modality"] for series in resource.get("series") or [] if series.get("modality")
        ]
        tokens += [
            ("modality", coding.get("system") or "", str(coding["code"]))
            for coding in modalities
            if coding.get("code")
        ]
        tokens += _reference_tokens("based-on", resource.get("basedOn") or [])
        return SearchIndex(
            subject_id=subject,
            status=status,
            sort_date=parse_instant(resource.get("started")),
            tokens=tuple(dict.fromkeys(tokens)),
        )
    if kind == "DiagnosticReport":
        tokens += _coding_tokens("code", [resource.get("code") or {}])
        tokens += _reference_tokens("based-on", resource.get("basedOn") or [])
        moment = parse_instant(resource.get("effectiveDateTime")) or parse_instant(
            resource.get("issued")
        )
        return SearchIndex(
            subject_id=subject, status=status, sort_date=moment, tokens=tuple(tokens)
        )
    return SearchIndex(status=status, tokens=tuple(tokens))


# --- parsing a search ---------------------------------------------------------------------------


def _date_filter(parameter: str, text: str) -> DateFilter:
    prefix = "eq"
    if text[:2] in _PREFIXES:
        prefix, text = text[:2], text[2:]
    if prefix not in _SUPPORTED_PREFIXES:
        raise SearchError(f"{parameter}: prefix {prefix!r} is not supported", field=parameter)
    start = parse_instant(text)
    if start is None:
        raise SearchError(f"{parameter}: {text!r} is not a FHIR date or dateTime", field=parameter)
    if len(text) == 4:
        end = start.replace(year=start.year + 1)
    elif len(text) == 7:
        end = (start + timedelta(days=32)).replace(day=1)
    elif len(text) == 10:
        end = start + timedelta(days=1)
    else:
        end = start + timedelta(seconds=1)
    return DateFilter(prefix=prefix, start=start, end=end)


def split_search_value(text: str, separator: str, *, maxsplit: int = -1) -> list[str]:
    r"""``text`` split at each ``separator`` not escaped with a backslash (escapes are kept).

    FHIR search escapes ``\``, ``|``, ``,`` and ``$`` in values with a backslash,
    so an identifier such as ``MRN,1`` travels as ``MRN\,1`` and is one value, not two.
    """
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == separator and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def unescape_search_value(text: str) -> str:
    r"""A search value with FHIR's escapes (``\\``, ``\|``, ``\,``, ``\$``) undone."""
    return _ESCAPED.sub(r"\1", text)


def _token_values(parameter: str, text: str) -> tuple[tuple[str | None, str], ...]:
    values: list[tuple[str | None, str]] = []
    for part in split_search_value(text, ","):
        system: str | None
        pieces = split_search_value(part, "|", maxsplit=1)
        if len(pieces) == 2:
            system, value = unescape_search_value(pieces[0]), unescape_search_value(pieces[1])
        else:
            system, value = None, unescape_search_value(part)
        if not value:
            raise SearchError(f"{parameter}: a token needs a value", field=parameter)
        values.append((system, value))
    return tuple(values)


def _reference_values(parameter: str, text: str, resource_type: str) -> tuple[str, ...]:
    ids = []
    for part in map(unescape_search_value, split_search_value(text, ",")):
        found = reference_id(part, resource_type) if "/" in part else part
        if not found:
            raise SearchError(
                f"{parameter}: {part!r} is not a {resource_type} reference", field=parameter
            )
        ids.append(found)
    return tuple(ids)


def _count(parameter: str, text: str, *, allow_zero: bool) -> int:
    if not text.isdigit():
        raise SearchError(f"{parameter} must be a whole number", field=parameter)
    number = int(text)
    if number == 0 and not allow_zero:
        raise SearchError(f"{parameter} must be at least 1", field=parameter)
    return number


def parse_search(resource_type: str, parameters: Sequence[tuple[str, str]]) -> SearchQuery:
    """The query of ``GET /fhir/{resource_type}?…``; SearchError when it cannot run."""
    supported = SEARCH_PARAMETERS.get(resource_type)
    if supported is None:
        raise SearchError(f"{resource_type} is not served here", field="type")
    tokens: list[TokenFilter] = []
    subjects: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    dates: list[DateFilter] = []
    birthdates: list[DateFilter] = []
    name: str | None = None
    count, offset, sort, summary_count, includes = DEFAULT_COUNT, 0, None, False, []
    for raw_name, value in parameters:
        parameter, _, modifier = raw_name.partition(":")
        if parameter == "_count":
            count = min(_count(parameter, value, allow_zero=True), MAX_COUNT)
            if count == 0:  # FHIR: _count=0 is _summary=count (a page of 0 would never advance)
                summary_count = True
            continue
        if parameter == "_offset":
            offset = _count(parameter, value, allow_zero=True)
            continue
        if parameter == "_sort":
            if value not in SORTABLE:
                raise SearchError(f"_sort supports {', '.join(sorted(SORTABLE))}", field="_sort")
            sort = value
            continue
        if parameter == "_summary":
            if value != "count":
                raise SearchError("_summary supports only count", field="_summary")
            summary_count = True
            continue
        if parameter == "_include":
            if value != "DiagnosticReport:imaging-study" or resource_type != "DiagnosticReport":
                raise SearchError(
                    "_include supports DiagnosticReport:imaging-study", field="_include"
                )
            includes.append(value)
            continue
        if parameter == "_format":
            continue  # JSON is all the API speaks; a _format asking for it is harmless
        kind = supported.get(parameter)
        if kind is None:
            raise SearchError(
                f"{resource_type} does not support the search parameter {parameter!r}; "
                f"supported: {', '.join(sorted(supported))}",
                field=parameter,
            )
        if not value:
            raise SearchError(f"{parameter} is empty", field=parameter)
        if modifier and not (kind == "string" and modifier in ("contains", "exact")):
            raise SearchError(
                f"{parameter}: modifier :{modifier} is not supported", field=parameter
            )
        if kind == "token" and parameter == "status":
            statuses = tuple(
                unescape_search_value(part) for part in split_search_value(value, ",") if part
            )
        elif kind == "token":
            tokens.append(TokenFilter(parameter=parameter, values=_token_values(parameter, value)))
        elif kind == "reference" and parameter == "patient":
            subjects = _reference_values(parameter, value, "Patient")
        elif kind == "reference":
            references = tuple(
                part if "/" in part else f"ServiceRequest/{part}"
                for part in map(unescape_search_value, split_search_value(value, ","))
            )
            tokens.append(
                TokenFilter(parameter=parameter, values=tuple(("", ref) for ref in references))
            )
        elif kind == "date" and parameter == "birthdate":
            birthdates.append(_date_filter(parameter, value))
        elif kind == "date":
            dates.append(_date_filter(parameter, value))
        else:
            name = unescape_search_value(value).lower()
    return SearchQuery(
        resource_type=resource_type,
        tokens=tuple(tokens),
        subjects=subjects,
        statuses=statuses,
        dates=tuple(dates),
        birthdates=tuple(birthdates),
        name=name,
        count=count,
        offset=offset,
        sort=sort,
        summary_count=summary_count,
        includes=tuple(includes),
    )
