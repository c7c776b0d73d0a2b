"""Ticket actors: follow dispatch, notify, and scan the SLA and follow-up clocks."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from api.core.pubsub import global_id, ticket_channel
from api.notifications import webhooks
from api.tickets import notify as tickets_notify
from api.tickets import service as tickets_service
from api.tickets.models import Ticket, TicketEvent
from worker import runtime

log = logging.getLogger(__name__)


async def handle_assignment_changed(request_id: int, event: str, assignment_id: int | None) -> None:
    """Mirror a dispatch change on the ticket. Idempotent: the event row is keyed by (event, assignment)."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await tickets_service.on_assignment_changed(
            uow, request_id=request_id, event=event, assignment_id=assignment_id
        )


def ticket_update(ticket: Ticket, event: TicketEvent) -> dict[str, Any]:
    """What live subscribers and webhooks are told: ids, kind, status and the note; no personal data."""
    return {
        "ticketId": global_id("Ticket", ticket.id),
        "eventId": event.id,
        "kind": event.kind,
        "status": event.to_status or ticket.status,
        "note": event.note,
        "public": event.public,
        "at": event.created_at.isoformat(),
    }


async def handle_notify(ticket_id: int, event_id: int) -> None:
    """Deliver a ticket event to inboxes and (if public) webhooks, then push it to live subscribers.

    Idempotent: one notification per (recipient, event) and one webhook delivery per (endpoint,
    event). The push is not: a redelivered job publishes it again, which is acceptable for a
    live hint (clients dedupe by eventId) and better than losing it. Internal events go only to
    the staff channel, so residents never see internal notes.
    """
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        delivered = await tickets_notify.deliver(uow, ticket_id=ticket_id, event_id=event_id)
        ticket = await uow.session.get(Ticket, ticket_id)
        event = await uow.session.get(TicketEvent, event_id)
        if delivered is None or ticket is None or event is None:
            return
        update = ticket_update(ticket, event)
        if event.public:  # a community's front end hears what the reporter may hear, nothing internal
            await webhooks.enqueue_deliveries(
                uow,
                community_id=ticket.community_id,
                event_key=f"ticket-event:{event.id}",
                payload={
                    "event": "ticket.updated",
                    "communityId": global_id("Community", ticket.community_id),
                    **update,
                },
            )
    await runtime.pubsub().publish(ticket_channel(ticket.id, staff=not event.public), update)


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
