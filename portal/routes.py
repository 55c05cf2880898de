"""Every route of the portal, named once; portal.py registers pages under these."""

from __future__ import annotations

from typing import Final

HOME: Final = "/"
LOGIN: Final = "/login"
WORKLIST: Final = "/worklist"
# The report editor of one study: /reading/<study id>
READING: Final = "/reading/[study_id]"
CONSULTATIONS: Final = "/consultations"
CLINIC: Final = "/clinic"
# A signed report as the clinic reads and prints it: /report/<study id>
REPORT: Final = "/report/[study_id]"
PRIORS: Final = "/priors"
# The bureau's figures: /analytics/overview (the leader's dashboard), /analytics/turnaround, ...
ANALYTICS: Final = "/analytics/[topic]"
ANALYTICS_HOME: Final = "/analytics/overview"
REFUSAL_AUDIT: Final = "/refusal-audit"
ADMIN_USERS: Final = "/admin/users"
ADMIN_FACILITIES: Final = "/admin/facilities"
ADMIN_CATALOGUE: Final = "/admin/catalogue"
AUDIT_TRAIL: Final = "/audit-trail"


def reading(study_id: int) -> str:
    return f"/reading/{study_id}"


def report(study_id: int) -> str:
    return f"/report/{study_id}"
