"""小修小补 workshop: craftspeople hold bookable sessions cut into slots; a booking becomes a ticket.

A booking takes the lowest free seat number of its slot; the unique (session, slot, seat) index
is what caps a slot at its seats, so two residents racing for the last seat cannot both win.
The booking's ticket (kind workshop) is assigned straight to the session's craftsperson: it never
goes out as an offer or a grab.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import CHINA_TZ, utc_now
from api.core.database import UnitOfWork
from api.core.db import is_unique_violation
from api.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from api.core.viewer import Permission, Role, Viewer
from api.dispatch import service as dispatch_service
from api.dispatch.models import Responder, ResponderKind
from api.registry.models import Household, Resident
from api.tickets import service as tickets_service
from api.tickets.models import (
    Ticket,
    TicketCategory,
    TicketKind,
    TicketStatus,
    WorkshopBooking,
    WorkshopSession,
)

BOOKED = "booked"
CANCELLED = "cancelled"
MAX_SESSION = timedelta(hours=12)
MIN_SLOT_MINUTES = 5
MAX_SEATS = 20
MAX_PRICE_CENTS = 100_000  # 1,000 yuan
MAX_TITLE = 100
MAX_LOCATION = 200
MAX_LISTED = 200
CANCELLABLE = tickets_service.TRANSITIONS[tickets_service.Action.CANCEL][0]  # statuses a booking can be cancelled in

T = TypeVar("T")


class SlotFull(Conflict):
    """Every seat of the slot is taken."""

    code = "SLOT_FULL"


class AlreadyBooked(Conflict):
    """The resident already holds a seat in this session."""

    code = "ALREADY_BOOKED"


class SessionCancelled(Conflict):
    code = "SESSION_CANCELLED"


class BookingNotActive(Conflict):
    code = "BOOKING_NOT_ACTIVE"


class SessionOverlap(Conflict):
    code = "SESSION_OVERLAP"


@dataclass(frozen=True, slots=True)
class Slot:
    start: datetime
    end: datetime
    seats_left: int


@dataclass(frozen=True, slots=True)
class CancelledSession:
    session: WorkshopSession
    bookings_cancelled: int


# -- helpers ----------------------------------------------------------------------------------


def _locked(uow: UnitOfWork, stmt: Select[T], *, shared: bool = False) -> Select[T]:
    """Row locks on PostgreSQL; SQLite writers are serialised by BEGIN IMMEDIATE already."""
    if uow.session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(read=shared)
    return stmt


def _text(value: str, *, field: str, limit: int, what: str) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise ValidationFailed(f"Please give the {what}.", field=field)
    if len(cleaned) > limit:
        raise ValidationFailed(f"At most {limit} characters.", field=field)
    return cleaned


def _aware(value: datetime, field: str) -> datetime:
    """The time in UTC; a time without a zone is refused."""
    if value.tzinfo is None:
        raise ValidationFailed("Give the time with a time zone.", field=field)
    return value.astimezone(UTC)


def slot_starts(ws: WorkshopSession) -> list[datetime]:
    """Every slot start of the session, in order."""
    step = timedelta(minutes=ws.slot_minutes)
    count = int((ws.ends_at - ws.starts_at) / step)
    return [ws.starts_at + i * step for i in range(count)]


def slots_of(ws: WorkshopSession, taken: dict[datetime, int]) -> list[Slot]:
    """The session's slots with the seats left, given the seats taken per slot start."""
    step = timedelta(minutes=ws.slot_minutes)
    return [Slot(s, s + step, max(ws.seats_per_slot - taken.get(s, 0), 0)) for s in slot_starts(ws)]


def _is_slot(ws: WorkshopSession, start: datetime) -> bool:
    offset = start - ws.starts_at
    return ws.starts_at <= start < ws.ends_at and offset % timedelta(minutes=ws.slot_minutes) == timedelta(0)


def _staff(viewer: Viewer, community_id: int) -> bool:
    return viewer.can(Permission.MANAGE_TICKETS, community_id)


