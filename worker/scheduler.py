"""The product's periodic jobs, run on the one leader host."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from api.canteen import jobs as canteen_jobs
from api.core.database import Database
from api.core.jobs import Job, JobSender
from api.core.scheduling import PeriodicJob, Scheduler
from api.dispatch import jobs as dispatch_jobs
from api.eldercare import jobs as eldercare_jobs
from api.hall import jobs as hall_jobs
from api.library import jobs as library_jobs
from api.listings import jobs as listings_jobs
from api.notices import jobs as notices_jobs
from api.settings import Settings
from api.tickets import jobs as tickets_jobs
from api.venues import jobs as venues_jobs
from worker import jobs
from worker.relay import outbox_sweep


def periodic_jobs(db: Database, sender: JobSender, settings: Settings) -> list[PeriodicJob]:
    """Every periodic job of the product."""

    def enqueue_each_period(build: Callable[[str], Job]) -> Callable[[str], Awaitable[None]]:
        # Enqueued through the outbox and keyed by the period: once per period whichever host leads.
        async def run(period_key: str) -> None:
            async with db.unit_of_work(sender) as uow:
                uow.enqueue(build(period_key))

        return run

    return [
        outbox_sweep(db, sender, settings),
        PeriodicJob(
            "accounts.purge_expired_sessions", timedelta(days=1), enqueue_each_period(jobs.purge_expired_sessions)
        ),
        PeriodicJob("privacy.retention", timedelta(days=1), enqueue_each_period(jobs.retention)),
        PeriodicJob("dispatch.sweep", timedelta(minutes=1), enqueue_each_period(dispatch_jobs.sweep)),
        PeriodicJob("tickets.sla_scan", timedelta(minutes=1), enqueue_each_period(tickets_jobs.sla_scan)),
        PeriodicJob("library.scan", timedelta(hours=1), enqueue_each_period(library_jobs.scan)),
        PeriodicJob("library.anonymise", timedelta(days=1), enqueue_each_period(library_jobs.anonymise)),
        PeriodicJob("tickets.follow_up_scan", timedelta(hours=1), enqueue_each_period(tickets_jobs.follow_up_scan)),
        PeriodicJob("venues.scan", timedelta(minutes=5), enqueue_each_period(venues_jobs.scan)),
        *(
            PeriodicJob(name, every, enqueue_each_period(build))
            for module in (eldercare_jobs, hall_jobs, listings_jobs, canteen_jobs, notices_jobs)
            for name, every, build in module.PERIODIC
        ),
    ]


def build_scheduler(db: Database, sender: JobSender, settings: Settings) -> Scheduler:
    return Scheduler(db, periodic_jobs(db, sender, settings), tick_seconds=settings.scheduler_tick_seconds)
