"""Dataloaders for tickets, categories, responders, events and assignments."""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property
from typing import Any

from sqlalchemy import func, select
from strawberry.dataloader import DataLoader

from api.core.database import Database
from api.core.db import any_of, read_plain
from api.core.viewer import Viewer
from api.dispatch.models import ACTIVE_STATES, Assignment, Responder
from api.tickets import service as tickets_service
from api.tickets.models import Ticket, TicketCategory, TicketEvent, TicketPhoto

EVENTS_PER_TICKET_MAX = 100


class TicketLoaders:
    def __init__(self, db: Database, viewer: Viewer) -> None:
        self.db = db
        self.viewer = viewer

    @cached_property
    def ticket(self) -> DataLoader[int, Ticket | None]:
        return DataLoader(self._tickets)

    @cached_property
    def category(self) -> DataLoader[int, TicketCategory | None]:
        return DataLoader(self._categories)

    @cached_property
    def responder(self) -> DataLoader[int, Responder | None]:
        return DataLoader(self._responders)

    @cached_property
    def events(self) -> DataLoader[tuple[int, int, bool], list[TicketEvent]]:
        """Keyed by (ticket id, last n, include internal notes)."""
        return DataLoader(self._events)

    @cached_property
    def active_assignment(self) -> DataLoader[int, Assignment | None]:
        return DataLoader(self._active_assignments)

    @cached_property
    def photos(self) -> DataLoader[int, list[TicketPhoto]]:
        return DataLoader(self._photos)

    def _any(self, column: Any, ids: list[int]) -> Any:
        return any_of(column, ids, sqlite=self.db.is_sqlite)

    async def _tickets(self, ids: list[int]) -> list[Ticket | None]:
        async with self.db.read_session() as session:
            rows = await read_plain(
                session, tickets_service.visible_tickets(self.viewer).where(self._any(Ticket.id, ids))
            )
        by_id = {t.id: t for t in rows}
        return [by_id.get(i) for i in ids]

    async def _categories(self, ids: list[int]) -> list[TicketCategory | None]:
        async with self.db.read_session() as session:
            rows = await read_plain(
                session,
                select(TicketCategory).where(
                    self._any(TicketCategory.id, ids), TicketCategory.community_id.in_(self.viewer.community_ids)
                ),
            )
        by_id = {c.id: c for c in rows}
        return [by_id.get(i) for i in ids]

    async def _responders(self, ids: list[int]) -> list[Responder | None]:
        async with self.db.read_session() as session:
            rows = await read_plain(
                session,
                select(Responder).where(
                    self._any(Responder.id, ids), Responder.community_id.in_(self.viewer.community_ids)
                ),
            )
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    async def _events(self, keys: list[tuple[int, int, bool]]) -> list[list[TicketEvent]]:
        """The last n events of each ticket, oldest first, in one statement per (n, internal) group."""
        groups: dict[tuple[int, bool], list[int]] = defaultdict(list)
        for ticket_id, last, internal in keys:
            groups[(last, internal)].append(ticket_id)
        found: dict[tuple[int, int, bool], list[TicketEvent]] = {}
        async with self.db.read_session() as session:
            for (last, internal), ticket_ids in groups.items():
                conds: list[Any] = [self._any(TicketEvent.ticket_id, ticket_ids)]
                if not internal:
                    conds.append(TicketEvent.public.is_(True))
                rn = (
                    func.row_number()
                    .over(partition_by=TicketEvent.ticket_id, order_by=TicketEvent.id.desc())
                    .label("rn")
                )
                sub = select(TicketEvent.id, rn).where(*conds).subquery()
                rows = await read_plain(
                    session,
                    select(TicketEvent)
                    .join(sub, sub.c.id == TicketEvent.id)
                    .where(sub.c.rn <= last)
                    .order_by(TicketEvent.ticket_id, TicketEvent.id),
                )
                per: dict[int, list[TicketEvent]] = {tid: [] for tid in ticket_ids}
                for event in rows:
                    per[event.ticket_id].append(event)
                for tid in ticket_ids:
                    found[(tid, last, internal)] = per[tid]
        return [found[k] for k in keys]

    async def _active_assignments(self, ticket_ids: list[int]) -> list[Assignment | None]:
        async with self.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(Assignment).where(
                        Assignment.kind == tickets_service.KIND,
                        self._any(Assignment.subject_id, ticket_ids),
                        Assignment.state.in_(ACTIVE_STATES),
                    )
                )
            ).all()
        by_subject = {a.subject_id: a for a in rows}
        return [by_subject.get(i) for i in ticket_ids]

    async def _photos(self, ticket_ids: list[int]) -> list[list[TicketPhoto]]:
        """Photos of tickets the viewer may see, oldest first (a ticket seen as a possible duplicate has none)."""
        visible = tickets_service.visible_tickets(self.viewer).with_only_columns(Ticket.id)
        async with self.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(TicketPhoto)
                    .where(TicketPhoto.ticket_id.in_(ticket_ids), TicketPhoto.ticket_id.in_(visible))
                    .order_by(TicketPhoto.ticket_id, TicketPhoto.id)
                )
            ).all()
        per: dict[int, list[TicketPhoto]] = defaultdict(list)
        for photo in rows:
            per[photo.ticket_id].append(photo)
        return [per[i] for i in ticket_ids]
