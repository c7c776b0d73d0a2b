"""Tickets: submit, move through the workflow, mark duplicates, rate, follow up; react to dispatch."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.business_hours import BusinessCalendar
from api.core.clock import utc_now
from api.core.database import UnitOfWork
from api.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from api.core.viewer import Permission, Viewer
from api.dispatch import service as dispatch_service
from api.dispatch.models import Assignment, AssignmentState, DispatchMode, Responder
from api.registry import calendar as registry_calendar
from api.registry.models import Building, Household, Resident
from api.tickets import jobs
from api.tickets.categories import validate_answers
from api.tickets.models import (
    OPEN_STATUS_VALUES,
    Channel,
    Ticket,
    TicketCategory,
    TicketEvent,
    TicketKind,
    TicketStatus,
)

KIND = "ticket"  # the dispatch kind
MAX_DESCRIPTION = 4000
MAX_NOTE = 2000
EARTH_RADIUS_M = 6_371_000


class IllegalTransition(Conflict):
    code = "ILLEGAL_TRANSITION"


class AlreadyRated(Conflict):
    code = "ALREADY_RATED"


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"  # first contact made (the call-back)
    START = "start"
    AWAIT_RESIDENT = "await_resident"  # pause the SLA clock
    RESUME = "resume"
    RESOLVE = "resolve"
    CLOSE = "close"
    REJECT = "reject"
    CANCEL = "cancel"
    REOPEN = "reopen"


S = TicketStatus
# action -> (statuses it may start from, status it leads to; None keeps the status)
TRANSITIONS: dict[Action, tuple[frozenset[TicketStatus], TicketStatus | None]] = {
    Action.ACKNOWLEDGE: (frozenset({S.SUBMITTED, S.REOPENED, S.ASSIGNED, S.IN_PROGRESS}), None),
    Action.START: (frozenset({S.ASSIGNED, S.ACKNOWLEDGED, S.REOPENED}), S.IN_PROGRESS),
    Action.AWAIT_RESIDENT: (frozenset({S.SUBMITTED, S.ACKNOWLEDGED, S.ASSIGNED, S.IN_PROGRESS, S.REOPENED}), None),
    Action.RESUME: (frozenset({S.SUBMITTED, S.ACKNOWLEDGED, S.ASSIGNED, S.IN_PROGRESS, S.REOPENED}), None),
    Action.RESOLVE: (frozenset({S.ACKNOWLEDGED, S.ASSIGNED, S.IN_PROGRESS, S.REOPENED}), S.RESOLVED),
    Action.CLOSE: (frozenset({S.RESOLVED}), S.CLOSED),
    Action.REJECT: (frozenset({S.SUBMITTED, S.ACKNOWLEDGED, S.REOPENED}), S.REJECTED),
    Action.CANCEL: (frozenset({S.SUBMITTED, S.ACKNOWLEDGED, S.ASSIGNED}), S.CANCELLED),
    Action.REOPEN: (frozenset({S.RESOLVED, S.CLOSED}), S.REOPENED),
}
# Pausing the SLA clock is staff's call, never the assignee's whose clock it is.
STAFF_ONLY = frozenset({Action.REJECT, Action.AWAIT_RESIDENT, Action.RESUME})
ASSIGNEE_MAY = frozenset({Action.ACKNOWLEDGE, Action.START, Action.RESOLVE})
REPORTER_MAY = frozenset({Action.CANCEL, Action.CLOSE, Action.REOPEN})
NOTE_REQUIRED = frozenset({Action.REJECT, Action.REOPEN})


@dataclass(frozen=True, slots=True)
class Place:
    building_id: int | None = None
    unit: int | None = None
    room: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    address_text: str | None = None


@dataclass(frozen=True, slots=True)
class TicketDraft:
    category_id: int
    description: str
    place: Place
    injury: bool = False
    answers: dict[str, Any] = field(default_factory=dict)
    channel: Channel = Channel.APP
    on_behalf_of_resident_id: int | None = None  # staff taking a phone call or a walk-in
    contact_name: str | None = None
    preferred_responder_id: int | None = None  # who is asked first (a workshop booking: its craftsperson)


@dataclass(frozen=True, slots=True)
class Viewpoint:
    """How the viewer relates to one ticket."""

    staff: bool
    reporter: bool
    assignee: bool

    @property
    def any(self) -> bool:
        return self.staff or self.reporter or self.assignee


ALWAYS_OPEN = BusinessCalendar(always_open=True)


async def calendar_for(session: AsyncSession, community_id: int) -> BusinessCalendar:
    """The community's business hours (its own, or the default office hours)."""
    return await registry_calendar.calendar_for(session, community_id)


