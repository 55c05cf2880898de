"""Data access for stored FHIR resources: write with their search index, read, search.

Every function takes the caller's connection (and so its transaction). A
resource is stored as compact JSON with ``meta.versionId`` and
``meta.lastUpdated`` filled in; writing the same content again changes
nothing, so replays and re-publishes are harmless.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from fhir.search import DateFilter, SearchQuery, index_of, reference_id
from models import metadata

RESOURCE = metadata.tables["fhir_resource"]
TOKEN = metadata.tables["fhir_token"]

Outcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class StoredResource:
    resource_type: str
    logical_id: str
    version_id: int
    last_updated: datetime
    origin: str
    body: str  # the JSON served as it stands
    subject_id: str | None = None  # the Patient it is about, as indexed

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.logical_id}"

    def parsed(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


_COLUMNS = (
    RESOURCE.c.id,
    RESOURCE.c.resource_type,
    RESOURCE.c.logical_id,
    RESOURCE.c.version_id,
    RESOURCE.c.last_updated,
    RESOURCE.c.origin,
    RESOURCE.c.body,
    RESOURCE.c.subject_id,
)


# Built once: SQLAlchemy then reuses their compiled form instead of keying each new statement.
_BY_ID = select(*_COLUMNS).where(
    RESOURCE.c.resource_type == bindparam("kind"), RESOURCE.c.logical_id == bindparam("logical")
)
_TOKEN_MATCH = [
    TOKEN.c.resource_type == bindparam("kind"),
    TOKEN.c.parameter == "identifier",
    TOKEN.c.value == bindparam("value"),
]
_BY_IDENTIFIER = (
    select(*_COLUMNS)
    .where(
        RESOURCE.c.id.in_(
            select(TOKEN.c.resource_id).where(*_TOKEN_MATCH, TOKEN.c.system == bindparam("system"))
        )
    )
    .order_by(RESOURCE.c.id)
)
_BY_IDENTIFIER_ANY_SYSTEM = (
    select(*_COLUMNS)
    .where(RESOURCE.c.id.in_(select(TOKEN.c.resource_id).where(*_TOKEN_MATCH)))
    .order_by(RESOURCE.c.id)
)


_INSERT = insert(RESOURCE)
_UPDATE = update(RESOURCE).where(RESOURCE.c.id == bindparam("row"))
_FORGET_TOKENS = delete(TOKEN).where(TOKEN.c.resource_id == bindparam("row"))
_ADD_TOKENS = insert(TOKEN)


def _stored(row: Any) -> StoredResource:
    return StoredResource(
        resource_type=row.resource_type,
        logical_id=row.logical_id,
        version_id=row.version_id,
        last_updated=row.last_updated,
        origin=row.origin,
        body=row.body,
        subject_id=row.subject_id,
    )


def _content(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource without the fields the store sets, for comparing versions."""
    content = {key: value for key, value in resource.items() if key not in ("id", "meta")}
    meta = {
        key: value
        for key, value in (resource.get("meta") or {}).items()
        if key not in ("versionId", "lastUpdated")
    }
    if meta:
        content["meta"] = meta
    return content


def compact_json(resource: Mapping[str, Any]) -> str:
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":"))


def read_resource(
    connection: Connection, *, resource_type: str, logical_id: str
) -> StoredResource | None:
    row = connection.execute(_BY_ID, {"kind": resource_type, "logical": logical_id}).first()
    return None if row is None else _stored(row)


def put_resource(
    connection: Connection,
    *,
    resource: Mapping[str, Any],
    logical_id: str,
    origin: str,
    now: datetime,
    new: bool = False,
) -> tuple[StoredResource, Outcome]:
    """Create or replace ``resource`` (JSON) under ``logical_id``; unchanged content is a no-op.

    ``new`` says the caller just minted ``logical_id``, so there is nothing to look up.
    """
    resource_type = str(resource["resourceType"])
    existing = (
        None
        if new
        else connection.execute(_BY_ID, {"kind": resource_type, "logical": logical_id}).first()
    )
    content = _content(resource)
    if existing is not None and _content(json.loads(existing.body)) == content:
        return _stored(existing), "unchanged"
    version = 1 if existing is None else existing.version_id + 1
    meta = dict(content.get("meta") or {})
    meta.update(versionId=str(version), lastUpdated=now.isoformat(timespec="milliseconds"))
    document = {"resourceType": resource_type, "id": logical_id, "meta": meta}
    document.update((key, value) for key, value in content.items() if key != "meta")
    body = compact_json(document)
    index = index_of(document)
    columns = {
        "version_id": version,
        "last_updated": now,
        "origin": origin,
        "subject_id": index.subject_id,
        "status": index.status[:32],
        "sort_date": index.sort_date,
        "birth_date": index.birth_date,
        "name_text": index.name_text,
        "body": body,
    }
    if existing is None:
        row_id = connection.execute(
            _INSERT, {"resource_type": resource_type, "logical_id": logical_id, **columns}
        ).inserted_primary_key[0]  # type: ignore[index]
        outcome: Outcome = "created"
    else:
        row_id = existing.id
        connection.execute(_UPDATE, {"row": row_id, **columns})
        connection.execute(_FORGET_TOKENS, {"row": row_id})
        outcome = "updated"
    tokens = [
        {
            "resource_id": row_id,
            "resource_type": resource_type,
            "parameter": parameter,
            "system": system[:255],
            "value": value[:255],
        }
        for parameter, system, value in dict.fromkeys(index.tokens)
    ]
    if tokens:
        connection.execute(_ADD_TOKENS, tokens)
    stored = StoredResource(
        resource_type=resource_type,
        logical_id=logical_id,
        version_id=version,
        last_updated=now,
        origin=origin,
        body=body,
    )
    return stored, outcome


