"""The health bureau's metrics engine: pure functions over :class:`Frames`.

Read the frames once with :func:`load_frames` (the only SQL), then ask any
metric; none does I/O or reads a clock (``now`` is passed in). Each metric
keeps the rows whose own anchor lies in the window [start, end), applies the
filters (reading centre, clinic, modality, exam type; ``None`` = all, an
empty set = nothing) and breaks down by the requested dimensions, local time
keys (hour, day, month, half-year) coming from that anchor in the region's
zone. With no breakdown a metric returns one row, so "no data" reads as
counts of 0 and rates of null.

======================  ===================  ==========================================
metric                  anchor               definition
======================  ===================  ==========================================
turnaround              arrival              median/p90/p95 minutes of each step
sla_compliance          arrival              met ÷ (met + missed), see metrics_turnaround
overdue                 arrival              past an SLA limit at ``now``, step not done
emergency_reports       arrival              emergency finalised ≤ 120 min after arrival
corrections             sign-off             corrected ÷ finalised
critical_notifications  flagging             notified ≤ 10 min after flagging
writing_compliance      sign-off             signed, impression present and not the
                                             findings, no template leftovers
image_quality           QC event             artefact share, grade A-D, A rate
retake_rate             arrival              studies with a retake request ÷ studies
positive_rate           sign-off             positive ÷ recorded, final CT/MR reports
volume                  performed            exams
utilisation             performed            CT/MR busy minutes ÷ 8 h per station-day
consultations           request              requested, answered, median answer time
recognition, refusals   decision / card      prompts, accepted ÷ decisions, fees saved
settlement              sign-off             fen per body part, per half-year
======================  ===================  ==========================================
"""

from __future__ import annotations

from integration.metrics_activity import (
    consultations,
    performed_exams,
    utilisation,
    volume,
)
from integration.metrics_common import DIMENSION_COLUMNS, Dimension, Share
from integration.metrics_frames import (
    Filters,
    Frames,
    build_frames,
    load_frames,
    local_days,
)
from integration.metrics_quality import (
    TEMPLATE_LEFTOVERS,
    QcIndicators,
    corrections,
    critical_notifications,
    finalised_reports,
    image_quality,
    positive_rate,
    qc_indicators,
    retake_rate,
    revision_facts,
    writing_checks,
    writing_compliance,
)
from integration.metrics_recognition import recognition, recognition_prompts, refusals
from integration.metrics_settlement import (
    SettlementStatement,
    TariffPeriod,
    settlement,
    settlement_lines,
    tariffs_from_settings,
)
from integration.metrics_turnaround import (
    emergency_reports,
    overdue,
    reading_population,
    sla_compliance,
    sla_outcomes,
    turnaround,
)

__all__ = [
    "DIMENSION_COLUMNS",
    "TEMPLATE_LEFTOVERS",
    "Dimension",
    "Filters",
    "Frames",
    "QcIndicators",
    "SettlementStatement",
    "Share",
    "TariffPeriod",
    "build_frames",
    "consultations",
    "corrections",
    "critical_notifications",
    "emergency_reports",
    "finalised_reports",
    "image_quality",
    "load_frames",
    "local_days",
    "overdue",
    "performed_exams",
    "positive_rate",
    "qc_indicators",
    "reading_population",
    "recognition",
    "recognition_prompts",
    "refusals",
    "retake_rate",
    "revision_facts",
    "settlement",
    "settlement_lines",
    "sla_compliance",
    "sla_outcomes",
    "tariffs_from_settings",
    "turnaround",
    "utilisation",
    "volume",
    "writing_checks",
    "writing_compliance",
]
