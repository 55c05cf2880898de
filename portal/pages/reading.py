"""/reading/<study>: the report editor beside the patient, the order, the priors and the images.

What a user may do here follows the study's step and their role: a radiologist
writes the preliminary, an auditor signs it final (as written or corrected) or
amends a signed report; either may flag a critical result, ask for a retake or
consult an expert. Every action goes through `integration.services`, which
checks the user and the study again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration.permissions import Action
from integration.reading_desk import RETAKE_REASONS, ReadingCase, RevisionLine, Segment
from integration.services import portal_services
from models.errors import HurenError, NotFound, PermissionDenied
from portal import i18n, routes
from portal.auth import SessionState
from portal.layout import clock_badge, field_error, page_shell, tr, tr_key, when_allowed

logger = logging.getLogger(__name__)

# Which form field a service error points at, per form: the message shown under that field.
FIELD_MESSAGES: dict[str, str] = {
    "findings": "err_findings_required",
    "impression": "err_impression_required",
    "grade": "err_grade_required",
    "critical": "err_critical_required",
    "reason": "err_reason_required",
    "status": "err_amend_status",
    "question": "err_question_required",
    "expert": "err_expert_required",
    "notified_to": "err_notified_to_required",
    "note": "err_note_too_long",
}


def _segments(segments: tuple[Segment, ...]) -> list[dict[str, str]]:
    return [{"kind": s.kind.value, "text": s.text} for s in segments]


def revision_rows(revisions: tuple[RevisionLine, ...], zone_key: str) -> list[dict[str, Any]]:
    zone = i18n.zone(zone_key)
    return [
        {
            "version": r.version,
            "status_key": f"report_{r.status.value}",
            "editor": r.editor,
            "at": i18n.local_datetime(r.created_at, zone),
            "reason": r.reason,
            "changed": r.changed,
            "findings": _segments(r.findings),
            "impression": _segments(r.impression),
        }
        for r in revisions
    ]


def case_fields(case: ReadingCase, zone_key: str) -> dict[str, Any]:
    """The case as the page's plain state values."""
    zone = i18n.zone(zone_key)
    return {
        "case_uid": case.study_uid,
        "accession": case.accession,
        "emergency": case.priority.value == "emergency",
        "reading_status": case.reading_status.value if case.reading_status else "",
        "arrived": i18n.local_datetime(case.arrived_at, zone),
        "due": i18n.local_datetime(case.due_at, zone),
        "due_iso": case.due_at.isoformat() if case.due_at else "",
        "clock": case.clock.value,
        "preliminary_due": i18n.local_datetime(case.preliminary_due, zone),
        "final_due": i18n.local_datetime(case.final_due, zone),
        "patient_name": case.patient_name,
        "sex_key": f"sex_{case.sex or 'U'}",
        "age": case.age,
        "birth_date": case.birth_date.isoformat() if case.birth_date else "",
        "resident_id": case.resident_id,
        "exam_name": case.exam_name,
        "exam_name_en": case.exam_name_en or case.exam_name,
        "modality": case.modality,
        "body_part": case.body_part,
        "clinic_name": case.clinic_name,
        "clinic_name_en": case.clinic_name_en or case.clinic_name,
        "ordering_provider": case.ordering_provider,
        "reason": case.reason,
        "requested_at": i18n.local_datetime(case.requested_at, zone),
        "num_series": case.num_series,
        "num_instances": case.num_instances,
        "series": [
            {
                "number": "" if s.number is None else str(s.number),
                "modality": s.modality,
                "body_part": s.body_part,
                "description": s.description,
                "instances": s.instances,
            }
            for s in case.series
        ],
        "demographics_conflict": case.demographics_conflict,
        "is_retake": case.retake_of_study_id is not None,
        "report_status": case.report_status.value if case.report_status else "",
        "saved_findings": case.findings,
        "saved_impression": case.impression,
        "author": case.author,
        "auditor": case.auditor,
        "preliminary_at": i18n.local_datetime(case.preliminary_at, zone),
        "finalised_at": i18n.local_datetime(case.finalised_at, zone),
        "image_grade": case.image_grade,
        "claimed_by": case.claimed_by,
        "claimed_by_me": case.claimed_by_me,
        "template_findings": case.template.findings,
        "template_impression": case.template.impression,
        "template_name": case.template.name_zh,
        "template_name_en": case.template.name_en,
        "revisions": revision_rows(case.revisions, zone_key),
        "priors": [
            {
                "on": p.performed_on.isoformat(),
                "exam": p.exam_code,
                "facility": p.facility,
                "status_key": f"report_{p.report_status}" if p.report_status else "report_none",
                "conclusion": p.conclusion,
                "href": routes.reading(p.study_id) if p.study_id else "",
            }
            for p in case.priors
        ],
        "consultations": [
            {
                "expert": c.expert or c.expert_facility,
                "facility": c.expert_facility,
                "question": c.question,
                "opinion": c.opinion,
                "status_key": f"consult_{c.status.value}",
                "asked": i18n.local_datetime(c.requested_at, zone),
                "answered": i18n.local_datetime(c.answered_at, zone),
                "requested_by": c.requested_by,
            }
            for c in case.consultations
        ],
        "criticals": [
            {
                "id": c.id,
                "description": c.description,
                "flagged_by": c.flagged_by,
                "flagged": i18n.local_datetime(c.flagged_at, zone),
                "notify_due": i18n.local_datetime(c.notify_due, zone),
                "notified": i18n.local_datetime(c.notified_at, zone),
                "notified_to": c.notified_to,
                "acknowledged": i18n.local_datetime(c.acknowledged_at, zone),
                "acknowledged_by": c.acknowledged_by,
                "late": c.notified_at is not None and c.notified_at > c.notify_due,
            }
            for c in case.critical_results
        ],
        "retake_reason_key": f"retake_{case.retake_reason}" if case.retake_reason else "",
        "retake_note": case.retake_note,
        "case_actions": sorted(case.actions),
    }


