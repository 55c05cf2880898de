"""HL7 intake end to end: real MLLP sockets on 127.0.0.1, a real SQLite file, sample messages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from hl7.er7 import parse_message
from hl7.mllp import MllpClient, MllpServer, frame
from integration.database import Database
from integration.directory import Directory
from integration.intake import Intake
from integration.settings import Settings
from models import metadata
from models.catalogue import load_catalogue, sync_catalogue
from models.enums import FacilityKind, FacilityLevel, InboundStatus, OrderStatus, Priority
from tests.hub_helpers import add_township

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "hl7"
T = metadata.tables

# Local exam codes of the sample hospitals, mapped onto the shipped catalogue.
ALIASES = {
    "CT0101": "CT-CHEST-PLAIN",
    "DR0101": "DX-CHEST-PA",
    "DR0102": "DX-CHEST-PA",
    "DR0103": "DX-LSPINE-AP-LAT",
    "DR0201": "DX-KNEE-BILAT-AP-LAT",
    "CT0203": "CT-HEAD-PLAIN",
    "MR0301": "MR-LSPINE-PLAIN",
    "CT0401": "CT-ABDOMEN-ENH",
    "US0201": "US-ABDOMEN",
}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def ack_code(ack: bytes) -> str:
    msa = parse_message(ack).segment("MSA")
    assert msa is not None
    return msa.get(1)


def ack_error(ack: bytes) -> tuple[str, str]:
    """(ERR-2 location as text, MSA-3)."""
    message = parse_message(ack)
    err, msa = message.segment("ERR"), message.segment("MSA")
    assert msa is not None
    location = ""
    if err is not None:
        location = f"{err.get(2, 1)}-{err.get(2, 3)}" if err.get(2, 3) else err.get(2, 1)
    return location, msa.get(3)


@dataclass
class Hub:
    database: Database
    settings: Settings
    directory: Directory

    def send(self, *payloads: bytes, connections: int = 1) -> list[bytes]:
        """Start intake and an MLLP listener, send ``payloads`` in order, return the ACKs."""

        async def scenario() -> list[bytes]:
            intake = Intake(
                database=self.database, directory=self.directory, settings=self.settings
            )
            await intake.start()
            server = MllpServer(
                intake.handle, host="127.0.0.1", port=0, on_reject=intake.reject_frame
            )
            await server.start()
            try:
                async with MllpClient("127.0.0.1", server.port, timeout=30) as client:
                    return [await client.send(payload) for payload in payloads]
            finally:
                await server.stop()
                await intake.stop()

        return asyncio.run(scenario())

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.database.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.rows(sql, **params)[0][0]

    def alias(self, code: str, catalogue_code: str) -> None:
        with self.database.engine.begin() as connection:
            exam_id = connection.execute(
                select(T["exam_type"].c.id).where(T["exam_type"].c.code == catalogue_code)
            ).scalar_one()
            connection.execute(
                insert(T["exam_code_alias"]).values(
                    facility_id=None, code=code, exam_type_id=exam_id
                )
            )
        self.directory.reload()


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[Hub]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, hl7_group_commit_wait=0)  # type: ignore[arg-type]
    database = Database.from_settings(settings)
    database.upgrade()
    with database.engine.begin() as connection:
        for code, name, charset, level, kind in (
            (
                "FYXRMYY",
                "富源县人民医院",
                "UNICODE UTF-8",
                FacilityLevel.county,
                FacilityKind.hospital,
            ),
            (
                "ZAZWSY",
                "中安镇卫生院",
                "UNICODE UTF-8",
                FacilityLevel.township,
                FacilityKind.health_centre,
            ),
            (
                "HSZWSY",
                "后所镇卫生院",
                "GB 18030",
                FacilityLevel.township,
                FacilityKind.health_centre,
            ),
            (
                "DJZWSY",
                "大河镇卫生院",
                "GB 18030",
                FacilityLevel.township,
                FacilityKind.health_centre,
            ),
        ):
            connection.execute(
                insert(T["facility"]).values(
                    code=code,
                    name=name,
                    name_en="",
                    level=level,
                    kind=kind,
                    is_reading_centre=False,
                    area_code="",
                    hl7_charset=charset,
                    active=True,
                    created_at=func.now(),
                )
            )
    with database.session() as session:
        sync_catalogue(session, entries=load_catalogue())
    region = Hub(database, settings, Directory(database.engine))
    for code, target in ALIASES.items():
        region.alias(code, target)
    yield region
    database.dispose()


def test_orm_creates_patient_and_order_and_answers_aa(hub: Hub) -> None:
    [ack] = hub.send(sample("orm_o01_v231_obr18.hl7"))
    assert ack_code(ack) == "AA"
    assert parse_message(ack).segment("MSA").get(2) == "ZA20240305000123"  # type: ignore[union-attr]
    order = hub.rows(
        "SELECT o.accession_number, o.placer_number, o.status, o.priority, "
        "o.reason, e.code, o.requested_procedure_id, o.sps_id, o.study_instance_uid "
        "FROM exam_order o JOIN exam_type e ON e.id = o.exam_type_id"
    )
    assert len(order) == 1
    accession, placer, status, priority, reason, exam, rp_id, sps_id, uid = order[0]
    assert (accession, placer, status, priority) == (
        "ZA24030500123",
        "ZA2024030500123",
        "scheduled",
        "routine",
    )
    assert (exam, rp_id, sps_id) == ("CT-CHEST-PLAIN", "RP0123", "SPS0123")
    assert reason == "肺部感染待排"  # OBR-31 reason for study
    assert uid.startswith("2.25.")  # the hub pre-assigns a Study Instance UID
    patient = hub.rows("SELECT name, sex, birth_date, phone FROM patient")
    assert [(p[0], p[1], str(p[2]), p[3]) for p in patient] == [
        ("李建国", "M", "1968-04-12", "13908740123")
    ]
    identifiers = {
        (r.kind, r.authority, r.value)
        for r in hub.rows("SELECT kind, authority, value FROM patient_identifier")
    }
    assert identifiers == {
        ("resident_id", "CN", "530102196804120374"),
        ("mrn", "ZAZWSY", "0012345"),
    }
    stored = hub.rows("SELECT status, ack_code, raw, message_type FROM inbound_message")
    assert [(s.status, s.ack_code, s.message_type) for s in stored] == [
        ("accepted", "AA", "ORM^O01")
    ]
    assert bytes(stored[0].raw) == sample("orm_o01_v231_obr18.hl7")


def test_a_resent_message_is_not_applied_twice_and_gets_the_same_answer(hub: Hub) -> None:
    first, again = hub.send(sample("orm_o01_v231_obr18.hl7"), sample("orm_o01_v231_obr18.hl7"))
    [later] = hub.send(sample("orm_o01_v231_obr18.hl7"))
    assert first == again == later
    assert hub.scalar("SELECT count(*) FROM exam_order") == 1
    assert hub.scalar("SELECT count(*) FROM inbound_message") == 1


def test_order_lifecycle_xo_sc_dc(hub: Hub) -> None:
    new, change = hub.send(sample("orm_o01_v231_obr18.hl7"), sample("orm_o01_v231_xo.hl7"))
    assert ack_code(new) == "AA"
    assert ack_code(change) == "AE"  # CT0102 (enhanced chest CT) is not in the catalogue
    location, reason = ack_error(change)
    assert location == "OBR-4" and "CT0102" in reason
    assert (
        hub.scalar("SELECT status FROM inbound_message WHERE control_id = 'ZA20240305000131'")
        == "failed"
    )

    hub.alias("CT0102", "CT-CHEST-PLAIN")
    [started, stopped] = hub.send(sample("orm_o01_v231_sc.hl7"), sample("orm_o01_v231_dc.hl7"))
    assert ack_code(started) == ack_code(stopped) == "AA"
    assert hub.scalar("SELECT status FROM exam_order") == OrderStatus.discontinued.value


def test_cancel_after_start_is_refused_with_the_reason(hub: Hub) -> None:
    acks = hub.send(
        sample("orm_o01_v231_obr18.hl7"),
        sample("orm_o01_v231_sc.hl7"),
        sample("orm_o01_v231_ca.hl7"),
    )
    assert [ack_code(a) for a in acks] == ["AA", "AA", "AE"]
    location, reason = ack_error(acks[2])
    assert location == "ORC-1" and "send DC" in reason
    assert hub.scalar("SELECT status FROM exam_order") == "in_progress"


def test_cancel_before_start(hub: Hub) -> None:
    hub.alias("CT0102", "CT-CHEST-PLAIN")
    acks = hub.send(sample("orm_o01_v231_obr18.hl7"), sample("orm_o01_v231_ca.hl7"))
    assert [ack_code(a) for a in acks] == ["AA", "AA"]
    assert hub.scalar("SELECT status FROM exam_order") == "cancelled"


def test_failed_message_is_kept_and_replayed_after_the_fix(hub: Hub) -> None:
    [ack] = hub.send(sample("orm_o01_multi_orc.hl7"))
    assert ack_code(ack) == "AA"
    assert hub.scalar("SELECT count(*) FROM exam_order") == 3

    [omi] = hub.send(sample("orm_o01_v25_escapes.hl7"))
    assert ack_code(omi) == "AA"
    hub.rows("SELECT 1")
    with hub.database.engine.begin() as connection:
        connection.execute(text("DELETE FROM exam_code_alias WHERE code = 'DR0101'"))
    hub.directory.reload()
    [failed] = hub.send(sample("orm_o01_v231_delimiters.hl7"))
    assert ack_code(failed) == "AE"
    hub.alias("DR0101", "DX-CHEST-PA")
    intake = Intake(database=hub.database, directory=hub.directory, settings=hub.settings)
    results = intake.replay()
    assert [(r.control_id, r.applied) for r in results] == [("ZA20240317000401", True)]
    assert (
        hub.scalar("SELECT status FROM inbound_message WHERE control_id = 'ZA20240317000401'")
        == InboundStatus.replayed.value
    )
    reason = hub.scalar("SELECT reason FROM exam_order WHERE placer_number = 'ZA2024031700401'")
    assert reason == "体温#37.5℃ 咳嗽"  # \F\ is this message's own field separator
    assert intake.replay() == []


def test_omi_with_ipc_keeps_accession_study_uid_and_sps(hub: Hub) -> None:
    [ack] = hub.send(sample("omi_o23_v25_ipc.hl7"))
    assert ack_code(ack) == "AA"
    row = hub.rows(
        "SELECT accession_number, study_instance_uid, sps_id, requested_procedure_id, "
        "filler_number, scheduled_station_aet FROM exam_order"
    )[0]
    assert row.accession_number == "FY2403070104"
    assert row.study_instance_uid == "1.2.156.112605.14038013507.20240307091044.7"
    assert row.requested_procedure_id == "RP2403070104"
    assert row.sps_id.startswith("SPS2403070104")
    assert row.filler_number == "FL88104"


def test_zds_study_uid_and_stat_priority(hub: Hub) -> None:
    acks = hub.send(sample("orm_o01_v25_zds.hl7"), sample("orm_o01_v231_stat.hl7"))
    assert [ack_code(a) for a in acks] == ["AA", "AA"]
    rows = {
        r.placer_number: r
        for r in hub.rows(
            "SELECT placer_number, study_instance_uid, priority, patient_class FROM exam_order"
        )
    }
    assert rows["PL88001"].study_instance_uid.startswith("1.2.")
    assert rows["PL91234"].priority == Priority.emergency.value


def test_gb18030_names_arrive_intact(hub: Hub) -> None:
    acks = hub.send(sample("orm_o01_v231_gb18030.hl7"), sample("orm_o01_v231_gb18030_no_msh18.hl7"))
    assert [ack_code(a) for a in acks] == ["AA", "AA"]
    names = {r.name for r in hub.rows("SELECT name FROM patient")}
    assert names == {"陈億瑋", "𠮷祥云"}
    charsets = {r.charset for r in hub.rows("SELECT charset FROM inbound_message")}
    assert charsets == {"GB 18030"}


def test_adt_creates_updates_and_merges(hub: Hub) -> None:
    [admit] = hub.send(sample("adt_a01_v25.hl7"))
    assert ack_code(admit) == "AA"
    assert hub.scalar("SELECT name FROM patient") == "周可欣"

    hub.send(sample("orm_o01_v231_obr18.hl7"))
    [update] = hub.send(sample("adt_a08_v231_crlf.hl7"))
    assert ack_code(update) == "AA"
    assert hub.scalar("SELECT phone FROM patient WHERE name = '李建国'") == "13887001234"

    with hub.database.engine.begin() as connection:  # two records of one woman at FYXRMYY
        for mrn in ("FY00461907", "FY00458812"):
            patient_id = connection.execute(
                insert(T["patient"]).values(
                    name="张晓燕",
                    sex="F",
                    birth_date=date(1985, 11, 2),
                    phone="",
                    address="",
                    needs_review=False,
                    created_at=func.now(),
                    updated_at=func.now(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            connection.execute(
                insert(T["patient_identifier"]).values(
                    patient_id=patient_id, kind="mrn", authority="FYXRMYY", value=mrn
                )
            )
    [merge] = hub.send(sample("adt_a40_v25.hl7"))
    assert ack_code(merge) == "AA"
    rows = hub.rows(
        "SELECT p.id, p.merged_into_id, i.value FROM patient p "
        "JOIN patient_identifier i ON i.patient_id = p.id WHERE p.name = '张晓燕'"
    )
    survivors = {r.id for r in rows}
    assert len(survivors) == 1, rows  # every identifier now on the surviving record
    assert {r.value for r in rows} >= {"FY00461907", "FY00458812", "530381198511020746"}
    assert hub.scalar("SELECT count(*) FROM patient WHERE merged_into_id IS NOT NULL") == 1


def test_same_resident_id_links_patients_across_facilities(hub: Hub) -> None:
    hub.send(sample("orm_o01_v231_gb18030.hl7"), sample("adt_a04_v24_gb18030.hl7"))
    assert hub.scalar("SELECT count(*) FROM patient") == 1
    mrns = {
        r.authority for r in hub.rows("SELECT authority FROM patient_identifier WHERE kind = 'mrn'")
    }
    assert mrns == {"HSZWSY"}


def test_doubtful_demographic_match_is_flagged_not_merged(hub: Hub) -> None:
    # The same name, birth date and sex, no shared identifier: kept apart, flagged for review.
    stat = sample("orm_o01_v231_stat.hl7")
    hub.send(sample("orm_o01_multi_orc.hl7"))
    [ack] = hub.send(
        stat.replace(b"511102197908230510", b"").replace("吴^强".encode(), "黄^德明".encode())
    )
    assert ack_code(ack) == "AA"
    patients = hub.rows("SELECT id, needs_review FROM patient WHERE name = '黄德明' ORDER BY id")
    assert [p.needs_review for p in patients] == [False, True]
    link = hub.rows("SELECT patient_id, candidate_id, score, status FROM patient_link")
    assert [(r.patient_id, r.candidate_id, r.status) for r in link] == [
        (patients[1].id, patients[0].id, "pending")
    ]
    assert 0.6 <= link[0].score < 0.95


def test_bad_input_gets_ar_and_the_connection_stays_usable(hub: Hub) -> None:
    original = sample("orm_o01_v231_obr18.hl7")
    unsupported = original.replace(b"ORM^O01|ZA20240305000123", b"QRY^A19|Q1", 1)
    wrong_version = original.replace(b"ZA20240305000123|P|2.3.1|", b"V1|P|9.9|", 1)
    acks = hub.send(
        b"this is not HL7 at all",
        b"MSH|^~\\&|HIS|ZAZWSY|HUREN|HUREN|20240305||ORM^O01|X1|P",  # truncated: no version
        unsupported,
        wrong_version,
        original,
    )
    assert [ack_code(a) for a in acks] == ["AR", "AR", "AR", "AR", "AA"]
    assert ack_error(acks[2])[0].startswith("MSH-9")
    assert ack_error(acks[3])[0].startswith("MSH-12")
    kept = hub.rows("SELECT status, count(*) AS n FROM inbound_message GROUP BY status")
    assert {r.status: r.n for r in kept} == {"rejected": 4, "accepted": 1}


def test_unknown_sending_facility_is_refused_and_kept(hub: Hub) -> None:
    [ack] = hub.send(sample("orm_o01_v23_english.hl7"))
    assert ack_code(ack) in ("AE", "AR")
    assert hub.scalar("SELECT count(*) FROM exam_order") == 0
    assert hub.scalar("SELECT count(*) FROM inbound_message") == 1


def test_a_lookup_that_misses_while_the_database_is_unreachable_is_a_miss(
    tmp_path: Path,
) -> None:
    """The directory reloads on a miss; an unreachable database leaves the snapshot in hand,
    so intake still answers (AE from its own write) instead of closing without an ACK."""
    folder = tmp_path / "mounted"
    database = Database.from_settings(Settings(data_dir=folder))  # type: ignore[call-arg]
    database.upgrade()
    directory = Directory(database.engine, min_reload=0)
    database.dispose()
    folder.rename(tmp_path / "gone")  # the next connection finds no database file
    assert directory.facility("QL-NEW") is None
    assert directory.facility_for_ae_title("NEWCT") is None
    assert directory.exam_type("NEW-EXAM") is None


def test_oversized_frame_gets_ar_and_the_link_survives(hub: Hub) -> None:
    async def scenario() -> list[bytes]:
        intake = Intake(database=hub.database, directory=hub.directory, settings=hub.settings)
        await intake.start()
        server = MllpServer(
            intake.handle, host="127.0.0.1", port=0, max_frame=4096, on_reject=intake.reject_frame
        )
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(frame(b"MSH|" + b"x" * 10_000))
            writer.write(frame(sample("orm_o01_v231_obr18.hl7")))
            await writer.drain()
            replies = []
            buffer = b""
            while buffer.count(b"\x1c\r") < 2:
                buffer += await asyncio.wait_for(reader.read(65536), 10)
            for chunk in buffer.split(b"\x1c\r")[:2]:
                replies.append(chunk.lstrip(b"\x0b"))
            writer.close()
            return replies
        finally:
            await server.stop()
            await intake.stop()

    too_big, fine = asyncio.run(scenario())
    assert ack_code(too_big) == "AR"
    assert ack_code(fine) == "AA"


def test_concurrent_senders_share_commits_and_all_get_their_own_ack(hub: Hub) -> None:
    from bench.mllp import orm

    async def scenario() -> list[list[bytes]]:
        intake = Intake(database=hub.database, directory=hub.directory, settings=hub.settings)
        await intake.start()
        server = MllpServer(intake.handle, host="127.0.0.1", port=0)
        await server.start()

        async def sender(offset: int) -> list[bytes]:
            async with MllpClient("127.0.0.1", server.port) as client:
                return [await client.send(orm(offset + n)) for n in range(25)]

        try:
            return list(await asyncio.gather(*(sender(k * 1000) for k in range(8))))
        finally:
            await server.stop()
            await intake.stop()
            assert intake.batched == 200 and intake.batches < 200

    with hub.database.engine.begin() as connection:
        add_township(connection, "QL-T01")
    hub.directory.reload()
    results = asyncio.run(scenario())
    for k, acks in enumerate(results):
        for n, ack in enumerate(acks):
            msa = parse_message(ack).segment("MSA")
            assert msa is not None and msa.get(1) == "AA"
            assert msa.get(2) == f"BENCH{k * 1000 + n:08d}"
    assert hub.scalar("SELECT count(*) FROM exam_order") == 200
