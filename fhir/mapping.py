"""The pure mapping layer, in one import: hub rows in, fhir.resources R4B models out.

No I/O, no database, no network: callers load the rows and decide where the
resources go. Logical ids are the database ids; references are ``Type/<id>``.
The implementations live in ``directory``, ``imaging``, ``report`` and ``bundle``.
"""

from fhir.bundle import full_url, operation_outcome, transaction_bundle
from fhir.directory import (
    WADO_RS_ENDPOINT_ID,
    endpoint_from,
    human_name,
    organization_from,
    patient_from,
    practitioner_from,
    practitioner_role_from,
)
from fhir.imaging import imaging_study_from, latest_versions, service_request_from
from fhir.report import (
    carries_recognition_mark,
    diagnostic_report_from,
    report_text,
)

__all__ = [
    "WADO_RS_ENDPOINT_ID",
    "carries_recognition_mark",
    "diagnostic_report_from",
    "endpoint_from",
    "full_url",
    "human_name",
    "imaging_study_from",
    "latest_versions",
    "operation_outcome",
    "organization_from",
    "patient_from",
    "practitioner_from",
    "practitioner_role_from",
    "report_text",
    "service_request_from",
    "transaction_bundle",
]