async def _is_own_session(session: AsyncSession, viewer: Viewer, ws: WorkshopSession) -> bool:
    responder = await session.get(Responder, ws.responder_id)
    return responder is not None and viewer.account_id is not None and responder.account_id == viewer.account_id


# -- reading ----------------------------------------------------------------------------------


async def seats_taken(session: AsyncSession, *, session_ids: Sequence[int]) -> dict[int, dict[datetime, int]]:
    """Seats taken per slot start of each session, in one statement."""
    rows = (
        await session.execute(
            select(WorkshopBooking.session_id, WorkshopBooking.slot_start, func.count())
            .where(WorkshopBooking.session_id.in_(list(session_ids)), WorkshopBooking.seat.is_not(None))
            .group_by(WorkshopBooking.session_id, WorkshopBooking.slot_start)
        )
    ).all()
    out: dict[int, dict[datetime, int]] = defaultdict(dict)
    for session_id, slot_start, taken in rows:
        out[session_id][slot_start] = int(taken)
    return out


async def slots(session: AsyncSession, *, session_id: int) -> list[Slot]:
    """Each slot of a session with the seats left (the bookings are counted in one grouped query)."""
    ws = await session.get(WorkshopSession, session_id)
    if ws is None:
        raise NotFound("No such session.", field="sessionId")
    taken = await seats_taken(session, session_ids=[ws.id])
    return slots_of(ws, taken.get(ws.id, {}))


