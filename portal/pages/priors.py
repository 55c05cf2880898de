"""/priors: 检查互认查询, the clinician's prior-exam check before ordering.

Find the patient (resident ID anywhere in the region, a name among one's own
facility's patients), pick the exam, read each prior's verdict with its
reasons, open a prior's report, and record reuse or refusal with a national
reason. The rules and the record are the same as the CDS Hooks service's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from integration.permissions import Action
from integration.prior_check import PriorCheck
from integration.services import portal_services
from models.enums import RefusalReason
from models.errors import HurenError
from portal import i18n
from portal.auth import SessionState
from portal.layout import field_error, page_shell, tr, tr_key, when_allowed

REFUSAL_REASONS: tuple[str, ...] = tuple(reason.value for reason in RefusalReason)
FIELD_MESSAGES: dict[str, str] = {
    "term": "err_term",
    "exam": "err_exam",
    "reason": "err_refusal_reason",
    "comment": "err_refusal_comment",
    "prior": "err_prior_gone",
}


def verdict_rows(found: PriorCheck) -> list[dict[str, Any]]:
    return [
        {
            "key": line.key,
            "exam": line.exam_code,
            "on": line.performed_on.isoformat(),
            "facility": line.facility,
            "remote": line.source != "",
            "recognisable": line.recognisable,
            "reason_keys": [f"why_{reason}" for reason in line.reasons],
            "valid_until": line.valid_until.isoformat(),
            "related": not line.same_type,
            "conclusion": line.conclusion,
            "study_id": line.study_id or 0,
        }
        for line in found.lines
    ]


class PriorsState(SessionState):
    allowed: bool = False
    term: str = ""
    hits: list[dict[str, str]] = []
    searched: bool = False
    patient_id: int = 0
    patient_label: str = ""
    exams: list[dict[str, str]] = []
    exam_code: str = ""
    checked: bool = False
    lines: list[dict[str, Any]] = []
    report: dict[str, str] = {}
    refusing: str = ""  # the prior whose refusal form is open
    refusal_reason: str = ""
    refusal_comment: str = ""
    errors: dict[str, str] = {}
    notice_key: str = ""
    notice_detail: str = ""

    @rx.var
    def notice(self) -> str:
        if not self.notice_key:
            return ""
        return f"{i18n.text(self.notice_key, self.lang)} {self.notice_detail}".strip()

    @rx.var
    def error_text(self) -> dict[str, str]:
        table = i18n.strings(self.lang)
        return {name: table[key] for name, key in self.errors.items()}

    async def _call(self, call: Callable[[], Any]) -> tuple[bool, Any]:
        """Run a blocking service call; a refusal lands under its field or as a notice."""
        self.errors, self.notice_key, self.notice_detail = {}, "", ""
        try:
            return True, await asyncio.to_thread(call)
        except HurenError as error:
            key = FIELD_MESSAGES.get(error.field or "")
            if key is not None:
                self.errors = {error.field or "": key}
            else:
                self.notice_key, self.notice_detail = "err_action", str(error)
            return False, None

    @rx.event
    async def load(self) -> AsyncIterator[EventSpec | None]:
        self.allowed = False
        refusal = self.guard(Action.check_priors)
        if refusal is not None:
            yield refusal
            return
        self.allowed = True
        services, user_id = portal_services(), self.user_id
        ok, exams = await self._call(lambda: services.exam_choices(user_id))
        if ok:
            self.exams = [
                {
                    "code": e.code,
                    "label": f"{e.name_zh} · {e.code}{' · HR' if e.recognised else ''}",
                    "label_en": f"{e.name_en} · {e.code}{' · HR' if e.recognised else ''}",
                }
                for e in exams
            ]

    @rx.event
    async def search(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.check_priors)
        if refusal is not None:
            yield refusal
            return
        self.term = str(form.get("term", ""))[:64]
        self.patient_id, self.patient_label, self.checked, self.lines = 0, "", False, []
        services, user_id, term = portal_services(), self.user_id, self.term
        ok, hits = await self._call(lambda: services.find_patients(user_id, term))
        self.searched = ok
        self.hits = (
            [
                {
                    "id": str(h.patient_id),
                    "name": h.name,
                    "sex_key": f"sex_{h.sex}",
                    "birth": h.birth_date.isoformat() if h.birth_date else "",
                    "resident_id": h.resident_id,
                }
                for h in hits
            ]
            if ok
            else []
        )

    @rx.event
    def choose_patient(self, patient_id: str, label: str) -> EventSpec | None:
        refusal = self.guard(Action.check_priors)
        if refusal is not None:
            return refusal
        self.patient_id = int(patient_id) if str(patient_id).isdigit() else 0
        self.patient_label = label
        self.checked, self.lines, self.report = False, [], {}
        return None

    def set_exam_code(self, code: str) -> None:
        self.exam_code = code
        self.errors = {k: v for k, v in self.errors.items() if k != "exam"}

    async def _check(self) -> None:
        services, user_id = portal_services(), self.user_id
        patient_id, exam_code = self.patient_id, self.exam_code
        ok, found = await self._call(lambda: services.check_priors(user_id, patient_id, exam_code))
        self.checked = ok
        self.lines = verdict_rows(found) if ok else []

    @rx.event
    async def run_check(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.check_priors)
        if refusal is not None:
            yield refusal
            return
        if not self.exam_code:
            self.errors = {"exam": "err_exam"}
            return
        self.report, self.refusing = {}, ""
        await self._check()

    @rx.event
    async def open_report(self, study_id: int) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.check_priors)
        if refusal is not None:
            yield refusal
            return
        services, user_id, patient_id = portal_services(), self.user_id, self.patient_id
        ok, found = await self._call(
            lambda: services.prior_report(user_id, patient_id, int(study_id))
        )
        if ok:
            zone = i18n.zone(services.settings.timezone)
            self.report = {
                "exam": found.exam_name,
                "facility": found.facility,
                "performed": i18n.local_datetime(found.performed, zone),
                "status_key": f"report_{found.status}",
                "findings": found.findings,
                "impression": found.impression,
                "author": found.author,
                "auditor": found.auditor,
            }

    @rx.event
    def close_report(self) -> None:
        self.report = {}

    @rx.event
    def start_refusal(self, key: str) -> None:
        self.refusing, self.refusal_reason, self.refusal_comment = key, "", ""
        self.errors = {}

    def set_refusal_reason(self, value: str) -> None:
        self.refusal_reason = value

    def set_refusal_comment(self, value: str) -> None:
        self.refusal_comment = value

    async def _decide(self, key: str, accepted: bool) -> None:
        services, user_id = portal_services(), self.user_id
        patient_id, exam_code = self.patient_id, self.exam_code
        reason, comment = self.refusal_reason, self.refusal_comment
        ok, _ = await self._call(
            lambda: services.decide_prior(
                user_id,
                patient_id,
                exam_code,
                key,
                accepted=accepted,
                reason=reason,
                comment=comment,
            )
        )
        if ok:
            self.refusing = ""
            self.notice_key = "done_accepted" if accepted else "done_refused"

    @rx.event
    async def accept(self, key: str) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.check_priors)
        if refusal is not None:
            yield refusal
            return
        await self._decide(key, True)

    @rx.event
    async def refuse(self) -> AsyncIterator[EventSpec | None]:
        refusal = self.guard(Action.check_priors)
        if refusal is not None:
            yield refusal
            return
        if self.refusal_reason not in REFUSAL_REASONS:
            self.errors = {"reason": "err_refusal_reason"}
            return
        await self._decide(self.refusing, False)


def _hit(hit: rx.Var[dict[str, str]]) -> rx.Component:
    label = hit["name"] + " " + hit["resident_id"]
    return rx.button(
        rx.text(hit["name"], weight="bold"),
        rx.text(tr_key(hit["sex_key"]), " ", hit["birth"], " ", hit["resident_id"], size="1"),
        variant=rx.cond(PriorsState.patient_id.to_string() == hit["id"], "solid", "soft"),
        on_click=PriorsState.choose_patient(hit["id"], label),
        data_testid="patient-hit",
    )


def _refusal_form() -> rx.Component:
    return rx.vstack(
        rx.select.root(
            rx.select.trigger(
                placeholder=tr("refusal_reason"), width="100%", data_testid="refusal-reason"
            ),
            rx.select.content(
                *[rx.select.item(tr(f"refuse_{code}"), value=code) for code in REFUSAL_REASONS]
            ),
            value=PriorsState.refusal_reason,
            on_change=PriorsState.set_refusal_reason,
        ),
        field_error(PriorsState.error_text.get("reason", "").to(str), "reason-error"),
        rx.input(
            value=PriorsState.refusal_comment,
            on_change=PriorsState.set_refusal_comment,
            placeholder=tr("refusal_comment"),
            width="100%",
            data_testid="refusal-comment",
        ),
        field_error(PriorsState.error_text.get("comment", "").to(str), "comment-error"),
        rx.button(
            tr("record_refusal"),
            color_scheme="orange",
            size="1",
            on_click=PriorsState.refuse,
            data_testid="record-refusal",
        ),
        spacing="2",
        width="100%",
    )


def _line(line: rx.Var[dict[str, Any]]) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.cond(
                    line["recognisable"],
                    rx.badge(
                        tr("recognisable"),
                        color_scheme="green",
                        variant="solid",
                        data_testid="verdict-yes",
                    ),
                    rx.badge(tr("not_recognisable"), color_scheme="gray", data_testid="verdict-no"),
                ),
                rx.text(line["on"], weight="bold", size="2"),
                rx.text(line["exam"], size="2"),
                rx.text(line["facility"], size="2", color_scheme="gray"),
                rx.cond(line["remote"], rx.badge(tr("other_region"), variant="outline")),
                rx.cond(line["related"], rx.badge(tr("related_exam"), variant="outline")),
                rx.spacer(),
                rx.text(tr("valid_until"), " ", line["valid_until"], size="1", color_scheme="gray"),
                width="100%",
                align="center",
            ),
            rx.foreach(
                line["reason_keys"].to(list[str]),
                lambda key: rx.text("· ", tr_key(key), size="1", color_scheme="gray"),
            ),
            rx.text(line["conclusion"], size="2"),
            rx.hstack(
                rx.cond(
                    line["study_id"].to(int) > 0,
                    rx.button(
                        tr("open_prior_report"),
                        size="1",
                        variant="soft",
                        on_click=PriorsState.open_report(line["study_id"].to(int)),
                    ),
                ),
                rx.cond(
                    line["recognisable"],
                    rx.hstack(
                        rx.button(
                            tr("accept_prior"),
                            size="1",
                            color_scheme="green",
                            on_click=PriorsState.accept(line["key"].to(str)),
                            data_testid="accept-prior",
                        ),
                        rx.button(
                            tr("refuse_prior"),
                            size="1",
                            variant="soft",
                            color_scheme="orange",
                            on_click=PriorsState.start_refusal(line["key"].to(str)),
                            data_testid="refuse-prior",
                        ),
                        spacing="2",
                    ),
                ),
                spacing="2",
            ),
            rx.cond(PriorsState.refusing == line["key"].to(str), _refusal_form()),
            spacing="2",
            width="100%",
        ),
        width="100%",
        data_testid="verdict",
    )


def _report() -> rx.Component:
    r = PriorsState.report
    return rx.cond(
        PriorsState.report.contains("exam"),
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.text(r["exam"], weight="bold"),
                    rx.badge(tr_key(r["status_key"])),
                    rx.text(r["facility"], " ", r["performed"], size="2", color_scheme="gray"),
                    rx.spacer(),
                    rx.button(
                        tr("close"), size="1", variant="soft", on_click=PriorsState.close_report
                    ),
                    width="100%",
                ),
                rx.text(tr("findings"), size="2", color_scheme="gray"),
                rx.text(r["findings"], white_space="pre-wrap", size="2"),
                rx.text(tr("impression"), size="2", color_scheme="gray"),
                rx.text(
                    r["impression"],
                    white_space="pre-wrap",
                    weight="bold",
                    data_testid="prior-impression",
                ),
                rx.text(
                    tr("written_by"),
                    " ",
                    r["author"],
                    " · ",
                    tr("signed_by"),
                    " ",
                    r["auditor"],
                    size="1",
                    color_scheme="gray",
                ),
                spacing="1",
                width="100%",
            ),
            width="100%",
        ),
    )


def priors_page() -> rx.Component:
    english = PriorsState.lang == i18n.EN
    body = when_allowed(
        PriorsState.allowed,
        rx.vstack(
            rx.heading(tr("priors_title"), size="6", as_="h1"),
            rx.text(tr("priors_intro"), size="2", color_scheme="gray"),
            rx.form(
                rx.hstack(
                    rx.input(
                        name="term",
                        placeholder=tr("priors_search"),
                        size="3",
                        width="360px",
                        data_testid="input-term",
                    ),
                    rx.button(tr("search"), type="submit", size="3", data_testid="search"),
                    spacing="2",
                ),
                on_submit=PriorsState.search,
                reset_on_submit=False,
            ),
            field_error(PriorsState.error_text.get("term", "").to(str), "term-error"),
            rx.cond(
                PriorsState.searched,
                rx.cond(
                    PriorsState.hits.length() > 0,
                    rx.flex(rx.foreach(PriorsState.hits, _hit), wrap="wrap", spacing="2"),
                    rx.text(tr("no_patients"), color_scheme="gray", data_testid="no-patients"),
                ),
            ),
            rx.cond(
                PriorsState.patient_id > 0,
                rx.hstack(
                    rx.text(PriorsState.patient_label, weight="bold"),
                    rx.select.root(
                        rx.select.trigger(
                            placeholder=tr("choose_exam"), width="360px", data_testid="choose-exam"
                        ),
                        rx.select.content(
                            rx.foreach(
                                PriorsState.exams,
                                lambda e: rx.select.item(
                                    rx.cond(english, e["label_en"], e["label"]), value=e["code"]
                                ),
                            )
                        ),
                        value=PriorsState.exam_code,
                        on_change=PriorsState.set_exam_code,
                    ),
                    rx.button(
                        tr("run_check"), on_click=PriorsState.run_check, data_testid="run-check"
                    ),
                    field_error(PriorsState.error_text.get("exam", "").to(str), "exam-error"),
                    spacing="3",
                    align="center",
                ),
            ),
            rx.cond(
                PriorsState.notice != "",
                rx.callout(PriorsState.notice, width="100%", data_testid="notice"),
            ),
            _report(),
            rx.cond(
                PriorsState.checked,
                rx.cond(
                    PriorsState.lines.length() > 0,
                    rx.vstack(rx.foreach(PriorsState.lines, _line), spacing="2", width="100%"),
                    rx.text(tr("no_priors_found"), color_scheme="gray", data_testid="no-verdicts"),
                ),
            ),
            spacing="3",
            width="100%",
        ),
    )
    return page_shell(body, with_user=True)
