"""Ticket subscriptions: live updates of one ticket over graphql-transport-ws."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay

from api.core.errors import NotFound
from api.core.pubsub import ticket_channel
from api.graphql.context import Context, Info
from api.graphql.loaders import Loaders
from api.graphql.pagination import decode_id
from api.graphql.tickets.types import Ticket
from api.tickets import service as tickets_service
from api.tickets.models import TicketStatus

log = logging.getLogger(__name__)


@strawberry.type(description="One change of a ticket, pushed as it happens.")
class TicketUpdate:
    ticket: Ticket = strawberry.field(description="The ticket as it is now.")
    kind: str = strawberry.field(
        description="What happened: status, comment, assignment, sla, rating, follow_up, duplicate_linked."
    )
    status: TicketStatus = strawberry.field(
        description="The ticket's status after the change (for a note: when it was sent)."
    )
    note: str | None = strawberry.field(description="What was said; internal notes reach only staff and the assignee.")
    public: bool = strawberry.field(description="False for an internal change (staff and the assignee only).")
    at: dt.datetime = strawberry.field(description="When it happened.")


def _fresh_loaders(context: Context) -> Loaders:
    """New loaders for each update: a long-lived connection must not serve rows cached earlier."""
    context.loaders = Loaders(
        context.db, context.viewer, context.today, cipher=context.cipher, request_id=context.request_id
    )
    return context.loaders


def _update_of(message: dict[str, Any], ticket: Ticket) -> TicketUpdate | None:
    try:
        return TicketUpdate(
            ticket=ticket,
            kind=str(message["kind"]),
            status=TicketStatus(message["status"]),
            note=message.get("note"),
            public=bool(message.get("public", True)),
            at=dt.datetime.fromisoformat(message["at"]),
        )
    except (KeyError, TypeError, ValueError):
        log.warning("ignoring a malformed ticket update for ticket %s", ticket.db_id)
        return None


async def _updates(context: Context, ticket_id: int, channels: list[str]) -> AsyncGenerator[TicketUpdate, None]:
    async with context.services.pubsub.subscribe(*channels) as messages:
        async for message in messages:
            row = await _fresh_loaders(context).tickets.ticket.load(ticket_id)
            if row is None:
                return  # no longer visible to the viewer (e.g. reassigned away): the stream ends
            update = _update_of(message, Ticket.from_model(row))
            if update is not None:
                yield update


@strawberry.type
class TicketsSubscription:
    @strawberry.subscription(
        description="Changes of one ticket as they happen; staff and the assignee also get internal notes."
    )
    async def ticket_updates(
        self,
        info: Info,
        ticket_id: Annotated[relay.GlobalID, strawberry.argument(description="The ticket.")],
    ) -> AsyncGenerator[TicketUpdate, None]:
        context = info.context
        tid = decode_id(ticket_id, "Ticket")
        async with context.db.read_session() as session:
            try:
                ticket = await tickets_service.get_visible(session, context.viewer, tid)
            except NotFound as exc:
                raise GraphQLError(exc.message, extensions={"code": exc.code}) from exc
            who = await tickets_service.viewpoint(session, context.viewer, ticket)
        channels = [ticket_channel(ticket.id)]
        if who.staff or who.assignee:
            channels.append(ticket_channel(ticket.id, staff=True))
        return _updates(context, ticket.id, channels)
