"""Recognition: the QC officer's list of avoidable exams, filled nightly and on demand.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "avoidable_exam",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("exam_type_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("performed_on", sa.Date(), nullable=False),
        sa.Column("prior_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("prior_facility", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("prior_performed_on", sa.Date(), nullable=False),
        sa.Column("fee_fen", sa.Integer(), nullable=False),
        sa.Column("found_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["exam_type_id"],
            ["exam_type.id"],
            name=op.f("fk_avoidable_exam_exam_type_id_exam_type"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_avoidable_exam_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_avoidable_exam_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["study.id"], name=op.f("fk_avoidable_exam_study_id_study")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_avoidable_exam")),
        sa.UniqueConstraint("study_id", name=op.f("uq_avoidable_exam_study_id")),
    )
    with op.batch_alter_table("avoidable_exam", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_avoidable_exam_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_avoidable_exam_performed_on"), ["performed_on"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("avoidable_exam", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_avoidable_exam_performed_on"))
        batch_op.drop_index(batch_op.f("ix_avoidable_exam_facility_id"))
    op.drop_table("avoidable_exam")
