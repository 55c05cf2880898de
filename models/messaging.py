"""Raw inbound HL7 (kept for replay) and the outbox every outgoing message goes through."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.enums import InboundStatus, OutboxChannel, OutboxStatus
from models.types import UtcDateTime, text_enum, utc_now


class InboundMessage(SQLModel, table=True):
    """Bytes exactly as received; (sender, control_id) makes re-sends idempotent."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        UniqueConstraint("sender", "control_id", name="uq_inbound_sender_control"),
        Index("ix_inbound_status_time", "status", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sender: str = Field(max_length=128)  # MSH-3^MSH-4
    control_id: str = Field(max_length=64)  # MSH-10
    message_type: str = Field(default="", max_length=16)  # e.g. ORM^O01
    peer: str = Field(default="", max_length=64)
    charset: str = Field(default="", max_length=32)
    raw: bytes = Field(sa_type=LargeBinary)
    status: InboundStatus = Field(sa_type=text_enum(InboundStatus))
    ack_code: str = Field(default="", max_length=2)
    ack: bytes | None = Field(
        default=None, sa_type=LargeBinary
    )  # the exact reply, re-sent on dupes
    error: str = Field(default="", sa_type=Text)
    attempts: int = 1
    received_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    processed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Outbox(SQLModel, table=True):
    """A message waiting to leave; retried with backoff, idempotent at the receiver."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: OutboxChannel = Field(sa_type=text_enum(OutboxChannel))
    destination: str = Field(max_length=500)
    idempotency_key: str = Field(max_length=128, unique=True)
    subject_type: str = Field(default="", max_length=32)  # e.g. Report
    subject_id: int | None = None
    content_type: str = Field(default="application/json", max_length=64)
    payload: bytes = Field(sa_type=LargeBinary)
    status: OutboxStatus = Field(default=OutboxStatus.pending, sa_type=text_enum(OutboxStatus))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    last_error: str = Field(default="", sa_type=Text)
    locked_by: str | None = Field(default=None, max_length=64)
    locked_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