class ReadingState(SessionState):
    allowed: bool = False
    missing: bool = False
    case_id: int = 0
    case: dict[str, Any] = {}
    findings: str = ""
    impression: str = ""
    critical: str = ""
    grade: str = ""
    amend_reason: str = ""
    amend_status: str = "corrected"
    amending: bool = False  # the auditor opened the amendment form of a signed report
    retake_reason: str = ""
    retake_note: str = ""
    expert_id: str = ""
    question: str = ""
    experts: list[dict[str, str]] = []
    notify_to: dict[str, str] = {}
    previews: list[dict[str, str]] = []
    previews_loaded: bool = False
    errors: dict[str, str] = {}  # field -> i18n key
    notice_key: str = ""
    notice_detail: str = ""
    busy: bool = False

    @rx.var
    def notice(self) -> str:
        if not self.notice_key:
            return ""
        return f"{i18n.text(self.notice_key, self.lang)} {self.notice_detail}".strip()

    @rx.var
    def error_text(self) -> dict[str, str]:
        table = i18n.strings(self.lang)
        return {name: table[key] for name, key in self.errors.items()}

    @rx.var
    def can(self) -> dict[str, bool]:
        """Which forms to show: the user's actions joined with the study's step."""
        actions = set(self.case.get("case_actions", []))
        status = self.case.get("reading_status", "")
        taken = bool(self.case.get("claimed_by")) and not self.case.get("claimed_by_me")
        open_step = status in ("awaiting_preliminary", "awaiting_audit") and not taken
        signed = self.case.get("report_status") in ("final", "amended", "corrected")
        return {
            "preliminary": open_step
            and status == "awaiting_preliminary"
            and Action.write_preliminary.value in actions,
            "audit": open_step and status == "awaiting_audit" and Action.audit.value in actions,
            "amend": signed and Action.amend.value in actions and self.amending,
            "offer_amend": signed and Action.amend.value in actions and not self.amending,
            "retake": open_step and Action.request_retake.value in actions,
            "consult": status != "" and Action.request_consultation.value in actions,
            "flag": bool(self.case.get("report_status"))
            and self.case.get("report_status") != "cancelled"
            and Action.flag_critical.value in actions,
            "notify": Action.notify_critical.value in actions,
            "claim": status in ("awaiting_preliminary", "awaiting_audit")
            and not self.case.get("claimed_by")
            and Action.claim.value in actions,
            "release": bool(self.case.get("claimed_by_me")),
        }

    def _route_study(self) -> int:
        raw = str(self.router.page.params.get("study_id", ""))
        return int(raw) if raw.isdigit() else 0

    def _fill_editor(self) -> None:
        self.findings = self.case.get("saved_findings", "")
        self.impression = self.case.get("saved_impression", "")
        self.critical = ""
        self.grade = self.case.get("image_grade", "") or ""
        self.amend_reason = ""
        self.errors = {}
        if self.case.get("report_status") not in ("final", "amended", "corrected"):
            self.amending = False

    async def _read_case(self) -> bool:
        services = portal_services()
        try:
            case = await asyncio.to_thread(
                services.reading_case,
                self.user_id,
                self.case_id,
                source_address=self.router.session.client_ip,
            )
        except (NotFound, PermissionDenied):
            self.missing = True
            return False
        self.case = case_fields(case, services.settings.timezone)
        self.missing = False
        return True

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        self.previews, self.previews_loaded = [], False
        self.notice_key, self.notice_detail = "", ""
        refusal = self.guard()
        if refusal is not None:
            yield refusal
            return
        if not (self.may(Action.read_worklist) or self.may(Action.answer_consultation)):
            yield rx.redirect(routes.HOME, replace=True)
            return
        self.case_id = self._route_study()
        self.allowed = True
        self.case = {}
        if not await self._read_case():
            return
        self._fill_editor()
        yield ReadingState.load_previews

    @rx.event(background=True)
    async def load_previews(self) -> None:
        """Render the pictures off the page load: a CT series takes a moment."""
        async with self:
            user_id, case_id = self.user_id, self.case_id
        try:
            previews = await asyncio.to_thread(portal_services().previews, user_id, case_id)
        except HurenError:
            previews = ()
        async with self:
            if self.case_id != case_id:
                return
            self.previews = [
                {
                    "label": " ".join(
                        part
                        for part in (
                            str(p.series_number) if p.series_number is not None else "",
                            p.modality,
                            p.description,
                        )
                        if part
                    ),
                    "src": p.data_url,
                }
                for p in previews
            ]
            self.previews_loaded = True

    async def _act(
        self, action: Action, call: Callable[[], object], done_key: str
    ) -> AsyncIterator[EventSpec | None]:
        """Run one service call for a form: errors under their fields, then re-read the case."""
        refusal = self.guard(action)
        if refusal is not None:
            yield refusal
            return
        if self.busy:
            return
        self.busy, self.errors = True, {}
        self.notice_key, self.notice_detail = "", ""
        yield None
        try:
            await asyncio.to_thread(call)
        except HurenError as error:
            self.busy = False
            key = FIELD_MESSAGES.get(error.field or "")
            if key is not None:
                self.errors = {error.field or "": key}
            else:
                self.notice_key, self.notice_detail = "err_action", str(error)
            return
        self.busy = False
        self.amending = False
        await self._read_case()
        self._fill_editor()
        self.notice_key = done_key

    def _edited(self, name: str) -> None:
        """Typing in a field takes its old message away."""
        if name in self.errors:
            self.errors = {k: v for k, v in self.errors.items() if k != name}

    def set_findings(self, value: str) -> None:
        self.findings = value
        self._edited("findings")

    def set_impression(self, value: str) -> None:
        self.impression = value
        self._edited("impression")

    def set_critical(self, value: str) -> None:
        self.critical = value
        self._edited("critical")

    def set_amending(self, value: bool) -> None:
        self.amending = bool(value)
        self._fill_editor()

    def set_grade(self, value: str) -> None:
        self.grade = value

    def set_amend_reason(self, value: str) -> None:
        self.amend_reason = value
        self._edited("reason")

    def set_amend_status(self, value: str) -> None:
        self.amend_status = value

    def set_retake_reason(self, value: str) -> None:
        self.retake_reason = value

    def set_retake_note(self, value: str) -> None:
        self.retake_note = value

    def set_expert_id(self, value: str) -> None:
        self.expert_id = value

    def set_question(self, value: str) -> None:
        self.question = value

    def set_notify_to(self, critical_id: str, value: str) -> None:
        self.notify_to = {**self.notify_to, str(critical_id): value}

    @rx.event
    def use_template(self) -> EventSpec | None:
        """Start from the exam family's normal wording (only into empty boxes)."""
        refusal = self.guard(Action.write_preliminary)
        if refusal is not None:
            return refusal
        if not self.findings.strip():
            self.findings = self.case.get("template_findings", "")
        if not self.impression.strip():
            self.impression = self.case.get("template_impression", "")
        return None

    @rx.event
    async def claim(self) -> AsyncIterator[EventSpec | None]:
        services, user_id, case_id = portal_services(), self.user_id, self.case_id
        async for step in self._act(
            Action.claim, lambda: services.claim(user_id, case_id), "done_claimed"
        ):
            yield step

    @rx.event
    async def release(self) -> AsyncIterator[EventSpec | None]:
        services, user_id, case_id = portal_services(), self.user_id, self.case_id
        async for step in self._act(
            Action.claim, lambda: services.release(user_id, case_id), "done_released"
        ):
            yield step

    @rx.event
    async def submit_preliminary(self) -> AsyncIterator[EventSpec | None]:
        services, user_id, case_id = portal_services(), self.user_id, self.case_id
        findings, impression, critical = self.findings, self.impression, self.critical
        async for step in self._act(
            Action.write_preliminary,
            lambda: services.write_preliminary(
                user_id, case_id, findings=findings, impression=impression, critical=critical
            ),
            "done_preliminary",
        ):
            yield step

    @rx.event
    async def sign_final(self) -> AsyncIterator[EventSpec | None]:
        if not self.grade:
            self.errors = {"grade": "err_grade_required"}
            return
        services, user_id, case_id = portal_services(), self.user_id, self.case_id
        findings, impression, grade, critical = (
            self.findings,
            self.impression,
            self.grade,
            self.critical,
        )
        async for step in self._act(
            Action.audit,
            lambda: services.sign(
                user_id,
                case_id,
                findings=findings,
                impression=impression,
                grade=grade,
                critical=critical,
            ),
            "done_signed",
        ):
            yield step

    @rx.event
    async def amend(self) -> AsyncIterator[EventSpec | None]:
        services, user_id, case_id = portal_services(), self.user_id, self.case_id
        findings, impression, reason, status = (
            self.findings,
            self.impression,
            self.amend_reason,
            self.amend_status,
        )
        async for step in self._act(
            Action.amend,
            lambda: services.amend(
                user_id,
                case_id,
                findings=findings,
                impression=impression,
                reason=reason,
                status=status,
            ),
            "done_amended",
        ):
            yield step

    @rx.event
    async def flag(self) -> AsyncIterator[EventSpec | None]:
        services, user_id, case_id, description = (
            portal_services(),
            self.user_id,
            self.case_id,
            self.critical,
        )
        async for step in self._act(
            Action.flag_critical,
            lambda: services.flag_critical(user_id, case_id, description=description),
            "done_flagged",
        ):
            yield step

    @rx.event
    async def notify(self, critical_id: int) -> AsyncIterator[EventSpec | None]:
        services, user_id = portal_services(), self.user_id
        whom = self.notify_to.get(str(critical_id), "")
        async for step in self._act(
            Action.notify_critical,
            lambda: services.record_notification(user_id, int(critical_id), notified_to=whom),
            "done_notified",
        ):
            yield step

    @rx.event
    async def ask_retake(self) -> AsyncIterator[EventSpec | None]:
        if self.retake_reason not in RETAKE_REASONS:
            self.errors = {"reason": "err_retake_reason"}
            return
        services, user_id, case_id = portal_services(), self.user_id, self.case_id
        reason, note = self.retake_reason, self.retake_note
        async for step in self._act(
            Action.request_retake,
            lambda: services.request_retake(user_id, case_id, reason=reason, note=note),
            "done_retake",
        ):
            yield step

    @rx.event
    async def open_consultation(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.request_consultation)
        if refusal is not None:
            yield refusal
            return
        try:
            found = await asyncio.to_thread(portal_services().experts, self.user_id)
        except HurenError as error:
            self.notice_key, self.notice_detail = "err_action", str(error)
            return
        self.experts = [
            {
                "id": str(e.user_id),
                "label": f"{e.name} · {i18n.title_name(e.title, self.lang)} · {e.facility_name}",
            }
            for e in found
        ]

    @rx.event
    async def consult(self) -> AsyncIterator[EventSpec | None]:
        services, user_id, case_id = portal_services(), self.user_id, self.case_id
        expert = int(self.expert_id) if self.expert_id.isdigit() else 0
        question = self.question
        async for step in self._act(
            Action.request_consultation,
            lambda: services.request_consultation(
                user_id, case_id, expert_id=expert, question=question
            ),
            "done_consult",
        ):
            yield step
        if not self.errors and self.notice_key == "done_consult":
            self.question, self.expert_id = "", ""


