"""Administration on a real SQLite file with the demo county: users, facilities, catalogue.

The demo `admin` works at the county health bureau (QL-WJJ), so the county's
hospitals, township centres and village clinics are theirs to manage; the
provincial platform above the bureau is not. Every rule is checked with the
field its message belongs to, every change with its audit row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from integration import administration as admin
from integration.accounts import authenticate, hash_password, verify_password
from integration.database import Database
from integration.demo.seed import DemoOptions
from integration.permissions import Actor
from integration.reading_desk import load_actor
from integration.settings import Settings
from models import AuditEvent, ExamType, Facility, FacilityAeTitle, QcQualification, User
from models.enums import AuditAction, FacilityLevel, ProfessionalTitle, Role
from models.errors import Conflict, HurenError, NotFound, PermissionDenied, ValidationError
from tests.databases import DemoSnapshots

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
TODAY = date(2026, 11, 25)
GOOD_PASSWORD = "Qinglan-2026-rad"


@dataclass
class Hub:
    database: Database
    settings: Settings

    def session(self) -> Session:
        return Session(self.database.engine, expire_on_commit=False)

    def actor(self, username: str) -> Actor:
        with self.session() as session:
            user_id = session.exec(select(User.id).where(User.username == username)).one()
            assert user_id is not None
            return load_actor(session, user_id=user_id, settings=self.settings)

    def facility(self, code: str) -> Facility:
        with self.session() as session:
            return session.exec(select(Facility).where(Facility.code == code)).one()

    def user(self, username: str) -> User:
        with self.session() as session:
            return session.exec(select(User).where(User.username == username)).one()

    def audits(self, entity_type: str) -> list[AuditEvent]:
        with self.session() as session:
            return list(
                session.exec(
                    select(AuditEvent)
                    .where(AuditEvent.entity_type == entity_type)
                    .where(col(AuditEvent.action).in_(("create", "update", "delete")))
                    .order_by(col(AuditEvent.id))
                ).all()
            )


@pytest.fixture
def hub(tmp_path: Path, database_url: str, demo_snapshots: DemoSnapshots) -> Iterator[Hub]:
    """The demo county, seeded once per backend; each test works on its own copy."""
    settings = Settings(data_dir=tmp_path, database_url=database_url)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    demo_snapshots.seed(
        database,
        settings=settings,
        options=DemoOptions(seed=9, exams=60, until=date(2026, 11, 20), progress=False),
    )
    yield Hub(database, settings)
    database.dispose()


def new_user(hub: Hub, **fields: object) -> admin.NewUser:
    values: dict[str, object] = {
        "username": "wang.rad",
        "display_name": "王放射",
        "role": Role.radiologist.value,
        "title": ProfessionalTitle.resident.value,
        "facility_id": hub.facility("QL-H01").id,
        "password": GOOD_PASSWORD,
        **fields,
    }
    return admin.NewUser(**values)  # type: ignore[arg-type]


def refused(call: object, kind: type[HurenError], field: str | None) -> HurenError:
    """Run ``call`` in a session that rolls back; the error it raised, with its field checked."""
    assert callable(call)
    with pytest.raises(kind) as caught:
        call()
    assert caught.value.field == field, caught.value
    return caught.value


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("username", ["radiologist", "auditor", "leader", "qc", "clinician"])
def test_only_administrators_may_open_or_change_anything(hub: Hub, username: str) -> None:
    actor = hub.actor(username)
    h01 = hub.facility("QL-H01")
    assert h01.id is not None
    with hub.database.session() as session:
        exam_id = session.exec(select(ExamType.id)).first()
        assert exam_id is not None
        calls = [
            lambda: admin.list_users(session, actor=actor, query=admin.UserQuery(), now=NOW),
            lambda: admin.facility_choices(session, actor=actor),
            lambda: admin.create_user(
                session, actor=actor, new=new_user(hub), settings=hub.settings, now=NOW
            ),
            lambda: admin.unlock_user(session, actor=actor, user_id=actor.user_id, now=NOW),
            lambda: admin.list_facilities(
                session, actor=actor, query=admin.FacilityQuery(), today=TODAY
            ),
            lambda: admin.facility_detail(session, actor=actor, facility_id=h01.id, today=TODAY),
            lambda: admin.set_hl7_endpoint(
                session,
                actor=actor,
                facility_id=h01.id,
                host="10.0.0.1",
                port="2575",
                charset="UNICODE UTF-8",
                now=NOW,
            ),
            lambda: admin.add_qc_period(
                session,
                actor=actor,
                facility_id=h01.id,
                valid_from="2030-01-01",
                valid_until=None,
                certificate="",
                now=NOW,
            ),
            lambda: admin.list_catalogue(session, actor=actor, query=admin.CatalogueQuery()),
            lambda: admin.update_exam_type(
                session,
                actor=actor,
                exam_type_id=exam_id,
                change=admin.ExamTypeChange("1.00", True, "14", True),
                now=NOW,
            ),
        ]
        for call in calls:
            with pytest.raises(PermissionDenied):
                call()


def test_an_administrator_manages_only_their_part_of_the_region(hub: Hub) -> None:
    actor = hub.actor("admin")
    province = hub.facility("PROV-HR")
    assert province.id is not None
    with hub.database.session() as session:
        outsider = User(
            username="prov.admin",
            display_name="省平台管理员",
            role=Role.admin,
            facility_id=province.id,
            password_hash=hash_password(GOOD_PASSWORD),
        )
        session.add(outsider)
        session.flush()
        assert outsider.id is not None
        page = admin.list_users(
            session, actor=actor, query=admin.UserQuery(text="prov", page_size=100), now=NOW
        )
        assert page.total == 0
        with pytest.raises(PermissionDenied):
            admin.user_detail(session, actor=actor, user_id=outsider.id, now=NOW)
        with pytest.raises(PermissionDenied):
            admin.reset_password(
                session,
                actor=actor,
                user_id=outsider.id,
                password="another-long-one",
                settings=hub.settings,
                now=NOW,
            )
        with pytest.raises(PermissionDenied):
            admin.set_hl7_endpoint(
                session,
                actor=actor,
                facility_id=province.id,
                host="10.0.0.1",
                port="2575",
                charset="UNICODE UTF-8",
                now=NOW,
            )
        facilities = admin.list_facilities(
            session, actor=actor, query=admin.FacilityQuery(page_size=100), today=TODAY
        )
        codes = {row.code for row in facilities.rows}
        assert "PROV-HR" not in codes and {"QL-WJJ", "QL-H01", "QL-T01"} <= codes
        assert all(c.code != "PROV-HR" for c in admin.facility_choices(session, actor=actor))
        refused(
            lambda: admin.create_user(
                session,
                actor=actor,
                new=new_user(hub, facility_id=province.id),
                settings=hub.settings,
                now=NOW,
            ),
            ValidationError,
            "facility_id",
        )


# --------------------------------------------------------------------------- users


def test_users_page_sort_and_filter_on_the_server(hub: Hub) -> None:
    actor = hub.actor("admin")
    h01 = hub.facility("QL-H01")
    with hub.database.session() as session:
        everyone = admin.list_users(
            session, actor=actor, query=admin.UserQuery(page_size=100), now=NOW
        )
        assert everyone.total > 20
        names = [row.username for row in everyone.rows]
        assert names == sorted(names)

        second = admin.list_users(
            session, actor=actor, query=admin.UserQuery(page=2, page_size=5), now=NOW
        )
        assert [r.username for r in second.rows] == names[5:10]
        assert second.pages == -(-everyone.total // 5)
        beyond = admin.list_users(
            session, actor=actor, query=admin.UserQuery(page=999, page_size=5), now=NOW
        )
        assert beyond.page == beyond.pages

        auditors = admin.list_users(
            session, actor=actor, query=admin.UserQuery(role="auditor", page_size=100), now=NOW
        )
        assert auditors.rows and all(r.role is Role.auditor for r in auditors.rows)
        at_h01 = admin.list_users(
            session, actor=actor, query=admin.UserQuery(facility_id=h01.id), now=NOW
        )
        assert at_h01.rows and all(r.facility_code == "QL-H01" for r in at_h01.rows)
        found = admin.list_users(session, actor=actor, query=admin.UserQuery(text="RADIO"), now=NOW)
        assert "radiologist" in [r.username for r in found.rows]
        literal = admin.list_users(session, actor=actor, query=admin.UserQuery(text="%"), now=NOW)
        assert literal.total == 0  # the wildcard is taken as a character
        by_role = admin.list_users(
            session,
            actor=actor,
            query=admin.UserQuery(sort=admin.UserSort.role, descending=True, page_size=100),
            now=NOW,
        )
        roles = [r.role.value for r in by_role.rows]
        assert roles == sorted(roles, reverse=True)
        with pytest.raises(ValidationError):
            admin.list_users(session, actor=actor, query=admin.UserQuery(role="king"), now=NOW)


def test_creating_a_user_hashes_the_password_audits_and_lets_them_sign_in(hub: Hub) -> None:
    actor = hub.actor("admin")
    with hub.database.session() as session:
        user_id = admin.create_user(
            session, actor=actor, new=new_user(hub), settings=hub.settings, now=NOW
        )
    created = hub.user("wang.rad")
    assert created.id == user_id and created.role is Role.radiologist
    assert created.password_hash != GOOD_PASSWORD
    assert verify_password(created.password_hash, GOOD_PASSWORD)
    assert not created.is_demo
    [event] = [e for e in hub.audits("User") if e.entity_id == str(user_id)]
    assert event.action is AuditAction.create and event.actor == "admin"
    assert "role radiologist" in event.detail and "QL-H01" in event.detail
    assert GOOD_PASSWORD not in event.detail
    with hub.database.session() as session:
        signed_in = authenticate(
            session, username="wang.rad", password=GOOD_PASSWORD, settings=hub.settings, now=NOW
        )
    assert signed_in.id == user_id


def test_a_bad_new_user_is_refused_at_the_field_it_is_about(hub: Hub) -> None:
    actor = hub.actor("admin")
    with hub.database.session() as session:

        def create(**fields: object) -> None:
            admin.create_user(
                session, actor=actor, new=new_user(hub, **fields), settings=hub.settings, now=NOW
            )

        refused(lambda: create(username=""), ValidationError, "username")
        refused(lambda: create(username="a b"), ValidationError, "username")
        refused(lambda: create(username="x" * 65), ValidationError, "username")
        refused(lambda: create(username="Radiologist"), Conflict, "username")
        refused(lambda: create(display_name="  "), ValidationError, "display_name")
        refused(lambda: create(role="king"), ValidationError, "role")
        refused(lambda: create(title="professor"), ValidationError, "title")
        refused(lambda: create(facility_id=None), ValidationError, "facility_id")
        refused(lambda: create(facility_id=99999), ValidationError, "facility_id")
        refused(lambda: create(password="short-one"), ValidationError, "password")
        refused(
            lambda: create(username="wang.radiology", password="Wang.Radiology"),
            ValidationError,
            "password",
        )
        refused(
            lambda: create(password=hub.settings.demo_password.get_secret_value()),
            ValidationError,
            "password",
        )
        assert session.exec(select(User).where(User.username == "wang.rad")).first() is None


def test_an_auditor_below_attending_is_a_field_error_before_the_database_check(hub: Hub) -> None:
    actor = hub.actor("admin")
    with hub.database.session() as session:
        error = refused(
            lambda: admin.create_user(
                session,
                actor=actor,
                new=new_user(hub, role="auditor", title="resident"),
                settings=hub.settings,
                now=NOW,
            ),
            ValidationError,
            "title",
        )
        assert "attending" in str(error)
        admin.create_user(
            session,
            actor=actor,
            new=new_user(hub, role="auditor", title="attending"),
            settings=hub.settings,
            now=NOW,
        )
    auditor = hub.user("auditor")
    assert auditor.id is not None
    with hub.database.session() as session:
        refused(
            lambda: admin.update_user(
                session,
                actor=actor,
                user_id=auditor.id or 0,
                change=admin.UserChange(
                    auditor.display_name, "auditor", "resident", auditor.facility_id, True
                ),
                now=NOW,
            ),
            ValidationError,
            "title",
        )
    # What the check stands in front of: the database refuses the row itself.
    with hub.session() as session, pytest.raises(IntegrityError):
        row = session.exec(select(User).where(User.username == "auditor")).one()
        row.title = ProfessionalTitle.resident
        session.add(row)
        session.commit()


def test_changing_a_user_records_each_change(hub: Hub) -> None:
    actor = hub.actor("admin")
    target = hub.user("radiologist")
    h02 = hub.facility("QL-H02")
    assert target.id is not None and h02.id is not None
    with hub.database.session() as session:
        changed = admin.update_user(
            session,
            actor=actor,
            user_id=target.id,
            change=admin.UserChange(
                target.display_name, "auditor", "attending", h02.id, target.active
            ),
            now=NOW,
        )
        assert changed == ("role", "title", "facility_id")
        again = admin.update_user(
            session,
            actor=actor,
            user_id=target.id,
            change=admin.UserChange(target.display_name, "auditor", "attending", h02.id, True),
            now=NOW,
        )
        assert again == ()
    after = hub.user("radiologist")
    assert after.role is Role.auditor and after.facility_id == h02.id
    [event] = [e for e in hub.audits("User") if e.entity_id == str(target.id)]
    assert event.action is AuditAction.update
    assert "role: radiologist -> auditor" in event.detail
    assert "title: resident -> attending" in event.detail

    with hub.database.session() as session:
        admin.update_user(
            session,
            actor=actor,
            user_id=target.id,
            change=admin.UserChange("新名字", "auditor", "attending", h02.id, False),
            now=NOW,
        )
    assert not hub.user("radiologist").active
    with hub.session() as session, pytest.raises(HurenError):
        load_actor(session, user_id=target.id, settings=hub.settings)  # signed out at once


def test_an_administrator_cannot_lock_themself_out(hub: Hub) -> None:
    actor = hub.actor("admin")
    me = hub.user("admin")
    with hub.database.session() as session:
        refused(
            lambda: admin.update_user(
                session,
                actor=actor,
                user_id=actor.user_id,
                change=admin.UserChange(me.display_name, "admin", "none", me.facility_id, False),
                now=NOW,
            ),
            ValidationError,
            "active",
        )
        refused(
            lambda: admin.update_user(
                session,
                actor=actor,
                user_id=actor.user_id,
                change=admin.UserChange(me.display_name, "leader", "none", me.facility_id, True),
                now=NOW,
            ),
            ValidationError,
            "role",
        )
        with pytest.raises(NotFound):
            admin.user_detail(session, actor=actor, user_id=99999, now=NOW)


def test_unlock_and_password_reset(hub: Hub) -> None:
    actor = hub.actor("admin")
    with hub.database.session() as session:
        qc = session.exec(select(User).where(User.username == "qc")).one()
        qc.failed_logins, qc.locked_until = 0, NOW + timedelta(minutes=15)
        session.add(qc)
    qc_id = hub.user("qc").id
    assert qc_id is not None
    with hub.database.session() as session:
        locked = admin.list_users(
            session,
            actor=actor,
            query=admin.UserQuery(status=admin.UserStatus.locked),
            now=NOW,
        )
        assert [r.username for r in locked.rows] == ["qc"]
        assert admin.unlock_user(session, actor=actor, user_id=qc_id, now=NOW)
        assert not admin.unlock_user(session, actor=actor, user_id=qc_id, now=NOW)
    assert hub.user("qc").locked_until is None
    with hub.database.session() as session:
        refused(
            lambda: admin.reset_password(
                session,
                actor=actor,
                user_id=qc_id,
                password="tooshort",
                settings=hub.settings,
                now=NOW,
            ),
            ValidationError,
            "password",
        )
        admin.reset_password(
            session,
            actor=actor,
            user_id=qc_id,
            password="A-new-long-password",
            settings=hub.settings,
            now=NOW,
        )
        refused(
            lambda: admin.reset_password(
                session,
                actor=actor,
                user_id=qc_id,
                password="A-new-long-password",
                settings=hub.settings,
                now=NOW,
            ),
            ValidationError,
            "password",
        )
    assert verify_password(hub.user("qc").password_hash, "A-new-long-password")
    details = [e.detail for e in hub.audits("User") if e.entity_id == str(qc_id)]
    assert details == ["qc: unlocked (failed logins 0)", "qc: password reset"]
    assert all("A-new-long-password" not in d for d in details)


# --------------------------------------------------------------------------- facilities


def test_facilities_page_filter_and_status(hub: Hub) -> None:
    actor = hub.actor("admin")
    with hub.database.session() as session:
        centres = admin.list_facilities(
            session, actor=actor, query=admin.FacilityQuery(reading_centres_only=True), today=TODAY
        )
        assert [r.code for r in centres.rows] == ["QL-H01", "QL-H02", "QL-H03"]
        townships = admin.list_facilities(
            session,
            actor=actor,
            query=admin.FacilityQuery(level=FacilityLevel.township.value, page_size=100),
            today=TODAY,
        )
        assert townships.total == 15
        t01 = next(r for r in townships.rows if r.code == "QL-T01")
        assert t01.reading_centre_code and t01.qc_qualified_today and t01.ae_titles
        lapsed = next(r for r in townships.rows if r.code == "QL-T13")
        assert not lapsed.qc_qualified_today
        found = admin.list_facilities(
            session, actor=actor, query=admin.FacilityQuery(text="ql-t01-"), today=TODAY
        )
        assert found.rows and all(r.code.startswith("QL-T01-V") for r in found.rows)
        by_name = admin.list_facilities(
            session,
            actor=actor,
            query=admin.FacilityQuery(sort=admin.FacilitySort.code, descending=True),
            today=TODAY,
        )
        codes = [r.code for r in by_name.rows]
        assert codes == sorted(codes, reverse=True)


def test_reading_centre_rules(hub: Hub) -> None:
    actor = hub.actor("admin")
    t01, t02 = hub.facility("QL-T01"), hub.facility("QL-T02")
    h01, h02, bureau = hub.facility("QL-H01"), hub.facility("QL-H02"), hub.facility("QL-WJJ")
    assert t01.id and t02.id and h01.id and h02.id and bureau.id
    with hub.database.session() as session:

        def route(facility_id: int, centre_id: int | None) -> bool:
            return admin.set_reading_centre(
                session, actor=actor, facility_id=facility_id, reading_centre_id=centre_id, now=NOW
            )

        refused(lambda: route(t01.id or 0, t02.id), ValidationError, "reading_centre_id")
        refused(lambda: route(t01.id or 0, t01.id), ValidationError, "reading_centre_id")
        refused(lambda: route(t01.id or 0, 99999), ValidationError, "reading_centre_id")
        assert route(h01.id, h01.id) is False  # a reading centre reads its own studies
        new_centre = h02.id if t01.reading_centre_id != h02.id else h01.id
        assert route(t01.id, new_centre) is True
        assert route(bureau.id, None) is False
        detail = admin.facility_detail(session, actor=actor, facility_id=t01.id, today=TODAY)
        assert detail.facility.reading_centre_id == new_centre
        assert {c.code for c in detail.centre_choices} == {"QL-H01", "QL-H02", "QL-H03"}
    [event] = hub.audits("Facility")
    assert event.entity_id == str(t01.id) and "reading centre:" in event.detail

    with hub.database.session() as session:
        flag = refused(
            lambda: admin.set_reading_centre_flag(
                session, actor=actor, facility_id=h01.id or 0, is_reading_centre=False, now=NOW
            ),
            Conflict,
            "is_reading_centre",
        )
        assert "upload" in str(flag)
        refused(
            lambda: admin.set_reading_centre_flag(
                session, actor=actor, facility_id=bureau.id or 0, is_reading_centre=True, now=NOW
            ),
            ValidationError,
            "is_reading_centre",
        )
        assert admin.set_reading_centre_flag(
            session, actor=actor, facility_id=t02.id, is_reading_centre=True, now=NOW
        )
        assert admin.set_reading_centre(
            session, actor=actor, facility_id=t01.id, reading_centre_id=t02.id, now=NOW
        )
        refused(
            lambda: admin.set_reading_centre_flag(
                session, actor=actor, facility_id=t02.id or 0, is_reading_centre=False, now=NOW
            ),
            Conflict,
            "is_reading_centre",
        )


def test_hl7_endpoint_rules(hub: Hub) -> None:
    actor = hub.actor("admin")
    t01 = hub.facility("QL-T01")
    assert t01.id is not None
    with hub.database.session() as session:

        def endpoint(host: str, port: str, charset: str = "UNICODE UTF-8") -> bool:
            return admin.set_hl7_endpoint(
                session,
                actor=actor,
                facility_id=t01.id or 0,
                host=host,
                port=port,
                charset=charset,
                now=NOW,
            )

        for bad_port in ("0", "65536", "70000", "abc", "-1", "25.75", "２５７５"):
            refused(lambda p=bad_port: endpoint("his.t01.example", p), ValidationError, "hl7_port")
        refused(lambda: endpoint("his.t01.example", ""), ValidationError, "hl7_port")
        refused(lambda: endpoint("", "2575"), ValidationError, "hl7_host")
        for bad_host in ("his t01", "-his.example", "his..example", "1.2.3.999", "主机"):
            refused(lambda h=bad_host: endpoint(h, "2575"), ValidationError, "hl7_host")
        refused(lambda: endpoint("10.8.1.20", "2575", "KLINGON"), ValidationError, "hl7_charset")
        refused(lambda: endpoint("10.8.1.20", "2575", "ASCII"), ValidationError, "hl7_charset")
        assert endpoint("10.8.1.20", "2575", "gb 18030") is True
        assert endpoint("10.8.1.20", " 2575 ", "GB 18030") is False
    saved = hub.facility("QL-T01")
    assert (saved.hl7_host, saved.hl7_port, saved.hl7_charset) == ("10.8.1.20", 2575, "GB 18030")
    [event] = hub.audits("Facility")
    assert "hl7_host: - -> 10.8.1.20" in event.detail and "hl7_port: - -> 2575" in event.detail
    with hub.database.session() as session:
        assert endpoint("", "", "UNICODE UTF-8") is True  # no HL7 return any more
    cleared = hub.facility("QL-T01")
    assert cleared.hl7_host is None and cleared.hl7_port is None


def test_qc_periods_do_not_overlap(hub: Hub) -> None:
    actor = hub.actor("admin")
    t05 = hub.facility("QL-T05")  # qualified from mid-year, still open
    assert t05.id is not None
    with hub.database.session() as session:
        [open_period] = session.exec(
            select(QcQualification).where(QcQualification.facility_id == t05.id)
        ).all()
        assert open_period.valid_until is None and open_period.id is not None

        def add(start: str, end: str | None) -> int:
            return admin.add_qc_period(
                session,
                actor=actor,
                facility_id=t05.id or 0,
                valid_from=start,
                valid_until=end,
                certificate="QC-2027-05",
                now=NOW,
            )

        refused(lambda: add("2030-01-01", None), Conflict, "valid_from")  # the open one runs on
        refused(lambda: add("", None), ValidationError, "valid_from")
        refused(lambda: add("2027-13-01", None), ValidationError, "valid_from")
        refused(lambda: add("2020-01-01", "2019-01-01"), ValidationError, "valid_until")
        start = open_period.valid_from
        refused(
            lambda: add((start - timedelta(days=30)).isoformat(), start.isoformat()),
            Conflict,
            "valid_from",
        )
        before = add(
            (start - timedelta(days=30)).isoformat(), (start - timedelta(days=1)).isoformat()
        )
        admin.end_qc_period(
            session, actor=actor, qc_id=open_period.id, valid_until="2026-12-31", now=NOW
        )
        refused(
            lambda: admin.end_qc_period(
                session, actor=actor, qc_id=open_period.id or 0, valid_until="2027-01-31", now=NOW
            ),
            Conflict,
            "valid_until",
        )
        refused(lambda: add("2026-12-31", "2027-06-30"), Conflict, "valid_from")
        after = add("2027-01-01", None)
        detail = admin.facility_detail(session, actor=actor, facility_id=t05.id, today=TODAY)
        assert [p.qc_id for p in detail.qc_periods] == [after, open_period.id, before]
        assert [p.current for p in detail.qc_periods] == [False, True, False]
    events = hub.audits("QcQualification")
    assert [e.action for e in events] == [
        AuditAction.create,
        AuditAction.update,
        AuditAction.create,
    ]
    assert "ended 2026-12-31" in events[1].detail


def test_ae_titles_are_unique_in_the_region(hub: Hub) -> None:
    actor = hub.actor("admin")
    t01, t02 = hub.facility("QL-T01"), hub.facility("QL-T02")
    assert t01.id and t02.id
    with hub.database.session() as session:
        taken = session.exec(
            select(FacilityAeTitle.ae_title).where(FacilityAeTitle.facility_id == t01.id)
        ).first()
        assert taken

        def add(title: str, **extra: str) -> int:
            values = {"modality": "DX", "station_name": "", "host": "", "port": "", **extra}
            return admin.add_ae_title(
                session,
                actor=actor,
                facility_id=t02.id or 0,
                ae_title=title,
                settings=hub.settings,
                now=NOW,
                **values,
            )

        error = refused(lambda: add(taken), Conflict, "ae_title")
        assert "QL-T01" in str(error)
        refused(lambda: add(hub.settings.dicom_aet), Conflict, "ae_title")
        for bad in ("", "   ", "A" * 17, "BAD\\AE", "影像科", "TAB\tAE"):
            refused(lambda b=bad: add(b), ValidationError, "ae_title")
        refused(lambda: add("QHT02NEW", modality="XX"), ValidationError, "modality")
        refused(lambda: add("QHT02NEW", host="10.0.0.9"), ValidationError, "ae_port")
        refused(lambda: add("QHT02NEW", host="10.0.0.9", port="99999"), ValidationError, "ae_port")
        new_id = add(" QHT02NEW ", host="10.0.0.9", port="104", station_name="DR room 2")
        refused(lambda: add("QHT02NEW"), Conflict, "ae_title")
        detail = admin.facility_detail(session, actor=actor, facility_id=t02.id, today=TODAY)
        row = next(t for t in detail.ae_titles if t.ae_title_id == new_id)
        assert (row.ae_title, row.host, row.port) == ("QHT02NEW", "10.0.0.9", 104)
        admin.remove_ae_title(session, actor=actor, ae_title_id=new_id, now=NOW)
        with pytest.raises(NotFound):
            admin.remove_ae_title(session, actor=actor, ae_title_id=new_id, now=NOW)
    events = hub.audits("FacilityAeTitle")
    assert [e.action for e in events] == [AuditAction.create, AuditAction.delete]
    assert "QHT02NEW" in events[0].detail and "removed" in events[1].detail


# --------------------------------------------------------------------------- the catalogue


def test_catalogue_page_sort_and_filter(hub: Hub) -> None:
    actor = hub.actor("admin")
    with hub.database.session() as session:
        everything = admin.list_catalogue(
            session, actor=actor, query=admin.CatalogueQuery(page_size=100)
        )
        assert everything.total == 49 and "CT" in everything.modalities
        cts = admin.list_catalogue(
            session, actor=actor, query=admin.CatalogueQuery(modality="CT", page_size=100)
        )
        assert cts.rows and all(r.modality == "CT" for r in cts.rows)
        chest = admin.list_catalogue(session, actor=actor, query=admin.CatalogueQuery(text="胸部"))
        assert chest.rows and all("胸" in r.name_zh for r in chest.rows)
        english = admin.list_catalogue(
            session, actor=actor, query=admin.CatalogueQuery(text="chest x-ray")
        )
        assert english.rows
        not_hr = admin.list_catalogue(
            session, actor=actor, query=admin.CatalogueQuery(recognised=False, page_size=100)
        )
        assert not_hr.rows and not any(r.recognised for r in not_hr.rows)
        dearest = admin.list_catalogue(
            session,
            actor=actor,
            query=admin.CatalogueQuery(sort=admin.CatalogueSort.fee, descending=True),
        )
        fees = [r.fee_fen for r in dearest.rows]
        assert fees == sorted(fees, reverse=True) and fees[0] >= max(
            r.fee_fen for r in everything.rows
        )


def test_editing_an_exam_type(hub: Hub) -> None:
    actor = hub.actor("admin")
    with hub.database.session() as session:
        exam = session.exec(select(ExamType).where(ExamType.code == "DX-CHEST-PA")).one()
        assert exam.id is not None and exam.fee_fen == 6000

        def edit(
            fee: str, recognised: bool = True, days: str = "14", active: bool = True
        ) -> tuple[str, ...]:
            return admin.update_exam_type(
                session,
                actor=actor,
                exam_type_id=exam.id or 0,
                change=admin.ExamTypeChange(fee, recognised, days, active),
                now=NOW,
            )

        for bad_fee in ("", "abc", "-1", "12.345", "1e9", "NaN", "100000.01"):
            refused(lambda f=bad_fee: edit(f), ValidationError, "fee")
        for bad_days in ("", "-3", "1.5", "3651", "十"):
            refused(lambda d=bad_days: edit("60", days=d), ValidationError, "validity_days")
        refused(lambda: edit("60", recognised=True, days="0"), ValidationError, "validity_days")
        assert edit("60.00") == ()
        assert edit("88.5", days="30") == ("fee", "validity_days")
        assert edit("¥88.50", recognised=False, days="0") == ("recognised", "validity_days")
        with pytest.raises(NotFound):
            admin.exam_type_detail(session, actor=actor, exam_type_id=99999)
        row = admin.exam_type_detail(session, actor=actor, exam_type_id=exam.id)
        assert (row.fee_fen, row.recognised, row.validity_days) == (8850, False, 0)
    events = hub.audits("ExamType")
    assert [e.detail for e in events] == [
        "DX-CHEST-PA: fee: 60.00 -> 88.50; validity_days: 14 -> 30",
        "DX-CHEST-PA: recognised: True -> False; validity_days: 30 -> 0",
    ]
    assert all(e.action is AuditAction.update and e.actor == "admin" for e in events)


def test_parsers() -> None:
    assert admin.parse_fee("12") == 1200
    assert admin.parse_fee("0.05") == 5
    assert admin.parse_fee("1,234.50") == 123450
    assert admin.parse_port("104", field="p") == 104
    assert admin.parse_port("", field="p") is None
    assert admin.check_host("HIS.Example.cn.", field="h") == "his.example.cn"
    assert admin.check_host("::1", field="h") == "::1"
    assert admin.fen_to_yuan(8850) == "88.50"
    assert admin.parse_day("2026-02-28", field="d", required=True) == date(2026, 2, 28)


def test_the_routing_form_is_one_transaction(hub: Hub) -> None:
    actor = hub.actor("admin")
    t02, h01, h03 = hub.facility("QL-T02"), hub.facility("QL-H01"), hub.facility("QL-H03")
    assert t02.id and h01.id and h03.id
    with hub.database.session() as session:
        # A township becomes a reading centre and reads its own studies, in one step.
        assert admin.set_routing(
            session,
            actor=actor,
            facility_id=t02.id,
            is_reading_centre=True,
            reading_centre_id=t02.id,
            now=NOW,
        )
    after = hub.facility("QL-T02")
    assert after.is_reading_centre and after.reading_centre_id == t02.id
    with pytest.raises(Conflict), hub.database.session() as session:
        admin.set_routing(
            session,
            actor=actor,
            facility_id=h03.id,
            is_reading_centre=False,
            reading_centre_id=h01.id,
            now=NOW,
        )
    unchanged = hub.facility("QL-H03")  # the route moved first, then rolled back with the refusal
    assert unchanged.is_reading_centre and unchanged.reading_centre_id == h03.id
