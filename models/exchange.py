"""FHIR resources as served and exchanged, their search index, and the API's clients.

A resource is stored as the JSON the API answers with (``body``), produced
once when the hub maps a domain change or accepts a resource from another
node; reads never re-validate it. The search columns and the token rows are
derived from the body by ``fhir.search.index_of`` when it is written.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UtcDateTime, utc_now


class FhirResource(SQLModel, table=True):
    """One resource at its current version; ``origin`` is empty for the hub's own."""

    __tablename__ = "fhir_resource"
    __table_args__ = (
        UniqueConstraint("resource_type", "logical_id", name="uq_fhir_resource_id"),
        Index("ix_fhir_resource_subject", "resource_type", "subject_id", "sort_date"),
        Index("ix_fhir_resource_date", "resource_type", "sort_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=32)
    logical_id: str = Field(max_length=64)
    version_id: int = 1
    last_updated: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    origin: str = Field(default="", max_length=64)  # the client that sent it; "" = this hub
    subject_id: str | None = Field(default=None, max_length=64)  # the Patient's logical id
    status: str = Field(default="", max_length=32)
    sort_date: datetime | None = Field(default=None, sa_type=UtcDateTime)
    birth_date: date | None = None
    name_text: str = Field(default="", max_length=255)  # Patient names, lower-cased, for :contains
    body: str = Field(sa_type=Text)


class FhirToken(SQLModel, table=True):
    """A token search value of a resource: identifier, modality, based-on, _tag, code."""

    __tablename__ = "fhir_token"
    __table_args__ = (
        Index("ix_fhir_token_lookup", "resource_type", "parameter", "value", "system"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="fhir_resource.id", index=True)
    resource_type: str = Field(max_length=32)
    parameter: str = Field(max_length=32)
    system: str = Field(default="", max_length=255)
    value: str = Field(max_length=255)


class ApiClient(SQLModel, table=True):
    """A system allowed to call the FHIR API and CDS services with a bearer token.

    Only the token's SHA-256 is kept; the token itself is shown once, when made.
    """

    __tablename__ = "api_client"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    token_sha256: str = Field(max_length=64, unique=True)
    scopes: str = Field(max_length=500)  # space-separated SMART system scopes
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


__all__ = ["ApiClient", "FhirResource", "FhirToken"]