# ------------------------------------------------------------------------------ components


def _english() -> rx.Var[bool]:
    return ReadingState.lang == i18n.EN


def _label_value(label_key: str, value: rx.Var[Any] | str, test_id: str = "") -> rx.Component:
    return rx.hstack(
        rx.text(tr(label_key), size="2", color_scheme="gray", min_width="72px"),
        rx.text(value, size="2", data_testid=test_id) if test_id else rx.text(value, size="2"),
        spacing="2",
        align="start",
    )


def _header() -> rx.Component:
    case = ReadingState.case
    return rx.card(
        rx.hstack(
            rx.vstack(
                rx.hstack(
                    rx.heading(
                        case["patient_name"], size="5", as_="h1", data_testid="case-patient"
                    ),
                    rx.text(tr_key(case["sex_key"].to(str)), " ", case["age"], color_scheme="gray"),
                    rx.cond(
                        case["emergency"],
                        rx.badge(tr("emergency"), color_scheme="red", variant="solid"),
                    ),
                    rx.cond(case["is_retake"], rx.badge(tr("retake_study"), color_scheme="blue")),
                    align="center",
                    spacing="3",
                ),
                rx.text(
                    rx.cond(_english(), case["exam_name_en"], case["exam_name"]),
                    " · ",
                    case["modality"],
                    " · ",
                    tr("accession"),
                    " ",
                    case["accession"],
                    size="2",
                ),
                rx.text(
                    rx.cond(_english(), case["clinic_name_en"], case["clinic_name"]),
                    " · ",
                    tr("ordered_by"),
                    " ",
                    case["ordering_provider"],
                    " · ",
                    case["requested_at"],
                    size="2",
                    color_scheme="gray",
                ),
                rx.cond(
                    case["resident_id"] != "",
                    rx.text(
                        tr("resident_id"), " ", case["resident_id"], size="1", color_scheme="gray"
                    ),
                ),
                spacing="1",
            ),
            rx.spacer(),
            rx.vstack(
                rx.text(
                    tr_key(("status_" + case["reading_status"].to(str)).to(str)),
                    weight="bold",
                    data_testid="case-status",
                ),
                rx.cond(
                    case["due"] != "",
                    rx.hstack(
                        rx.text(tr("due"), size="2", color_scheme="gray"),
                        clock_badge(case["clock"].to(str), case["due"].to(str), "case-clock"),
                        rx.moment(
                            date=case["due_iso"].to(str),
                            from_now=True,
                            interval=15000,
                            locale=rx.cond(_english(), "en", "zh-cn"),
                            font_size="12px",
                        ),
                        spacing="2",
                        align="center",
                    ),
                ),
                rx.text(tr("arrived"), " ", case["arrived"], size="1", color_scheme="gray"),
                rx.cond(
                    case["claimed_by"] != "",
                    rx.text(
                        tr("taken_by"),
                        " ",
                        case["claimed_by"],
                        size="2",
                        color_scheme="amber",
                        data_testid="case-claim",
                    ),
                ),
                align="end",
                spacing="1",
            ),
            width="100%",
            align="start",
        ),
        rx.cond(
            case["demographics_conflict"],
            rx.callout(tr("demographics_conflict"), color_scheme="red", margin_top="8px"),
        ),
        width="100%",
    )


