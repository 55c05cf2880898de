"""FHIR: stored resources with their search index, and the API's token clients.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scopes", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("created_at", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_client")),
        sa.UniqueConstraint("name", name=op.f("uq_api_client_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_client_token_sha256")),
    )
    op.create_table(
        "fhir_resource",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("logical_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("subject_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("sort_date", models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("name_text", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_resource")),
        sa.UniqueConstraint("resource_type", "logical_id", name="uq_fhir_resource_id"),
    )
    with op.batch_alter_table("fhir_resource", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_resource_subject", ["resource_type", "subject_id", "sort_date"]
        )
        batch_op.create_index("ix_fhir_resource_date", ["resource_type", "sort_date"])
    op.create_table(
        "fhir_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("resource_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("parameter", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("system", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["fhir_resource.id"],
            name=op.f("fk_fhir_token_resource_id_fhir_resource"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_token")),
    )
    with op.batch_alter_table("fhir_token", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_token_lookup", ["resource_type", "parameter", "value", "system"]
        )
        batch_op.create_index(batch_op.f("ix_fhir_token_resource_id"), ["resource_id"])


def downgrade() -> None:
    with op.batch_alter_table("fhir_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fhir_token_resource_id"))
        batch_op.drop_index("ix_fhir_token_lookup")
    op.drop_table("fhir_token")
    with op.batch_alter_table("fhir_resource", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_resource_date")
        batch_op.drop_index("ix_fhir_resource_subject")
    op.drop_table("fhir_resource")
    op.drop_table("api_client")
