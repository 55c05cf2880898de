"""The hub's use-cases as the portal calls them: one object per process, built from Settings."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl
from sqlmodel import Session

from integration import (
    administration,
    analytics_portal,
    audit_log,
    clinic,
    prior_check,
    reading_desk,
)
from integration.accounts import LoginFailed, SignedInUser, authenticate
from integration.analytics import Dashboards
from integration.analytics_store import AnalyticsStore
from integration.database import Database
from integration.overview import FacilityOverview, facility_overview
from integration.permissions import Actor
from integration.preview import SeriesPreview, study_previews
from integration.recognition import Rules
from integration.settings import Settings, load_settings
from integration.sla import ReadingCalendar
from models import AuditEvent, User
from models.enums import AuditAction


@dataclass(frozen=True)
class PortalServices:
    """Stateless entry points; Reflex state keeps only plain values they return."""

    settings: Settings
    database: Database

    def sign_in(self, *, username: str, password: str, source_address: str = "") -> SignedInUser:
        """Raises LoginFailed (with ``refusal``) after recording the attempt."""
        now = datetime.now(UTC)
        with self.database.session() as session:
            try:
                return authenticate(
                    session,
                    username=username,
                    password=password,
                    settings=self.settings,
                    now=now,
                    source_address=source_address,
                )
            except LoginFailed as failure:
                session.commit()  # keep the failure count and the audit event
                raise failure

    def sign_out(self, user_id: int, *, source_address: str = "", idle: bool = False) -> None:
        """Record the end of a portal session (by the user, or for inactivity)."""
        with self.database.session() as session:
            user = session.get(User, user_id)
            if user is None:
                return
            session.add(
                AuditEvent(
                    recorded_at=datetime.now(UTC),
                    action=AuditAction.logout,
                    actor=user.username,
                    actor_user_id=user.id,
                    facility_id=user.facility_id,
                    source_address=source_address[:64],
                    entity_type="User",
                    entity_id=str(user.id),
                    detail="idle timeout" if idle else "",
                )
            )

    def overview(self, *, facility_id: int) -> FacilityOverview:
        with self.database.session() as session:
            return facility_overview(
                session, facility_id=facility_id, now=datetime.now(UTC), zone=self.settings.zone
            )

    @functools.cached_property
    def dashboards(self) -> Dashboards:
        """The analytics pages' data, from one snapshot store per process."""
        store = AnalyticsStore(
            self.database.engine,
            self.settings.data_dir / "analytics",
            zone=self.settings.timezone,
            calendar=ReadingCalendar.from_settings(self.settings),
        )
        return Dashboards(store, self.settings)

    @property
    def calendar(self) -> ReadingCalendar:
        return ReadingCalendar.from_settings(self.settings)

    @contextmanager
    def acting(self, user_id: int) -> Iterator[tuple[Session, Actor]]:
        """A committed-on-success session with the user as the database has them now."""
        with self.database.session() as session:
            yield session, reading_desk.load_actor(session, user_id=user_id, settings=self.settings)

    # The reading desk -----------------------------------------------------------------

    def worklist(
        self, user_id: int, query: reading_desk.WorklistQuery
    ) -> reading_desk.WorklistPage:
        with self.acting(user_id) as (session, actor):
            return reading_desk.worklist(
                session, actor=actor, query=query, now=datetime.now(UTC), calendar=self.calendar
            )

    def claim(self, user_id: int, study_id: int) -> datetime:
        with self.acting(user_id) as (session, actor):
            return reading_desk.claim(
                session,
                actor=actor,
                study_id=study_id,
                now=datetime.now(UTC),
                minutes=self.settings.claim_minutes,
            )

    def release(self, user_id: int, study_id: int) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.release(session, actor=actor, study_id=study_id)

    def reading_case(
        self, user_id: int, study_id: int, *, source_address: str = ""
    ) -> reading_desk.ReadingCase:
        with self.acting(user_id) as (session, actor):
            return reading_desk.reading_case(
                session,
                actor=actor,
                study_id=study_id,
                now=datetime.now(UTC),
                calendar=self.calendar,
                source_address=source_address,
            )

    def previews(self, user_id: int, study_id: int) -> tuple[SeriesPreview, ...]:
        """Pictures of the study; only for someone who may open the case."""
        with self.acting(user_id) as (session, actor):
            reading_desk.check_case_access(session, actor=actor, study_id=study_id)
            return study_previews(session, study_id=study_id, data_dir=self.settings.data_dir)

    def write_preliminary(
        self, user_id: int, study_id: int, *, findings: str, impression: str, critical: str
    ) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.write_preliminary(
                session,
                actor=actor,
                study_id=study_id,
                findings=findings,
                impression=impression,
                critical=critical,
                now=datetime.now(UTC),
                settings=self.settings,
            )

    def sign(
        self,
        user_id: int,
        study_id: int,
        *,
        findings: str,
        impression: str,
        grade: str,
        critical: str,
    ) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.sign(
                session,
                actor=actor,
                study_id=study_id,
                findings=findings,
                impression=impression,
                grade=grade,
                critical=critical,
                now=datetime.now(UTC),
                settings=self.settings,
            )

    def amend(
        self,
        user_id: int,
        study_id: int,
        *,
        findings: str,
        impression: str,
        reason: str,
        status: str,
    ) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.amend_report(
                session,
                actor=actor,
                study_id=study_id,
                findings=findings,
                impression=impression,
                reason=reason,
                status=status,
                now=datetime.now(UTC),
                settings=self.settings,
            )

    def request_retake(self, user_id: int, study_id: int, *, reason: str, note: str) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.request_retake(
                session,
                actor=actor,
                study_id=study_id,
                reason=reason,
                note=note,
                now=datetime.now(UTC),
            )

    def flag_critical(self, user_id: int, study_id: int, *, description: str) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.flag_critical(
                session,
                actor=actor,
                study_id=study_id,
                description=description,
                now=datetime.now(UTC),
            )

    def record_notification(self, user_id: int, critical_id: int, *, notified_to: str) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.record_notification(
                session,
                actor=actor,
                critical_id=critical_id,
                notified_to=notified_to,
                now=datetime.now(UTC),
            )

    def acknowledge_critical(self, user_id: int, critical_id: int) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.acknowledge_critical(
                session, actor=actor, critical_id=critical_id, now=datetime.now(UTC)
            )

    def experts(self, user_id: int) -> tuple[reading_desk.Expert, ...]:
        with self.acting(user_id) as (session, actor):
            return reading_desk.experts(session, actor=actor)

    def request_consultation(
        self, user_id: int, study_id: int, *, expert_id: int, question: str
    ) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.request_consultation(
                session,
                actor=actor,
                study_id=study_id,
                expert_id=expert_id,
                question=question,
                now=datetime.now(UTC),
            )

    def consultation_inbox(
        self, user_id: int, *, include_answered: bool = False
    ) -> tuple[reading_desk.ConsultationItem, ...]:
        with self.acting(user_id) as (session, actor):
            return reading_desk.consultation_inbox(
                session, actor=actor, include_answered=include_answered
            )

    def answer_consultation(self, user_id: int, consultation_id: int, *, opinion: str) -> None:
        with self.acting(user_id) as (session, actor):
            reading_desk.answer_consultation(
                session,
                actor=actor,
                consultation_id=consultation_id,
                opinion=opinion,
                now=datetime.now(UTC),
            )

    # The clinic -----------------------------------------------------------------------

    def clinic_orders(self, user_id: int, query: clinic.ClinicQuery) -> clinic.ClinicPage:
        with self.acting(user_id) as (session, actor):
            return clinic.clinic_orders(
                session, actor=actor, query=query, now=datetime.now(UTC), calendar=self.calendar
            )

    def retake_requests(self, user_id: int) -> tuple[clinic.RetakeRequest, ...]:
        with self.acting(user_id) as (session, actor):
            return clinic.retake_requests(session, actor=actor)

    def clinic_critical_results(self, user_id: int) -> tuple[clinic.ClinicCritical, ...]:
        with self.acting(user_id) as (session, actor):
            return clinic.clinic_critical_results(session, actor=actor)

    def returned_report(
        self, user_id: int, study_id: int, *, source_address: str = ""
    ) -> clinic.ReturnedReport:
        with self.acting(user_id) as (session, actor):
            return clinic.returned_report(
                session,
                actor=actor,
                study_id=study_id,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def returned_report_pdf(
        self, user_id: int, study_id: int, *, source_address: str = ""
    ) -> tuple[str, bytes]:
        with self.acting(user_id) as (session, actor):
            return clinic.returned_report_pdf(
                session,
                actor=actor,
                study_id=study_id,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    # Mutual recognition -----------------------------------------------------------------

    def find_patients(self, user_id: int, term: str) -> tuple[prior_check.PatientHit, ...]:
        with self.acting(user_id) as (session, actor):
            return prior_check.find_patients(session, actor=actor, term=term, now=datetime.now(UTC))

    def exam_choices(self, user_id: int) -> tuple[prior_check.ExamChoice, ...]:
        with self.acting(user_id) as (session, actor):
            return prior_check.exam_choices(session, actor=actor)

    def check_priors(self, user_id: int, patient_id: int, exam_code: str) -> prior_check.PriorCheck:
        with self.acting(user_id) as (session, actor):
            return prior_check.check(
                session,
                actor=actor,
                patient_id=patient_id,
                exam_code=exam_code,
                now=datetime.now(UTC),
                rules=Rules(),
                zone=self.settings.zone,
            )

    def prior_report(self, user_id: int, patient_id: int, study_id: int) -> prior_check.PriorReport:
        with self.acting(user_id) as (session, actor):
            return prior_check.prior_report(
                session,
                actor=actor,
                patient_id=patient_id,
                study_id=study_id,
                now=datetime.now(UTC),
            )

    def decide_prior(
        self,
        user_id: int,
        patient_id: int,
        exam_code: str,
        prior_key: str,
        *,
        accepted: bool,
        reason: str,
        comment: str,
    ) -> None:
        with self.acting(user_id) as (session, actor):
            prior_check.decide(
                session,
                actor=actor,
                patient_id=patient_id,
                exam_code=exam_code,
                prior_key=prior_key,
                accepted=accepted,
                reason=reason,
                comment=comment,
                now=datetime.now(UTC),
                rules=Rules(),
                zone=self.settings.zone,
            )

    def refusal_audit(
        self, user_id: int, month: str, *, draw: bool = False
    ) -> prior_check.RefusalAudit:
        with self.acting(user_id) as (session, actor):
            return prior_check.refusal_audit(
                session,
                actor=actor,
                month=month,
                now=datetime.now(UTC),
                zone=self.settings.zone,
                draw=draw,
            )

    def review_refusal(
        self, user_id: int, month: str, decision_id: int, *, justified: bool, note: str
    ) -> None:
        with self.acting(user_id) as (session, actor):
            prior_check.review_refusal(
                session,
                actor=actor,
                month=month,
                decision_id=decision_id,
                justified=justified,
                note=note,
                now=datetime.now(UTC),
            )

    # Administration -------------------------------------------------------------------

    def admin_users(self, user_id: int, query: administration.UserQuery) -> administration.UserPage:
        with self.acting(user_id) as (session, actor):
            return administration.list_users(
                session, actor=actor, query=query, now=datetime.now(UTC)
            )

    def admin_facility_choices(self, user_id: int) -> tuple[administration.FacilityChoice, ...]:
        with self.acting(user_id) as (session, actor):
            return administration.facility_choices(session, actor=actor)

    def admin_user(self, user_id: int, target_id: int) -> administration.UserRow:
        with self.acting(user_id) as (session, actor):
            return administration.user_detail(
                session, actor=actor, user_id=target_id, now=datetime.now(UTC)
            )

    def create_user(
        self, user_id: int, new: administration.NewUser, *, source_address: str = ""
    ) -> int:
        with self.acting(user_id) as (session, actor):
            return administration.create_user(
                session,
                actor=actor,
                new=new,
                settings=self.settings,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def update_user(
        self,
        user_id: int,
        target_id: int,
        change: administration.UserChange,
        *,
        source_address: str = "",
    ) -> tuple[str, ...]:
        with self.acting(user_id) as (session, actor):
            return administration.update_user(
                session,
                actor=actor,
                user_id=target_id,
                change=change,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def reset_password(
        self, user_id: int, target_id: int, *, password: str, source_address: str = ""
    ) -> None:
        with self.acting(user_id) as (session, actor):
            administration.reset_password(
                session,
                actor=actor,
                user_id=target_id,
                password=password,
                settings=self.settings,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def unlock_user(self, user_id: int, target_id: int, *, source_address: str = "") -> bool:
        with self.acting(user_id) as (session, actor):
            return administration.unlock_user(
                session,
                actor=actor,
                user_id=target_id,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def admin_facilities(
        self, user_id: int, query: administration.FacilityQuery
    ) -> administration.FacilityPage:
        with self.acting(user_id) as (session, actor):
            return administration.list_facilities(
                session, actor=actor, query=query, today=self._today()
            )

    def admin_facility(self, user_id: int, facility_id: int) -> administration.FacilityDetail:
        with self.acting(user_id) as (session, actor):
            return administration.facility_detail(
                session, actor=actor, facility_id=facility_id, today=self._today()
            )

    def set_reading_centre(
        self,
        user_id: int,
        facility_id: int,
        *,
        reading_centre_id: int | None,
        source_address: str = "",
    ) -> bool:
        with self.acting(user_id) as (session, actor):
            return administration.set_reading_centre(
                session,
                actor=actor,
                facility_id=facility_id,
                reading_centre_id=reading_centre_id,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def set_reading_centre_flag(
        self, user_id: int, facility_id: int, *, is_reading_centre: bool, source_address: str = ""
    ) -> bool:
        with self.acting(user_id) as (session, actor):
            return administration.set_reading_centre_flag(
                session,
                actor=actor,
                facility_id=facility_id,
                is_reading_centre=is_reading_centre,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def set_routing(
        self,
        user_id: int,
        facility_id: int,
        *,
        is_reading_centre: bool,
        reading_centre_id: int | None,
        source_address: str = "",
    ) -> bool:
        with self.acting(user_id) as (session, actor):
            return administration.set_routing(
                session,
                actor=actor,
                facility_id=facility_id,
                is_reading_centre=is_reading_centre,
                reading_centre_id=reading_centre_id,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def set_hl7_endpoint(
        self,
        user_id: int,
        facility_id: int,
        *,
        host: str,
        port: str,
        charset: str,
        source_address: str = "",
    ) -> bool:
        with self.acting(user_id) as (session, actor):
            return administration.set_hl7_endpoint(
                session,
                actor=actor,
                facility_id=facility_id,
                host=host,
                port=port,
                charset=charset,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def add_qc_period(
        self,
        user_id: int,
        facility_id: int,
        *,
        valid_from: str,
        valid_until: str,
        certificate: str,
        source_address: str = "",
    ) -> int:
        with self.acting(user_id) as (session, actor):
            return administration.add_qc_period(
                session,
                actor=actor,
                facility_id=facility_id,
                valid_from=valid_from,
                valid_until=valid_until,
                certificate=certificate,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def end_qc_period(
        self, user_id: int, qc_id: int, *, valid_until: str, source_address: str = ""
    ) -> None:
        with self.acting(user_id) as (session, actor):
            administration.end_qc_period(
                session,
                actor=actor,
                qc_id=qc_id,
                valid_until=valid_until,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def add_ae_title(
        self,
        user_id: int,
        facility_id: int,
        *,
        ae_title: str,
        modality: str,
        station_name: str,
        host: str,
        port: str,
        source_address: str = "",
    ) -> int:
        with self.acting(user_id) as (session, actor):
            return administration.add_ae_title(
                session,
                actor=actor,
                facility_id=facility_id,
                ae_title=ae_title,
                modality=modality,
                station_name=station_name,
                host=host,
                port=port,
                settings=self.settings,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def remove_ae_title(self, user_id: int, ae_title_id: int, *, source_address: str = "") -> None:
        with self.acting(user_id) as (session, actor):
            administration.remove_ae_title(
                session,
                actor=actor,
                ae_title_id=ae_title_id,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    def admin_catalogue(
        self, user_id: int, query: administration.CatalogueQuery
    ) -> administration.CataloguePage:
        with self.acting(user_id) as (session, actor):
            return administration.list_catalogue(session, actor=actor, query=query)

    def admin_exam_type(self, user_id: int, exam_type_id: int) -> administration.CatalogueRow:
        with self.acting(user_id) as (session, actor):
            return administration.exam_type_detail(session, actor=actor, exam_type_id=exam_type_id)

    def update_exam_type(
        self,
        user_id: int,
        exam_type_id: int,
        change: administration.ExamTypeChange,
        *,
        source_address: str = "",
    ) -> tuple[str, ...]:
        with self.acting(user_id) as (session, actor):
            return administration.update_exam_type(
                session,
                actor=actor,
                exam_type_id=exam_type_id,
                change=change,
                now=datetime.now(UTC),
                source_address=source_address,
            )

    # The audit trail -----------------------------------------------------------------

    def audit_trail(self, user_id: int, query: audit_log.AuditQuery) -> audit_log.AuditPage:
        with self.acting(user_id) as (session, actor):
            return audit_log.search(session, actor=actor, query=query, zone=self.settings.zone)

    def export_audit_trail(
        self, user_id: int, query: audit_log.AuditQuery, *, source_address: str = ""
    ) -> audit_log.AuditExport:
        """The search as a FHIR Bundle of AuditEvents; the export is audited too."""
        with self.acting(user_id) as (session, actor):
            return audit_log.export(
                session,
                actor=actor,
                query=query,
                zone=self.settings.zone,
                now=datetime.now(UTC),
                hub_name=f"Huren hub {self.settings.base_url}",
                source_address=source_address,
            )

    def _today(self) -> date:
        """The region's calendar day (QC periods are local dates)."""
        return datetime.now(self.settings.zone).date()

    # Analytics --------------------------------------------------------------------------

    def analytics_choices(self, user_id: int) -> analytics_portal.FilterChoices:
        with self.acting(user_id) as (session, actor):
            return analytics_portal.filter_choices(session, actor=actor)

    def analytics_tables(
        self, user_id: int, query: analytics_portal.AnalyticsQuery
    ) -> dict[str, pl.DataFrame]:
        with self.acting(user_id) as (_, actor):
            return analytics_portal.page_tables(
                self.dashboards, actor=actor, query=query, now=datetime.now(UTC)
            )

    def analytics_export(
        self,
        user_id: int,
        query: analytics_portal.AnalyticsQuery,
        *,
        table: str,
        fmt: str,
        headers: Mapping[str, str],
    ) -> tuple[str, bytes]:
        with self.acting(user_id) as (session, actor):
            return analytics_portal.export_table(
                session,
                self.dashboards,
                actor=actor,
                query=query,
                table=table,
                fmt=fmt,
                headers=headers,
                now=datetime.now(UTC),
            )

    def settlement_statement(
        self, user_id: int, half_year: str, hospital_code: str | None
    ) -> tuple[str, bytes]:
        with self.acting(user_id) as (session, actor):
            return analytics_portal.settlement_statement(
                session,
                actor=actor,
                half_year=half_year,
                hospital_code=hospital_code,
                settings=self.settings,
                now=datetime.now(UTC),
            )

    def monthly_bulletin(self, user_id: int, month: str) -> tuple[str, bytes]:
        with self.acting(user_id) as (session, actor):
            return analytics_portal.monthly_bulletin(
                session, self.dashboards, actor=actor, month=month, now=datetime.now(UTC)
            )


@functools.cache
def portal_services() -> PortalServices:
    """The process's services, built once from the environment on first use."""
    settings = load_settings()
    return PortalServices(settings=settings, database=Database.from_settings(settings))