def _clinical() -> rx.Component:
    case = ReadingState.case
    return rx.card(
        rx.vstack(
            rx.text(tr("clinical_reason"), weight="bold", size="2"),
            rx.text(
                rx.cond(case["reason"] != "", case["reason"], "—"),
                size="2",
                data_testid="case-reason",
            ),
            rx.separator(size="4"),
            rx.text(tr("images"), weight="bold", size="2"),
            rx.text(
                case["num_series"].to_string(),
                " ",
                tr("series_unit"),
                " · ",
                case["num_instances"].to_string(),
                " ",
                tr("instances_unit"),
                size="2",
                data_testid="case-counts",
            ),
            rx.foreach(
                case["series"].to(list[dict[str, Any]]),
                lambda s: rx.text(
                    "#",
                    s["number"],
                    " ",
                    s["modality"],
                    " ",
                    s["body_part"],
                    " ",
                    s["description"],
                    " (",
                    s["instances"].to_string(),
                    ")",
                    size="1",
                    color_scheme="gray",
                ),
            ),
            rx.text(case["case_uid"], size="1", color_scheme="gray", word_break="break-all"),
            rx.cond(
                ReadingState.previews_loaded,
                rx.cond(
                    ReadingState.previews.length() > 0,
                    rx.grid(
                        rx.foreach(
                            ReadingState.previews,
                            lambda p: rx.vstack(
                                rx.cond(
                                    p["src"] != "",
                                    rx.image(
                                        src=p["src"],
                                        alt=p["label"],
                                        width="100%",
                                        border_radius="4px",
                                        data_testid="preview",
                                    ),
                                    rx.text(tr("no_preview"), size="1", color_scheme="gray"),
                                ),
                                rx.text(p["label"], size="1", color_scheme="gray"),
                                spacing="1",
                            ),
                        ),
                        columns="2",
                        spacing="2",
                        width="100%",
                    ),
                    rx.text(tr("no_images"), size="1", color_scheme="gray"),
                ),
                rx.text(tr("loading_images"), size="1", color_scheme="gray"),
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
    )


def _priors() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(tr("priors"), weight="bold", size="2"),
            rx.cond(
                ReadingState.case["priors"].to(list[dict[str, Any]]).length() > 0,
                rx.foreach(
                    ReadingState.case["priors"].to(list[dict[str, Any]]),
                    lambda p: rx.box(
                        rx.hstack(
                            rx.text(p["on"], size="1", weight="bold"),
                            rx.text(p["exam"], size="1"),
                            rx.badge(tr_key(p["status_key"].to(str)), size="1", variant="soft"),
                            spacing="2",
                        ),
                        rx.text(p["facility"], size="1", color_scheme="gray"),
                        rx.cond(
                            p["href"] != "",
                            rx.link(p["conclusion"], href=p["href"], size="1"),
                            rx.text(p["conclusion"], size="1"),
                        ),
                        padding_y="4px",
                        data_testid="prior",
                    ),
                ),
                rx.text(tr("no_priors"), size="1", color_scheme="gray"),
            ),
            spacing="1",
            width="100%",
        ),
        width="100%",
    )


