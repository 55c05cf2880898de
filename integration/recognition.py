"""The mutual-recognition rules (2022 national rules), as pure functions over plain facts.

A prior exam counts (is *recognisable*) for a requested exam only if all hold:

- its exam type is on the recognition (HR) list;
- the facility that performed it held QC qualification on the exam date;
- its report is signed: final, or amended/corrected after final;
- it was not rejected for image quality;
- it is within the exam type's validity window on the day of asking.

Otherwise it is *not recognisable*, with every reason that applies. Priors
sent by other nodes carry the HR tag on their DiagnosticReport: it stands
for the sender's verdict on the exam type and its facility's QC status, and
the validity window is applied here, with this region's catalogue. Nothing
here reads the database or the clock: callers gather :class:`Prior` facts
and pass the day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from models.enums import ReportStatus

SIGNED = frozenset({ReportStatus.final, ReportStatus.amended, ReportStatus.corrected})


class Reason(StrEnum):
    """Why a prior is not recognisable (the order in which a clinician reads them)."""

    not_recognised_item = "not_recognised_item"  # 非互认项目
    facility_not_qualified = "facility_not_qualified"  # 机构质控资质不符
    report_not_final = "report_not_final"  # 报告未审核
    quality_rejected = "quality_rejected"  # 影像质量不合格
    expired = "expired"  # 超出有效期


REASON_ZH: Mapping[Reason, str] = {
    Reason.not_recognised_item: "该检查项目不在互认目录内",
    Reason.facility_not_qualified: "检查机构当日未取得质控资质",
    Reason.report_not_final: "报告尚未审核签发",
    Reason.quality_rejected: "影像质量不合格，已要求重拍",
    Reason.expired: "已超出互认有效期",
}
REASON_EN: Mapping[Reason, str] = {
    Reason.not_recognised_item: "the exam is not on the recognition list",
    Reason.facility_not_qualified: "the facility was not QC-qualified on the exam date",
    Reason.report_not_final: "the report is not signed yet",
    Reason.quality_rejected: "the images were rejected for quality",
    Reason.expired: "the exam is older than its validity window",
}


@dataclass(frozen=True)
class ExamSpec:
    """A catalogue exam type, as the rules need it."""

    code: str
    name: str
    modality: str
    body_part: str
    recognised: bool  # on the HR list
    validity_days: int
    loinc: str | None = None
    fee_fen: int = 0


@dataclass(frozen=True)
class Prior:
    """One earlier exam of the patient, here or at another node."""

    key: str  # the Study Instance UID: unique across nodes
    exam_code: str  # catalogue code here; for a remote prior, resolved through LOINC if need be
    modality: str
    body_part: str
    performed_on: date  # the exam date, in the region's time zone
    facility: str  # name as shown to clinicians
    report_status: ReportStatus | None  # None: no report yet
    quality_rejected: bool
    facility_qualified: bool  # QC-qualified on performed_on (remote: the sender's HR tag)
    recognised_item: bool  # the exam type is on the HR list (remote: the sender's HR tag)
    conclusion: str = ""
    report_ref: str = ""  # e.g. DiagnosticReport/12, for links
    study_ref: str = ""
    source: str = ""  # "" here; another node's client name otherwise


@dataclass(frozen=True)
class Verdict:
    prior: Prior
    reasons: tuple[Reason, ...]
    valid_until: date  # the last day the prior counts (if nothing else stands against it)
    same_type: bool  # False: related (same modality and body part)

    @property
    def recognisable(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class Rules:
    """Configuration: whether related exam types count, and validity overrides per exam code."""

    include_related: bool = False
    validity_days: Mapping[str, int] | None = None  # exam code -> days, over the catalogue's

    def window(self, exam: ExamSpec) -> int:
        if self.validity_days and exam.code in self.validity_days:
            return self.validity_days[exam.code]
        return exam.validity_days


def judge(prior: Prior, *, requested: ExamSpec, on: date, rules: Rules) -> Verdict:
    """The verdict on one prior for ``requested`` on day ``on``."""
    reasons: list[Reason] = []
    if not prior.recognised_item:
        reasons.append(Reason.not_recognised_item)
    if not prior.facility_qualified:
        reasons.append(Reason.facility_not_qualified)
    if prior.report_status not in SIGNED:
        reasons.append(Reason.report_not_final)
    if prior.quality_rejected:
        reasons.append(Reason.quality_rejected)
    days = rules.window(requested)
    valid_until = prior.performed_on + timedelta(days=max(days, 0))
    if days <= 0 or on > valid_until:
        reasons.append(Reason.expired)
    return Verdict(
        prior=prior,
        reasons=tuple(reasons),
        valid_until=valid_until,
        same_type=prior.exam_code == requested.code,
    )


def stands_for(
    exam_code: str, modality: str, body_part: str, *, requested: ExamSpec, rules: Rules
) -> bool:
    """A prior of this exam type may stand for ``requested``: the same type, or (when
    configured) the same modality and body part."""
    if exam_code == requested.code:
        return True
    return (
        rules.include_related
        and bool(modality)
        and modality == requested.modality
        and bool(body_part)
        and body_part == requested.body_part
    )


def is_candidate(prior: Prior, *, requested: ExamSpec, rules: Rules) -> bool:
    """A prior of the requested type, or (when configured) of the same modality and body part."""
    return stands_for(
        prior.exam_code, prior.modality, prior.body_part, requested=requested, rules=rules
    )


def verdicts(
    priors: Iterable[Prior], *, requested: ExamSpec, on: date, rules: Rules
) -> list[Verdict]:
    """Verdicts on every candidate prior: recognisable first, then the newest first."""
    found = [
        judge(prior, requested=requested, on=on, rules=rules)
        for prior in priors
        if is_candidate(prior, requested=requested, rules=rules)
    ]
    found.sort(
        key=lambda verdict: (
            not verdict.recognisable,
            not verdict.same_type,
            -verdict.prior.performed_on.toordinal(),
            verdict.prior.key,
        )
    )
    return found


def resolve_exam(
    code: str,
    *,
    system: str | None,
    catalogue: Sequence[ExamSpec],
    aliases: Mapping[str, str],
) -> ExamSpec | None:
    """The catalogue exam a draft order's code stands for: catalogue code, LOINC or local alias.

    ``aliases`` maps facility-local (or region-wide) codes to catalogue codes;
    a LOINC system (``http://loinc.org``) looks the code up among the LOINC
    codes, any other system (or none) tries the catalogue, then the aliases.
    """
    by_code = {exam.code: exam for exam in catalogue}
    if system == "http://loinc.org":
        return next((exam for exam in catalogue if exam.loinc == code), None)
    if code in by_code:
        return by_code[code]
    aliased = aliases.get(code)
    if aliased is not None:
        return by_code.get(aliased)
    return next((exam for exam in catalogue if exam.loinc == code), None)


__all__ = [
    "REASON_EN",
    "REASON_ZH",
    "ExamSpec",
    "Prior",
    "Reason",
    "Rules",
    "Verdict",
    "is_candidate",
    "judge",
    "resolve_exam",
    "stands_for",
    "verdicts",
]
