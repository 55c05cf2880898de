"""The frames the bureau's metrics are computed from, read from the database in one pass.

The metrics in ``integration.metrics`` are pure functions over :class:`Frames`;
this module is the only one that runs SQL for them. Each frame carries the
same four scope columns (``reading_centre_id``, ``clinic_id``, ``modality``,
``exam_type_id``) so one filter applies to all of them, and every datetime is
``Datetime("us", "UTC")``.

The SQL reads a superset (rows whose *any* anchor falls in the window: a
study arriving, performed or finalised in it); each metric then keeps the rows
whose own anchor is in the window, so a report finalised in another month
than its study arrived lands in the right month for each metric.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import ColumnElement, Connection, Select, String, and_, func, or_, select

from integration.sla import ReadingCalendar
from models import metadata
from models.enums import OutboxChannel

T = metadata.tables
DEFAULT_ZONE = "Asia/Shanghai"
UTC_TIME = pl.Datetime("us", "UTC")

Schema = Mapping[str, pl.DataType]

SCOPE_SCHEMA: Schema = {
    "reading_centre_id": pl.Int64(),
    "clinic_id": pl.Int64(),
    "modality": pl.String(),
    "exam_type_id": pl.Int64(),
}

STUDY_SCHEMA: Schema = {
    "study_id": pl.Int64(),
    "accession_number": pl.String(),
    **SCOPE_SCHEMA,
    "station_name": pl.String(),
    "priority": pl.String(),
    "quality_rejected": pl.Boolean(),
    "retake_of_study_id": pl.Int64(),
    "started_at": UTC_TIME,
    "last_instance_at": UTC_TIME,
    "received_at": UTC_TIME,
    "completed_at": UTC_TIME,  # arrival at the hub: the turnaround clock starts here
    "body_part_count": pl.Int64(),
    "report_id": pl.Int64(),
    "report_status": pl.String(),
    "author_id": pl.Int64(),  # the preliminary's author
    "auditor_id": pl.Int64(),  # who signed final
    "preliminary_at": UTC_TIME,
    "finalised_at": UTC_TIME,
    "amended_at": UTC_TIME,
    "corrected": pl.Boolean(),
    "positive": pl.Boolean(),
    "critical": pl.Boolean(),
    "image_grade": pl.String(),
    "findings": pl.String(),
    "impression": pl.String(),
}

REVISION_SCHEMA: Schema = {
    "report_id": pl.Int64(),
    "version": pl.Int64(),
    "status": pl.String(),
    "findings": pl.String(),
    "impression": pl.String(),
    "created_at": UTC_TIME,
}

QC_EVENT_SCHEMA: Schema = {
    "qc_event_id": pl.Int64(),
    "study_id": pl.Int64(),
    **SCOPE_SCHEMA,
    "technologist": pl.String(),
    "grade": pl.String(),
    "artefact": pl.Boolean(),
    "retake_requested": pl.Boolean(),
    "retake_reason": pl.String(),
    "retake_study_id": pl.Int64(),
    "created_at": UTC_TIME,
}

CRITICAL_RESULT_SCHEMA: Schema = {
    "critical_result_id": pl.Int64(),
    "report_id": pl.Int64(),
    "study_id": pl.Int64(),
    **SCOPE_SCHEMA,
    "notify_facility_id": pl.Int64(),
    "flagged_at": UTC_TIME,
    "notified_at": UTC_TIME,
    "acknowledged_at": UTC_TIME,
}

DECISION_SCHEMA: Schema = {
    "decision_id": pl.Int64(),
    **SCOPE_SCHEMA,  # clinic: where the clinician orders; exam type: the one requested
    "outcome": pl.String(),
    "refusal_reason": pl.String(),
    "clinician_id": pl.Int64(),
    "clinician_ref": pl.String(),
    "source": pl.String(),
    "card_id": pl.String(),
    "avoided_fee_fen": pl.Int64(),
    "decided_at": UTC_TIME,
}

CARD_SCHEMA: Schema = {
    "card_uuid": pl.String(),
    **SCOPE_SCHEMA,
    "clinician_ref": pl.String(),
    "avoidable_fee_fen": pl.Int64(),
    "issued_at": UTC_TIME,
}

CONSULTATION_SCHEMA: Schema = {
    "consultation_id": pl.Int64(),
    "study_id": pl.Int64(),
    **SCOPE_SCHEMA,  # reading centre: the centre that asked
    "expert_centre_id": pl.Int64(),
    "status": pl.String(),
    "requested_at": UTC_TIME,
    "answered_at": UTC_TIME,
}

DELIVERY_SCHEMA: Schema = {
    "report_id": pl.Int64(),
    "outbox_id": pl.Int64(),
    "status": pl.String(),
    "created_at": UTC_TIME,
    "delivered_at": UTC_TIME,
}

TEXT_COLUMNS = ("findings", "impression")  # the report's texts: the widest columns by far
REPORT_FACTS_SCHEMA: Schema = {
    "report_id": pl.Int64(),
    "changed_in_revisions": pl.Boolean(),  # the first final differs from the preliminary
    "amended_in_revisions": pl.Boolean(),  # an amended or corrected revision exists
    "has_revisions": pl.Boolean(),
    "impression_present": pl.Boolean(),  # writing checks on the report as it stands
    "impression_differs": pl.Boolean(),
    "has_leftovers": pl.Boolean(),  # with the default template leftovers
}


@dataclass(frozen=True)
class Filters:
    """What to look at. ``None`` means no restriction; an empty set selects nothing.

    ``clinic_ids`` are the facilities where the images were taken (study.facility_id);
    for recognition decisions, where the clinician ordered.
    """

    reading_centre_ids: frozenset[int] | None = None
    clinic_ids: frozenset[int] | None = None
    modalities: frozenset[str] | None = None
    exam_type_ids: frozenset[int] | None = None


NO_FILTERS = Filters()


def frame(schema: Schema, rows: Sequence[Mapping[str, Any]] = ()) -> pl.DataFrame:
    """A frame of exactly ``schema``; keys missing from a row are null (hand-built data)."""
    unknown = {key for row in rows for key in row} - set(schema)
    if unknown:
        raise ValueError(f"columns not in the schema: {', '.join(sorted(unknown))}")
    columns = {name: [row.get(name) for row in rows] for name in schema}
    return pl.DataFrame(columns, schema=dict(schema))


@dataclass(frozen=True, eq=False)
class Frames:
    """Everything the metrics need for one window [start, end) and one set of filters."""

    start: datetime
    end: datetime
    filters: Filters = NO_FILTERS
    zone: str = DEFAULT_ZONE
    calendar: ReadingCalendar | None = None  # the SLA's reading hours; None: around the clock
    studies: pl.DataFrame = field(default_factory=lambda: frame(STUDY_SCHEMA))
    revisions: pl.DataFrame = field(default_factory=lambda: frame(REVISION_SCHEMA))
    qc_events: pl.DataFrame = field(default_factory=lambda: frame(QC_EVENT_SCHEMA))
    critical_results: pl.DataFrame = field(default_factory=lambda: frame(CRITICAL_RESULT_SCHEMA))
    decisions: pl.DataFrame = field(default_factory=lambda: frame(DECISION_SCHEMA))
    cards: pl.DataFrame = field(default_factory=lambda: frame(CARD_SCHEMA))
    consultations: pl.DataFrame = field(default_factory=lambda: frame(CONSULTATION_SCHEMA))
    deliveries: pl.DataFrame = field(default_factory=lambda: frame(DELIVERY_SCHEMA))
    # Per-report facts worked out once from the texts and revisions (the snapshot store
    # keeps them); None: the metrics work them out from ``revisions`` and the texts.
    report_facts: pl.DataFrame | None = None
    # Frames derived from these (a metric's population), shared by the metrics of one page.
    _derived: dict[Hashable, pl.DataFrame] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def derived(
        self, key: Hashable, compute: Callable[[], pl.DataFrame], *, volatile: bool = False
    ) -> pl.DataFrame:
        """``compute()`` once per key: a page asks several metrics of the same population.

        Safe because the frames never change and every metric is a pure function
        of them (and of the key's other inputs). A *volatile* key (one holding
        ``now``) keeps only the latest of its kind, so a long-lived cached Frames
        does not collect one population per request.
        """
        found = self._derived.get(key)
        if found is None:
            if volatile:
                kind = key[0] if isinstance(key, tuple) else key
                for old in [
                    k for k in list(self._derived) if isinstance(k, tuple) and k[0] == kind
                ]:
                    del self._derived[old]
            found = self._derived[key] = compute()
        return found

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("the window needs timezone-aware datetimes")
        if self.end < self.start:
            raise ValueError("the window ends before it starts")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))
        try:
            ZoneInfo(self.zone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.zone!r}") from exc
        # With the per-report facts worked out, the texts are not needed (lean frames).
        optional = TEXT_COLUMNS if self.report_facts is not None else ()
        for name, schema in _SCHEMAS.items():
            present = getattr(self, name).schema
            missing = [c for c in schema if c not in present and c not in optional]
            if missing:
                raise ValueError(f"frame {name} lacks columns {', '.join(missing)}")
        if self.report_facts is not None:
            missing = [c for c in REPORT_FACTS_SCHEMA if c not in self.report_facts.schema]
            if missing:
                raise ValueError(f"frame report_facts lacks columns {', '.join(missing)}")


_SCHEMAS: dict[str, Schema] = {
    "studies": STUDY_SCHEMA,
    "revisions": REVISION_SCHEMA,
    "qc_events": QC_EVENT_SCHEMA,
    "critical_results": CRITICAL_RESULT_SCHEMA,
    "decisions": DECISION_SCHEMA,
    "cards": CARD_SCHEMA,
    "consultations": CONSULTATION_SCHEMA,
    "deliveries": DELIVERY_SCHEMA,
}


def build_frames(
    *,
    start: datetime,
    end: datetime,
    filters: Filters = NO_FILTERS,
    zone: str = DEFAULT_ZONE,
    calendar: ReadingCalendar | None = None,
    studies: Sequence[Mapping[str, Any]] = (),
    revisions: Sequence[Mapping[str, Any]] = (),
    qc_events: Sequence[Mapping[str, Any]] = (),
    critical_results: Sequence[Mapping[str, Any]] = (),
    decisions: Sequence[Mapping[str, Any]] = (),
    cards: Sequence[Mapping[str, Any]] = (),
    consultations: Sequence[Mapping[str, Any]] = (),
    deliveries: Sequence[Mapping[str, Any]] = (),
) -> Frames:
    """Frames from plain rows: how tests and what-if tools build a data set by hand."""
    return Frames(
        start=start,
        end=end,
        filters=filters,
        zone=zone,
        calendar=calendar,
        studies=frame(STUDY_SCHEMA, studies),
        revisions=frame(REVISION_SCHEMA, revisions),
        qc_events=frame(QC_EVENT_SCHEMA, qc_events),
        critical_results=frame(CRITICAL_RESULT_SCHEMA, critical_results),
        decisions=frame(DECISION_SCHEMA, decisions),
        cards=frame(CARD_SCHEMA, cards),
        consultations=frame(CONSULTATION_SCHEMA, consultations),
        deliveries=frame(DELIVERY_SCHEMA, deliveries),
    )


def local_days(first: date, last: date, zone: str = DEFAULT_ZONE) -> tuple[datetime, datetime]:
    """The window [first 00:00, the day after last 00:00) in ``zone``, as the bureau means it."""
    if last < first:
        raise ValueError("the last day is before the first")
    where = ZoneInfo(zone)
    return (
        datetime.combine(first, time(0), tzinfo=where),
        datetime.combine(last + timedelta(days=1), time(0), tzinfo=where),
    )


# ------------------------------------------------------------------ loading


def load_frames(
    connection: Connection,
    *,
    start: datetime,
    end: datetime,
    filters: Filters = NO_FILTERS,
    zone: str = DEFAULT_ZONE,
    calendar: ReadingCalendar | None = None,
) -> Frames:
    """Read the window's rows (and only the columns the metrics use) into frames."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the window needs timezone-aware datetimes")
    reader = _Reader(connection, start=start, end=end, filters=filters)
    return Frames(
        start=start,
        end=end,
        filters=filters,
        zone=zone,
        calendar=calendar,
        studies=reader.studies(),
        revisions=reader.revisions(),
        qc_events=reader.qc_events(),
        critical_results=reader.critical_results(),
        decisions=reader.decisions(),
        cards=reader.cards(),
        consultations=reader.consultations(),
        deliveries=reader.deliveries(),
    )