def _text_box(
    label_key: str, name: str, value: rx.Var[str], on_change: Any, rows: str
) -> rx.Component:
    error = ReadingState.error_text.get(name, "")
    return rx.vstack(
        rx.el.label(tr(label_key), html_for=name, font_weight="500", font_size="14px"),
        rx.text_area(
            id=name,
            value=value,
            on_change=on_change,
            rows=rows,
            width="100%",
            custom_attrs={"aria-invalid": rx.cond(error != "", "true", "false")},
            data_testid=f"input-{name}",
        ),
        field_error(error.to(str), f"{name}-error"),
        spacing="1",
        width="100%",
    )


def _critical_box() -> rx.Component:
    return _text_box(
        "critical_label", "critical", ReadingState.critical, ReadingState.set_critical, "2"
    )


def _editor() -> rx.Component:
    can = ReadingState.can
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text(tr("report"), weight="bold"),
                rx.cond(
                    ReadingState.case["report_status"] != "",
                    rx.badge(
                        tr_key(("report_" + ReadingState.case["report_status"].to(str)).to(str)),
                        data_testid="report-status",
                    ),
                ),
                rx.spacer(),
                rx.cond(
                    can["preliminary"],
                    rx.button(
                        tr("use_template"),
                        size="1",
                        variant="soft",
                        on_click=ReadingState.use_template,
                        data_testid="use-template",
                    ),
                ),
                width="100%",
                align="center",
            ),
            rx.cond(
                can["preliminary"] | can["audit"] | can["amend"],
                rx.vstack(
                    _text_box(
                        "findings",
                        "findings",
                        ReadingState.findings,
                        ReadingState.set_findings,
                        "8",
                    ),
                    _text_box(
                        "impression",
                        "impression",
                        ReadingState.impression,
                        ReadingState.set_impression,
                        "3",
                    ),
                    spacing="3",
                    width="100%",
                ),
                rx.vstack(
                    rx.text(tr("findings"), size="2", color_scheme="gray"),
                    rx.text(
                        ReadingState.case["saved_findings"],
                        white_space="pre-wrap",
                        data_testid="saved-findings",
                    ),
                    rx.text(tr("impression"), size="2", color_scheme="gray"),
                    rx.text(
                        ReadingState.case["saved_impression"],
                        white_space="pre-wrap",
                        weight="bold",
                        data_testid="saved-impression",
                    ),
                    spacing="1",
                    width="100%",
                ),
            ),
            rx.cond(
                can["preliminary"],
                rx.vstack(
                    _critical_box(),
                    rx.button(
                        tr("submit_preliminary"),
                        on_click=ReadingState.submit_preliminary,
                        disabled=ReadingState.busy,
                        data_testid="submit-preliminary",
                    ),
                    spacing="3",
                    width="100%",
                ),
            ),
            rx.cond(
                can["audit"],
                rx.vstack(
                    rx.text(tr("audit_hint"), size="1", color_scheme="gray"),
                    rx.hstack(
                        rx.text(tr("image_grade"), size="2"),
                        rx.radio(
                            ["A", "B", "C", "D"],
                            value=ReadingState.grade,
                            on_change=ReadingState.set_grade,
                            direction="row",
                            data_testid="grade",
                        ),
                        field_error(
                            ReadingState.error_text.get("grade", "").to(str), "grade-error"
                        ),
                        spacing="3",
                        align="center",
                    ),
                    _critical_box(),
                    rx.button(
                        tr("sign_final"),
                        color_scheme="green",
                        on_click=ReadingState.sign_final,
                        disabled=ReadingState.busy,
                        data_testid="sign-final",
                    ),
                    spacing="3",
                    width="100%",
                ),
            ),
            rx.cond(
                can["amend"],
                rx.vstack(
                    rx.select.root(
                        rx.select.trigger(data_testid="amend-status"),
                        rx.select.content(
                            rx.select.item(tr("report_corrected"), value="corrected"),
                            rx.select.item(tr("report_amended"), value="amended"),
                        ),
                        value=ReadingState.amend_status,
                        on_change=ReadingState.set_amend_status,
                    ),
                    rx.text(tr("amend_hint"), size="1", color_scheme="gray"),
                    rx.input(
                        value=ReadingState.amend_reason,
                        on_change=ReadingState.set_amend_reason,
                        placeholder=tr("amend_reason"),
                        width="100%",
                        data_testid="input-amend-reason",
                    ),
                    field_error(ReadingState.error_text.get("reason", "").to(str), "reason-error"),
                    rx.hstack(
                        rx.button(
                            tr("amend"),
                            color_scheme="orange",
                            on_click=ReadingState.amend,
                            disabled=ReadingState.busy,
                            data_testid="amend",
                        ),
                        rx.button(
                            tr("cancel"),
                            variant="soft",
                            color_scheme="gray",
                            on_click=ReadingState.set_amending(False),
                        ),
                        spacing="2",
                    ),
                    spacing="2",
                    width="100%",
                ),
            ),
            rx.cond(
                can["offer_amend"],
                rx.button(
                    tr("amend"),
                    size="1",
                    variant="soft",
                    color_scheme="orange",
                    on_click=ReadingState.set_amending(True),
                    data_testid="open-amend",
                ),
            ),
            rx.cond(
                ReadingState.case["author"] != "",
                rx.text(
                    tr("written_by"),
                    " ",
                    ReadingState.case["author"],
                    " ",
                    ReadingState.case["preliminary_at"],
                    rx.cond(
                        ReadingState.case["auditor"] != "",
                        rx.fragment(
                            " · ",
                            tr("signed_by"),
                            " ",
                            ReadingState.case["auditor"],
                            " ",
                            ReadingState.case["finalised_at"],
                        ),
                    ),
                    size="1",
                    color_scheme="gray",
                ),
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def _segment(segment: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.match(
        segment["kind"],
        (
            "added",
            rx.el.ins(
                segment["text"],
                background_color=rx.color("green", 4),
                text_decoration="none",
                data_testid="diff-added",
            ),
        ),
        (
            "removed",
            rx.el.del_(
                segment["text"], background_color=rx.color("red", 4), data_testid="diff-removed"
            ),
        ),
        rx.el.span(segment["text"]),
    )


def _history() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(tr("history"), weight="bold", size="2"),
            rx.foreach(
                ReadingState.case["revisions"].to(list[dict[str, Any]]),
                lambda r: rx.box(
                    rx.hstack(
                        rx.badge("v", r["version"].to_string(), size="1"),
                        rx.text(tr_key(r["status_key"].to(str)), size="1", weight="bold"),
                        rx.text(r["editor"], " ", r["at"], size="1", color_scheme="gray"),
                        rx.cond(
                            r["changed"], rx.badge(tr("changed"), color_scheme="orange", size="1")
                        ),
                        rx.cond(
                            r["reason"] != "", rx.text(r["reason"], size="1", color_scheme="gray")
                        ),
                        spacing="2",
                        align="center",
                    ),
                    rx.text(rx.foreach(r["findings"].to(list[dict[str, str]]), _segment), size="1"),
                    rx.text(
                        rx.foreach(r["impression"].to(list[dict[str, str]]), _segment),
                        size="1",
                        weight="bold",
                    ),
                    padding_y="6px",
                    border_top=f"1px solid {rx.color('gray', 4)}",
                    width="100%",
                    data_testid="revision",
                ),
            ),
            spacing="1",
            width="100%",
        ),
        width="100%",
    )


