"""A year of exams in the demo county, generated as plain rows in time order.

Everything is drawn from one ``random.Random`` so a seed reproduces the same
region to the row. The shapes (shares, medians, night slowdown) are in
:class:`HistoryShape` so tests and benchmarks can reason about them.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from integration.demo import vocabulary as vocab
from integration.demo.region import DemoFacility, DemoRegion, DemoUser
from models.catalogue import ExamType
from models.enums import (
    ConsultationStatus,
    IdentifierKind,
    ImageGrade,
    Modality,
    OrderStatus,
    PatientClass,
    Priority,
    ReadingStatus,
    RecognitionOutcome,
    RecognitionSource,
    RefusalReason,
    ReportStatus,
    Role,
    Sex,
    StudyStatus,
)
from models.identity import make_resident_id
from models.patients import RESIDENT_ID_AUTHORITY

Row = dict[str, Any]

# Hour-of-day weights (local time): a morning peak, an afternoon shoulder, quiet nights.
HOUR_WEIGHTS = (
    0.5,
    0.4,
    0.3,
    0.3,
    0.3,
    0.4,
    0.8,
    2.0,
    7.0,
    10.0,
    10.0,
    9.0,
    4.0,
    3.5,
    8.0,
    8.5,
    7.5,
    5.0,
    2.5,
    2.0,
    1.6,
    1.3,
    1.0,
    0.7,
)
# Age bands (years) of a rural county's imaging patients and their weights.
AGE_BANDS = ((0, 6, 3), (6, 18, 6), (18, 40, 17), (40, 60, 30), (60, 75, 28), (75, 95, 16))
ACQUISITION_MINUTES = {
    Modality.DX: (2, 6),
    Modality.CR: (3, 8),
    Modality.CT: (5, 12),
    Modality.MR: (15, 35),
    Modality.US: (8, 20),
    Modality.MG: (6, 12),
}
POSITIVE_RATE = {
    Modality.DX: 0.32,
    Modality.CR: 0.32,
    Modality.CT: 0.48,
    Modality.MR: 0.55,
    Modality.US: 0.36,
    Modality.MG: 0.18,
}
ORDER_REASONS = (
    "咳嗽、咳痰一周",
    "胸痛待查",
    "外伤后疼痛",
    "腰背痛",
    "头痛头晕",
    "腹痛待查",
    "体检",
    "发热",
    "肢体麻木",
    "关节肿痛",
    "复查",
    "高血压随访",
    "糖尿病随访",
    "颈部不适",
)


@dataclass(frozen=True)
class HistoryShape:
    """Shares and timing medians of the demo history (minutes unless named otherwise)."""

    emergency_day: float = 0.08
    emergency_night: float = 0.22
    correction: float = 0.05
    amendment: float = 0.008
    retake: float = 0.02
    consultation: float = 0.01
    cancelled: float = 0.01
    repeat_patient: float = 0.30
    same_exam_on_repeat: float = 0.55
    other_site_on_repeat: float = 0.5
    accept_prior: float = 0.35
    refuse_prior: float = 0.45  # the rest of the prompts were not answered at all
    no_resident_id: float = 0.03
    preliminary_median: float = 14.0
    audit_median: float = 12.0
    emergency_preliminary_median: float = 8.0
    emergency_audit_median: float = 6.0
    night_factor: float = 1.6
    notify_median: float = 4.0
    quiet_seconds: int = 75  # the stabiliser's quiet time before a study is complete


@dataclass
class _Prior:
    exam_type_id: int
    study_id: int
    report_id: int
    facility_id: int
    started_at: datetime
    final_at: datetime
    quality_rejected: bool


@dataclass
class _Patient:
    id: int
    sex: Sex
    birth_date: date
    home_site: DemoFacility
    mrn_at: set[int] = field(default_factory=set)
    priors: list[_Prior] = field(default_factory=list)


@dataclass
class HistoryCounts:
    encounters: int = 0
    orders: int = 0
    studies: int = 0
    reports: int = 0
    finals: int = 0
    corrected: int = 0
    retakes: int = 0
    critical: int = 0
    consultations: int = 0
    recognition_accepted: int = 0
    recognition_refused: int = 0
    patients: int = 0


class HistoryGenerator:
    """Generates exams from ``start`` to ``anchor`` and hands rows to ``flush`` in batches.

    Rows come grouped by table in foreign-key order, so each batch can be
    inserted as it is.
    """

    TABLE_ORDER = (
        "patient",
        "patient_identifier",
        "exam_order",
        "study",
        "series",
        "report",
        "report_revision",
        "qc_event",
        "consultation",
        "critical_result",
        "recognition_decision",
    )

    def __init__(
        self,
        *,
        rng: random.Random,
        region: DemoRegion,
        exam_types: list[ExamType],
        anchor: datetime,
        zone: ZoneInfo,
        shape: HistoryShape | None = None,
        days: int = 365,
    ) -> None:
        self.rng = rng
        self.region = region
        self.exam_types = [e for e in exam_types if e.active]
        self.anchor = anchor.astimezone(UTC)
        self.zone = zone
        self.shape = shape or HistoryShape()
        self.start = (
            (self.anchor - timedelta(days=days))
            .astimezone(zone)
            .replace(hour=0, minute=0, second=0, microsecond=0)
        )
        self.days = days
        self.counts = HistoryCounts()
        self._buffers: dict[str, list[Row]] = {table: [] for table in self.TABLE_ORDER}
        self._ids: dict[str, int] = {table: 0 for table in self.TABLE_ORDER}
        self._patients: list[_Patient] = []
        self._resident_ids: set[str] = set()
        self._accession_seq: dict[int, int] = {}
        self._mrn_seq: dict[int, int] = {}
        self._sites = region.imaging_sites
        self._site_weights = [site.size for site in self._sites]
        self._villages: dict[int, list[DemoFacility]] = {
            f.parent_id: [] for f in region.facilities if f.parent_id is not None
        }
        for facility in region.facilities:
            if facility.level.value == "village" and facility.parent_id is not None:
                self._villages[facility.parent_id].append(facility)
        self._menu = {site.id: self._exam_menu(site) for site in self._sites}
        self._recent: deque[_Patient] = deque(maxlen=20)

    # ---------------------------------------------------------------- helpers
    def _next_id(self, table: str) -> int:
        self._ids[table] += 1
        return self._ids[table]

    def _emit(self, table: str, row: Row) -> None:
        self._buffers[table].append(row)

    def _uid(self) -> str:
        return f"2.25.{self.rng.getrandbits(126)}"

    def _minutes(self, median: float, sigma: float) -> timedelta:
        return timedelta(minutes=self.rng.lognormvariate(math.log(median), sigma))

    @staticmethod
    def _exam_weight(exam: ExamType) -> float:
        part, modality = exam.body_part, exam.modality
        if modality in (Modality.DX, Modality.CR):
            return 30.0 if part == "CHEST" else 4.0
        if modality is Modality.CT:
            return {"HEAD": 10.0, "CHEST": 12.0}.get(part, 3.0)
        if modality is Modality.MR:
            return 3.0
        if modality is Modality.US:
            return 10.0 if part in ("ABDOMEN", "LIVER", "GALLBLADDER") else 4.0
        return 2.0

    def _exam_menu(self, site: DemoFacility) -> list[tuple[ExamType, float]]:
        return [
            (exam, self._exam_weight(exam))
            for exam in self.exam_types
            if exam.modality in site.modalities
        ]

    @staticmethod
    def _female_only(exam: ExamType) -> bool:
        return exam.body_part in ("BREAST", "UTERUS") or any(
            tag in exam.code for tag in ("-OB", "GYN", "OBST")
        )

    def _pick_exam(self, site: DemoFacility, patient: _Patient) -> ExamType | None:
        menu = [
            (exam, weight)
            for exam, weight in self._menu[site.id]
            if patient.sex is Sex.female or not self._female_only(exam)
        ]
        if not menu:
            return None
        return self.rng.choices([e for e, _ in menu], weights=[w for _, w in menu])[0]

    def _staff(self, facility_id: int, *roles: Role) -> list[DemoUser]:
        return self.region.staff(facility_id, *roles)

    # --------------------------------------------------------------- patients
    def _new_patient(self, when: datetime) -> _Patient:
        rng = self.rng
        sex = Sex.female if rng.random() < 0.52 else Sex.male
        low, high, _ = rng.choices(AGE_BANDS, weights=[b[2] for b in AGE_BANDS])[0]
        age_days = int(rng.uniform(low, high) * 365.25) + 1
        birth = (when.astimezone(self.zone).date()) - timedelta(days=age_days)
        home = rng.choices(self._sites, weights=self._site_weights)[0]
        patient = _Patient(id=self._next_id("patient"), sex=sex, birth_date=birth, home_site=home)
        self._patients.append(patient)
        self.counts.patients += 1
        name = vocab.person_name(rng, sex.value)
        self._emit(
            "patient",
            {
                "id": patient.id,
                "name": name,
                "sex": sex,
                "birth_date": birth,
                "phone": f"1{rng.choice('3578')}{rng.randrange(10**9):09d}",
                "address": self._address(home),
                "merged_into_id": None,
                "needs_review": False,
                "created_at": when,
                "updated_at": when,
            },
        )
        if rng.random() >= self.shape.no_resident_id:
            for _attempt in range(200):
                resident_id = make_resident_id(
                    vocab.COUNTY_AREA_CODE, birth, rng.randrange(100), sex
                )
                if resident_id not in self._resident_ids:
                    self._resident_ids.add(resident_id)
                    self._emit(
                        "patient_identifier",
                        {
                            "id": self._next_id("patient_identifier"),
                            "patient_id": patient.id,
                            "kind": IdentifierKind.resident_id,
                            "authority": RESIDENT_ID_AUTHORITY,
                            "value": resident_id,
                        },
                    )
                    break
        return patient

    def _address(self, home: DemoFacility) -> str:
        township = home.name.removesuffix("卫生院")
        if township not in vocab.VILLAGES_PER_TOWNSHIP:
            township = self.rng.choice(vocab.TOWNSHIPS)
        village = self.rng.choice(vocab.VILLAGES_PER_TOWNSHIP[township] or ("",))
        return f"{vocab.CITY_NAME}{vocab.COUNTY_NAME}{township}{village}"

    def _ensure_mrn(self, patient: _Patient, facility: DemoFacility) -> None:
        if facility.id in patient.mrn_at:
            return
        patient.mrn_at.add(facility.id)
        self._mrn_seq[facility.id] = self._mrn_seq.get(facility.id, 0) + 1
        self._emit(
            "patient_identifier",
            {
                "id": self._next_id("patient_identifier"),
                "patient_id": patient.id,
                "kind": IdentifierKind.mrn,
                "authority": facility.code,
                "value": f"{facility.code.replace('-', '')}{self._mrn_seq[facility.id]:07d}",
            },
        )

    # ------------------------------------------------------------------ times
    def _encounter_times(self, count: int) -> list[datetime]:
        rng = self.rng
        day_weights = []
        for offset in range(self.days + 1):
            day = (self.start + timedelta(days=offset)).date()
            weekend = day.weekday() >= 5
            season = 1.0 + 0.12 * math.cos((day.timetuple().tm_yday - 15) / 365 * 2 * math.pi)
            growth = 0.9 + 0.2 * offset / self.days  # the region's volume grows over the year
            day_weights.append((0.6 if weekend else 1.0) * season * growth)
        days = rng.choices(range(self.days + 1), weights=day_weights, k=count)
        hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=count)
        start_day = self.start.date()
        times = []
        for day_offset, hour in zip(days, hours, strict=True):
            day = start_day + timedelta(days=day_offset)
            local = datetime.combine(
                day, time(hour, rng.randrange(60), rng.randrange(60)), tzinfo=self.zone
            )
            moment = local.astimezone(UTC)
            if moment < self.anchor:
                times.append(moment)
        times.sort()
        return times

    # ------------------------------------------------------------- generation
    def batches(
        self,
        count: int,
        *,
        batch_size: int = 2000,
        on_progress: Callable[[int], None] | None = None,
    ) -> Iterator[dict[str, list[Row]]]:
        """Generate about ``count`` encounters; yield rows per table every ``batch_size``."""
        times = self._encounter_times(count)
        self._recent = deque(maxlen=max(50, len(times) // max(self.days, 1) * 14))
        done = 0
        for moment in times:
            self._encounter(moment)
            done += 1
            if done % batch_size == 0:
                if on_progress:
                    on_progress(batch_size)
                yield self._drain()
        self._schedule_upcoming()
        if on_progress:
            on_progress(done % batch_size)
        yield self._drain()

    def _drain(self) -> dict[str, list[Row]]:
        drained = self._buffers
        self._buffers = {table: [] for table in self.TABLE_ORDER}
        return drained

    def _encounter(self, when: datetime) -> None:
        rng, shape = self.rng, self.shape
        self.counts.encounters += 1
        repeat = bool(self._recent) and rng.random() < shape.repeat_patient
        patient = rng.choice(self._recent) if repeat else self._new_patient(when)
        site = patient.home_site
        if repeat and rng.random() < shape.other_site_on_repeat:
            site = rng.choices(self._sites, weights=self._site_weights)[0]
        exam: ExamType | None = None
        if repeat and patient.priors and rng.random() < shape.same_exam_on_repeat:
            last = patient.priors[-1]
            candidate = next((e for e in self.exam_types if e.id == last.exam_type_id), None)
            if candidate is not None and candidate.modality in site.modalities:
                exam = candidate
        exam = exam or self._pick_exam(site, patient)
        if exam is None or exam.id is None:
            return
        self._recent.append(patient)

        decision = self._recognition(patient, exam, site, when)
        if decision == "accepted":
            return
        self._exam(patient, exam, site, when, refused_decision=decision)

    def _recognisable_prior(
        self, patient: _Patient, exam: ExamType, when: datetime
    ) -> _Prior | None:
        if not exam.recognised:
            return None
        for prior in reversed(patient.priors):
            if prior.exam_type_id != exam.id or prior.final_at > when:
                continue
            if prior.quality_rejected:
                continue
            if when - prior.started_at > timedelta(days=exam.validity_days):
                return None
            facility = next(f for f in self.region.facilities if f.id == prior.facility_id)
            if facility.qualified_on(prior.started_at.astimezone(self.zone).date()):
                return prior
        return None

    def _recognition(
        self, patient: _Patient, exam: ExamType, site: DemoFacility, when: datetime
    ) -> str | Row | None:
        """Whether the clinician was prompted, and what they decided; None: no prompt."""
        prior = self._recognisable_prior(patient, exam, when)
        if prior is None:
            return None
        rng, shape = self.rng, self.shape
        roll = rng.random()
        clinicians = self._staff(site.id, Role.clinician)
        clinician = rng.choice(clinicians) if clinicians else None
        row: Row = {
            "id": self._next_id("recognition_decision"),
            "patient_id": patient.id,
            "requested_exam_type_id": exam.id,
            "prior_study_id": prior.study_id,
            "prior_report_id": prior.report_id,
            "facility_id": site.id,
            "clinician_id": clinician.id if clinician else None,
            "clinician_ref": f"Practitioner/{clinician.id}" if clinician else "",
            "source": rng.choice((RecognitionSource.cds_hooks, RecognitionSource.portal)),
            "card_id": f"{rng.getrandbits(64):016x}",
            "decided_at": when,
            "new_order_id": None,
            "avoided_fee_fen": 0,
            "comment": "",
            "refusal_reason": None,
        }
        if roll < shape.accept_prior:
            row.update(
                outcome=RecognitionOutcome.accepted,
                avoided_fee_fen=exam.fee_fen * exam.body_part_count,
            )
            self._emit("recognition_decision", row)
            self.counts.recognition_accepted += 1
            return "accepted"
        if roll < shape.accept_prior + shape.refuse_prior:
            reason = rng.choices(list(RefusalReason), weights=(40, 15, 20, 15, 10))[0]
            row.update(
                outcome=RecognitionOutcome.refused,
                refusal_reason=reason,
                comment=rng.choice(vocab.REFUSAL_COMMENTS[reason.value]),
            )
            self.counts.recognition_refused += 1
            return row
        return None

    def _exam(
        self,
        patient: _Patient,
        exam: ExamType,
        site: DemoFacility,
        when: datetime,
        *,
        refused_decision: str | Row | None,
    ) -> None:
        assert exam.id is not None
        rng, shape = self.rng, self.shape
        local = when.astimezone(self.zone)
        night = local.hour >= 20 or local.hour < 8
        emergency = rng.random() < (shape.emergency_night if night else shape.emergency_day)
        priority = Priority.emergency if emergency else Priority.routine
        ordering = site
        villages = self._villages.get(site.id, [])
        if villages and rng.random() < 0.1:
            ordering = rng.choice(villages)  # referred from a village clinic
        self._ensure_mrn(patient, site)
        order_id = self._next_id("exam_order")
        self._accession_seq[site.id] = self._accession_seq.get(site.id, 0) + 1
        accession = f"{site.code.replace('-', '')}{self._accession_seq[site.id]:06d}"
        study_uid = self._uid()
        doctors = self._staff(ordering.id, Role.clinician) or self._staff(site.id, Role.clinician)
        provider = rng.choice(doctors).display_name if doctors else ""
        aet = site.ae_titles.get(exam.modality, "")
        started = when + (self._minutes(6, 0.5) if emergency else self._minutes(20, 0.6))
        order: Row = {
            "id": order_id,
            "accession_number": accession,
            "placer_number": f"{ordering.code}-{order_id}",
            "filler_number": accession,
            "patient_id": patient.id,
            "exam_type_id": exam.id,
            "ordering_facility_id": ordering.id,
            "performing_facility_id": site.id,
            "ordering_provider": provider,
            "ordering_user_id": None,
            "priority": priority,
            "patient_class": PatientClass.emergency
            if emergency
            else rng.choices(
                (PatientClass.outpatient, PatientClass.inpatient, PatientClass.physical_exam),
                weights=(70, 22, 8),
            )[0],
            "status": OrderStatus.completed,
            "reason": rng.choice(ORDER_REASONS),
            "body_part_count": exam.body_part_count,
            "requested_at": when,
            "scheduled_at": started,
            "scheduled_station_aet": aet or None,
            "sps_id": f"SPS{order_id}",
            "requested_procedure_id": f"RP{order_id}",
            "study_instance_uid": study_uid if rng.random() < 0.6 else None,
            "source_message_id": None,
            "created_at": when,
            "updated_at": when,
        }
        self.counts.orders += 1
        if isinstance(refused_decision, dict):
            refused_decision["new_order_id"] = order_id
        if rng.random() < shape.cancelled and started < self.anchor:
            order.update(status=OrderStatus.cancelled, updated_at=when + timedelta(minutes=5))
            self._emit("exam_order", order)
            self._flush_decision(refused_decision)
            return
        if started >= self.anchor:
            order.update(status=OrderStatus.scheduled)
            self._emit("exam_order", order)
            self._flush_decision(refused_decision)
            return
        self._emit("exam_order", order)
        self._flush_decision(refused_decision)

        centre_id = site.reading_centre_id or site.id
        radiologists = self._staff(centre_id, Role.radiologist)
        auditors = self._staff(centre_id, Role.auditor)
        author, auditor = rng.choice(radiologists), rng.choice(auditors)
        technologists = self._staff(site.id, Role.technologist)
        technologist = rng.choice(technologists).display_name if technologists else ""

        study = self._study(patient, exam, site, order, study_uid, started, priority, None)
        if study is None:
            order["status"] = OrderStatus.in_progress
            return
        slow = shape.night_factor if night else 1.0
        if emergency:
            prelim_at = study["completed_at"] + self._minutes(
                shape.emergency_preliminary_median, 0.45
            )
            final_at = prelim_at + self._minutes(shape.emergency_audit_median, 0.45)
        else:
            prelim_at = study["completed_at"] + self._minutes(shape.preliminary_median * slow, 0.5)
            final_at = prelim_at + self._minutes(shape.audit_median * slow, 0.55)

        if rng.random() < shape.retake:
            by_auditor = rng.random() < 0.3
            rejected_at = final_at if by_auditor else prelim_at
            if rejected_at >= self.anchor:
                self._in_progress(order, study, prelim_at)
                return
            reason, _label = rng.choice(vocab.RETAKE_REASONS)
            study.update(reading_status=ReadingStatus.retake_requested, quality_rejected=True)
            qc = {
                "id": self._next_id("qc_event"),
                "study_id": study["id"],
                "facility_id": site.id,
                "technologist": technologist,
                "reviewer_id": (auditor if by_auditor else author).id,
                "grade": ImageGrade.D,
                "artefact": reason.endswith("artifact"),
                "retake_requested": True,
                "retake_reason": reason,
                "retake_study_id": None,
                "note": "",
                "created_at": rejected_at,
            }
            self._emit("qc_event", qc)
            self.counts.retakes += 1
            patient.priors.append(
                _Prior(
                    exam.id,
                    study["id"],
                    0,
                    site.id,
                    started,
                    datetime.max.replace(tzinfo=UTC),
                    True,
                )
            )
            started = rejected_at + self._minutes(60, 0.6)
            if started >= self.anchor:
                order["status"] = OrderStatus.in_progress
                return
            retake = self._study(
                patient, exam, site, order, self._uid(), started, priority, study["id"]
            )
            qc["retake_study_id"] = retake["id"] if retake else None
            if retake is None:
                order["status"] = OrderStatus.in_progress
                return
            study = retake
            shift = study["completed_at"] - prelim_at + self._minutes(shape.preliminary_median, 0.5)
            prelim_at, final_at = prelim_at + shift, final_at + shift

        if prelim_at >= self.anchor:
            self._in_progress(order, study, prelim_at)
            return
        self._report(
            patient,
            exam,
            site,
            order,
            study,
            author,
            auditor,
            technologist,
            prelim_at,
            final_at,
            emergency,
        )

    def _flush_decision(self, decision: str | Row | None) -> None:
        if isinstance(decision, dict):
            self._emit("recognition_decision", decision)

    def _in_progress(self, order: Row, study: Row, prelim_at: datetime) -> None:
        order["status"] = OrderStatus.in_progress
        study["reading_status"] = ReadingStatus.awaiting_preliminary

    def _study(
        self,
        patient: _Patient,
        exam: ExamType,
        site: DemoFacility,
        order: Row,
        uid: str,
        started: datetime,
        priority: Priority,
        retake_of: int | None,
    ) -> Row | None:
        rng = self.rng
        low, high = ACQUISITION_MINUTES.get(exam.modality, (5, 15))
        received = started + timedelta(minutes=rng.uniform(low, high))
        completed = received + timedelta(seconds=self.shape.quiet_seconds + rng.uniform(0, 30))
        if received >= self.anchor:
            return None
        study_id = self._next_id("study")
        series_plan = self._series_plan(exam)
        aet = site.ae_titles.get(exam.modality, "")
        row: Row = {
            "id": study_id,
            "study_instance_uid": uid,
            "order_id": order["id"],
            "patient_id": patient.id,
            "exam_type_id": exam.id,
            "facility_id": site.id,
            "reading_centre_id": site.reading_centre_id or site.id,
            "accession_number": order["accession_number"],
            "modalities": exam.modality.value,
            "body_part": exam.body_part,
            "description": exam.name_zh,
            "station_name": aet,
            "priority": priority,
            "started_at": started,
            "received_at": received,
            "last_instance_at": received,
            "completed_at": completed if completed < self.anchor else None,
            "status": StudyStatus.complete if completed < self.anchor else StudyStatus.receiving,
            "reading_status": ReadingStatus.final if completed < self.anchor else None,
            "num_series": len(series_plan),
            "num_instances": sum(series_plan),
            "quality_rejected": False,
            "retake_of_study_id": retake_of,
            "claimed_by_id": None,
            "claimed_until": None,
            "dicom_patient_id": "",
            "dicom_patient_name": "",
            "demographics_conflict": False,
            "source_node": None,
        }
        self._emit("study", row)
        self.counts.studies += 1
        for number, instances in enumerate(series_plan, start=1):
            self._emit(
                "series",
                {
                    "id": self._next_id("series"),
                    "study_id": study_id,
                    "series_instance_uid": self._uid(),
                    "number": number,
                    "modality": exam.modality.value,
                    "body_part": exam.body_part,
                    "laterality": "",
                    "description": exam.name_en[:64],
                    "station_name": aet,
                    "started_at": started + timedelta(minutes=number - 1),
                    "num_instances": instances,
                },
            )
        if row["completed_at"] is None:
            return None
        return row

    def _series_plan(self, exam: ExamType) -> list[int]:
        rng = self.rng
        if exam.modality is Modality.CT:
            return [rng.randint(150, 400) for _ in range(rng.randint(2, 3))]
        if exam.modality is Modality.MR:
            return [rng.randint(18, 30) for _ in range(rng.randint(4, 6))]
        if exam.modality is Modality.US:
            return [rng.randint(8, 40)]
        if exam.modality is Modality.MG:
            return [4]
        return [rng.randint(1, 2)]

    def _report(
        self,
        patient: _Patient,
        exam: ExamType,
        site: DemoFacility,
        order: Row,
        study: Row,
        author: DemoUser,
        auditor: DemoUser,
        technologist: str,
        prelim_at: datetime,
        final_at: datetime,
        emergency: bool,
    ) -> None:
        assert exam.id is not None
        rng, shape = self.rng, self.shape
        family = vocab.REPORT_FAMILIES[vocab.family_for(exam.modality.value, exam.body_part)]
        positive = rng.random() < POSITIVE_RATE.get(exam.modality, 0.3) * (1.3 if emergency else 1)
        if positive:
            critical_share = 0.15 if emergency else 0.02
            critical_pool = [f for f in family.abnormal if f.critical]
            ordinary_pool = [f for f in family.abnormal if not f.critical] or list(family.abnormal)
            finding = (
                rng.choice(critical_pool)
                if critical_pool and rng.random() < critical_share
                else rng.choice(ordinary_pool)
            )
        else:
            finding = rng.choice(family.normal)
        report_id = self._next_id("report")
        self.counts.reports += 1
        findings, impression = finding.findings, finding.impression
        report: Row = {
            "id": report_id,
            "study_id": study["id"],
            "order_id": order["id"],
            "reading_centre_id": study["reading_centre_id"],
            "status": ReportStatus.preliminary,
            "findings": findings,
            "impression": impression,
            "author_id": author.id,
            "auditor_id": None,
            "preliminary_at": prelim_at,
            "finalised_at": None,
            "amended_at": None,
            "corrected": False,
            "positive": finding.positive,
            "critical": finding.critical,
            "image_grade": None,
            "version": 1,
            "updated_at": prelim_at,
        }
        self._revision(
            report_id, 1, ReportStatus.preliminary, findings, impression, author.id, "", prelim_at
        )
        if finding.critical:
            self._critical(report_id, study, patient, order, author, finding.impression, prelim_at)
        if rng.random() < shape.consultation:
            self._consultation(study, author, prelim_at)

        if final_at >= self.anchor:
            study["reading_status"] = ReadingStatus.awaiting_audit
            order["status"] = OrderStatus.in_progress
            self._emit("report", report)
            return

        corrected = rng.random() < shape.correction
        final_findings, final_impression, reason = findings, impression, ""
        if corrected:
            suffix, reason = rng.choice(vocab.CORRECTION_EDITS)
            final_impression = f"{impression}{suffix}"
            self.counts.corrected += 1
        grade = rng.choices(list(ImageGrade), weights=(84, 12, 3, 1))[0]
        report.update(
            status=ReportStatus.final,
            findings=final_findings,
            impression=final_impression,
            auditor_id=auditor.id,
            finalised_at=final_at,
            corrected=corrected,
            image_grade=grade,
            version=2,
            updated_at=final_at,
        )
        self._revision(
            report_id,
            2,
            ReportStatus.final,
            final_findings,
            final_impression,
            auditor.id,
            reason,
            final_at,
        )
        self._emit(
            "qc_event",
            {
                "id": self._next_id("qc_event"),
                "study_id": study["id"],
                "facility_id": site.id,
                "technologist": technologist,
                "reviewer_id": auditor.id,
                "grade": grade,
                "artefact": grade in (ImageGrade.C, ImageGrade.D) and rng.random() < 0.6,
                "retake_requested": False,
                "retake_reason": None,
                "retake_study_id": None,
                "note": "",
                "created_at": final_at,
            },
        )
        self.counts.finals += 1
        if rng.random() < shape.amendment:
            amended_at = final_at + timedelta(hours=rng.uniform(1, 72))
            if amended_at < self.anchor:
                status = rng.choice((ReportStatus.amended, ReportStatus.corrected))
                amendment = f"{final_impression}（补充：{rng.choice(vocab.AMENDMENT_REASONS)}）"
                report.update(
                    status=status,
                    impression=amendment,
                    amended_at=amended_at,
                    corrected=True,
                    version=3,
                    updated_at=amended_at,
                )
                self._revision(
                    report_id,
                    3,
                    status,
                    final_findings,
                    amendment,
                    auditor.id,
                    rng.choice(vocab.AMENDMENT_REASONS),
                    amended_at,
                )
                if not corrected:
                    self.counts.corrected += 1
        self._emit("report", report)
        patient.priors.append(
            _Prior(exam.id, study["id"], report_id, site.id, study["started_at"], final_at, False)
        )
        del patient.priors[:-6]

    def _revision(
        self,
        report_id: int,
        version: int,
        status: ReportStatus,
        findings: str,
        impression: str,
        editor_id: int,
        reason: str,
        at: datetime,
    ) -> None:
        self._emit(
            "report_revision",
            {
                "id": self._next_id("report_revision"),
                "report_id": report_id,
                "version": version,
                "status": status,
                "findings": findings,
                "impression": impression,
                "editor_id": editor_id,
                "reason": reason,
                "created_at": at,
                "content_hash": "",
                "previous_hash": "",
            },
        )

    def _critical(
        self,
        report_id: int,
        study: Row,
        patient: _Patient,
        order: Row,
        author: DemoUser,
        description: str,
        flagged_at: datetime,
    ) -> None:
        notified = flagged_at + self._minutes(self.shape.notify_median, 0.75)
        acknowledged = notified + self._minutes(6, 0.7)
        clinic_id = order["ordering_facility_id"]
        receivers = self._staff(clinic_id, Role.clinician, Role.technologist) or self._staff(
            study["facility_id"], Role.clinician, Role.technologist
        )
        receiver = self.rng.choice(receivers).display_name if receivers else "值班医生"
        self._emit(
            "critical_result",
            {
                "id": self._next_id("critical_result"),
                "report_id": report_id,
                "study_id": study["id"],
                "patient_id": patient.id,
                "facility_id": clinic_id,
                "flagged_by_id": author.id,
                "description": description[:500],
                "flagged_at": flagged_at,
                "notified_at": notified if notified < self.anchor else None,
                "notified_to": receiver if notified < self.anchor else "",
                "acknowledged_at": acknowledged if acknowledged < self.anchor else None,
                "acknowledged_by": receiver if acknowledged < self.anchor else "",
                "created_at": flagged_at,
            },
        )
        self.counts.critical += 1

    def _consultation(self, study: Row, author: DemoUser, asked_at: datetime) -> None:
        rng = self.rng
        centres = [c for c in self.region.reading_centres if c.id != study["reading_centre_id"]]
        expert_centre = rng.choice(centres) if centres else self.region.reading_centres[0]
        experts = [
            u for u in self._staff(expert_centre.id, Role.auditor) if u.title.value == "chief"
        ] or self._staff(expert_centre.id, Role.auditor)
        expert = rng.choice(experts)
        answered = asked_at + self._minutes(90, 0.8)
        done = answered < self.anchor
        self._emit(
            "consultation",
            {
                "id": self._next_id("consultation"),
                "study_id": study["id"],
                "requested_by_id": author.id,
                "from_centre_id": study["reading_centre_id"],
                "expert_id": expert.id,
                "expert_facility_id": expert_centre.id,
                "question": rng.choice(vocab.CONSULTATION_QUESTIONS),
                "opinion": rng.choice(vocab.CONSULTATION_OPINIONS) if done else "",
                "status": ConsultationStatus.answered if done else ConsultationStatus.requested,
                "requested_at": asked_at,
                "answered_at": answered if done else None,
            },
        )
        self.counts.consultations += 1

    def _schedule_upcoming(self) -> None:
        """A few orders booked for the next hours, so the modality worklist has work."""
        rng = self.rng
        for site in self._sites:
            for _ in range(rng.randint(1, 3)):
                patient = self._new_patient(self.anchor)
                exam = self._pick_exam(site, patient)
                if exam is None:
                    continue
                when = self.anchor + timedelta(minutes=rng.randint(20, 240))
                self._exam(patient, exam, site, when - timedelta(minutes=30), refused_decision=None)