def _first_modality(column: str = "modality") -> pl.Expr:
    """ModalitiesInStudy is backslash-joined; a study without an exam type counts as its first."""
    return pl.col(column).str.split("\\").list.first()


SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S%.f"  # how SQLAlchemy stores DateTime in SQLite


def _read(connection: Connection, query: Select[Any], schema: Schema) -> pl.DataFrame:
    """Rows in the schema's column order, converted a column at a time.

    The rows come straight from the DBAPI cursor: SQLAlchemy's per-value result
    processing (datetime parsing, enum lookup) costs three times the query
    itself, so polars does the conversion instead, vectorised. SQLite hands
    back times as text (UTC, as ``UtcDateTime`` stores them) and booleans as
    0/1; PostgreSQL hands back aware datetimes and booleans.
    """
    result = connection.execute(query)
    try:
        rows = result.cursor.fetchall() if result.cursor is not None else []
    finally:
        result.close()
    values: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    pairs = zip(schema.items(), values, strict=True)
    return pl.DataFrame([_column(name, dtype, column) for (name, dtype), column in pairs])


def _column(name: str, dtype: pl.DataType, values: Sequence[Any]) -> pl.Series:
    if isinstance(dtype, pl.Datetime):
        if _all_text(values):
            text = pl.Series(name, values, dtype=pl.String)
            return text.str.to_datetime(SQLITE_TIME_FORMAT, time_unit="us").dt.replace_time_zone(
                "UTC"
            )
        return pl.Series(name, values, dtype=dtype)
    if isinstance(dtype, pl.Boolean):
        return pl.Series(name, values, dtype=pl.Int8, strict=False).cast(pl.Boolean)
    return pl.Series(name, values, dtype=dtype, strict=False)