def _criticals() -> rx.Component:
    return rx.cond(
        ReadingState.case["criticals"].to(list[dict[str, Any]]).length() > 0,
        rx.card(
            rx.vstack(
                rx.text(tr("critical_results"), weight="bold", size="2", color_scheme="red"),
                rx.foreach(
                    ReadingState.case["criticals"].to(list[dict[str, Any]]),
                    lambda c: rx.vstack(
                        rx.text(c["description"], weight="bold", size="2"),
                        rx.text(
                            tr("flagged"),
                            " ",
                            c["flagged"],
                            " · ",
                            c["flagged_by"],
                            " · ",
                            tr("notify_by"),
                            " ",
                            c["notify_due"],
                            size="1",
                        ),
                        rx.cond(
                            c["notified"] != "",
                            rx.text(
                                tr("notified"),
                                " ",
                                c["notified"],
                                " → ",
                                c["notified_to"],
                                size="1",
                                color_scheme=rx.cond(c["late"], "red", "green"),
                                data_testid="critical-notified",
                            ),
                            rx.cond(
                                ReadingState.can["notify"],
                                rx.hstack(
                                    rx.input(
                                        placeholder=tr("notified_to"),
                                        value=ReadingState.notify_to.get(
                                            c["id"].to(int).to_string(), ""
                                        ),
                                        on_change=lambda v: ReadingState.set_notify_to(
                                            c["id"].to(int).to_string(), v
                                        ),
                                        size="1",
                                        data_testid="input-notified-to",
                                    ),
                                    rx.button(
                                        tr("record_notification"),
                                        size="1",
                                        on_click=ReadingState.notify(c["id"].to(int)),
                                        data_testid="record-notification",
                                    ),
                                    spacing="2",
                                ),
                            ),
                        ),
                        rx.cond(
                            c["acknowledged"] != "",
                            rx.text(
                                tr("acknowledged"),
                                " ",
                                c["acknowledged"],
                                " · ",
                                c["acknowledged_by"],
                                size="1",
                                color_scheme="green",
                            ),
                            rx.text(tr("not_acknowledged"), size="1", color_scheme="amber"),
                        ),
                        spacing="1",
                        padding_y="4px",
                        data_testid="critical",
                    ),
                ),
                field_error(
                    ReadingState.error_text.get("notified_to", "").to(str), "notified-error"
                ),
                spacing="2",
                width="100%",
            ),
            width="100%",
        ),
    )


