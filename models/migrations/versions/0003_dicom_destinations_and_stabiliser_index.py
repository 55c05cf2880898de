"""DICOM: network address of an AE for C-MOVE, and the index the stabiliser scans.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("facility_ae_title", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
        batch_op.add_column(sa.Column("port", sa.Integer(), nullable=True))
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index("ix_study_status_last", ["status", "last_instance_at"])


def downgrade() -> None:
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index("ix_study_status_last")
    with op.batch_alter_table("facility_ae_title", schema=None) as batch_op:
        batch_op.drop_column("port")
        batch_op.drop_column("host")
