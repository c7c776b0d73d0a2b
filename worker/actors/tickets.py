"""Ticket actors: follow dispatch, notify, and scan the SLA and follow-up clocks."""

from __future__ import annotations

import logging

import dramatiq

from api.tickets import notify as tickets_notify
from api.tickets import service as tickets_service
from worker import runtime

log = logging.getLogger(__name__)


async def handle_assignment_changed(request_id: int, event: str, assignment_id: int | None) -> None:
    """Mirror a dispatch change on the ticket. Idempotent: the event row is keyed by (event, assignment)."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await tickets_service.on_assignment_changed(
            uow, request_id=request_id, event=event, assignment_id=assignment_id
        )


async def handle_notify(ticket_id: int, event_id: int) -> None:
    """Deliver a ticket event to inboxes. Idempotent: one notification per (recipient, event)."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await tickets_notify.deliver(uow, ticket_id=ticket_id, event_id=event_id)


async def handle_sla_scan(period_key: str) -> None:
    """Warn and escalate. Idempotent: conditional updates on warned time and escalation level."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        outcome = await tickets_service.sla_scan(uow)
    if outcome.warned or outcome.escalated:
        log.info("SLA scan %s: %d warned, %d escalated", period_key, len(outcome.warned), len(outcome.escalated))


async def handle_follow_up_scan(period_key: str) -> None:
    """Ask "is it still fixed?" once per resolved ticket. Idempotent: the due time is cleared when asked."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await tickets_service.follow_ups_due(uow)


@dramatiq.actor(actor_name="ticket.assignment_changed", queue_name="events", max_retries=10, time_limit=60_000)
async def assignment_changed(request_id: int, event: str, assignment_id: int | None = None) -> None:
    await handle_assignment_changed(request_id, event, assignment_id)


@dramatiq.actor(actor_name="tickets.notify", queue_name="notifications", max_retries=10, time_limit=60_000)
async def notify(ticket_id: int, event_id: int) -> None:
    await handle_notify(ticket_id, event_id)


@dramatiq.actor(actor_name="tickets.sla_scan", queue_name="tickets", max_retries=3, time_limit=300_000)
async def sla_scan(period_key: str) -> None:
    await handle_sla_scan(period_key)


@dramatiq.actor(actor_name="tickets.follow_up_scan", queue_name="tickets", max_retries=3, time_limit=300_000)
async def follow_up_scan(period_key: str) -> None:
    await handle_follow_up_scan(period_key)