def _callback_clock(calendar: BusinessCalendar, injury: bool) -> BusinessCalendar:
    """The call-back runs on business hours; when someone is hurt it runs at all hours (and is tighter)."""
    return ALWAYS_OPEN if injury else calendar


def _callback_minutes(category: TicketCategory, injury: bool) -> int:
    return category.injury_callback_minutes if injury else category.callback_minutes


def _clean_text(
    value: str, *, field: str, limit: int, required: bool = True, missing: str = "Please describe the problem."
) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise ValidationFailed(missing, field=field)
    if len(cleaned) > limit:
        raise ValidationFailed(f"At most {limit} characters.", field=field)
    return cleaned


# -- reading ----------------------------------------------------------------------------------


def visible_tickets(viewer: Viewer) -> Select[Ticket]:
    """Tickets that exist for the viewer: all of their staff communities, plus their own, assigned and offered."""
    staff_of = viewer.communities_where(Permission.MANAGE_TICKETS)
    conds: list[Any] = [Ticket.community_id.in_(staff_of)]
    if viewer.account_id is not None:
        mine = select(Responder.id).where(Responder.account_id == viewer.account_id)
        conds.append(Ticket.reporter_account_id == viewer.account_id)
        conds.append(Ticket.assignee_responder_id.in_(mine))
        # An open offer: the responder must see the work to decide.
        conds.append(
            Ticket.id.in_(
                select(Assignment.subject_id).where(
                    Assignment.kind == KIND,
                    Assignment.state == AssignmentState.OFFERED.value,
                    Assignment.responder_id.in_(mine),
                )
            )
        )
    if viewer.resident_id is not None:
        conds.append(Ticket.reporter_resident_id == viewer.resident_id)
    return select(Ticket).where(or_(*conds), Ticket.community_id.in_(viewer.community_ids))


async def viewpoint(session: AsyncSession, viewer: Viewer, ticket: Ticket) -> Viewpoint:
    assignee = False
    if ticket.assignee_responder_id is not None and viewer.account_id is not None:
        responder = await session.get(Responder, ticket.assignee_responder_id)
        assignee = responder is not None and responder.account_id == viewer.account_id
    return Viewpoint(
        staff=viewer.can(Permission.MANAGE_TICKETS, ticket.community_id),
        reporter=(viewer.account_id is not None and ticket.reporter_account_id == viewer.account_id)
        or (viewer.resident_id is not None and ticket.reporter_resident_id == viewer.resident_id),
        assignee=assignee,
    )


async def get_visible(session: AsyncSession, viewer: Viewer, ticket_id: int, *, lock: bool = False) -> Ticket:
    """The ticket if it exists for the viewer. Raises NotFound."""
    stmt = visible_tickets(viewer).where(Ticket.id == ticket_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=Ticket)
    ticket = await session.scalar(stmt)
    if ticket is None:
        raise NotFound("No such ticket.", field="ticketId")
    return ticket


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


async def possible_duplicates(
    session: AsyncSession, viewer: Viewer, *, category_id: int, place: Place, limit: int = 10
) -> list[Ticket]:
    """Open tickets of the same category at the same building or within the category's radius."""
    viewer.require_authenticated()
    category = await session.get(TicketCategory, category_id)
    if category is None or category.community_id not in viewer.community_ids:
        raise NotFound("No such category.", field="categoryId")
    base = select(Ticket).where(
        Ticket.community_id == category.community_id,
        Ticket.category_id == category.id,
        Ticket.status.in_(OPEN_STATUS_VALUES),
    )
    if place.building_id is not None:
        rows = (await session.scalars(base.where(Ticket.building_id == place.building_id).limit(limit))).all()
        return list(rows)
    if place.latitude is None or place.longitude is None:
        return []
    # A bounding box in SQL narrows the rows; the exact distance is checked here. The box uses the
    # same Earth radius as distance_m, so every point within the radius is inside it.
    dlat = math.degrees(category.duplicate_radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(place.latitude)), 0.01)
    rows = (
        await session.scalars(
            base.where(
                Ticket.latitude.between(place.latitude - dlat, place.latitude + dlat),
                Ticket.longitude.between(place.longitude - dlon, place.longitude + dlon),
            ).limit(200)
        )
    ).all()
    near = [
        t
        for t in rows
        if t.latitude is not None
        and t.longitude is not None
        and distance_m(place.latitude, place.longitude, t.latitude, t.longitude) <= category.duplicate_radius_m
    ]
    return near[:limit]


