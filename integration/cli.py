"""The `huren` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from integration.database import Database
from integration.settings import Settings, load_settings
from models.errors import HurenError


def _upgraded(settings: Settings) -> Database:
    """The database, migrated to the newest schema first, as every working command wants it."""
    database = Database.from_settings(settings)
    database.upgrade()
    return database


def _cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from models.migrate import current_revision

    database = _upgraded(settings)
    print(f"database at revision {current_revision(database.engine)}")
    database.dispose()
    return 0


def _cmd_db_current(settings: Settings, _args: argparse.Namespace) -> int:
    from models.migrate import current_revision, head_revision

    database = Database.from_settings(settings)
    current, head = current_revision(database.engine), head_revision(database.engine)
    print(f"current {current or '(empty)'}; head {head}")
    database.dispose()
    return 0 if current == head else 1


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import os

    from integration.roles import EVERY_ROLE, Role
    from integration.supervisor import READY, supervise

    if args.role is None and settings.serve_split:
        return supervise(settings, verbose=args.verbose)  # without the listeners' imports
    from integration.hub import serve

    def ready() -> None:
        try:
            os.write(args.ready_fd, READY)
        except BrokenPipeError:
            pass  # the supervisor gave up waiting; it stops this process next
        finally:
            os.close(args.ready_fd)

    supervised = args.ready_fd is not None and args.supervisor_pid is not None
    roles = EVERY_ROLE if args.role in (None, "all") else frozenset({Role(args.role)})
    try:
        asyncio.run(
            serve(
                settings,
                roles=roles,
                ready=ready if supervised else None,
                supervisor=args.supervisor_pid if supervised else None,
            )
        )
    except OSError as exc:  # a port taken, an address not this machine's: say so plainly
        print(f"huren: cannot serve: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_catalogue_sync(settings: Settings, args: argparse.Namespace) -> int:
    from models.catalogue import load_catalogue, sync_catalogue

    database = _upgraded(settings)
    entries = load_catalogue(args.file or settings.exam_catalogue)
    with database.session() as session:
        changed = sync_catalogue(session, entries=entries)
    print(f"{len(entries)} exam types in the catalogue, {changed} added or changed")
    return 0


def _cmd_demo_seed(settings: Settings, args: argparse.Namespace) -> int:
    from integration.demo.seed import DemoOptions, seed_demo_region

    database = _upgraded(settings)
    if not database.is_empty():
        if args.if_empty:
            print("database already holds a region; demo seed skipped")
            return 0
        print(
            "the database is not empty; the demo region is only seeded into an empty one",
            file=sys.stderr,
        )
        return 2
    options = DemoOptions(
        seed=args.seed,
        exams=args.exams or _SCALES[args.scale],
        until=args.until,
        progress=not args.quiet,
    )
    summary = seed_demo_region(database, settings=settings, options=options)
    print(summary.describe())
    if args.fhir_days:
        from datetime import UTC, datetime

        from integration.fhir_publish import publish_since

        studies, reports = publish_since(
            database,
            settings=settings,
            days=args.fhir_days,
            now=datetime.now(UTC),
            quiet=args.quiet,
        )
        print(f"FHIR: {studies} imaging studies and {reports} reports of the last days stored")
    return 0


def _cmd_hl7_replay(settings: Settings, args: argparse.Namespace) -> int:
    from integration.directory import Directory
    from integration.intake import Intake

    database = _upgraded(settings)
    intake = Intake(database=database, directory=Directory(database.engine), settings=settings)
    results = intake.replay(ids=args.id or None)
    for result in results:
        verdict = "applied" if result.applied else f"still failing: {result.error}"
        print(f"#{result.inbound_id} {result.control_id}: {verdict}")
    applied = sum(1 for result in results if result.applied)
    print(f"{applied} of {len(results)} stored messages applied")
    return 0 if applied == len(results) else 1


def _cmd_outbox_status(settings: Settings, _args: argparse.Namespace) -> int:
    from integration.outbox import counts

    database = _upgraded(settings)
    with database.engine.connect() as connection:
        summary = counts(connection)
    if not summary:
        print("the outbox is empty")
    for channel, entry in sorted(summary.items()):
        oldest = (
            f", oldest pending since {entry.oldest_pending:%Y-%m-%d %H:%M:%S} UTC"
            if entry.oldest_pending
            else ""
        )
        print(
            f"{channel.value}: {entry.pending} pending, {entry.in_flight} in flight, "
            f"{entry.delivered} delivered, {entry.dead} dead{oldest}"
        )
    return 0


def _cmd_outbox_retry(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from integration.outbox import retry_dead

    database = _upgraded(settings)
    with database.engine.begin() as connection:
        revived = retry_dead(connection, now=datetime.now(UTC), ids=args.id or None)
    print(f"{revived} dead-lettered messages queued again")
    return 0


def _cmd_dicom_import(settings: Settings, args: argparse.Namespace) -> int:
    from dicom.store import FileStore
    from integration.archive import Archive
    from integration.directory import Directory
    from integration.imaging import Stabiliser, import_folder
    from integration.progress import progress_bar

    if not args.folder.is_dir():
        print(f"huren: {args.folder} is not a folder", file=sys.stderr)
        return 2
    database = _upgraded(settings)
    directory = Directory(database.engine)
    archive = Archive(
        database=database,
        settings=settings,
        directory=directory,
        files=FileStore(settings.data_dir),
    )
    archive.start()
    total = sum(1 for p in args.folder.rglob("*") if p.is_file())
    try:
        with progress_bar("importing DICOM files", total, enabled=not args.quiet) as advance:
            stored, refused = import_folder(
                archive,
                Stabiliser(database=database, settings=settings),
                database=database,
                folder=args.folder,
                facility_code=args.facility,
                directory=directory,
                settings=settings,
                progress=advance,
            )
    finally:
        archive.stop()
    print(f"{stored} instances stored, {refused} files refused")
    return 0 if refused == 0 else 1


def _cmd_dicom_unmatched(settings: Settings, _args: argparse.Namespace) -> int:
    from integration.reconcile import unmatched

    database = _upgraded(settings)
    with database.engine.connect() as connection:
        rows = unmatched(connection)
    for row in rows:
        print(
            f"{row.study_instance_uid}  facility {row.facility_id}  accession "
            f"{row.accession_number or '-'}  patient {row.dicom_patient_id} "
            f"{row.dicom_patient_name}  {row.modalities}"
        )
    print(f"{len(rows)} studies wait for reconciliation")
    return 0


def _cmd_dicom_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from integration.reconcile import reconcile_manually

    database = _upgraded(settings)
    from sqlalchemy import select

    from integration.fhir_publish import publish_study
    from models import metadata
    from models.enums import StudyStatus

    studies = metadata.tables["study"]
    now = datetime.now(UTC)
    with database.engine.begin() as connection:
        reconcile_manually(
            connection, study_uid=args.study, accession_number=args.accession, now=now
        )
        study = connection.execute(
            select(studies.c.id, studies.c.status).where(studies.c.study_instance_uid == args.study)
        ).one()
        if study.status == StudyStatus.complete:  # the ImagingStudy now has its order
            publish_study(connection, study_id=study.id, settings=settings, now=now)
    print(f"study {args.study} attached to order {args.accession}")
    return 0


_SCALES = {"tiny": 2_000, "small": 20_000, "default": 100_000, "large": 1_000_000}


def _cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from integration.api_clients import create_client

    database = _upgraded(settings)
    with database.engine.begin() as connection:
        token = create_client(
            connection, name=args.client, scopes=args.scope, now=datetime.now(UTC)
        )
    print(token)
    print(f"token for {args.client} ({args.scope}); it is not shown again", file=sys.stderr)
    return 0


def _cmd_token_list(settings: Settings, _args: argparse.Namespace) -> int:
    from integration.api_clients import list_clients

    database = _upgraded(settings)
    with database.engine.connect() as connection:
        clients = list_clients(connection)
    for name, scopes, created, revoked in clients:
        state = f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active"
        print(f"{name:24} {state:22} created {created:%Y-%m-%d %H:%M}  {scopes}")
    return 0


def _cmd_token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from integration.api_clients import revoke_client

    database = _upgraded(settings)
    with database.engine.begin() as connection:
        revoke_client(connection, name=args.client, now=datetime.now(UTC))
    print(f"{args.client}: revoked")
    return 0


def _cmd_fhir_publish(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from integration.fhir_publish import publish_since

    database = _upgraded(settings)
    counts = publish_since(
        database, settings=settings, days=args.days, now=datetime.now(UTC), quiet=args.quiet
    )
    print(f"{counts[0]} imaging studies and {counts[1]} reports published")
    return 0


def _cmd_recognition_avoidable(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, time, timedelta

    from integration.avoidable import avoidable_exams, record, total_fee_fen

    database = _upgraded(settings)
    today = datetime.now(settings.zone).date()
    first = args.since or today - timedelta(days=30)
    last = args.until or today
    start = datetime.combine(first, time(0), tzinfo=settings.zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=settings.zone).astimezone(UTC)
    with database.engine.begin() as connection:
        found = avoidable_exams(connection, start=start, end=end, zone=settings.zone)
        added = record(connection, found, now=datetime.now(UTC)) if args.store else 0
    for exam in found:
        print(
            f"{exam.performed_on}  {exam.facility}  {exam.exam_name}  patient {exam.patient_id}  "
            f"prior {exam.prior.performed_on} {exam.prior.facility}  "
            f"{exam.fee_fen / 100:.2f} yuan  {exam.study_uid}"
        )
    print(
        f"{len(found)} avoidable exams from {first} to {last}, "
        f"{total_fee_fen(found) / 100:.2f} yuan that need not have been spent"
    )
    if args.store:
        print(f"{added} newly put on the QC officer's list")
    return 0


def _cmd_recognition_sample(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from integration.refusal_audit import draw_month, sample_report

    database = _upgraded(settings)
    with database.engine.begin() as connection:
        chosen = draw_month(connection, month=args.month, zone=settings.zone, now=datetime.now(UTC))
        report = sample_report(connection, month=args.month, zone=settings.zone)
    print(
        f"refusal audit {report.month} (seed {report.seed}): {report.refusals} refusals, "
        f"{report.drawn} drawn, {report.reviewed} reviewed, {report.justified} justified"
    )
    print("decisions drawn: " + " ".join(str(decision) for decision in chosen))
    return 0


def _cmd_report_settlement(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import datetime

    from integration.settlement_export import build, parse_period, to_csv, to_pdf, write_xlsx

    database = _upgraded(settings)
    period = parse_period(args.period)
    with database.engine.connect() as connection:
        export = build(connection, period=period, settings=settings, hospital=args.hospital)
    suffix = f"-{args.hospital}" if args.hospital else ""
    output = args.output or Path(f"settlement-{period.label}{suffix}.{args.format}")
    if args.format == "csv":
        output.write_text(to_csv(export), encoding="utf-8-sig")  # Excel opens it as UTF-8
    elif args.format == "xlsx":
        write_xlsx(export, output)
    else:
        output.write_bytes(to_pdf(export, issued=datetime.now(settings.zone).date()))
    statement = export.statement
    print(
        f"{period.label}: {len(export.hospitals)} reading hospitals, {statement.reports} reports, "
        f"{statement.body_parts} body parts, {statement.amount_fen / 100:.2f} yuan "
        f"(clinics {statement.clinic_fen / 100:.2f}, bureau {statement.bureau_fen / 100:.2f}) "
        f"-> {output}"
    )
    return 0


def _cmd_report_kpi(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from integration.kpi import monthly_report, to_csv, to_text

    database = _upgraded(settings)
    with database.engine.connect() as connection:
        report = monthly_report(
            connection, month=args.month, settings=settings, now=datetime.now(UTC)
        )
    print(to_csv(report) if args.format == "csv" else to_text(report), end="")
    return 0


def _cmd_report_bulletin(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from integration.analytics_store import AnalyticsStore
    from integration.bulletin import bulletin_from_store, bulletin_pdf
    from integration.kpi import month_days
    from integration.sla import ReadingCalendar

    month_days(args.month)  # a malformed month is refused before any work
    database = _upgraded(settings)
    store = AnalyticsStore(
        database.engine,
        settings.data_dir / "analytics",
        zone=settings.timezone,
        calendar=ReadingCalendar.from_settings(settings),
    )
    bulletin = bulletin_from_store(
        store, month=args.month, settings=settings, now=datetime.now(UTC)
    )
    output = args.output or Path(f"bulletin-{args.month}.pdf")
    output.write_bytes(bulletin_pdf(bulletin))
    exams = bulletin.key_figures.filter(bulletin.key_figures["key"] == "exams")["value"]
    print(f"{args.month}: operations bulletin ({int(exams.item() or 0)} exams) -> {output}")
    database.dispose()
    return 0


def _cmd_audit_seal(settings: Settings, _args: argparse.Namespace) -> int:
    from integration.audit_chain import seal

    database = _upgraded(settings)
    sealed = seal(database.engine)
    print(f"{sealed.audit_rows} audit rows and {sealed.revisions} report revisions sealed")
    return 0


def _cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from integration.audit_chain import seal, verify

    database = _upgraded(settings)
    if not args.no_seal:
        seal(database.engine)
    with database.engine.connect() as connection:
        result = verify(connection)
    for problem in result.problems:
        print(f"PROBLEM {problem.describe()}")
    for first, last in result.never_committed:
        span = f"ids {first}..{last}" if last > first else f"id {first}"
        print(f"note: audit_event {span} never committed before sealing (rolled back)")
    print(
        f"audit trail: {result.audit_rows} rows, {result.audit_sealed} sealed, head "
        f"{result.head_id or '-'} {result.head_hash or '-'}"
    )
    print(
        f"report revisions: {result.revisions} in {result.reports} reports, "
        f"{result.revisions_sealed} sealed"
    )
    if args.expect_head and args.expect_head != f"{result.head_id}:{result.head_hash}":
        print(f"PROBLEM the chain head is not {args.expect_head}: rows after it were removed")
        return 1
    print("chains intact" if result.ok else f"{len(result.problems)} problems found")
    return 0 if result.ok else 1


def _cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from integration.backup import backup

    _upgraded(settings).dispose()
    now = datetime.now(UTC)
    output = args.output or Path(f"huren-backup-{now:%Y%m%dT%H%M%SZ}")
    result = backup(settings, output=output, now=now)
    for problem in result.audit_problems:
        print(f"PROBLEM {problem}")
    print(
        f"{result.kind} database and {result.files} instance files "
        f"({result.bytes / 1_048_576:.1f} MiB) backed up to {result.folder}; "
        f"audit chain head {result.audit_head or '-'}"
    )
    return 1 if result.audit_problems else 0


def _cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from integration.backup import restore

    result = restore(settings, folder=args.folder)
    for problem in result.verification.problems:
        print(f"PROBLEM {problem.describe()}")
    if not result.head_matches:
        print("PROBLEM the audit chain head differs from the backup's manifest")
    print(
        f"{result.kind} database and {result.files} instance files "
        f"({result.bytes / 1_048_576:.1f} MiB) restored into {settings.data_dir}; "
        + ("audit chains verified" if result.ok else "the audit chains do NOT verify")
    )
    return 0 if result.ok else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="huren", description="Huren regional imaging hub")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="migrate the schema to the newest revision").set_defaults(
        handler=_cmd_db_upgrade
    )
    db.add_parser("current", help="show the schema revision").set_defaults(handler=_cmd_db_current)

    serve = commands.add_parser(
        "serve",
        help="run the hub: HTTP, MLLP, DICOM and the background workers "
        "(one process, or one per role with HUREN_SERVE_SPLIT=true)",
    )
    serve.add_argument(
        "--role",
        choices=["all", "background", "mllp", "dicom", "http"],
        help="run only this part of the hub (a split hub's supervisor starts these)",
    )
    serve.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(handler=_cmd_serve)

    catalogue = commands.add_parser("catalogue", help="the exam catalogue").add_subparsers(
        dest="catalogue", required=True
    )
    sync = catalogue.add_parser("sync", help="load exam types from a CSV (default: shipped)")
    sync.add_argument("--file", type=Path, help="a CSV with the shipped file's columns")
    sync.set_defaults(handler=_cmd_catalogue_sync)

    hl7 = commands.add_parser("hl7", help="HL7 v2 intake").add_subparsers(dest="hl7", required=True)
    replay = hl7.add_parser("replay", help="apply stored failed/rejected messages again")
    replay.add_argument("--id", type=int, action="append", help="only this inbound message id")
    replay.set_defaults(handler=_cmd_hl7_replay)

    outbox = commands.add_parser("outbox", help="messages leaving the hub").add_subparsers(
        dest="outbox", required=True
    )
    outbox.add_parser("status", help="counts per channel and state").set_defaults(
        handler=_cmd_outbox_status
    )
    retry = outbox.add_parser("retry", help="queue dead-lettered messages again")
    retry.add_argument("--id", type=int, action="append", help="only this outbox id")
    retry.set_defaults(handler=_cmd_outbox_retry)

    dicom = commands.add_parser("dicom", help="the DICOM archive").add_subparsers(
        dest="dicom", required=True
    )
    importer = dicom.add_parser("import", help="bulk-import a folder of DICOM files")
    importer.add_argument("folder", type=Path)
    importer.add_argument("--facility", required=True, help="code of the facility they come from")
    importer.add_argument("--quiet", action="store_true", help="no progress bar")
    importer.set_defaults(handler=_cmd_dicom_import)
    dicom.add_parser("unmatched", help="studies waiting for reconciliation").set_defaults(
        handler=_cmd_dicom_unmatched
    )
    attach = dicom.add_parser("reconcile", help="attach a study to an order by hand")
    attach.add_argument("study", help="Study Instance UID")
    attach.add_argument("accession", help="accession number of the order")
    attach.set_defaults(handler=_cmd_dicom_reconcile)

    token = commands.add_parser("token", help="API clients and their tokens").add_subparsers(
        dest="token", required=True
    )
    make = token.add_parser("create", help="register a client and print its bearer token")
    make.add_argument("--client", required=True, help="the client's name, e.g. province")
    make.add_argument(
        "--scope",
        required=True,
        help="SMART system scopes, space-separated, e.g. 'system/*.read system/*.write'",
    )
    make.set_defaults(handler=_cmd_token_create)
    token.add_parser("list", help="clients, their scopes and state").set_defaults(
        handler=_cmd_token_list
    )
    revoke = token.add_parser("revoke", help="withdraw a client's token")
    revoke.add_argument("--client", required=True)
    revoke.set_defaults(handler=_cmd_token_revoke)

    fhir = commands.add_parser("fhir", help="FHIR resources").add_subparsers(
        dest="fhir", required=True
    )
    publish = fhir.add_parser(
        "publish", help="map complete studies and their reports to stored FHIR resources"
    )
    publish.add_argument(
        "--days", type=int, default=7, help="studies completed in the last N days (default 7)"
    )
    publish.add_argument("--quiet", action="store_true", help="no progress bar")
    publish.set_defaults(handler=_cmd_fhir_publish)

    recognition = commands.add_parser(
        "recognition", help="mutual recognition of exams"
    ).add_subparsers(dest="recognition", required=True)
    avoidable = recognition.add_parser(
        "avoidable",
        help="exams done although a recognisable prior existed and no refusal was recorded",
    )
    avoidable.add_argument(
        "--since", type=date.fromisoformat, help="first day (default: 30 days ago)"
    )
    avoidable.add_argument("--until", type=date.fromisoformat, help="last day (default: today)")
    avoidable.add_argument(
        "--store", action="store_true", help="also put them on the QC officer's list"
    )
    avoidable.set_defaults(handler=_cmd_recognition_avoidable)
    sample = recognition.add_parser(
        "sample", help="draw (once) and show a month's 10%% sample of refusals for audit"
    )
    sample.add_argument("--month", required=True, help="YYYY-MM, a month that has ended")
    sample.set_defaults(handler=_cmd_recognition_sample)

    report = commands.add_parser("report", help="reports for the health bureau").add_subparsers(
        dest="report", required=True
    )
    statement = report.add_parser(
        "settlement", help="reading fees of a half-year per reading hospital and clinic"
    )
    statement.add_argument("--period", required=True, help="half-year, e.g. 2026H1")
    statement.add_argument("--hospital", help="a reading hospital's facility code (default: all)")
    statement.add_argument("--format", choices=("csv", "xlsx", "pdf"), default="pdf")
    statement.add_argument("--output", type=Path, help="file to write (default: in this folder)")
    statement.set_defaults(handler=_cmd_report_settlement)
    kpi = report.add_parser("kpi", help="a month's key figures beside the month before")
    kpi.add_argument("--month", required=True, help="YYYY-MM")
    kpi.add_argument("--format", choices=("text", "csv"), default="text")
    kpi.set_defaults(handler=_cmd_report_kpi)
    bulletin = report.add_parser(
        "bulletin", help="the region's monthly operations bulletin (PDF) beside the month before"
    )
    bulletin.add_argument("--month", required=True, help="YYYY-MM")
    bulletin.add_argument("--output", type=Path, help="file to write (default: in this folder)")
    bulletin.set_defaults(handler=_cmd_report_bulletin)

    backup = commands.add_parser(
        "backup", help="copy the database and the DICOM store, consistently, while the hub runs"
    )
    backup.add_argument(
        "--output", type=Path, help="a new or empty folder (default: ./huren-backup-<time>)"
    )
    backup.set_defaults(handler=_cmd_backup)
    restore = commands.add_parser(
        "restore", help="restore a backup into an empty data directory (and empty database)"
    )
    restore.add_argument("folder", type=Path, help="a folder written by huren backup")
    restore.set_defaults(handler=_cmd_restore)

    audit = commands.add_parser(
        "audit", help="the tamper-evident audit trail and report revisions"
    ).add_subparsers(dest="audit", required=True)
    audit.add_parser("seal", help="chain the rows written since the last seal").set_defaults(
        handler=_cmd_audit_seal
    )
    check = audit.add_parser(
        "verify", help="seal, then recompute both hash chains; exit 1 on any problem"
    )
    check.add_argument("--no-seal", action="store_true", help="only check, write nothing")
    check.add_argument(
        "--expect-head",
        metavar="ID:HASH",
        help="the audit chain head noted earlier (e.g. in a backup's manifest)",
    )
    check.set_defaults(handler=_cmd_audit_verify)

    demo = commands.add_parser("demo", help="the demo region").add_subparsers(
        dest="demo", required=True
    )
    seed = demo.add_parser("seed", help="create the demo county with 12 months of history")
    seed.add_argument("--seed", type=int, default=20260101, help="random seed (deterministic)")
    seed.add_argument(
        "--scale",
        choices=sorted(_SCALES, key=_SCALES.__getitem__),
        default="default",
        help="history size: tiny 2k, small 20k, default 100k, large 1M exams",
    )
    seed.add_argument("--exams", type=int, help="exact number of exams (overrides --scale)")
    seed.add_argument(
        "--until",
        type=date.fromisoformat,
        help="last day of the history, YYYY-MM-DD (default: today)",
    )
    seed.add_argument(
        "--if-empty",
        action="store_true",
        help="do nothing, successfully, when the database already has data",
    )
    seed.add_argument("--quiet", action="store_true", help="no progress bar")
    seed.add_argument(
        "--fhir-days",
        type=int,
        default=3,
        help="also store FHIR resources for studies of the last N days (0: none; "
        "huren fhir publish does more later)",
    )
    seed.set_defaults(handler=_cmd_demo_seed)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "supervisor_pid", None) is not None:
        # A terminal's Ctrl-C reaches the whole group; the supervisor alone answers it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    role = getattr(args, "role", None)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s "
        + (f"[{role}] " if role else "")
        + "%(name)s: %(message)s",
    )
    try:
        settings = load_settings()
        result: int = args.handler(settings, args)
    except HurenError as exc:
        print(f"huren: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