def _consultations() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(tr("consultations"), weight="bold", size="2"),
            rx.foreach(
                ReadingState.case["consultations"].to(list[dict[str, Any]]),
                lambda c: rx.vstack(
                    rx.text(
                        c["requested_by"],
                        " → ",
                        c["expert"],
                        " · ",
                        c["asked"],
                        " · ",
                        tr_key(c["status_key"].to(str)),
                        size="1",
                        color_scheme="gray",
                    ),
                    rx.text(tr("question"), "：", c["question"], size="2"),
                    rx.cond(
                        c["opinion"] != "",
                        rx.text(
                            tr("opinion"),
                            "：",
                            c["opinion"],
                            size="2",
                            weight="bold",
                            data_testid="consult-opinion",
                        ),
                    ),
                    spacing="1",
                    padding_y="4px",
                ),
            ),
            rx.cond(
                ReadingState.can["consult"],
                rx.cond(
                    ReadingState.experts.length() > 0,
                    rx.vstack(
                        rx.select.root(
                            rx.select.trigger(
                                placeholder=tr("choose_expert"),
                                width="100%",
                                data_testid="choose-expert",
                            ),
                            rx.select.content(
                                rx.foreach(
                                    ReadingState.experts,
                                    lambda e: rx.select.item(e["label"], value=e["id"]),
                                ),
                            ),
                            value=ReadingState.expert_id,
                            on_change=ReadingState.set_expert_id,
                        ),
                        field_error(
                            ReadingState.error_text.get("expert", "").to(str), "expert-error"
                        ),
                        rx.text_area(
                            value=ReadingState.question,
                            on_change=ReadingState.set_question,
                            placeholder=tr("question"),
                            width="100%",
                            data_testid="input-question",
                        ),
                        field_error(
                            ReadingState.error_text.get("question", "").to(str), "question-error"
                        ),
                        rx.button(
                            tr("send_consultation"),
                            size="1",
                            on_click=ReadingState.consult,
                            data_testid="send-consultation",
                        ),
                        spacing="2",
                        width="100%",
                    ),
                    rx.button(
                        tr("ask_expert"),
                        size="1",
                        variant="soft",
                        on_click=ReadingState.open_consultation,
                        data_testid="ask-expert",
                    ),
                ),
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
    )


