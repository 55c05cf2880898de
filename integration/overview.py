"""What a signed-in user's home page shows: their facility and today's work in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from models import Facility, Order, Report, Study
from models.enums import ReadingStatus, ReportStatus
from models.errors import NotFound


@dataclass(frozen=True)
class FacilityOverview:
    facility_code: str
    facility_name: str
    facility_name_en: str
    reading_centre_name: str  # empty when the facility reads its own studies or none
    orders_today: int
    awaiting_preliminary: int  # at the facility as a reading centre, or its uploads
    awaiting_audit: int
    finals_today: int


def facility_overview(
    session: Session, *, facility_id: int, now: datetime, zone: ZoneInfo
) -> FacilityOverview:
    """Counts for the facility's local day: as a reading centre and as an imaging site."""
    facility = session.get(Facility, facility_id)
    if facility is None:
        raise NotFound(f"facility {facility_id} does not exist")
    local_midnight = datetime.combine(now.astimezone(zone).date(), time(), tzinfo=zone)
    day_start, day_end = local_midnight, local_midnight + timedelta(days=1)
    centre = (
        session.get(Facility, facility.reading_centre_id) if facility.reading_centre_id else None
    )

    in_scope = or_(
        col(Study.reading_centre_id) == facility_id, col(Study.facility_id) == facility_id
    )

    def count_reading(status: ReadingStatus) -> int:
        statement = (
            select(func.count())
            .select_from(Study)
            .where(in_scope, col(Study.reading_status) == status)
        )
        return int(session.exec(statement).one())

    orders_today = session.exec(
        select(func.count())
        .select_from(Order)
        .where(
            or_(
                col(Order.ordering_facility_id) == facility_id,
                col(Order.performing_facility_id) == facility_id,
            ),
            col(Order.requested_at) >= day_start,
            col(Order.requested_at) < day_end,
        )
    ).one()
    finals_today = session.exec(
        select(func.count())
        .select_from(Report)
        .join(Study, col(Study.id) == Report.study_id)
        .where(
            in_scope,
            col(Report.status) != ReportStatus.preliminary,
            col(Report.finalised_at) >= day_start,
            col(Report.finalised_at) < day_end,
        )
    ).one()
    return FacilityOverview(
        facility_code=facility.code,
        facility_name=facility.name,
        facility_name_en=facility.name_en,
        reading_centre_name=centre.name if centre and centre.id != facility.id else "",
        orders_today=int(orders_today),
        awaiting_preliminary=count_reading(ReadingStatus.awaiting_preliminary),
        awaiting_audit=count_reading(ReadingStatus.awaiting_audit),
        finals_today=int(finals_today),
    )
