"""The audit trail and report revisions append-only in the database itself.

Triggers refuse DELETE (and TRUNCATE on PostgreSQL) on ``audit_event`` and
``report_revision``, and refuse any UPDATE except the sealer's: filling the
empty seal columns of a row once, its content unchanged. Whoever can drop
triggers can still tamper; the hash chain (`huren audit verify`) shows it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (the seal column that starts empty, the other seal column, content columns)
_GUARDED = {
    "audit_event": (
        "hash",
        "previous_hash",
        (
            "id",
            "recorded_at",
            "action",
            "outcome",
            "actor",
            "actor_user_id",
            "facility_id",
            "source_address",
            "entity_type",
            "entity_id",
            "patient_id",
            "detail",
        ),
    ),
    "report_revision": (
        "content_hash",
        "previous_hash",
        (
            "id",
            "report_id",
            "version",
            "status",
            "findings",
            "impression",
            "editor_id",
            "reason",
            "created_at",
        ),
    ),
}


def _sqlite_upgrade() -> None:
    for table, (seal, _other, columns) in _GUARDED.items():
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)
        op.execute(
            f"CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table} "
            f"WHEN OLD.{seal} != '' OR NEW.{seal} = '' OR {changed} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: a row may only be sealed, "
            "once'); END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


def _postgresql_upgrade() -> None:
    for table, (seal, other, _columns) in _GUARDED.items():
        op.execute(
            f"""
            CREATE FUNCTION huren_{table}_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND OLD.{seal} = '' AND NEW.{seal} <> ''
                   AND (to_jsonb(NEW) - '{seal}' - '{other}')
                       = (to_jsonb(OLD) - '{seal}' - '{other}') THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION '{table} is append-only: a row may only be sealed, once'
                    USING ERRCODE = 'integrity_constraint_violation';
            END
            $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION huren_{table}_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION huren_{table}_append_only()"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in _GUARDED:
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS huren_{table}_append_only()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_delete")
