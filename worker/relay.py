"""The outbox relay, run by the scheduler leader as the periodic `outbox.sweep` job."""

from __future__ import annotations

from datetime import timedelta

from api.core.database import Database
from api.core.jobs import JobSender
from api.core.outbox import relay_pending, replay_if_broker_restarted
from api.core.scheduling import PeriodicJob
from api.settings import Settings


def outbox_sweep(db: Database, sender: JobSender, settings: Settings) -> PeriodicJob:
    """Send outbox rows not yet published (broker down, process killed); resend recent ones after a broker restart."""

    async def sweep(_period_key: str) -> None:
        window = timedelta(minutes=settings.broker_replay_window_minutes)
        await replay_if_broker_restarted(db, sender, window=window)
        await relay_pending(db, sender, older_than=timedelta(seconds=settings.outbox_relay_grace_seconds))

    return PeriodicJob("outbox.sweep", timedelta(seconds=settings.outbox_relay_interval_seconds), sweep)
