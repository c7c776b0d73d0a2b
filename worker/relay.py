"""The outbox relay, run by the scheduler leader as the periodic `outbox.sweep` job."""

from __future__ import annotations

from datetime import timedelta

from api.core.database import Database
from api.core.jobs import JobSender
from api.core.outbox import relay_pending
from api.core.scheduling import PeriodicJob
from api.settings import Settings


def outbox_sweep(db: Database, sender: JobSender, settings: Settings) -> PeriodicJob:
    """Send outbox rows whose immediate publish did not happen (broker down, process killed)."""

    async def sweep(_period_key: str) -> None:
        await relay_pending(db, sender, older_than=timedelta(seconds=settings.outbox_relay_grace_seconds))

    return PeriodicJob("outbox.sweep", timedelta(seconds=settings.outbox_relay_interval_seconds), sweep)