def find_by_identifier(
    connection: Connection, *, resource_type: str, system: str | None, value: str
) -> list[StoredResource]:
    """Resources of a type carrying ``system|value`` (any system when None): conditional writes."""
    if system is None:
        rows = connection.execute(
            _BY_IDENTIFIER_ANY_SYSTEM, {"kind": resource_type, "value": value}
        )
    else:
        rows = connection.execute(
            _BY_IDENTIFIER, {"kind": resource_type, "value": value, "system": system}
        )
    return [_stored(row) for row in rows]


def _date_clause(column: Any, condition: DateFilter, *, as_date: bool) -> ColumnElement[bool]:
    start: Any = condition.start.date() if as_date else condition.start
    end: Any = condition.end.date() if as_date else condition.end
    if condition.prefix == "ge":
        return column >= start  # type: ignore[no-any-return]
    if condition.prefix == "gt":
        return column >= end  # type: ignore[no-any-return]
    if condition.prefix == "le":
        return column < end  # type: ignore[no-any-return]
    if condition.prefix == "lt":
        return column < start  # type: ignore[no-any-return]
    return and_(column >= start, column < end)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(query: SearchQuery) -> Select[Any]:
    clauses: list[ColumnElement[bool]] = [RESOURCE.c.resource_type == query.resource_type]
    for token in query.tokens:
        alternatives = [
            and_(TOKEN.c.value == value, TOKEN.c.system == system)
            if system is not None
            else TOKEN.c.value == value
            for system, value in token.values
        ]
        clauses.append(
            RESOURCE.c.id.in_(
                select(TOKEN.c.resource_id).where(
                    TOKEN.c.resource_type == query.resource_type,
                    TOKEN.c.parameter == token.parameter,
                    or_(*alternatives),
                )
            )
        )
    if query.subjects is not None:
        clauses.append(RESOURCE.c.subject_id.in_(query.subjects))
    if query.statuses is not None:
        clauses.append(RESOURCE.c.status.in_(query.statuses))
    clauses += [_date_clause(RESOURCE.c.sort_date, d, as_date=False) for d in query.dates]
    clauses += [_date_clause(RESOURCE.c.birth_date, d, as_date=True) for d in query.birthdates]
    if query.name:
        clauses.append(RESOURCE.c.name_text.like(f"%{_escape_like(query.name)}%", escape="\\"))
    return select(*_COLUMNS).where(*clauses)


def search(connection: Connection, query: SearchQuery) -> tuple[list[StoredResource], int, bool]:
    """One page of matches, the total, and whether more pages follow."""
    filtered = _filtered(query)
    if query.summary_count:
        total = connection.execute(
            select(func.count()).select_from(filtered.subquery())
        ).scalar_one()
        return [], int(total), False
    ordered = filtered
    if query.sort in ("-date", "date"):
        column = RESOURCE.c.sort_date
        ordered = ordered.order_by(
            column.is_(None),
            column.desc() if query.sort == "-date" else column.asc(),
            RESOURCE.c.id.desc() if query.sort == "-date" else RESOURCE.c.id.asc(),
        )
    elif query.sort in ("-_lastUpdated", "_lastUpdated"):
        column = RESOURCE.c.last_updated
        descending = query.sort.startswith("-")
        ordered = ordered.order_by(
            column.desc() if descending else column.asc(),
            RESOURCE.c.id.desc() if descending else RESOURCE.c.id.asc(),
        )
    else:
        ordered = ordered.order_by(RESOURCE.c.id)
    rows = connection.execute(ordered.limit(query.count + 1).offset(query.offset)).all()
    more = len(rows) > query.count
    page = [_stored(row) for row in rows[: query.count]]
    if query.offset == 0 and not more:
        total = len(page)
    else:
        total = int(
            connection.execute(select(func.count()).select_from(filtered.subquery())).scalar_one()
        )
    return page, total, more


def included_studies(
    connection: Connection, reports: Iterable[StoredResource]
) -> list[StoredResource]:
    """The ImagingStudies the given DiagnosticReports point at (``_include``), each once."""
    wanted: dict[str, None] = {}
    for report in reports:
        for study in report.parsed().get("imagingStudy") or []:
            found = reference_id(study.get("reference"), "ImagingStudy")
            if found:
                wanted[found] = None
    if not wanted:
        return []
    rows = connection.execute(
        select(*_COLUMNS).where(
            RESOURCE.c.resource_type == "ImagingStudy", RESOURCE.c.logical_id.in_(list(wanted))
        )
    )
    return [_stored(row) for row in rows]