# -- writing ----------------------------------------------------------------------------------


def _event(
    uow: UnitOfWork,
    ticket: Ticket,
    *,
    kind: str,
    viewer: Viewer | None,
    from_status: str | None = None,
    to_status: str | None = None,
    note: str | None = None,
    public: bool = True,
    dedupe_key: str | None = None,
) -> TicketEvent:
    event = TicketEvent(
        community_id=ticket.community_id,
        ticket_id=ticket.id,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor_account_id=viewer.account_id if viewer else None,
        note=note,
        public=public,
        dedupe_key=dedupe_key,
        created_at=utc_now(),
    )
    uow.session.add(event)
    return event


async def _record(uow: UnitOfWork, ticket: Ticket, **kwargs: Any) -> TicketEvent:
    event = _event(uow, ticket, **kwargs)
    await uow.session.flush()
    uow.enqueue(jobs.notify(ticket.id, event.id))
    return event


async def _place_of(uow: UnitOfWork, community_id: int, place: Place) -> tuple[int | None, int | None]:
    """Validate the place; returns (building_id, compound_id)."""
    if place.building_id is not None:
        building = await uow.session.get(Building, place.building_id)
        if building is None or building.community_id != community_id:
            raise NotFound("No such building in this community.", field="buildingId")
        if place.unit is not None and not 1 <= place.unit <= building.units:
            raise ValidationFailed(f"Building {building.name} has units 1 to {building.units}.", field="unit")
        return building.id, building.compound_id
    if place.latitude is not None or place.longitude is not None:
        if place.latitude is None or place.longitude is None:
            raise ValidationFailed("Give both latitude and longitude.", field="latitude")
        if not (-90 <= place.latitude <= 90 and -180 <= place.longitude <= 180):
            raise ValidationFailed("That is not a place on Earth.", field="latitude")
        return None, None
    if place.address_text and place.address_text.strip():
        return None, None
    raise ValidationFailed("Say where: a building, a map point or an address.", field="place")


@dataclass(frozen=True, slots=True)
class _Reporter:
    """Who a new ticket is from: (reporter resident, reporter account)."""

    resident_id: int | None
    account_id: int | None


async def submit(uow: UnitOfWork, *, viewer: Viewer, draft: TicketDraft, now: datetime | None = None) -> Ticket:
    """Submit a report, repair request or workshop booking and start looking for someone.

    Raises Unauthenticated, NotFound, ValidationFailed, EmergencyNotice, Forbidden.
    """
    viewer.require_authenticated()
    if draft.channel is Channel.OPEN311:
        raise ValidationFailed("Open311 requests come through the Open311 endpoint.", field="channel")

    async def reporter(community_id: int) -> _Reporter:
        if draft.channel in (Channel.PHONE, Channel.WALK_IN) or draft.on_behalf_of_resident_id is not None:
            viewer.require(Permission.MANAGE_TICKETS, community_id)
            if draft.on_behalf_of_resident_id is not None:
                resident = await uow.session.get(Resident, draft.on_behalf_of_resident_id)
                if resident is None or resident.community_id != community_id:
                    raise NotFound("No such resident in this community.", field="onBehalfOfResidentId")
            elif not (draft.contact_name or "").strip():
                raise ValidationFailed("Name the resident or give a contact name.", field="contactName")
            return _Reporter(resident_id=draft.on_behalf_of_resident_id, account_id=None)
        return _Reporter(resident_id=viewer.resident_id, account_id=viewer.account_id)

    return await _create_ticket(
        uow, draft=draft, community_ids=viewer.community_ids, reporter=reporter, actor=viewer, now=now or utc_now()
    )