async def upcoming_sessions(
    session: AsyncSession,
    *,
    viewer: Viewer,
    community_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> list[WorkshopSession]:
    """Sessions of the community not cancelled and not over, starting in [since, until), soonest first."""
    if community_id not in viewer.community_ids:
        return []
    now = now or utc_now()
    stmt = select(WorkshopSession).where(
        WorkshopSession.community_id == community_id,
        WorkshopSession.cancelled_at.is_(None),
        WorkshopSession.ends_at > now,
    )
    if since is not None:
        stmt = stmt.where(WorkshopSession.starts_at >= _aware(since, "from"))
    if until is not None:
        stmt = stmt.where(WorkshopSession.starts_at < _aware(until, "to"))
    rows = await session.scalars(stmt.order_by(WorkshopSession.starts_at, WorkshopSession.id).limit(MAX_LISTED))
    return list(rows.all())


def visible_bookings(viewer: Viewer) -> Select[WorkshopBooking]:
    """Bookings that exist for the viewer: their own, and every one of their staff communities."""
    conds: list[Any] = [WorkshopBooking.community_id.in_(viewer.communities_where(Permission.MANAGE_TICKETS))]
    if viewer.account_id is not None:
        conds.append(WorkshopBooking.account_id == viewer.account_id)
    if viewer.resident_id is not None:
        conds.append(WorkshopBooking.resident_id == viewer.resident_id)
    return select(WorkshopBooking).where(or_(*conds), WorkshopBooking.community_id.in_(viewer.community_ids))


async def my_bookings(
    session: AsyncSession, *, viewer: Viewer, include_cancelled: bool = False
) -> list[WorkshopBooking]:
    """The viewer's own bookings, latest slot first."""
    if viewer.account_id is None:
        return []
    own: list[Any] = [WorkshopBooking.account_id == viewer.account_id]
    if viewer.resident_id is not None:
        own.append(WorkshopBooking.resident_id == viewer.resident_id)
    stmt = select(WorkshopBooking).where(or_(*own), WorkshopBooking.community_id.in_(viewer.community_ids))
    if not include_cancelled:
        stmt = stmt.where(WorkshopBooking.status == BOOKED)
    rows = await session.scalars(
        stmt.order_by(WorkshopBooking.slot_start.desc(), WorkshopBooking.id.desc()).limit(MAX_LISTED)
    )
    return list(rows.all())


# -- writing ----------------------------------------------------------------------------------


async def create_session(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    responder_id: int,
    category_id: int,
    title: str,
    location: str,
    starts_at: datetime,
    ends_at: datetime,
    slot_minutes: int,
    seats_per_slot: int,
    price_cents: int,
    now: datetime | None = None,
) -> WorkshopSession:
    """Open a bookable session for a craftsperson (staff of the community, or the craftsperson).

    Raises Unauthenticated, NotFound, Forbidden, ValidationFailed, SessionOverlap.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    responder = await uow.session.get(Responder, responder_id)
    if responder is None or responder.community_id not in viewer.community_ids:
        raise NotFound("No such craftsperson.", field="responderId")
    community_id = responder.community_id
    if not (_staff(viewer, community_id) or responder.account_id == viewer.account_id):
        raise Forbidden("Only staff or the craftsperson can open a session.")
    if responder.kind != ResponderKind.CRAFTSPERSON.value or not responder.active:
        raise ValidationFailed("Choose an active craftsperson.", field="responderId")
    category = await uow.session.get(TicketCategory, category_id)
    if category is None or category.community_id != community_id or not category.active:
        raise NotFound("No such category.", field="categoryId")
    if category.kind != TicketKind.WORKSHOP.value:
        raise ValidationFailed("Choose a workshop (小修小补) service.", field="categoryId")
    if category.skill is not None and category.skill not in (responder.skills or ()):
        raise ValidationFailed(f"{responder.display_name} does not offer {category.name}.", field="categoryId")
    clean_title = _text(title, field="title", limit=MAX_TITLE, what="title")
    clean_location = _text(location, field="location", limit=MAX_LOCATION, what="place")
    start, end = _aware(starts_at, "startsAt"), _aware(ends_at, "endsAt")
    if start.second or start.microsecond or end.second or end.microsecond:
        raise ValidationFailed("Start and end on a whole minute.", field="startsAt")
    if end <= start:
        raise ValidationFailed("The session must end after it starts.", field="endsAt")
    if start < now:
        raise ValidationFailed("The session cannot start in the past.", field="startsAt")
    if end - start > MAX_SESSION:
        raise ValidationFailed("A session lasts at most 12 hours.", field="endsAt")
    if slot_minutes < MIN_SLOT_MINUTES:
        raise ValidationFailed(f"A slot lasts at least {MIN_SLOT_MINUTES} minutes.", field="slotMinutes")
    if (end - start) % timedelta(minutes=slot_minutes):
        raise ValidationFailed("The slots must divide the session evenly.", field="slotMinutes")
    if not 1 <= seats_per_slot <= MAX_SEATS:
        raise ValidationFailed(f"A slot has 1 to {MAX_SEATS} seats.", field="seatsPerSlot")
    if not 0 <= price_cents <= MAX_PRICE_CENTS:
        raise ValidationFailed("The price is 0 (free) to 1,000 yuan.", field="priceCents")
    overlap = await uow.session.scalar(
        select(WorkshopSession.id).where(
            WorkshopSession.responder_id == responder.id,
            WorkshopSession.cancelled_at.is_(None),
            WorkshopSession.starts_at < end,
            WorkshopSession.ends_at > start,
        )
    )
    if overlap is not None:
        raise SessionOverlap(f"{responder.display_name} already has a session at that time.", field="startsAt")
    ws = WorkshopSession(
        community_id=community_id,
        responder_id=responder.id,
        category_id=category.id,
        title=clean_title,
        location=clean_location,
        starts_at=start,
        ends_at=end,
        slot_minutes=slot_minutes,
        seats_per_slot=seats_per_slot,
        price_cents=price_cents,
        created_at=now,
    )
    uow.session.add(ws)
    await uow.session.flush()
    return ws


async def _take_seat(uow: UnitOfWork, ws: WorkshopSession, slot_start: datetime, make: Any) -> WorkshopBooking:
    """Insert the booking on the lowest free seat; the unique index decides races. Raises SlotFull."""
    taken = set(
        (
            await uow.session.scalars(
                select(WorkshopBooking.seat).where(
                    WorkshopBooking.session_id == ws.id,
                    WorkshopBooking.slot_start == slot_start,
                    WorkshopBooking.seat.is_not(None),
                )
            )
        ).all()
    )
    for seat in range(1, ws.seats_per_slot + 1):
        if seat in taken:
            continue
        booking: WorkshopBooking = make(seat)
        try:
            async with uow.session.begin_nested():
                uow.session.add(booking)
                await uow.session.flush()
        except IntegrityError as exc:
            if is_unique_violation(exc):
                continue  # someone took this seat in the meantime: try the next one
            raise
        return booking
    raise SlotFull("Every seat in this slot is taken; choose another slot.", field="slotStart")


async def book(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    session_id: int,
    slot_start: datetime,
    description: str,
    answers: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> WorkshopBooking:
    """A resident books a seat in one slot; the booking's ticket goes straight to the craftsperson.

    Raises Unauthenticated, NotFound, Forbidden, ValidationFailed, SessionCancelled, AlreadyBooked,
    SlotFull, EmergencyNotice.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    # A shared lock: bookings run side by side, a cancellation of the session waits for them.
    ws = await uow.session.scalar(
        _locked(uow, select(WorkshopSession).where(WorkshopSession.id == session_id), shared=True)
    )
    if ws is None or ws.community_id not in viewer.community_ids:
        raise NotFound("No such session.", field="sessionId")
    if viewer.resident_id is None:
        raise Forbidden("Only a registered resident of the community can book.")
    # Locking the resident serialises one resident's bookings, so the one-per-session rule holds.
    resident = await uow.session.scalar(_locked(uow, select(Resident).where(Resident.id == viewer.resident_id)))
    if resident is None or resident.community_id != ws.community_id:
        raise Forbidden("Only a registered resident of the community can book.")
    if ws.cancelled_at is not None:
        raise SessionCancelled("This session has been cancelled.", field="sessionId")
    start = _aware(slot_start, "slotStart")
    if not _is_slot(ws, start):
        raise ValidationFailed("That is not one of the session's slots.", field="slotStart")
    if start < now:
        raise ValidationFailed("That slot has already begun.", field="slotStart")
    held = await uow.session.scalar(
        select(WorkshopBooking.id).where(
            WorkshopBooking.session_id == ws.id,
            WorkshopBooking.resident_id == resident.id,
            WorkshopBooking.status == BOOKED,
        )
    )
    if held is not None:
        raise AlreadyBooked("You already have a seat in this session.", field="sessionId")
    category = await uow.session.get(TicketCategory, ws.category_id)
    assert category is not None

    def make(seat: int) -> WorkshopBooking:
        return WorkshopBooking(
            community_id=ws.community_id,
            session_id=ws.id,
            slot_start=start,
            seat=seat,
            resident_id=resident.id,
            account_id=viewer.account_id,
            status=BOOKED,
            created_at=now,
        )

    booking = await _take_seat(uow, ws, start, make)
    household = await uow.session.get(Household, resident.household_id) if resident.household_id else None
    local = start.astimezone(CHINA_TZ)
    place = tickets_service.Place(
        building_id=household.building_id if household else None,
        unit=household.unit if household else None,
        room=household.room if household else None,
        address_text=f"{ws.location} {local:%m-%d %H:%M}",
    )
    draft = tickets_service.TicketDraft(
        category_id=category.id,
        description=description.strip() or f"{category.name}（{ws.title}）",
        place=place,
        answers=dict(answers or {}),
        preferred_responder_id=ws.responder_id,
    )
    ticket = await tickets_service.submit(uow, viewer=viewer, draft=draft, now=now)
    # The slot is the appointment: no call-back is due, and the work is due by the slot's end.
    ticket.callback_due_at = None
    ticket.resolution_due_at = start + timedelta(minutes=ws.slot_minutes)
    await dispatch_service.assign_directly(
        uow,
        kind=tickets_service.KIND,
        subject_id=ticket.id,
        responder_id=ws.responder_id,
        reason=f"booked {ws.title} at {local:%H:%M}",
    )
    booking.ticket_id = ticket.id
    await uow.session.flush()
    return booking


async def _cancel_ticket(uow: UnitOfWork, *, actor: Viewer, ticket_id: int | None, note: str) -> None:
    if ticket_id is None:
        return
    ticket = await uow.session.get(Ticket, ticket_id)
    if ticket is None or ticket.status == TicketStatus.CANCELLED.value:
        return
    await tickets_service.transition(
        uow, viewer=actor, ticket_id=ticket_id, action=tickets_service.Action.CANCEL, note=note
    )


async def cancel_booking(uow: UnitOfWork, *, viewer: Viewer, booking_id: int) -> WorkshopBooking:
    """The resident (or staff) cancels a booking: the seat is freed and the ticket cancelled.

    Raises Unauthenticated, NotFound, BookingNotActive, IllegalTransition (the work has begun).
    """
    viewer.require_authenticated()
    booking = await uow.session.scalar(_locked(uow, visible_bookings(viewer).where(WorkshopBooking.id == booking_id)))
    if booking is None:
        raise NotFound("No such booking.", field="bookingId")
    if booking.status != BOOKED:
        raise BookingNotActive("This booking is cancelled already.", field="bookingId")
    await _cancel_ticket(uow, actor=viewer, ticket_id=booking.ticket_id, note="预约已取消")
    booking.status = CANCELLED
    booking.seat = None
    await uow.session.flush()
    return booking


async def cancel_session(
    uow: UnitOfWork, *, viewer: Viewer, session_id: int, reason: str | None = None, now: datetime | None = None
) -> CancelledSession:
    """Staff or the craftsperson call a session off; the residents are told.

    Every booking still to be served is cancelled, and its ticket too, whose event goes to the
    resident's inbox through the notify job. Bookings whose work has already begun or been done are kept. Raises NotFound, Forbidden,
    SessionCancelled, ValidationFailed.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    ws = await uow.session.scalar(_locked(uow, select(WorkshopSession).where(WorkshopSession.id == session_id)))
    if ws is None or ws.community_id not in viewer.community_ids:
        raise NotFound("No such session.", field="sessionId")
    staff = _staff(viewer, ws.community_id)
    if not (staff or await _is_own_session(uow.session, viewer, ws)):
        raise Forbidden("Only staff or the craftsperson can cancel the session.")
    if ws.cancelled_at is not None:
        raise SessionCancelled("This session is cancelled already.", field="sessionId")
    why = (reason or "").strip()
    if len(why) > tickets_service.MAX_NOTE - 50:
        raise ValidationFailed("At most 1,950 characters.", field="reason")
    ws.cancelled_at = now
    # The craftsperson is not staff: they cancel the tickets with staff rights for this community only.
    actor = viewer if staff else Viewer(account_id=viewer.account_id, roles={ws.community_id: frozenset({Role.STAFF})})
    note = f"活动已取消：{ws.title}" + (f"（{why}）" if why else "")
    bookings = (
        await uow.session.scalars(
            _locked(
                uow,
                select(WorkshopBooking)
                .where(WorkshopBooking.session_id == ws.id, WorkshopBooking.status == BOOKED)
                .order_by(WorkshopBooking.id),
            )
        )
    ).all()
    tickets = {
        t.id: t
        for t in (
            await uow.session.scalars(
                select(Ticket).where(Ticket.id.in_([b.ticket_id for b in bookings if b.ticket_id]))
            )
        ).all()
    }
    cancelled = 0
    for booking in bookings:
        ticket = tickets.get(booking.ticket_id) if booking.ticket_id is not None else None
        if ticket is not None and ticket.status != TicketStatus.CANCELLED.value:
            if TicketStatus(ticket.status) not in CANCELLABLE:
                continue  # the work has begun or is done: keep the booking
            await _cancel_ticket(uow, actor=actor, ticket_id=ticket.id, note=note)
        booking.status = CANCELLED
        booking.seat = None
        cancelled += 1
    await uow.session.flush()
    return CancelledSession(ws, cancelled)
