"""Who hears about a ticket event, and what they are told."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from api.accounts import service as accounts_service
from api.accounts.models import Account
from api.core.database import UnitOfWork
from api.core.viewer import Role
from api.dispatch.models import Assignment, Responder
from api.notifications import service as notifications
from api.tickets.models import Ticket, TicketCategory, TicketEvent

STATUS_WORDS = {
    "submitted": "已受理",
    "acknowledged": "已回访",
    "assigned": "已派单",
    "in_progress": "处理中",
    "resolved": "已解决",
    "closed": "已办结",
    "rejected": "未受理",
    "duplicate": "重复反映",
    "cancelled": "已撤销",
    "reopened": "重新处理",
}


@dataclass(frozen=True, slots=True)
class Delivered:
    event_id: int
    recipients: list[int]
    added: int


async def deliver(uow: UnitOfWork, *, ticket_id: int, event_id: int) -> Delivered | None:
    """Put a ticket event in the inboxes of the reporter, the assignee and (when needed) staff.

    Idempotent: one notification per (recipient, event).
    """
    ticket = await uow.session.get(Ticket, ticket_id)
    event = await uow.session.get(TicketEvent, event_id)
    if ticket is None or event is None or event.ticket_id != ticket.id:
        return None
    category = await uow.session.get(TicketCategory, ticket.category_id)
    recipients: set[int] = set()
    if event.public and ticket.reporter_account_id is not None:
        recipients.add(ticket.reporter_account_id)
    elif event.public and ticket.reporter_resident_id is not None:
        # Taken by phone or at the desk for a resident: their own login hears back too.
        own = await uow.session.scalars(
            select(Account.id).where(Account.resident_id == ticket.reporter_resident_id, Account.is_active.is_(True))
        )
        recipients.update(own.all())
    if ticket.assignee_responder_id is not None:
        responder = await uow.session.get(Responder, ticket.assignee_responder_id)
        if responder is not None:
            recipients.add(responder.account_id)
    if event.kind == "assignment" and event.note and event.note.startswith("Offered to"):
        offered = await uow.session.scalar(
            select(Responder.account_id)
            .join(Assignment, Assignment.responder_id == Responder.id)
            .where(Assignment.kind == "ticket", Assignment.subject_id == ticket.id, Assignment.state == "offered")
        )
        if offered is not None:
            recipients.add(offered)
    staff_roles: set[Role] = set()
    if event.kind == "status" and event.from_status is None:
        staff_roles = {Role.STAFF}  # a new ticket: someone must call back
    elif event.kind == "sla" or (event.dedupe_key or "").startswith("assignment:escalated"):
        level = ticket.escalation_level
        staff_roles = {Role.STAFF} if level < 3 else {Role.STAFF, Role.COMMUNITY_ADMIN}
    elif event.kind in ("rating", "follow_up") or event.to_status == "reopened":
        staff_roles = {Role.STAFF}
    if staff_roles:
        recipients.update(
            await accounts_service.accounts_with_roles(uow.session, community_id=ticket.community_id, roles=staff_roles)
        )
    if event.actor_account_id is not None:
        recipients.discard(event.actor_account_id)  # nobody is told what they just did
    name = category.name if category else "工单"
    status = STATUS_WORDS.get(ticket.status, ticket.status)
    title = f"{name} #{ticket.id}: {status}"
    body = event.note or f"工单状态：{status}"
    added = await notifications.notify(
        uow,
        recipients=recipients,
        message=notifications.Message(
            community_id=ticket.community_id,
            event_key=f"ticket-event:{event.id}",
            subject_kind="ticket",
            subject_id=ticket.id,
            title=title,
            body=body,
        ),
    )
    return Delivered(event.id, sorted(recipients), added)