def _retake() -> rx.Component:
    return rx.cond(
        ReadingState.can["retake"],
        rx.card(
            rx.vstack(
                rx.text(tr("retake_title"), weight="bold", size="2"),
                rx.select.root(
                    rx.select.trigger(
                        placeholder=tr("retake_reason"), width="100%", data_testid="retake-reason"
                    ),
                    rx.select.content(
                        *[
                            rx.select.item(tr(f"retake_{code}"), value=code)
                            for code in RETAKE_REASONS
                        ]
                    ),
                    value=ReadingState.retake_reason,
                    on_change=ReadingState.set_retake_reason,
                ),
                field_error(ReadingState.error_text.get("reason", "").to(str), "retake-error"),
                rx.input(
                    value=ReadingState.retake_note,
                    on_change=ReadingState.set_retake_note,
                    placeholder=tr("retake_note"),
                    width="100%",
                ),
                rx.button(
                    tr("request_retake"),
                    color_scheme="amber",
                    size="1",
                    on_click=ReadingState.ask_retake,
                    data_testid="request-retake",
                ),
                spacing="2",
                width="100%",
            ),
            width="100%",
        ),
        rx.cond(
            ReadingState.case["retake_reason_key"] != "",
            rx.callout(
                rx.text(
                    tr("retake_requested_note"),
                    " ",
                    tr_key(ReadingState.case["retake_reason_key"].to(str)),
                    " ",
                    ReadingState.case["retake_note"],
                ),
                color_scheme="blue",
                width="100%",
            ),
        ),
    )


def _claim_bar() -> rx.Component:
    return rx.hstack(
        rx.link("← ", tr("nav_worklist"), href=routes.WORKLIST, size="2"),
        rx.spacer(),
        rx.cond(
            ReadingState.can["claim"],
            rx.button(tr("claim"), size="1", on_click=ReadingState.claim, data_testid="claim"),
        ),
        rx.cond(
            ReadingState.can["release"],
            rx.button(
                tr("release"),
                size="1",
                variant="soft",
                on_click=ReadingState.release,
                data_testid="release",
            ),
        ),
        width="100%",
        align="center",
    )


def reading_page() -> rx.Component:
    content = rx.vstack(
        _claim_bar(),
        rx.cond(
            ReadingState.notice != "",
            rx.callout(
                ReadingState.notice,
                width="100%",
                color_scheme=rx.cond(ReadingState.notice_key == "err_action", "red", "green"),
                data_testid="notice",
            ),
        ),
        _header(),
        rx.grid(
            rx.vstack(_clinical(), _priors(), spacing="3", width="100%"),
            rx.vstack(_editor(), _criticals(), _retake(), spacing="3", width="100%"),
            rx.vstack(_history(), _consultations(), spacing="3", width="100%"),
            columns="3",
            spacing="3",
            width="100%",
            style={
                "gridTemplateColumns": "minmax(220px, 1fr) minmax(380px, 2fr) minmax(240px, 1fr)"
            },
        ),
        spacing="3",
        width="100%",
    )
    body = when_allowed(
        ReadingState.allowed,
        rx.cond(
            ReadingState.missing,
            rx.callout(tr("case_missing"), color_scheme="amber", data_testid="case-missing"),
            rx.cond(
                ReadingState.case.contains("case_uid"),
                content,
                rx.text(tr("loading"), color_scheme="gray"),
            ),
        ),
    )
    return page_shell(body, with_user=True, width="1320px")