async def submit_from_open311(
    uow: UnitOfWork, *, community_id: int, draft: TicketDraft, contact_name: str, now: datetime | None = None
) -> Ticket:
    """Submit a ticket that an Open311 client (e.g. the city hotline) filed for the community.

    The client is trusted for its one community; the ticket has no reporter account, only a
    contact name, and comes in on the open311 channel. Raises NotFound, ValidationFailed, EmergencyNotice.
    """

    async def reporter(_community_id: int) -> _Reporter:
        return _Reporter(resident_id=None, account_id=None)

    open311_draft = replace(draft, channel=Channel.OPEN311, on_behalf_of_resident_id=None, contact_name=contact_name)
    return await _create_ticket(
        uow,
        draft=open311_draft,
        community_ids=frozenset({community_id}),
        reporter=reporter,
        actor=None,
        now=now or utc_now(),
    )


async def _create_ticket(
    uow: UnitOfWork,
    *,
    draft: TicketDraft,
    community_ids: frozenset[int],
    reporter: Callable[[int], Awaitable[_Reporter]],
    actor: Viewer | None,
    now: datetime,
) -> Ticket:
    """Validate the draft in one of `community_ids`, create the ticket and open its dispatch request."""
    category = await uow.session.get(TicketCategory, draft.category_id)
    if category is None or not category.active or category.community_id not in community_ids:
        raise NotFound("No such category.", field="categoryId")
    community_id = category.community_id
    description = _clean_text(draft.description, field="description", limit=MAX_DESCRIPTION)
    answers = validate_answers(category, draft.answers)
    building_id, compound_id = await _place_of(uow, community_id, draft.place)

    who = await reporter(community_id)
    if category.area == "home" and building_id is None and category.kind != TicketKind.WORKSHOP.value:
        raise ValidationFailed("A repair at home needs the building, unit and room.", field="buildingId")
    if draft.place.room is not None and building_id is not None and draft.place.unit is not None:
        household = await uow.session.scalar(
            select(Household.id).where(
                Household.building_id == building_id,
                Household.unit == draft.place.unit,
                Household.room == draft.place.room.strip(),
            )
        )
        if household is None and category.area == "home":
            raise NotFound("No household at that unit and room.", field="room")

    calendar = await calendar_for(uow.session, community_id)
    callback_due = _callback_clock(calendar, draft.injury).add(now, _callback_minutes(category, draft.injury))
    ticket = Ticket(
        community_id=community_id,
        category_id=category.id,
        kind=category.kind,
        status=TicketStatus.SUBMITTED.value,
        channel=draft.channel.value,
        description=description,
        answers=answers,
        injury=draft.injury,
        reporter_resident_id=who.resident_id,
        reporter_account_id=who.account_id,
        created_by_account_id=actor.account_id if actor else None,
        contact_name=(draft.contact_name or "").strip()[:50] or None,
        building_id=building_id,
        compound_id=compound_id,
        unit=draft.place.unit,
        room=(draft.place.room or "").strip()[:20] or None,
        latitude=draft.place.latitude,
        longitude=draft.place.longitude,
        address_text=(draft.place.address_text or "").strip()[:200] or None,
        created_at=now,
        updated_at=now,
        callback_due_at=callback_due,
        resolution_due_at=calendar.add(now, category.resolution_hours * 60),
    )
    uow.session.add(ticket)
    await uow.session.flush()
    await _record(uow, ticket, kind="status", viewer=actor, to_status=ticket.status, note=None)
    await dispatch_service.open_request(uow, _need(ticket, category, preferred=draft.preferred_responder_id))
    return ticket


def _need(ticket: Ticket, category: TicketCategory, preferred: int | None = None) -> dispatch_service.DispatchNeed:
    return dispatch_service.DispatchNeed(
        kind=KIND,
        subject_id=ticket.id,
        community_id=ticket.community_id,
        skill=category.skill,
        building_id=ticket.building_id,
        compound_id=ticket.compound_id,
        mode=DispatchMode(category.dispatch_mode),
        preferred_responder_id=preferred,
    )


