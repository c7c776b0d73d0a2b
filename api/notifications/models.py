"""The in-app inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class Notification(Base):
    """One message to one account about one event; the unique key makes delivery at most once."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("recipient_account_id", "event_key"),
        Index("ix_notification_recipient_account_id_id", "recipient_account_id", "id"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    recipient_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(120))
    subject_kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[int] = mapped_column(BigId)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = stamped_now()
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class WebhookEndpoint(Base):
    """A URL a community's front end gives to receive signed event pushes."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret_encrypted: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = stamped_now()


class WebhookDelivery(Base):
    """One event to one endpoint; the unique key makes each delivery happen at most once."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("endpoint_id", "event_key"),)

    id: Mapped[int] = pk()
    endpoint_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhook_endpoint.id", ondelete="CASCADE"), index=True)
    event_key: Mapped[str] = mapped_column(String(120))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = stamped_now()
