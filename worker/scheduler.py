"""The product's periodic jobs, run on the one leader host."""

from __future__ import annotations

from datetime import timedelta

from api.core.database import Database
from api.core.jobs import JobSender
from api.core.scheduling import PeriodicJob, Scheduler
from api.settings import Settings
from worker import jobs
from worker.relay import outbox_sweep


def periodic_jobs(db: Database, sender: JobSender, settings: Settings) -> list[PeriodicJob]:
    """Every periodic job of the product."""

    async def purge_sessions(period_key: str) -> None:
        # Enqueued through the outbox and keyed by its day: one purge per day whichever host leads.
        async with db.unit_of_work(sender) as uow:
            uow.enqueue(jobs.purge_expired_sessions(period_key))

    return [
        outbox_sweep(db, sender, settings),
        PeriodicJob("accounts.purge_expired_sessions", timedelta(days=1), purge_sessions),
    ]


def build_scheduler(db: Database, sender: JobSender, settings: Settings) -> Scheduler:
    return Scheduler(db, periodic_jobs(db, sender, settings), tick_seconds=settings.scheduler_tick_seconds)
