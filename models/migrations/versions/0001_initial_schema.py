"""Initial schema: region, people, patients, catalogue, orders, imaging, reports,
recognition, messaging, audit and settlement.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 13:26:34.073171
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exam_type",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name_zh", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name_en", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column(
            "modality",
            sa.Enum(
                "DX",
                "CR",
                "CT",
                "MR",
                "US",
                "MG",
                "XA",
                "RF",
                "NM",
                "PT",
                "OT",
                name="modality",
                native_enum=False,
                length=4,
            ),
            nullable=False,
        ),
        sa.Column("body_part", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("body_part_count", sa.Integer(), nullable=False),
        sa.Column("loinc", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("fee_fen", sa.Integer(), nullable=False),
        sa.Column("recognised", sa.Boolean(), nullable=False),
        sa.Column("validity_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_type")),
        sa.UniqueConstraint("code", name=op.f("uq_exam_type_code")),
    )
    with op.batch_alter_table("exam_type", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exam_type_loinc"), ["loinc"], unique=False)

    op.create_table(
        "facility",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("name_en", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column(
            "level",
            sa.Enum(
                "village",
                "township",
                "county",
                "city",
                "province",
                name="facilitylevel",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "clinic",
                "health_centre",
                "hospital",
                "bureau",
                "platform",
                name="facilitykind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("reading_centre_id", sa.Integer(), nullable=True),
        sa.Column("is_reading_centre", sa.Boolean(), nullable=False),
        sa.Column("area_code", sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
        sa.Column("hl7_host", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("hl7_port", sa.Integer(), nullable=True),
        sa.Column("hl7_charset", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("fhir_endpoint", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["facility.id"], name=op.f("fk_facility_parent_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["reading_centre_id"],
            ["facility.id"],
            name=op.f("fk_facility_reading_centre_id_facility"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facility")),
        sa.UniqueConstraint("code", name=op.f("uq_facility_code")),
    )
    with op.batch_alter_table("facility", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_facility_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_facility_reading_centre_id"), ["reading_centre_id"], unique=False
        )

    op.create_table(
        "inbound_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("control_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("message_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("peer", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("charset", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "accepted",
                "failed",
                "rejected",
                "replayed",
                name="inboundstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("ack_code", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("ack", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_message")),
        sa.UniqueConstraint("sender", "control_id", name="uq_inbound_sender_control"),
    )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_status_time", ["status", "received_at"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("fhir", "hl7", name="outboxchannel", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("destination", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("subject_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "in_flight",
                "delivered",
                "dead",
                name="outboxstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("locked_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("locked_until", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "patient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "sex", sa.Enum("M", "F", "O", "U", name="sex", native_enum=False), nullable=False
        ),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into_id"], ["patient.id"], name=op.f("fk_patient_merged_into_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient")),
    )
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_merged_into_id"), ["merged_into_id"], unique=False
        )

    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "radiologist",
                "auditor",
                "clinician",
                "leader",
                "qc",
                "technologist",
                name="role",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "title",
            sa.Enum(
                "none",
                "technician",
                "resident",
                "attending",
                "associate_chief",
                "chief",
                name="professionaltitle",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role <> 'auditor' OR title IN ('attending', 'associate_chief', 'chief')",
            name=op.f("ck_app_user_auditor_title"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_app_user_facility_id_facility")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("username", name=op.f("uq_app_user_username")),
    )
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_user_facility_id"), ["facility_id"], unique=False)

    op.create_table(
        "facility_ae_title",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("ae_title", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("station_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("modality", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_facility_ae_title_facility_id_facility")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facility_ae_title")),
        sa.UniqueConstraint("ae_title", name=op.f("uq_facility_ae_title_ae_title")),
    )
    with op.batch_alter_table("facility_ae_title", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_facility_ae_title_facility_id"), ["facility_id"], unique=False
        )

    op.create_table(
        "patient_identifier",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "resident_id",
                "mrn",
                "health_card",
                "other",
                name="identifierkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("authority", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.CheckConstraint(
            "kind <> 'resident_id' OR length(value) = 18",
            name=op.f("ck_patient_identifier_resident_id_length"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_patient_identifier_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_identifier")),
        sa.UniqueConstraint("kind", "authority", "value", name="uq_patientidentifier_value"),
    )
    with op.batch_alter_table("patient_identifier", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_identifier_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_patient_identifier_value"), ["value"], unique=False)

    op.create_table(
        "qc_qualification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("certificate", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.CheckConstraint(
            "valid_until IS NULL OR valid_until >= valid_from",
            name=op.f("ck_qc_qualification_qc_period"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_qc_qualification_facility_id_facility")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qc_qualification")),
    )
    with op.batch_alter_table("qc_qualification", schema=None) as batch_op:
        batch_op.create_index(
            "ix_qcqualification_facility_period", ["facility_id", "valid_from"], unique=False
        )

    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "login",
                "login_failed",
                "logout",
                "read",
                "create",
                "update",
                "delete",
                "export",
                "execute",
                name="auditaction",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum("success", "failure", name="auditoutcome", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("source_address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("entity_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("entity_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("previous_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["app_user.id"], name=op.f("fk_audit_event_actor_user_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_audit_event_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_audit_event_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_actor_time", ["actor", "recorded_at"], unique=False)
        batch_op.create_index("ix_audit_patient_time", ["patient_id", "recorded_at"], unique=False)
        batch_op.create_index("ix_audit_time", ["recorded_at"], unique=False)

    op.create_table(
        "exam_order",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("accession_number", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("placer_number", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("filler_number", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("exam_type_id", sa.Integer(), nullable=False),
        sa.Column("ordering_facility_id", sa.Integer(), nullable=False),
        sa.Column("performing_facility_id", sa.Integer(), nullable=False),
        sa.Column("ordering_provider", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("ordering_user_id", sa.Integer(), nullable=True),
        sa.Column(
            "priority",
            sa.Enum("routine", "emergency", name="priority", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "patient_class",
            sa.Enum("O", "I", "E", "P", "U", name="patientclass", native_enum=False),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "in_progress",
                "completed",
                "cancelled",
                "discontinued",
                name="orderstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("body_part_count", sa.Integer(), nullable=False),
        sa.Column("requested_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("scheduled_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "scheduled_station_aet", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
        ),
        sa.Column("sps_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column(
            "requested_procedure_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
        ),
        sa.Column("study_instance_uid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("source_message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["exam_type_id"], ["exam_type.id"], name=op.f("fk_exam_order_exam_type_id_exam_type")
        ),
        sa.ForeignKeyConstraint(
            ["ordering_facility_id"],
            ["facility.id"],
            name=op.f("fk_exam_order_ordering_facility_id_facility"),
        ),
        sa.ForeignKeyConstraint(
            ["ordering_user_id"],
            ["app_user.id"],
            name=op.f("fk_exam_order_ordering_user_id_app_user"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_exam_order_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["performing_facility_id"],
            ["facility.id"],
            name=op.f("fk_exam_order_performing_facility_id_facility"),
        ),
        sa.ForeignKeyConstraint(
            ["source_message_id"],
            ["inbound_message.id"],
            name=op.f("fk_exam_order_source_message_id_inbound_message"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_order")),
        sa.UniqueConstraint("ordering_facility_id", "placer_number", name="uq_order_placer"),
        sa.UniqueConstraint(
            "performing_facility_id", "accession_number", name="uq_order_accession"
        ),
        sa.UniqueConstraint("study_instance_uid", name=op.f("uq_exam_order_study_instance_uid")),
    )
    with op.batch_alter_table("exam_order", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exam_order_accession_number"), ["accession_number"], unique=False
        )
        batch_op.create_index(
            "ix_order_patient_exam", ["patient_id", "exam_type_id", "requested_at"], unique=False
        )
        batch_op.create_index(
            "ix_order_worklist", ["performing_facility_id", "status", "scheduled_at"], unique=False
        )

    op.create_table(
        "settlement_statement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("reading_centre_id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("body_part_count", sa.Integer(), nullable=False),
        sa.Column("rate_fen", sa.Integer(), nullable=False),
        sa.Column("clinic_share_fen", sa.Integer(), nullable=False),
        sa.Column("bureau_share_fen", sa.Integer(), nullable=False),
        sa.Column("total_fen", sa.Integer(), nullable=False),
        sa.Column("generated_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("generated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["facility.id"], name=op.f("fk_settlement_statement_clinic_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["generated_by_id"],
            ["app_user.id"],
            name=op.f("fk_settlement_statement_generated_by_id_app_user"),
        ),
        sa.ForeignKeyConstraint(
            ["reading_centre_id"],
            ["facility.id"],
            name=op.f("fk_settlement_statement_reading_centre_id_facility"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_statement")),
        sa.UniqueConstraint("period", "reading_centre_id", "clinic_id", name="uq_settlement"),
    )
    op.create_table(
        "study",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "study_instance_uid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        ),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("exam_type_id", sa.Integer(), nullable=True),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("reading_centre_id", sa.Integer(), nullable=True),
        sa.Column("accession_number", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("modalities", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("body_part", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("station_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "priority",
            sa.Enum("routine", "emergency", name="priority", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("started_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("received_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_instance_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "status",
            sa.Enum("receiving", "complete", name="studystatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "reading_status",
            sa.Enum(
                "awaiting_preliminary",
                "awaiting_audit",
                "final",
                "retake_requested",
                name="readingstatus",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("num_series", sa.Integer(), nullable=False),
        sa.Column("num_instances", sa.Integer(), nullable=False),
        sa.Column("quality_rejected", sa.Boolean(), nullable=False),
        sa.Column("retake_of_study_id", sa.Integer(), nullable=True),
        sa.Column("claimed_by_id", sa.Integer(), nullable=True),
        sa.Column("claimed_until", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("dicom_patient_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "dicom_patient_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False
        ),
        sa.Column("demographics_conflict", sa.Boolean(), nullable=False),
        sa.Column("source_node", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["claimed_by_id"], ["app_user.id"], name=op.f("fk_study_claimed_by_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["exam_type_id"], ["exam_type.id"], name=op.f("fk_study_exam_type_id_exam_type")
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_study_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["exam_order.id"], name=op.f("fk_study_order_id_exam_order")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_study_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["reading_centre_id"], ["facility.id"], name=op.f("fk_study_reading_centre_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["retake_of_study_id"], ["study.id"], name=op.f("fk_study_retake_of_study_id_study")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study")),
        sa.UniqueConstraint("study_instance_uid", name=op.f("uq_study_study_instance_uid")),
    )
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_study_accession_number"), ["accession_number"], unique=False
        )
        batch_op.create_index(
            "ix_study_facility_started", ["facility_id", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_study_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            "ix_study_prior", ["patient_id", "exam_type_id", "started_at"], unique=False
        )
        batch_op.create_index(
            "ix_study_worklist",
            ["reading_centre_id", "reading_status", "completed_at"],
            unique=False,
        )

    op.create_table(
        "consultation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("from_centre_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.Integer(), nullable=True),
        sa.Column("expert_facility_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("opinion", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "answered",
                "cancelled",
                name="consultationstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("requested_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["expert_facility_id"],
            ["facility.id"],
            name=op.f("fk_consultation_expert_facility_id_facility"),
        ),
        sa.ForeignKeyConstraint(
            ["expert_id"], ["app_user.id"], name=op.f("fk_consultation_expert_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["from_centre_id"],
            ["facility.id"],
            name=op.f("fk_consultation_from_centre_id_facility"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["app_user.id"],
            name=op.f("fk_consultation_requested_by_id_app_user"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["study.id"], name=op.f("fk_consultation_study_id_study")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultation")),
    )
    with op.batch_alter_table("consultation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consultation_study_id"), ["study_id"], unique=False)

    op.create_table(
        "qc_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("technologist", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column(
            "grade",
            sa.Enum("A", "B", "C", "D", name="imagegrade", native_enum=False),
            nullable=True,
        ),
        sa.Column("artefact", sa.Boolean(), nullable=False),
        sa.Column("retake_requested", sa.Boolean(), nullable=False),
        sa.Column("retake_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("retake_study_id", sa.Integer(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_qc_event_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["retake_study_id"], ["study.id"], name=op.f("fk_qc_event_retake_study_id_study")
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["app_user.id"], name=op.f("fk_qc_event_reviewer_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["study.id"], name=op.f("fk_qc_event_study_id_study")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qc_event")),
    )
    with op.batch_alter_table("qc_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_qc_event_study_id"), ["study_id"], unique=False)
        batch_op.create_index(
            "ix_qcevent_facility_time", ["facility_id", "created_at"], unique=False
        )

    op.create_table(
        "report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("reading_centre_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "preliminary",
                "final",
                "amended",
                "corrected",
                "cancelled",
                name="reportstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("impression", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("auditor_id", sa.Integer(), nullable=True),
        sa.Column("preliminary_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finalised_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("amended_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("corrected", sa.Boolean(), nullable=False),
        sa.Column("positive", sa.Boolean(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column(
            "image_grade",
            sa.Enum("A", "B", "C", "D", name="imagegrade", native_enum=False),
            nullable=True,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status = 'preliminary' OR status = 'cancelled' OR finalised_at IS NOT NULL",
            name=op.f("ck_report_signed_has_time"),
        ),
        sa.ForeignKeyConstraint(
            ["auditor_id"], ["app_user.id"], name=op.f("fk_report_auditor_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["app_user.id"], name=op.f("fk_report_author_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["exam_order.id"], name=op.f("fk_report_order_id_exam_order")
        ),
        sa.ForeignKeyConstraint(
            ["reading_centre_id"],
            ["facility.id"],
            name=op.f("fk_report_reading_centre_id_facility"),
        ),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_report_study_id_study")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report")),
        sa.UniqueConstraint("study_id", name=op.f("uq_report_study_id")),
    )
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_auditor_id"), ["auditor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_author_id"), ["author_id"], unique=False)
        batch_op.create_index(
            "ix_report_centre_final", ["reading_centre_id", "finalised_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_report_order_id"), ["order_id"], unique=False)
        batch_op.create_index("ix_report_status_final", ["status", "finalised_at"], unique=False)

    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column(
            "series_instance_uid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        ),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("modality", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("body_part", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("laterality", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("station_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("started_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("num_instances", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_series_study_id_study")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("series_instance_uid", name=op.f("uq_series_series_instance_uid")),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_series_study_id"), ["study_id"], unique=False)

    op.create_table(
        "critical_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("flagged_by_id", sa.Integer(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("flagged_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("notified_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("notified_to", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("acknowledged_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "notified_at IS NULL OR notified_at >= flagged_at",
            name=op.f("ck_critical_result_notified_after_flag"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_critical_result_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["flagged_by_id"],
            ["app_user.id"],
            name=op.f("fk_critical_result_flagged_by_id_app_user"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_critical_result_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["report.id"], name=op.f("fk_critical_result_report_id_report")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["study.id"], name=op.f("fk_critical_result_study_id_study")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_critical_result")),
    )
    with op.batch_alter_table("critical_result", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_critical_result_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_critical_result_report_id"), ["report_id"], unique=False
        )

    op.create_table(
        "instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sop_class_uid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column(
            "transfer_syntax_uid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        ),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("received_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"], ["series.id"], name=op.f("fk_instance_series_id_series")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["study.id"], name=op.f("fk_instance_study_id_study")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance")),
        sa.UniqueConstraint("sop_instance_uid", "version", name="uq_instance_version"),
    )
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instance_series_id"), ["series_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_instance_sop_instance_uid"), ["sop_instance_uid"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_instance_study_id"), ["study_id"], unique=False)

    op.create_table(
        "recognition_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("requested_exam_type_id", sa.Integer(), nullable=False),
        sa.Column("prior_study_id", sa.Integer(), nullable=True),
        sa.Column("prior_report_id", sa.Integer(), nullable=True),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("clinician_id", sa.Integer(), nullable=True),
        sa.Column("clinician_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum("accepted", "refused", name="recognitionoutcome", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "refusal_reason",
            sa.Enum(
                "condition_changed",
                "conflicts_with_clinical",
                "emergency",
                "rapid_change",
                "other",
                name="refusalreason",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "cds_hooks",
                "portal",
                "rest",
                name="recognitionsource",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("card_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("new_order_id", sa.Integer(), nullable=True),
        sa.Column("avoided_fee_fen", sa.Integer(), nullable=False),
        sa.Column("decided_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome = 'accepted' OR refusal_reason IS NOT NULL",
            name=op.f("ck_recognition_decision_refusal_has_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["clinician_id"],
            ["app_user.id"],
            name=op.f("fk_recognition_decision_clinician_id_app_user"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facility.id"],
            name=op.f("fk_recognition_decision_facility_id_facility"),
        ),
        sa.ForeignKeyConstraint(
            ["new_order_id"],
            ["exam_order.id"],
            name=op.f("fk_recognition_decision_new_order_id_exam_order"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_recognition_decision_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["prior_report_id"],
            ["report.id"],
            name=op.f("fk_recognition_decision_prior_report_id_report"),
        ),
        sa.ForeignKeyConstraint(
            ["prior_study_id"],
            ["study.id"],
            name=op.f("fk_recognition_decision_prior_study_id_study"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_exam_type_id"],
            ["exam_type.id"],
            name=op.f("fk_recognition_decision_requested_exam_type_id_exam_type"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognition_decision")),
    )
    with op.batch_alter_table("recognition_decision", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recognition_decision_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(
            "ix_recognition_outcome_time", ["outcome", "decided_at"], unique=False
        )
        batch_op.create_index(
            "ix_recognition_patient_time", ["patient_id", "decided_at"], unique=False
        )

    op.create_table(
        "report_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "preliminary",
                "final",
                "amended",
                "corrected",
                "cancelled",
                name="reportstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("impression", sa.Text(), nullable=False),
        sa.Column("editor_id", sa.Integer(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("previous_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["editor_id"], ["app_user.id"], name=op.f("fk_report_revision_editor_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["report_id"], ["report.id"], name=op.f("fk_report_revision_report_id_report")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_revision")),
        sa.UniqueConstraint("report_id", "version", name="uq_revision_version"),
    )
    with op.batch_alter_table("report_revision", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_revision_report_id"), ["report_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("report_revision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_revision_report_id"))

    op.drop_table("report_revision")
    with op.batch_alter_table("recognition_decision", schema=None) as batch_op:
        batch_op.drop_index("ix_recognition_patient_time")
        batch_op.drop_index("ix_recognition_outcome_time")
        batch_op.drop_index(batch_op.f("ix_recognition_decision_facility_id"))

    op.drop_table("recognition_decision")
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_study_id"))
        batch_op.drop_index(batch_op.f("ix_instance_sop_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_instance_series_id"))

    op.drop_table("instance")
    with op.batch_alter_table("critical_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_critical_result_report_id"))
        batch_op.drop_index(batch_op.f("ix_critical_result_facility_id"))

    op.drop_table("critical_result")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_study_id"))

    op.drop_table("series")
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.drop_index("ix_report_status_final")
        batch_op.drop_index(batch_op.f("ix_report_order_id"))
        batch_op.drop_index("ix_report_centre_final")
        batch_op.drop_index(batch_op.f("ix_report_author_id"))
        batch_op.drop_index(batch_op.f("ix_report_auditor_id"))

    op.drop_table("report")
    with op.batch_alter_table("qc_event", schema=None) as batch_op:
        batch_op.drop_index("ix_qcevent_facility_time")
        batch_op.drop_index(batch_op.f("ix_qc_event_study_id"))

    op.drop_table("qc_event")
    with op.batch_alter_table("consultation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consultation_study_id"))

    op.drop_table("consultation")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index("ix_study_worklist")
        batch_op.drop_index("ix_study_prior")
        batch_op.drop_index(batch_op.f("ix_study_order_id"))
        batch_op.drop_index("ix_study_facility_started")
        batch_op.drop_index(batch_op.f("ix_study_accession_number"))

    op.drop_table("study")
    op.drop_table("settlement_statement")
    with op.batch_alter_table("exam_order", schema=None) as batch_op:
        batch_op.drop_index("ix_order_worklist")
        batch_op.drop_index("ix_order_patient_exam")
        batch_op.drop_index(batch_op.f("ix_exam_order_accession_number"))

    op.drop_table("exam_order")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_time")
        batch_op.drop_index("ix_audit_patient_time")
        batch_op.drop_index("ix_audit_actor_time")

    op.drop_table("audit_event")
    with op.batch_alter_table("qc_qualification", schema=None) as batch_op:
        batch_op.drop_index("ix_qcqualification_facility_period")

    op.drop_table("qc_qualification")
    with op.batch_alter_table("patient_identifier", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_identifier_value"))
        batch_op.drop_index(batch_op.f("ix_patient_identifier_patient_id"))

    op.drop_table("patient_identifier")
    with op.batch_alter_table("facility_ae_title", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_facility_ae_title_facility_id"))

    op.drop_table("facility_ae_title")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_user_facility_id"))

    op.drop_table("app_user")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_merged_into_id"))

    op.drop_table("patient")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_status_time")

    op.drop_table("inbound_message")
    with op.batch_alter_table("facility", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_facility_reading_centre_id"))
        batch_op.drop_index(batch_op.f("ix_facility_parent_id"))

    op.drop_table("facility")
    with op.batch_alter_table("exam_type", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exam_type_loinc"))

    op.drop_table("exam_type")
