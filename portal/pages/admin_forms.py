"""What the three administration pages share: field messages, form controls, sort headers.

A refusal from `integration.administration` names its form field; `field_message`
turns it into the i18n key shown under that field. Anything without a field
message becomes the page's notice instead.
"""

from __future__ import annotations

from typing import Any

import reflex as rx

from models.errors import Conflict, HurenError, NotFound, PermissionDenied, ValidationError
from portal.layout import LATIN_FIRST, field_error, tr

# (kind of refusal, form field) -> the i18n key of the message under that field.
FIELD_MESSAGES: dict[tuple[str, str], str] = {
    ("invalid", "username"): "err_username_invalid",
    ("conflict", "username"): "err_username_taken",
    ("invalid", "display_name"): "err_display_name_invalid",
    ("invalid", "role"): "err_role_invalid",
    ("invalid", "title"): "err_title_auditor",
    ("invalid", "facility_id"): "err_facility_invalid",
    ("invalid", "password"): "err_password_rule",
    ("invalid", "active"): "err_active_self",
    ("invalid", "reading_centre_id"): "err_reading_centre_invalid",
    ("conflict", "is_reading_centre"): "err_centre_in_use",
    ("invalid", "is_reading_centre"): "err_centre_kind",
    ("invalid", "hl7_host"): "err_hl7_host",
    ("invalid", "hl7_port"): "err_hl7_port",
    ("invalid", "hl7_charset"): "err_hl7_charset",
    ("invalid", "valid_from"): "err_valid_from",
    ("conflict", "valid_from"): "err_qc_overlap",
    ("invalid", "valid_until"): "err_valid_until",
    ("conflict", "valid_until"): "err_qc_ended",
    ("invalid", "certificate"): "err_certificate",
    ("invalid", "ae_title"): "err_ae_title",
    ("conflict", "ae_title"): "err_ae_taken",
    ("invalid", "modality"): "err_modality",
    ("invalid", "station_name"): "err_station_name",
    ("invalid", "ae_host"): "err_ae_host",
    ("invalid", "ae_port"): "err_ae_port",
    ("invalid", "fee"): "err_fee",
    ("invalid", "validity_days"): "err_validity_days",
}


def _kind(error: HurenError) -> str:
    if isinstance(error, Conflict):
        return "conflict"
    if isinstance(error, ValidationError):
        return "invalid"
    return ""


def field_message(error: HurenError) -> tuple[str, str] | None:
    """(field, i18n key) for a refusal that belongs under a form field, else None."""
    if error.field is None:
        return None
    key = FIELD_MESSAGES.get((_kind(error), error.field))
    return (error.field, key) if key else None


def notice_for(error: HurenError) -> tuple[str, str]:
    """(i18n key, detail) for a refusal shown above the form."""
    if isinstance(error, (NotFound, PermissionDenied)):
        return "admin_missing", ""
    return "err_action", str(error)


def form_field(
    label_key: str,
    control: rx.Component,
    error: rx.Var[str],
    name: str,
    *,
    hint_key: str = "",
    width: str = "100%",
) -> rx.Component:
    """A label over its control, an optional hint, and the message under it."""
    return rx.vstack(
        rx.el.label(tr(label_key), html_for=name, font_weight="500", font_size="14px"),
        control,
        rx.text(tr(hint_key), size="1", color_scheme="gray") if hint_key else rx.fragment(),
        field_error(error, f"{name}-error"),
        spacing="1",
        width=width,
    )


def text_input(
    name: str,
    error: rx.Var[str],
    *,
    default_value: rx.Var[str] | str = "",
    input_type: str = "text",
    placeholder: str = "",
    autocomplete: str = "off",
) -> rx.Component:
    return rx.input(
        id=name,
        name=name,
        type=input_type,
        default_value=default_value,
        placeholder=placeholder,
        auto_complete=autocomplete,
        width="100%",
        font_family=LATIN_FIRST if input_type == "password" else None,
        custom_attrs={"aria-invalid": rx.cond(error != "", "true", "false")},
        data_testid=f"input-{name}",
    )


def select_input(
    name: str,
    options: list[tuple[str, rx.Var[str] | str]] | rx.Var[list[dict[str, str]]],
    error: rx.Var[str],
    *,
    default_value: rx.Var[str] | str = "",
    label_field: Any = None,
) -> rx.Component:
    """A select posting ``name`` with its form. Options: (value, label) pairs, or a list var
    of dicts with ``value`` and ``label`` (``label_field`` picks another label per item)."""
    if isinstance(options, list):
        items: Any = [rx.select.item(label, value=value) for value, label in options]
    else:
        items = rx.foreach(
            options,
            lambda option: rx.select.item(
                label_field(option) if label_field else option["label"], value=option["value"]
            ),
        )
    return rx.select.root(
        rx.select.trigger(
            id=name,
            width="100%",
            custom_attrs={"aria-invalid": rx.cond(error != "", "true", "false")},
            data_testid=f"select-{name}",
        ),
        rx.select.content(items),
        name=name,
        default_value=default_value,
    )


def sort_header(
    label_key: str,
    sort: str,
    current: rx.Var[str],
    descending: rx.Var[bool],
    on_click: Any,
) -> rx.Component:
    """A column header that sorts on the server; a second click turns the order round."""
    return rx.table.column_header_cell(
        rx.button(
            tr(label_key),
            rx.cond(current == sort, rx.cond(descending, " ↓", " ↑"), ""),
            variant="ghost",
            size="2",
            color_scheme="gray",
            high_contrast=True,
            font_weight="bold",
            on_click=on_click,
            data_testid=f"sort-{sort}",
        ),
        custom_attrs={
            "aria-sort": rx.cond(
                current == sort, rx.cond(descending, "descending", "ascending"), "none"
            )
        },
    )


def notice_callout(text: rx.Var[str], is_error: rx.Var[bool]) -> rx.Component:
    return rx.cond(
        text != "",
        rx.callout(
            text,
            color_scheme=rx.cond(is_error, "red", "green"),
            width="100%",
            role="status",
            data_testid="admin-notice",
        ),
    )


def form_value(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else str(value)


def checked(form: dict[str, Any], name: str) -> bool:
    """A checkbox posts "on" when ticked and nothing otherwise."""
    return form_value(form, name) in ("on", "true", "1")