async def transition(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    ticket_id: int,
    action: Action,
    note: str | None = None,
    public: bool = True,
    now: datetime | None = None,
) -> Ticket:
    """Apply a workflow action. Raises NotFound, Forbidden, IllegalTransition, ValidationFailed."""
    viewer.require_authenticated()
    now = now or utc_now()
    ticket = await get_visible(uow.session, viewer, ticket_id, lock=True)
    who = await viewpoint(uow.session, viewer, ticket)
    allowed = who.staff or (
        action not in STAFF_ONLY
        and ((who.assignee and action in ASSIGNEE_MAY) or (who.reporter and action in REPORTER_MAY))
    )
    if not allowed:
        raise Forbidden("You may not do that to this ticket.")
    sources, target = TRANSITIONS[action]
    current = TicketStatus(ticket.status)
    if current not in sources:
        raise IllegalTransition(f"A {current.value} ticket cannot be {action.value}d.", field="action")
    clean_note = (
        _clean_text(
            note or "", field="note", limit=MAX_NOTE, required=action in NOTE_REQUIRED, missing="Add a note saying why."
        )
        or None
    )
    if action is Action.ACKNOWLEDGE:
        if ticket.acknowledged_at is not None:
            raise IllegalTransition("First contact is recorded already.", field="action")
        ticket.acknowledged_at = now
        ticket.sla_warned_at = None  # the resolution clock runs now; it warns on its own
        if current in (S.SUBMITTED, S.REOPENED):
            target = S.ACKNOWLEDGED
    elif action is Action.AWAIT_RESIDENT:
        if ticket.waiting_since is not None:
            raise IllegalTransition("The ticket is already waiting on the resident.", field="action")
        ticket.waiting_since = now
    elif action is Action.RESUME:
        if ticket.waiting_since is None:
            raise IllegalTransition("The ticket is not waiting on the resident.", field="action")
        await _resume_clock(uow.session, ticket, now)
    elif action in (Action.RESOLVE, Action.CLOSE, Action.REJECT, Action.CANCEL):
        if ticket.waiting_since is not None:
            await _resume_clock(uow.session, ticket, now)
        if action is Action.RESOLVE:
            ticket.resolved_at = now
            category = await uow.session.get(TicketCategory, ticket.category_id)
            ticket.follow_up_due_at = now + timedelta(days=category.follow_up_days if category else 7)
        else:
            ticket.closed_at = now
        await dispatch_service.finish(uow, kind=KIND, subject_id=ticket.id, completed=action is Action.RESOLVE)
    elif action is Action.REOPEN:
        await _reopen(uow, ticket, now)
    previous = ticket.status
    if target is not None:
        ticket.status = target.value
    ticket.updated_at = now
    await _record(
        uow,
        ticket,
        kind="status" if target is not None else action.value,
        viewer=viewer,
        from_status=previous,
        to_status=ticket.status,
        note=clean_note,
        public=public or who.reporter,
    )
    return ticket


