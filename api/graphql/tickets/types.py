"""Ticket types: categories, tickets, events, assignments, responders, notifications."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Self, TypeVar, cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from api.core.viewer import Permission
from api.dispatch import models as dispatch_models
from api.graphql.context import Info
from api.graphql.prefetch import Relation, loaded, rules
from api.graphql.registry.types import Building, Resident
from api.notifications.models import Notification as NotificationModel
from api.tickets import models

R = TypeVar("R")

if TYPE_CHECKING:
    from api.graphql.tickets.photos import TicketPhoto

TicketStatusEnum = strawberry.enum(
    models.TicketStatus, name="TicketStatus", description="Where a ticket is in its workflow."
)
TicketKindEnum = strawberry.enum(
    models.TicketKind, name="TicketKind", description="Report, repair or workshop booking."
)
ChannelEnum = strawberry.enum(models.Channel, name="TicketChannel", description="How the ticket came in.")


@strawberry.enum(description="Where the work is.")
class Area(Enum):
    PUBLIC = "public"
    HOME = "home"


@strawberry.type(description="An extra question a category asks when a ticket is submitted.")
class CategoryQuestion:
    code: str = strawberry.field(description="Key of the answer in `answers`.")
    label: str = strawberry.field(description="The question as shown to the resident.")
    kind: str = strawberry.field(description="text, number, boolean or choice.")
    required: bool = strawberry.field(description="Whether an answer is required.")
    choices: list[str] = strawberry.field(description="The options of a choice question.")
    blocking_answers: JSON = strawberry.field(
        description="Answers that stop submission and show the notice instead (an emergency)."
    )
    notice: str | None = strawberry.field(description="What to tell the resident when an answer blocks submission.")


@strawberry.type(description="A kind of problem or service, with its SLA targets and questions.")
class TicketCategory(relay.Node):
    db_id: relay.NodeID[int]
    code: str = strawberry.field(description="Stable code (also the Open311 service_code).")
    name: str = strawberry.field(description="Name shown to residents.")
    group: str = strawberry.field(description="Group the category is listed under.")
    kind: models.TicketKind = strawberry.field(description="Report, repair or workshop.")
    area: Area = strawberry.field(description="Public area or in a home.")
    skill: str | None = strawberry.field(description="Skill needed to do the work.")
    callback_minutes: int = strawberry.field(description="First-contact target in business minutes.")
    injury_callback_minutes: int = strawberry.field(description="First-contact target when someone is hurt (any hour).")
    resolution_hours: int = strawberry.field(description="Resolution target in business hours.")
    questions: list[CategoryQuestion] = strawberry.field(description="Extra questions to answer on submission.")
    community_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: models.TicketCategory) -> Self:
        return cls(
            db_id=m.id, code=m.code, name=m.name, group=m.group, kind=models.TicketKind(m.kind), area=Area(m.area),
            skill=m.skill, callback_minutes=m.callback_minutes, injury_callback_minutes=m.injury_callback_minutes,
            resolution_hours=m.resolution_hours, community_id=m.community_id,
            questions=[
                CategoryQuestion(code=q["code"], label=q["label"], kind=q.get("kind", "text"),
                                 required=bool(q.get("required")), choices=list(q.get("choices", [])),
                                 blocking_answers=cast(JSON, list(q.get("blocking_answers", []))), notice=q.get("notice"))
                for q in m.questions or []
            ],
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await info.context.loaders.tickets.category.load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1


@strawberry.type(description="Someone who can be sent to do work: staff, a craftsperson or a volunteer.")
class Responder(relay.Node):
    db_id: relay.NodeID[int]
    kind: str = strawberry.field(description="staff, craftsperson or volunteer.")
    display_name: str = strawberry.field(description="Name shown on tickets.")
    skills: list[str] = strawberry.field(description="Skills they offer.")
    max_open: int = strawberry.field(description="How many open jobs they take at once.")
    grab_enabled: bool = strawberry.field(description="May claim work in grab mode (抢单).")
    active: bool = strawberry.field(description="Taking work now.")

    @classmethod
    def from_model(cls, m: dispatch_models.Responder) -> Self:
        return cls(db_id=m.id, kind=m.kind, display_name=m.display_name, skills=list(m.skills or []),
                   max_open=m.max_open, grab_enabled=m.grab_enabled, active=m.active)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await info.context.loaders.tickets.responder.load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type(description="One reason a responder was ranked where they were.")
class RankingReason:
    code: str = strawberry.field(description="Machine-readable reason, e.g. same_building.")
    detail: str = strawberry.field(description="The reason in words.")


@strawberry.type(description="An offer to, or the engagement of, one responder.")
class Assignment(relay.Node):
    db_id: relay.NodeID[int]
    state: str = strawberry.field(description="offered, accepted, declined, expired, cancelled or completed.")
    mode: str = strawberry.field(
        description="auto (offered by the engine), manual (by staff), grab (claimed) or booking (a workshop slot)."
    )
    offered_at: dt.datetime = strawberry.field(description="When it was offered or made.")
    expires_at: dt.datetime | None = strawberry.field(description="When an unanswered offer lapses.")
    reasons: list[RankingReason] = strawberry.field(description="Why this responder was chosen.")
    responder_id: strawberry.Private[int]
    subject_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: dispatch_models.Assignment) -> Self:
        return cls(db_id=m.id, state=m.state, mode=m.mode, offered_at=m.offered_at, expires_at=m.expires_at,
                   reasons=[RankingReason(code=r.get("code", ""), detail=r.get("detail", "")) for r in m.reasons or []],
                   responder_id=m.responder_id, subject_id=m.subject_id)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        return [None for _ in node_ids]  # assignments are reached through their ticket

    @strawberry.field(description="Who it is offered to or assigned to.")
    async def responder(self, info: Info) -> Responder | None:
        row = await info.context.loaders.tickets.responder.load(self.responder_id)
        return Responder.from_model(row) if row else None

    @strawberry.field(description="The ticket this is about.")
    async def ticket(self, info: Info) -> Ticket | None:
        row = await info.context.loaders.tickets.ticket.load(self.subject_id)
        return Ticket.from_model(row) if row else None


@strawberry.type(description="One change of a ticket: status, comment, assignment, SLA or rating.")
class TicketEvent:
    kind: str = strawberry.field(description="status, comment, assignment, sla, rating, follow_up, duplicate_linked.")
    from_status: models.TicketStatus | None = strawberry.field(description="Status before, for status changes.")
    to_status: models.TicketStatus | None = strawberry.field(description="Status after, for status changes.")
    note: str | None = strawberry.field(description="What was said.")
    public: bool = strawberry.field(description="False for internal notes (staff and assignee only).")
    created_at: dt.datetime = strawberry.field(description="When.")
    by_staff: bool = strawberry.field(description="Made by someone other than the reporter (or by the system).")

    @classmethod
    def from_model(cls, m: models.TicketEvent, reporter_account_id: int | None) -> Self:
        return cls(
            kind=m.kind,
            from_status=models.TicketStatus(m.from_status) if m.from_status else None,
            to_status=models.TicketStatus(m.to_status) if m.to_status else None,
            note=m.note, public=m.public, created_at=m.created_at,
            by_staff=m.actor_account_id is None or m.actor_account_id != reporter_account_id,
        )  # fmt: skip


LastArg = Annotated[int, strawberry.argument(description="How many of the latest events (1 to 100).")]


@strawberry.type(description="A 随手拍 report, 报事报修 repair or workshop booking.")
class Ticket(relay.Node):
    db_id: relay.NodeID[int]
    kind: models.TicketKind = strawberry.field(description="Report, repair or workshop booking.")
    status: models.TicketStatus = strawberry.field(description="Where it is in the workflow.")
    channel: models.Channel = strawberry.field(description="How it came in.")
    description: str = strawberry.field(description="The problem as described.")
    answers: JSON = strawberry.field(description="Answers to the category's extra questions.")
    injury: bool = strawberry.field(description="Someone was hurt.")
    unit: int | None = strawberry.field(description="Unit number, if in a building.")
    room: str | None = strawberry.field(description="Room, if in a home.")
    latitude: float | None = strawberry.field(description="WGS84 latitude of a map point.")
    longitude: float | None = strawberry.field(description="WGS84 longitude of a map point.")
    address_text: str | None = strawberry.field(description="Place in words.")
    created_at: dt.datetime = strawberry.field(description="Submitted at.")
    updated_at: dt.datetime = strawberry.field(description="Last change.")
    acknowledged_at: dt.datetime | None = strawberry.field(description="First contact (call-back) made at.")
    resolved_at: dt.datetime | None = strawberry.field(description="Resolved at.")
    closed_at: dt.datetime | None = strawberry.field(description="Closed, rejected, cancelled or marked duplicate at.")
    callback_due_at: dt.datetime | None = strawberry.field(description="First contact is due by.")
    resolution_due_at: dt.datetime | None = strawberry.field(description="Resolution is due by.")
    waiting_on_resident: bool = strawberry.field(description="The SLA clock is paused, waiting on the resident.")
    escalation_level: int = strawberry.field(description="0 none, 1 assignee, 2 staff lead, 3 community admin.")
    cycle: int = strawberry.field(description="1, plus one per reopen.")
    rating: int | None = strawberry.field(description="The reporter's rating, 1 to 5.")
    rating_comment: str | None = strawberry.field(description="The reporter's comment with the rating.")
    contact_name: str | None = strawberry.field(description="Contact name given when staff took it on behalf.")
    community_id: strawberry.Private[int]
    category_id: strawberry.Private[int]
    building_id: strawberry.Private[int | None]
    reporter_resident_id: strawberry.Private[int | None]
    reporter_account_id: strawberry.Private[int | None]
    assignee_responder_id: strawberry.Private[int | None]
    duplicate_of_id: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, m: models.Ticket) -> Self:
        return cls(
            db_id=m.id, kind=models.TicketKind(m.kind), status=models.TicketStatus(m.status),
            channel=models.Channel(m.channel), description=m.description, answers=cast(JSON, m.answers or {}), injury=m.injury,
            unit=m.unit, room=m.room, latitude=m.latitude, longitude=m.longitude, address_text=m.address_text,
            created_at=m.created_at, updated_at=m.updated_at, acknowledged_at=m.acknowledged_at,
            resolved_at=m.resolved_at, closed_at=m.closed_at, callback_due_at=m.callback_due_at,
            resolution_due_at=m.resolution_due_at, waiting_on_resident=m.waiting_since is not None,
            escalation_level=m.escalation_level, cycle=m.cycle, rating=m.rating, rating_comment=m.rating_comment,
            contact_name=m.contact_name, community_id=m.community_id, category_id=m.category_id,
            building_id=m.building_id, reporter_resident_id=m.reporter_resident_id,
            reporter_account_id=m.reporter_account_id, assignee_responder_id=m.assignee_responder_id,
            duplicate_of_id=m.duplicate_of_id,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await info.context.loaders.tickets.ticket.load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="The category.")
    def category(self, info: Info) -> TicketCategory:
        return loaded(info.context.loaders.tickets.category, self.category_id, _category)

    @strawberry.field(description="The building, when the place is a building.")
    def building(self, info: Info) -> Building | None:
        if self.building_id is None:
            return None
        return loaded(info.context.loaders.building, self.building_id, _optional(Building.from_model))

    @strawberry.field(description="The resident who reported it (null when you may not see them).")
    def reporter(self, info: Info) -> Resident | None:
        if self.reporter_resident_id is None:
            return None
        return loaded(info.context.loaders.resident, self.reporter_resident_id, _optional(Resident.from_model))

    @strawberry.field(description="Who is doing the work.")
    def assignee(self, info: Info) -> Responder | None:
        if self.assignee_responder_id is None:
            return None
        return loaded(
            info.context.loaders.tickets.responder, self.assignee_responder_id, _optional(Responder.from_model)
        )

    @strawberry.field(description="The open offer or the accepted assignment, with the ranking reasons (staff).")
    async def assignment(self, info: Info) -> Assignment | None:
        if not info.context.viewer.can(Permission.MANAGE_TICKETS, self.community_id):
            return None
        row = await info.context.loaders.tickets.active_assignment.load(self.db_id)
        return Assignment.from_model(row) if row else None

    @strawberry.field(description="The ticket this one duplicates.")
    async def duplicate_of(self, info: Info) -> Ticket | None:
        if self.duplicate_of_id is None:
            return None
        row = await info.context.loaders.tickets.ticket.load(self.duplicate_of_id)
        return Ticket.from_model(row) if row else None

    @strawberry.field(description="The latest events, oldest first; internal notes only for staff and the assignee.")
    def events(self, info: Info, last: LastArg = 20) -> list[TicketEvent]:
        last = max(1, min(last, 100))
        reporter = self.reporter_account_id

        def convert(rows: list[models.TicketEvent]) -> list[TicketEvent]:
            return [TicketEvent.from_model(e, reporter) for e in rows]

        if info.context.viewer.can(Permission.MANAGE_TICKETS, self.community_id) or self.assignee_responder_id is None:
            internal = info.context.viewer.can(Permission.MANAGE_TICKETS, self.community_id)
            return loaded(info.context.loaders.tickets.events, (self.db_id, last, internal), convert)
        return self._events_for_assignee(info, last, convert)  # type: ignore[return-value]

    async def _events_for_assignee(
        self, info: Info, last: int, convert: Callable[[list[models.TicketEvent]], list[TicketEvent]]
    ) -> list[TicketEvent]:
        """Internal notes too when the viewer is the assignee (which needs the responder row first)."""
        assert self.assignee_responder_id is not None
        responder = await info.context.loaders.tickets.responder.load(self.assignee_responder_id)
        internal = responder is not None and responder.account_id == info.context.viewer.account_id
        return convert(await info.context.loaders.tickets.events.load((self.db_id, last, internal)))

    @strawberry.field(description="Photos of the ticket, oldest first (none when you may only see it as a duplicate).")
    async def photos(self, info: Info) -> list[Annotated[TicketPhoto, strawberry.lazy("api.graphql.tickets.photos")]]:
        from api.graphql.tickets.photos import TicketPhoto

        rows = await info.context.loaders.tickets.photos.load(self.db_id)
        return [TicketPhoto.from_model(r) for r in rows]


def _category(row: models.TicketCategory | None) -> TicketCategory:
    assert row is not None
    return TicketCategory.from_model(row)


def _optional(convert: Callable[[Any], R]) -> Callable[[Any], R | None]:
    return lambda row: convert(row) if row is not None else None


@strawberry.type(description="A message in the viewer's in-app inbox.")
class Notification(relay.Node):
    db_id: relay.NodeID[int]
    title: str = strawberry.field(description="Headline.")
    body: str = strawberry.field(description="Text.")
    subject_kind: str = strawberry.field(description="What it is about: ticket, visit, ...")
    created_at: dt.datetime = strawberry.field(description="When it was sent.")
    read_at: dt.datetime | None = strawberry.field(description="When the viewer read it.")
    subject_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: NotificationModel) -> Self:
        return cls(db_id=m.id, title=m.title, body=m.body, subject_kind=m.subject_kind, created_at=m.created_at,
                   read_at=m.read_at, subject_id=m.subject_id)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        from sqlalchemy import select

        ids = [_int(i) for i in node_ids]
        account = info.context.viewer.account_id
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(NotificationModel).where(
                        NotificationModel.id.in_(ids), NotificationModel.recipient_account_id == account
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="The ticket, when the notification is about one.")
    async def ticket(self, info: Info) -> Ticket | None:
        if self.subject_kind != "ticket":
            return None
        row = await info.context.loaders.tickets.ticket.load(self.subject_id)
        return Ticket.from_model(row) if row else None


# -- look-ahead loading (api/graphql/prefetch.py) ------------------------------------------------


def _ids(objects: Any, attr: str) -> list[int]:
    return list(dict.fromkeys(v for o in objects if (v := getattr(o, attr)) is not None))


async def _load(loader: Any, ids: list[int]) -> list[Any]:
    return [row for row in await loader.load_many(ids) if row is not None] if ids else []


async def _events(context: Any, tickets: Any, selected: Any) -> list[Any]:
    """The selected number of latest events of each ticket, for the tickets whose staff the viewer is."""
    last = max(1, min(int((selected.arguments or {}).get("last") or 20), 100))
    viewer = context.viewer
    keys = [
        (getattr(t, "db_id", None) or t.id, last, True)
        for t in tickets
        if viewer.can(Permission.MANAGE_TICKETS, t.community_id)
    ]
    return list(await context.loaders.tickets.events.load_many(keys)) if keys else []


rules(
    "Ticket",
    {
        "category": Relation(lambda c, ts, _f: _load(c.loaders.tickets.category, _ids(ts, "category_id"))),
        "building": Relation(lambda c, ts, _f: _load(c.loaders.building, _ids(ts, "building_id")), "Building"),
        "reporter": Relation(lambda c, ts, _f: _load(c.loaders.resident, _ids(ts, "reporter_resident_id")), "Resident"),
        "assignee": Relation(lambda c, ts, _f: _load(c.loaders.tickets.responder, _ids(ts, "assignee_responder_id"))),
        "events": Relation(_events),
    },
)
