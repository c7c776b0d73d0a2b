"""Venue actors: waitlist offers and their expiry, reminders, attendance, cancellation notices, the scan."""

from __future__ import annotations

import logging

import dramatiq

from api.venues import service as venues_service
from worker import runtime

log = logging.getLogger(__name__)


def _policy() -> venues_service.VenuePolicy:
    return venues_service.VenuePolicy.from_settings(runtime.settings())


async def handle_offer_next(activity_id: int) -> None:
    """Offer free seats to the waitlist in order. Idempotent: only free seats and waitlisted sign-ups change."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        offered = await venues_service.offer_next(uow, activity_id=activity_id, policy=_policy())
    if offered:
        log.info("activity %d: offered %d seat(s) from the waitlist", activity_id, len(offered))


async def handle_expire_offer(sign_up_id: int) -> None:
    """Lapse an unanswered offer and move the seat on. Idempotent: only an OFFERED sign-up past expiry changes."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await venues_service.expire_offer(uow, sign_up_id=sign_up_id)


async def handle_send_reminders(activity_id: int) -> None:
    """The day-before reminders. Idempotent: `reminded_at` is set once, one notice per (sign-up, kind)."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await venues_service.send_reminders(uow, activity_id=activity_id)


async def handle_close_attendance(activity_id: int) -> None:
    """Record no-shows once check-in has closed. Idempotent: `attendance_closed_at` is set once."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await venues_service.close_attendance(uow, activity_id=activity_id)


async def handle_activity_cancelled(activity_id: int) -> None:
    """Tell everyone signed up that the activity was called off. Idempotent: one notice per (sign-up, kind)."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await venues_service.tell_activity_cancelled(uow, activity_id=activity_id)


async def handle_scan(period_key: str) -> None:
    """Enqueue what is due (each job idempotent), so a repeat of the scan changes nothing twice."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        outcome = await venues_service.scan(uow)
    due = (outcome.reminders, outcome.attendance, outcome.expired_offers, outcome.refills)
    if any(due):
        log.info(
            "venues scan %s: %d reminders, %d attendance, %d lapsed offers, %d refills",
            period_key, *(len(d) for d in due),
        )  # fmt: skip


@dramatiq.actor(actor_name="venues.offer_next", queue_name="venues", max_retries=10, time_limit=60_000)
async def offer_next(activity_id: int) -> None:
    await handle_offer_next(activity_id)


@dramatiq.actor(actor_name="venues.expire_offer", queue_name="venues", max_retries=10, time_limit=60_000)
async def expire_offer(sign_up_id: int) -> None:
    await handle_expire_offer(sign_up_id)


@dramatiq.actor(actor_name="venues.send_reminders", queue_name="venues", max_retries=5, time_limit=120_000)
async def send_reminders(activity_id: int) -> None:
    await handle_send_reminders(activity_id)


@dramatiq.actor(actor_name="venues.close_attendance", queue_name="venues", max_retries=5, time_limit=120_000)
async def close_attendance(activity_id: int) -> None:
    await handle_close_attendance(activity_id)


@dramatiq.actor(actor_name="venues.activity_cancelled", queue_name="notifications", max_retries=10, time_limit=120_000)
async def activity_cancelled(activity_id: int) -> None:
    await handle_activity_cancelled(activity_id)


@dramatiq.actor(actor_name="venues.scan", queue_name="venues", max_retries=3, time_limit=300_000)
async def scan(period_key: str) -> None:
    await handle_scan(period_key)
