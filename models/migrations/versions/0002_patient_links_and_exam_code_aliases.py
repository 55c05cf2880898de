"""Patient links (doubtful identity matches for review) and local exam code aliases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:38:03.038669
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exam_code_alias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("exam_type_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["exam_type_id"],
            ["exam_type.id"],
            name=op.f("fk_exam_code_alias_exam_type_id_exam_type"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_exam_code_alias_facility_id_facility")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_code_alias")),
        sa.UniqueConstraint("facility_id", "code", name="uq_exam_code_alias"),
    )
    with op.batch_alter_table("exam_code_alias", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exam_code_alias_code"), ["code"], unique=False)

    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index("ix_patient_demographics", ["name", "birth_date", "sex"])

    op.create_table(
        "patient_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending", "confirmed", "rejected", name="linkstatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["patient.id"], name=op.f("fk_patient_link_candidate_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["app_user.id"], name=op.f("fk_patient_link_decided_by_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_patient_link_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_link")),
        sa.UniqueConstraint("patient_id", "candidate_id", name="uq_patient_link"),
    )
    with op.batch_alter_table("patient_link", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_link_candidate_id"), ["candidate_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_patient_link_patient_id"), ["patient_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index("ix_patient_demographics")
    with op.batch_alter_table("patient_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_link_patient_id"))
        batch_op.drop_index(batch_op.f("ix_patient_link_candidate_id"))

    op.drop_table("patient_link")
    with op.batch_alter_table("exam_code_alias", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exam_code_alias_code"))

    op.drop_table("exam_code_alias")