async def _resume_clock(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """Waiting on the resident does not count: push the due times on by the business time waited."""
    assert ticket.waiting_since is not None
    if ticket.acknowledged_at is None and ticket.callback_due_at is not None:
        clock = _callback_clock(await calendar_for(session, ticket.community_id), ticket.injury)
        waited = clock.between(ticket.waiting_since, now)
        if waited > 0:
            ticket.callback_due_at = clock.add(ticket.callback_due_at, waited)
    calendar = await calendar_for(session, ticket.community_id)
    waited = calendar.between(ticket.waiting_since, now)
    if ticket.resolution_due_at is not None and waited > 0:
        ticket.resolution_due_at = calendar.add(ticket.resolution_due_at, waited)
    ticket.waiting_since = None


async def _reopen(uow: UnitOfWork, ticket: Ticket, now: datetime) -> None:
    """A reopen starts a new cycle: new SLA clocks, the last assignee first."""
    category = await uow.session.get(TicketCategory, ticket.category_id)
    assert category is not None
    calendar = await calendar_for(uow.session, ticket.community_id)
    ticket.cycle += 1
    ticket.resolved_at = ticket.closed_at = None
    ticket.acknowledged_at = None
    ticket.callback_due_at = _callback_clock(calendar, ticket.injury).add(
        now, _callback_minutes(category, ticket.injury)
    )
    ticket.resolution_due_at = calendar.add(now, category.resolution_hours * 60)
    ticket.sla_warned_at = None
    ticket.escalation_level = 0
    ticket.follow_up_due_at = None
    ticket.follow_up_answer = None  # the new cycle gets its own follow-up question
    ticket.rating = None
    ticket.rating_comment = None
    ticket.rated_at = None
    previous = ticket.assignee_responder_id
    ticket.assignee_responder_id = None
    await dispatch_service.open_request(uow, _need(ticket, category, preferred=previous))


async def comment(uow: UnitOfWork, *, viewer: Viewer, ticket_id: int, note: str, public: bool = True) -> TicketEvent:
    """Add a note; internal notes are for staff and the assignee only. Raises NotFound, ValidationFailed."""
    viewer.require_authenticated()
    ticket = await get_visible(uow.session, viewer, ticket_id)
    who = await viewpoint(uow.session, viewer, ticket)
    text = _clean_text(note, field="note", limit=MAX_NOTE)
    ticket.updated_at = utc_now()
    return await _record(
        uow, ticket, kind="comment", viewer=viewer, note=text, public=public or not (who.staff or who.assignee)
    )


async def mark_duplicate(uow: UnitOfWork, *, viewer: Viewer, ticket_id: int, original_id: int) -> Ticket:
    """Staff mark a ticket as a duplicate of another open one; both link to each other."""
    ticket = await get_visible(uow.session, viewer, ticket_id, lock=True)
    viewer.require(Permission.MANAGE_TICKETS, ticket.community_id)
    try:
        original = await get_visible(uow.session, viewer, original_id)
    except NotFound:
        raise NotFound("No such ticket.", field="originalId") from None
    if original.id == ticket.id or original.community_id != ticket.community_id:
        raise ValidationFailed("Choose another ticket of this community as the original.", field="originalId")
    if original.duplicate_of_id is not None:
        raise ValidationFailed("The original is itself a duplicate; choose its original.", field="originalId")
    if original.status not in OPEN_STATUS_VALUES:
        raise ValidationFailed("The original is no longer open; treat this as a new report.", field="originalId")
    if TicketStatus(ticket.status) not in (S.SUBMITTED, S.ACKNOWLEDGED, S.ASSIGNED, S.REOPENED):
        raise IllegalTransition(f"A {ticket.status} ticket cannot be marked a duplicate.", field="ticketId")
    previous = ticket.status
    ticket.status = S.DUPLICATE.value
    ticket.duplicate_of_id = original.id
    ticket.closed_at = ticket.updated_at = utc_now()
    await dispatch_service.finish(uow, kind=KIND, subject_id=ticket.id, completed=False)
    await _record(uow, ticket, kind="status", viewer=viewer, from_status=previous, to_status=ticket.status,
                  note=f"Duplicate of #{original.id}")  # fmt: skip
    await _record(uow, original, kind="duplicate_linked", viewer=viewer, note=f"#{ticket.id} reports the same problem")
    return ticket


async def rate(uow: UnitOfWork, *, viewer: Viewer, ticket_id: int, rating: int, comment_text: str | None) -> Ticket:
    """The reporter rates resolved work 1–5. Raises NotFound, Forbidden, ValidationFailed, AlreadyRated."""
    ticket = await get_visible(uow.session, viewer, ticket_id, lock=True)
    who = await viewpoint(uow.session, viewer, ticket)
    if not who.reporter:
        raise Forbidden("Only the person who reported it can rate the work.")
    if ticket.status not in (S.RESOLVED.value, S.CLOSED.value):
        raise IllegalTransition("Rate the work once it is resolved.", field="ticketId")
    if not 1 <= rating <= 5:
        raise ValidationFailed("Rate from 1 to 5.", field="rating")
    won = await uow.session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.rating.is_(None))
        .values(rating=rating, rating_comment=(comment_text or "").strip()[:1000] or None, rated_at=utc_now())
    )
    if not getattr(won, "rowcount", 0):
        raise AlreadyRated("You have rated this work already.", field="ticketId")
    await uow.session.refresh(ticket)
    await _record(uow, ticket, kind="rating", viewer=viewer, note=f"{rating}/5 {ticket.rating_comment or ''}".strip())
    return ticket


