"""Jobs as plain values, the outbox table that carries them, and the senders that publish them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, JsonDoc, UtcDateTime, pk, stamped_now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """A request for background work: an actor name, its queue and JSON-able keyword args.

    Job arguments carry ids, never personal data.
    """

    actor_name: str
    queue_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    delay_ms: int | None = None


class OutboxMessage(Base):
    """A job recorded in the same transaction as the change that wants it."""

    __tablename__ = "outbox_message"

    id: Mapped[int] = pk()
    actor_name: Mapped[str] = mapped_column(String(200))
    queue_name: Mapped[str] = mapped_column(String(100))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    delay_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = stamped_now()
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    def to_job(self) -> Job:
        return Job(self.actor_name, self.queue_name, dict(self.kwargs), self.delay_ms)


@dataclass(frozen=True, slots=True)
class OutboundJob:
    """A job with its outbox id, which is also the broker message id."""

    outbox_id: int
    job: Job


class JobSender(Protocol):
    """Publishes outbox jobs to the queue. Raises on failure; the relay retries later."""

    async def send(self, jobs: Sequence[OutboundJob]) -> None: ...


class RecordingJobSender:
    """Keeps what it was asked to send; for tests and for a paused queue."""

    def __init__(self, *, fail: bool = False) -> None:
        self.sent: list[OutboundJob] = []
        self.fail = fail

    async def send(self, jobs: Sequence[OutboundJob]) -> None:
        if self.fail:
            raise ConnectionError("job delivery is unavailable")
        self.sent.extend(jobs)

    @property
    def actor_names(self) -> list[str]:
        return [o.job.actor_name for o in self.sent]
