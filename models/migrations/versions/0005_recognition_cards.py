"""Recognition: the cards the CDS service showed, for their feedback.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recognition_card",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("card_uuid", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("hook_instance", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("service", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("requested_exam_type_id", sa.Integer(), nullable=False),
        sa.Column("prior_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("prior_study_id", sa.Integer(), nullable=True),
        sa.Column("prior_report_id", sa.Integer(), nullable=True),
        sa.Column("prior_source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("recognisable", sa.Boolean(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("clinician_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("draft_order_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("avoidable_fee_fen", sa.Integer(), nullable=False),
        sa.Column("issued_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_recognition_card_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_recognition_card_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["prior_report_id"],
            ["report.id"],
            name=op.f("fk_recognition_card_prior_report_id_report"),
        ),
        sa.ForeignKeyConstraint(
            ["prior_study_id"], ["study.id"], name=op.f("fk_recognition_card_prior_study_id_study")
        ),
        sa.ForeignKeyConstraint(
            ["requested_exam_type_id"],
            ["exam_type.id"],
            name=op.f("fk_recognition_card_requested_exam_type_id_exam_type"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognition_card")),
        sa.UniqueConstraint("card_uuid", name=op.f("uq_recognition_card_card_uuid")),
    )


def downgrade() -> None:
    op.drop_table("recognition_card")