async def answer_follow_up(uow: UnitOfWork, *, viewer: Viewer, ticket_id: int, still_fixed: bool) -> Ticket:
    """Answer the follow-up question (is it still fixed?): yes closes the ticket, no reopens it."""
    ticket = await get_visible(uow.session, viewer, ticket_id, lock=True)
    who = await viewpoint(uow.session, viewer, ticket)
    if not who.reporter:
        raise Forbidden("Only the person who reported it can answer.")
    if ticket.status not in (S.RESOLVED.value, S.CLOSED.value) or ticket.follow_up_answer is not None:
        raise IllegalTransition("There is no open follow-up question for this ticket.", field="ticketId")
    ticket.follow_up_answer = "fixed" if still_fixed else "not_fixed"
    if still_fixed:
        if ticket.status == S.RESOLVED.value:
            return await transition(uow, viewer=viewer, ticket_id=ticket.id, action=Action.CLOSE, note="Still fixed.")
        return ticket
    return await transition(uow, viewer=viewer, ticket_id=ticket.id, action=Action.REOPEN, note="Not fixed any more.")


# -- reacting to dispatch (worker) -------------------------------------------------------------


async def on_assignment_changed(uow: UnitOfWork, *, request_id: int, event: str, assignment_id: int | None) -> None:
    """Keep the ticket's assignee and status in step with dispatch; record and announce it.

    Idempotent: the event row for (assignment, event) is written once; a replay finds it.
    """
    from api.dispatch.models import DispatchRequest

    request = await uow.session.get(DispatchRequest, request_id)
    if request is None or request.kind != KIND:
        return
    ticket = await uow.session.get(Ticket, request.subject_id)
    if ticket is None:
        return
    dedupe_key = f"assignment:{event}:{assignment_id or 0}"
    seen = await uow.session.scalar(
        select(TicketEvent.id).where(TicketEvent.ticket_id == ticket.id, TicketEvent.dedupe_key == dedupe_key)
    )
    if seen is not None:
        return
    responder = None
    if assignment_id is not None:
        assignment = await uow.session.get(Assignment, assignment_id)
        responder = await uow.session.get(Responder, assignment.responder_id) if assignment else None
    previous = ticket.status
    now = utc_now()
    if event in ("accepted", "reassigned") and responder is not None:
        ticket.assignee_responder_id = responder.id
        if ticket.status in (S.SUBMITTED.value, S.ACKNOWLEDGED.value, S.REOPENED.value):
            ticket.status = S.ASSIGNED.value
    elif event == "escalated":
        ticket.escalation_level = max(ticket.escalation_level, 1)
    ticket.updated_at = now
    who = responder.display_name if responder else "staff"
    text = {
        "offered": f"Offered to {who}",
        "accepted": f"{who} took the job",
        "reassigned": f"Assigned by staff to {who}",
        "declined": f"{who} declined",
        "expired": f"{who} did not answer in time",
        "escalated": "Nobody available: staff will assign it",
    }.get(event, event)
    await _record(
        uow,
        ticket,
        kind="assignment",
        viewer=None,
        from_status=previous,
        to_status=ticket.status,
        note=text,
        public=event in ("accepted", "reassigned"),
        dedupe_key=dedupe_key,
    )


# -- SLA --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlaOutcome:
    warned: list[int]
    escalated: list[tuple[int, int]]  # (ticket id, new level)


WARN_AT_FRACTION = 0.8  # warn when 80% of the target time has passed


