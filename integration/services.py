"""The hub's use-cases as the portal calls them: one object per process, built from Settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from integration.accounts import LoginFailed, SignedInUser, authenticate
from integration.database import Database
from integration.overview import FacilityOverview, facility_overview
from integration.settings import Settings, load_settings


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

    def overview(self, *, facility_id: int) -> FacilityOverview:
        with self.database.session() as session:
            return facility_overview(
                session, facility_id=facility_id, now=datetime.now(UTC), zone=self.settings.zone
            )


@functools.cache
def portal_services() -> PortalServices:
    """The process's services, built once from the environment on first use."""
    settings = load_settings()
    return PortalServices(settings=settings, database=Database.from_settings(settings))
