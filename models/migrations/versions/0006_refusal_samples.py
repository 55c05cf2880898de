"""Recognition: the monthly 10% sample of refusals and its review.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refusal_sample",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("seed", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("drawn_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("justified", sa.Boolean(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["recognition_decision.id"],
            name=op.f("fk_refusal_sample_decision_id_recognition_decision"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["app_user.id"], name=op.f("fk_refusal_sample_reviewer_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refusal_sample")),
        sa.UniqueConstraint("month", "decision_id", name="uq_refusal_sample"),
    )
    with op.batch_alter_table("refusal_sample", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refusal_sample_month"), ["month"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refusal_sample", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refusal_sample_month"))
    op.drop_table("refusal_sample")
