"""The Reflex app: builds `rx.App` and registers every page under its route."""

from __future__ import annotations

import reflex as rx

from portal import i18n, routes
from portal.pages.admin_catalogue import AdminCatalogueState, admin_catalogue_page
from portal.pages.admin_facilities import AdminFacilitiesState, admin_facilities_page
from portal.pages.admin_users import AdminUsersState, admin_users_page
from portal.pages.analytics import AnalyticsState, analytics_page
from portal.pages.audit_trail import AuditTrailState, audit_trail_page
from portal.pages.clinic import ClinicState, clinic_page
from portal.pages.consultations import ConsultationsState, consultations_page
from portal.pages.home import HomeState, home_page
from portal.pages.login import LoginState, login_page
from portal.pages.priors import PriorsState, priors_page
from portal.pages.reading import ReadingState, reading_page
from portal.pages.refusal_audit import RefusalAuditState, refusal_audit_page
from portal.pages.report import ReportState, report_page
from portal.pages.worklist import WorklistState, worklist_page

_PRODUCT = i18n.text("product", i18n.DEFAULT_LANGUAGE)
# A small inline icon: without one the browser asks for /favicon.ico and gets a 404.
_ICON = (
    "data:image/svg+xml,"
    "%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E"
    "%3Crect width='32' height='32' rx='6' fill='%230d9488'/%3E"
    "%3Cpath d='M9 10h14M9 16h14M9 22h14' stroke='white' stroke-width='3'/%3E%3C/svg%3E"
)

# Printing a report leaves the menus and buttons off the paper.
_PRINT_CSS = (
    "@media print { header, nav, .no-print { display: none !important; } "
    ".report-sheet { box-shadow: none !important; border: none !important; } }"
)

app = rx.App(
    html_lang=i18n.DEFAULT_LANGUAGE,
    head_components=[rx.el.link(rel="icon", href=_ICON), rx.el.style(_PRINT_CSS)],
)
app.add_page(
    login_page,
    route=routes.LOGIN,
    title=f"{i18n.text('login_title', i18n.DEFAULT_LANGUAGE)} · {_PRODUCT}",
    on_load=LoginState.on_load,
)
app.add_page(
    home_page,
    route=routes.HOME,
    title=_PRODUCT,
    on_load=HomeState.load,
)


def _title(key: str) -> str:
    return f"{i18n.text(key, i18n.DEFAULT_LANGUAGE)} · {_PRODUCT}"


app.add_page(
    worklist_page, route=routes.WORKLIST, title=_title("nav_worklist"), on_load=WorklistState.load
)
app.add_page(reading_page, route=routes.READING, title=_title("report"), on_load=ReadingState.load)
app.add_page(
    consultations_page,
    route=routes.CONSULTATIONS,
    title=_title("nav_consultations"),
    on_load=ConsultationsState.load,
)
app.add_page(clinic_page, route=routes.CLINIC, title=_title("nav_clinic"), on_load=ClinicState.load)
app.add_page(
    report_page, route=routes.REPORT, title=_title("report_sheet_title"), on_load=ReportState.load
)
app.add_page(priors_page, route=routes.PRIORS, title=_title("nav_priors"), on_load=PriorsState.load)
app.add_page(
    refusal_audit_page,
    route=routes.REFUSAL_AUDIT,
    title=_title("nav_refusal_audit"),
    on_load=RefusalAuditState.load,
)
app.add_page(
    admin_users_page,
    route=routes.ADMIN_USERS,
    title=_title("nav_admin_users"),
    on_load=AdminUsersState.load,
)
app.add_page(
    admin_facilities_page,
    route=routes.ADMIN_FACILITIES,
    title=_title("nav_admin_facilities"),
    on_load=AdminFacilitiesState.load,
)
app.add_page(
    admin_catalogue_page,
    route=routes.ADMIN_CATALOGUE,
    title=_title("nav_admin_catalogue"),
    on_load=AdminCatalogueState.load,
)
app.add_page(
    analytics_page,
    route=routes.ANALYTICS,
    title=_title("nav_analytics"),
    on_load=AnalyticsState.load,
)
app.add_page(
    audit_trail_page,
    route=routes.AUDIT_TRAIL,
    title=_title("nav_audit_trail"),
    on_load=AuditTrailState.load,
)