def _all_text(values: Sequence[Any]) -> bool:
    """Times as text (SQLite) rather than datetimes (PostgreSQL): the first non-null tells."""
    first = next((value for value in values if value is not None), None)
    return isinstance(first, str)


class _Reader:
    """The window's SELECTs; every value is a bound parameter."""

    def __init__(
        self, connection: Connection, *, start: datetime, end: datetime, filters: Filters
    ) -> None:
        self.connection = connection
        self.start, self.end = start, end
        self.filters = filters

    def window(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)

    def scope(
        self, *, centre: Any, clinic: Any, exam_type: Any, exam_modality: Any
    ) -> list[ColumnElement[bool]]:
        """The filters as SQL. Modality is finished in polars (a study without exam type)."""
        where: list[ColumnElement[bool]] = []
        f = self.filters
        if f.reading_centre_ids is not None:
            where.append(centre.in_(sorted(f.reading_centre_ids)))
        if f.clinic_ids is not None:
            where.append(clinic.in_(sorted(f.clinic_ids)))
        if f.exam_type_ids is not None:
            where.append(exam_type.in_(sorted(f.exam_type_ids)))
        if f.modalities is not None:
            where.append(
                or_(exam_modality.in_(sorted(str(m) for m in f.modalities)), exam_type.is_(None))
            )
        return where

    def _study_scope(self) -> tuple[list[Any], list[ColumnElement[bool]]]:
        """Scope columns of anything hanging off a study (study ⟕ report ⟕ exam type)."""
        study, report, exam = T["study"], T["report"], T["exam_type"]
        centre = func.coalesce(report.c.reading_centre_id, study.c.reading_centre_id)
        modality = func.coalesce(exam.c.modality, study.c.modalities, type_=String)
        columns = [
            centre.label("reading_centre_id"),
            study.c.facility_id.label("clinic_id"),
            modality.label("modality"),
            study.c.exam_type_id,
        ]
        where = [
            study.c.source_node.is_(None),
            *self.scope(
                centre=centre,
                clinic=study.c.facility_id,
                exam_type=study.c.exam_type_id,
                exam_modality=exam.c.modality,
            ),
        ]
        return columns, where

    def _study_join(self, table: Any) -> Any:
        study, report, exam = T["study"], T["report"], T["exam_type"]
        return (
            table.join(study, study.c.id == table.c.study_id)
            .outerjoin(report, report.c.study_id == study.c.id)
            .outerjoin(exam, exam.c.id == study.c.exam_type_id)
        )

    def studies(self) -> pl.DataFrame:
        study, report, exam, order = T["study"], T["report"], T["exam_type"], T["exam_order"]
        scope_columns, where = self._study_scope()
        query = (
            select(
                study.c.id,
                study.c.accession_number,
                *scope_columns,
                study.c.station_name,
                study.c.priority,
                study.c.quality_rejected,
                study.c.retake_of_study_id,
                study.c.started_at,
                study.c.last_instance_at,
                study.c.received_at,
                study.c.completed_at,
                func.coalesce(exam.c.body_part_count, order.c.body_part_count),
                report.c.id,
                report.c.status,
                report.c.author_id,
                report.c.auditor_id,
                report.c.preliminary_at,
                report.c.finalised_at,
                report.c.amended_at,
                report.c.corrected,
                report.c.positive,
                report.c.critical,
                report.c.image_grade,
                report.c.findings,
                report.c.impression,
            )
            .select_from(
                study.outerjoin(report, report.c.study_id == study.c.id)
                .outerjoin(exam, exam.c.id == study.c.exam_type_id)
                .outerjoin(order, order.c.id == study.c.order_id)
            )
            .where(
                *where,
                or_(
                    self.window(study.c.completed_at),
                    self.window(study.c.started_at),
                    and_(study.c.started_at.is_(None), self.window(study.c.received_at)),
                    self.window(report.c.finalised_at),
                ),
            )
            .order_by(study.c.id)
        )
        return _finish(_read(self.connection, query, STUDY_SCHEMA))

    def revisions(self) -> pl.DataFrame:
        revision, report = T["report_revision"], T["report"]
        study, exam = T["study"], T["exam_type"]
        _columns, where = self._study_scope()
        query = (
            select(
                revision.c.report_id,
                revision.c.version,
                revision.c.status,
                revision.c.findings,
                revision.c.impression,
                revision.c.created_at,
            )
            .select_from(
                revision.join(report, report.c.id == revision.c.report_id)
                .join(study, study.c.id == report.c.study_id)
                .outerjoin(exam, exam.c.id == study.c.exam_type_id)
            )
            .where(*where, self.window(report.c.finalised_at))
            .order_by(revision.c.report_id, revision.c.version)
        )
        return _read(self.connection, query, REVISION_SCHEMA)

    def qc_events(self) -> pl.DataFrame:
        qc, study = T["qc_event"], T["study"]
        scope_columns, where = self._study_scope()
        query = (
            select(
                qc.c.id,
                qc.c.study_id,
                *scope_columns,
                qc.c.technologist,
                qc.c.grade,
                qc.c.artefact,
                qc.c.retake_requested,
                qc.c.retake_reason,
                qc.c.retake_study_id,
                qc.c.created_at,
            )
            .select_from(self._study_join(qc))
            .where(*where, or_(self.window(qc.c.created_at), self.window(study.c.completed_at)))
            .order_by(qc.c.id)
        )
        return _finish(_read(self.connection, query, QC_EVENT_SCHEMA))

    def critical_results(self) -> pl.DataFrame:
        critical = T["critical_result"]
        scope_columns, where = self._study_scope()
        query = (
            select(
                critical.c.id,
                critical.c.report_id,
                critical.c.study_id,
                *scope_columns,
                critical.c.facility_id,
                critical.c.flagged_at,
                critical.c.notified_at,
                critical.c.acknowledged_at,
            )
            .select_from(self._study_join(critical))
            .where(*where, self.window(critical.c.flagged_at))
            .order_by(critical.c.id)
        )
        return _finish(_read(self.connection, query, CRITICAL_RESULT_SCHEMA))

    def _ordering_scope(self, table: Any) -> tuple[list[Any], list[ColumnElement[bool]]]:
        """Scope of a recognition prompt: the ordering facility, its reading centre, the exam."""
        facility, exam = T["facility"], T["exam_type"]
        centre = func.coalesce(facility.c.reading_centre_id, facility.c.id)
        columns = [
            centre.label("reading_centre_id"),
            table.c.facility_id.label("clinic_id"),
            exam.c.modality.label("modality"),
            table.c.requested_exam_type_id.label("exam_type_id"),
        ]
        where = self.scope(
            centre=centre,
            clinic=table.c.facility_id,
            exam_type=table.c.requested_exam_type_id,
            exam_modality=exam.c.modality,
        )
        return columns, where

    def _ordering_join(self, table: Any) -> Any:
        facility, exam = T["facility"], T["exam_type"]
        return table.outerjoin(facility, facility.c.id == table.c.facility_id).outerjoin(
            exam, exam.c.id == table.c.requested_exam_type_id
        )

    def decisions(self) -> pl.DataFrame:
        decision = T["recognition_decision"]
        scope_columns, where = self._ordering_scope(decision)
        query = (
            select(
                decision.c.id,
                *scope_columns,
                decision.c.outcome,
                decision.c.refusal_reason,
                decision.c.clinician_id,
                decision.c.clinician_ref,
                decision.c.source,
                decision.c.card_id,
                decision.c.avoided_fee_fen,
                decision.c.decided_at,
            )
            .select_from(self._ordering_join(decision))
            .where(*where, self.window(decision.c.decided_at))
            .order_by(decision.c.id)
        )
        return _finish(_read(self.connection, query, DECISION_SCHEMA))

    def cards(self) -> pl.DataFrame:
        card = T["recognition_card"]
        scope_columns, where = self._ordering_scope(card)
        query = (
            select(
                card.c.card_uuid,
                *scope_columns,
                card.c.clinician_ref,
                card.c.avoidable_fee_fen,
                card.c.issued_at,
            )
            .select_from(self._ordering_join(card))
            .where(*where, card.c.recognisable.is_(True), self.window(card.c.issued_at))
            .order_by(card.c.id)
        )
        return _finish(_read(self.connection, query, CARD_SCHEMA))

    def consultations(self) -> pl.DataFrame:
        consultation, study, exam = T["consultation"], T["study"], T["exam_type"]
        query = (
            select(
                consultation.c.id,
                consultation.c.study_id,
                consultation.c.from_centre_id,
                study.c.facility_id,
                func.coalesce(exam.c.modality, study.c.modalities, type_=String),
                study.c.exam_type_id,
                consultation.c.expert_facility_id,
                consultation.c.status,
                consultation.c.requested_at,
                consultation.c.answered_at,
            )
            .select_from(
                consultation.join(study, study.c.id == consultation.c.study_id).outerjoin(
                    exam, exam.c.id == study.c.exam_type_id
                )
            )
            .where(
                study.c.source_node.is_(None),
                *self.scope(
                    centre=consultation.c.from_centre_id,
                    clinic=study.c.facility_id,
                    exam_type=study.c.exam_type_id,
                    exam_modality=exam.c.modality,
                ),
                self.window(consultation.c.requested_at),
            )
            .order_by(consultation.c.id)
        )
        return _finish(_read(self.connection, query, CONSULTATION_SCHEMA))

    def deliveries(self) -> pl.DataFrame:
        """ORU^R01 outbox rows of reports finalised in the window (keyed Report/<id>)."""
        outbox, report, study, exam = T["outbox"], T["report"], T["study"], T["exam_type"]
        _columns, where = self._study_scope()
        query = (
            select(
                outbox.c.subject_id,
                outbox.c.id,
                outbox.c.status,
                outbox.c.created_at,
                outbox.c.delivered_at,
            )
            .select_from(
                outbox.join(report, report.c.id == outbox.c.subject_id)
                .join(study, study.c.id == report.c.study_id)
                .outerjoin(exam, exam.c.id == study.c.exam_type_id)
            )
            .where(
                *where,
                outbox.c.channel == OutboxChannel.hl7,
                outbox.c.subject_type == "Report",
                self.window(report.c.finalised_at),
            )
            .order_by(outbox.c.id)
        )
        return _read(self.connection, query, DELIVERY_SCHEMA)


def _finish(data: pl.DataFrame) -> pl.DataFrame:
    """Reduce ModalitiesInStudy to one modality, as the catalogue would have named it."""
    return data.with_columns(_first_modality())