async def sla_scan(uow: UnitOfWork, *, now: datetime | None = None) -> SlaOutcome:
    """Warn before a breach, escalate after (1 assignee → 2 staff lead → 3 community admin).

    Idempotent: each step is a conditional UPDATE on the level or the warned time.
    """
    now = now or utc_now()
    tickets = (
        await uow.session.scalars(
            select(Ticket).where(
                Ticket.status.in_(OPEN_STATUS_VALUES),
                Ticket.waiting_since.is_(None),
                or_(
                    and_(Ticket.acknowledged_at.is_(None), Ticket.callback_due_at.is_not(None)),
                    Ticket.resolution_due_at.is_not(None),
                ),
            )
        )
    ).all()
    category_ids = {t.category_id for t in tickets}
    categories = {
        c.id: c
        for c in (await uow.session.scalars(select(TicketCategory).where(TicketCategory.id.in_(category_ids)))).all()
    }
    calendars = await registry_calendar.calendars_for(uow.session, {t.community_id for t in tickets})
    warned: list[int] = []
    escalated: list[tuple[int, int]] = []
    for ticket in tickets:
        category = categories.get(ticket.category_id)
        clock = _active_clock(ticket, category, calendars[ticket.community_id]) if category is not None else None
        if clock is None:
            continue
        due, target, calendar = clock
        if now < due:
            passed = target - calendar.between(now, due)
            if ticket.sla_warned_at is None and passed >= WARN_AT_FRACTION * target:
                won = await uow.session.execute(
                    update(Ticket)
                    .where(Ticket.id == ticket.id, Ticket.sla_warned_at.is_(None))
                    .values(sla_warned_at=now)
                )
                if getattr(won, "rowcount", 0):
                    warned.append(ticket.id)
                    await _record(
                        uow, ticket, kind="sla", viewer=None, note=f"warning: due {due.isoformat()}", public=False
                    )
            continue
        late = calendar.between(due, now)
        level = 1 if late < 0.5 * target else 2 if late < target else 3
        won = await uow.session.execute(
            update(Ticket).where(Ticket.id == ticket.id, Ticket.escalation_level < level).values(escalation_level=level)
        )
        if getattr(won, "rowcount", 0):
            escalated.append((ticket.id, level))
            await _record(uow, ticket, kind="sla", viewer=None, note=f"escalation level {level}", public=False)
    return SlaOutcome(warned, escalated)


def _active_clock(
    ticket: Ticket, category: TicketCategory, calendar: BusinessCalendar
) -> tuple[datetime, float, BusinessCalendar] | None:
    """The clock that runs now as (due, target minutes, calendar): the call-back until first contact, then resolution.

    Progress is measured on the clock's own calendar back from the due time, so a reopened cycle
    or a pause on the resident counts from when the due time was last set, not from submission.
    """
    if ticket.acknowledged_at is None and ticket.callback_due_at is not None:
        target = _callback_minutes(category, ticket.injury)
        return ticket.callback_due_at, max(target, 1), _callback_clock(calendar, ticket.injury)
    if ticket.resolution_due_at is None:
        return None
    return ticket.resolution_due_at, max(category.resolution_hours * 60, 1), calendar


async def follow_ups_due(uow: UnitOfWork, *, now: datetime | None = None) -> list[int]:
    """Ask reporters of tickets resolved long enough ago whether it is still fixed (once)."""
    now = now or utc_now()
    tickets = (
        await uow.session.scalars(
            select(Ticket).where(
                Ticket.status.in_([S.RESOLVED.value, S.CLOSED.value]),
                Ticket.follow_up_due_at.is_not(None),
                Ticket.follow_up_due_at <= now,
                Ticket.follow_up_answer.is_(None),
            )
        )
    ).all()
    asked = []
    for ticket in tickets:
        won = await uow.session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.follow_up_due_at == ticket.follow_up_due_at)
            .values(follow_up_due_at=None)
        )
        if getattr(won, "rowcount", 0):
            asked.append(ticket.id)
            await _record(uow, ticket, kind="follow_up", viewer=None, note="Is it still fixed?")
    return asked


async def ensure_categories(uow: UnitOfWork, *, community_ids: Sequence[int]) -> int:
    """Give each community the default catalogue if it has no categories yet."""
    from api.tickets.categories import default_categories

    added = 0
    for community_id in community_ids:
        exists = await uow.session.scalar(
            select(TicketCategory.id).where(TicketCategory.community_id == community_id).limit(1)
        )
        if exists is None:
            rows = default_categories(community_id)
            uow.session.add_all(rows)
            added += len(rows)
    await uow.session.flush()
    return added


async def anonymise_closed_contacts(uow: UnitOfWork, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Clear the contact name and exact place of tickets closed longer ago than `older_than`.

    The category, building and times stay for the figures. Returns tickets changed. Idempotent.
    """
    now = now or utc_now()
    result = await uow.session.execute(
        update(Ticket)
        .where(
            Ticket.closed_at.is_not(None),
            Ticket.closed_at < now - older_than,
            or_(Ticket.contact_name.is_not(None), Ticket.room.is_not(None), Ticket.latitude.is_not(None)),
        )
        .values(contact_name=None, room=None, latitude=None, longitude=None, address_text=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
