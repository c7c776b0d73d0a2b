"""Venues and activities: rooms with opening hours, room bookings, activities, sign-ups and the waitlist.

Capacity is the database's job (see api/venues/models.py): a seated sign-up holds a seat number
1..capacity under a partial unique index, so concurrent sign-ups race for seat numbers and the
index lets exactly one win each; whoever finds no seat left joins the waitlist with the next
number of the activity's counter (a conditional UPDATE … RETURNING, which also serialises the
waitlist). A freed seat is not left for the fastest newcomer while people wait: a new sign-up takes
a free seat only when nobody is waitlisted, and the worker offers freed seats to the waitlist in
order (`offer_next`); an offered sign-up holds its seat until it accepts or the offer lapses.

Locks on PostgreSQL: a sign-up holds FOR KEY SHARE on its activity (many at once), so that calling
the activity off (FOR UPDATE) waits for sign-ups in flight and they see it was called off. The
waitlist counter's UPDATE and `offer_next` take the row's FOR NO KEY UPDATE lock, which does not
conflict with KEY SHARE. On SQLite every writer holds the one write lock from BEGIN.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Float, Select, cast, exists, func, insert, literal, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import Account
from api.core.clock import CHINA_TZ, age_on, utc_now
from api.core.crypto import new_token, token_hash
from api.core.database import UnitOfWork
from api.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from api.core.images import (
    PhotoLimits,
    PhotoStore,
    PreparedPhoto,
    check_count,
    ensure_prepared,
    store_unless_rolled_back,
)
from api.core.viewer import Role, Viewer
from api.notifications import service as notifications
from api.registry.models import Resident
from api.venues import jobs
from api.venues.models import (
    HOLDING_BOOKING_STATUSES,
    ActivityKind,
    ActivitySeries,
    BookingStatus,
    CalendarToken,
    RoomBooking,
    SignUp,
    SignUpStatus,
    Venue,
    VenueActivity,
    VenueClosure,
    VenueKind,
    VenueOpeningHours,
    VenuePhoto,
)

if TYPE_CHECKING:
    from api.settings import Settings

T = TypeVar("T")

STAFF_ROLES = frozenset({Role.STAFF, Role.COMMUNITY_ADMIN, Role.DISTRICT_ADMIN})
ADULT_AGE = 18
MAX_PARTICIPANTS = 10
MAX_TITLE = 100
MAX_NAME = 100
MAX_TEXT = 4000
MAX_REASON = 500
MAX_PURPOSE = 200
MAX_ACTIVITY = timedelta(hours=12)
MAX_AGE = 120
MAX_PRICE_CENTS = 100_000
MAX_CAPACITY = 500
MAX_BOOKING_AHEAD = timedelta(days=60)
MAX_SERIES_DAYS = 366
MAX_LISTED = 500
# Check-in opens an hour before the start and closes two hours after the end; then the no-shows are recorded.
CHECK_IN_OPENS_BEFORE = timedelta(hours=1)
CHECK_IN_CLOSES_AFTER = timedelta(hours=2)
REMIND_BEFORE = timedelta(hours=24)
# Check-in codes: 6 characters without look-alikes (0/O, 1/I, 2/Z, 5/S, 8/B).
CODE_ALPHABET = "ACDEFGHJKLMNPQRTUVWXY34679"
CODE_LENGTH = 6
QR_PREFIX = "LINLI-SIGNUP:"

SEAT_INDEX = "uq_venue_sign_up_activity_id_seat"
POSITION_INDEX = "uq_venue_sign_up_activity_id_waitlist_position"
PARTICIPANT_INDEX = "uq_venue_sign_up_activity_id_participant"
OVERLAP_CONSTRAINT = "ex_venue_room_booking_no_overlap"


# -- policy and errors -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenuePolicy:
    """The configurable rules (LINLI_VENUES_* settings)."""

    offer_minutes: int = 720
    no_show_limit: int = 3
    no_show_window_days: int = 90
    no_show_block_days: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> VenuePolicy:
        return cls(
            offer_minutes=settings.venues_offer_minutes,
            no_show_limit=settings.venues_no_show_limit,
            no_show_window_days=settings.venues_no_show_window_days,
            no_show_block_days=settings.venues_no_show_block_days,
        )


DEFAULT_POLICY = VenuePolicy()


class OutsideSignupWindow(Conflict):
    code = "OUTSIDE_SIGNUP_WINDOW"


class TooYoung(Conflict):
    code = "TOO_YOUNG"


class TooOld(Conflict):
    code = "TOO_OLD"


class AlreadySignedUp(Conflict):
    code = "ALREADY_SIGNED_UP"


class Blocked(Conflict):
    """Repeated no-shows: no new sign-ups until `until`."""

    code = "BLOCKED"

    def __init__(self, message: str, *, until: datetime, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.until = until


class NotGuardian(Conflict):
    """The viewer may sign up only themself and the children in their care."""

    code = "NOT_GUARDIAN"


class ActivityCancelled(Conflict):
    code = "ACTIVITY_CANCELLED"


class SignUpNotActive(Conflict):
    code = "SIGN_UP_NOT_ACTIVE"


class OfferNotOpen(Conflict):
    code = "OFFER_NOT_OPEN"


class AlreadyCheckedIn(Conflict):
    code = "ALREADY_CHECKED_IN"


class CheckInClosed(Conflict):
    code = "CHECK_IN_CLOSED"


class OverlappingBooking(Conflict):
    code = "OVERLAPPING_BOOKING"


class OutsideOpeningHours(Conflict):
    code = "OUTSIDE_OPENING_HOURS"


class VenueClosed(Conflict):
    code = "VENUE_CLOSED"


class QuotaExceeded(Conflict):
    code = "QUOTA_EXCEEDED"


class TooShortNotice(Conflict):
    code = "TOO_SHORT_NOTICE"


class NotBookable(Conflict):
    code = "NOT_BOOKABLE"


class BookingNotPending(Conflict):
    code = "BOOKING_NOT_PENDING"


class BookingNotActive(Conflict):
    code = "BOOKING_NOT_ACTIVE"


class AlreadyStarted(Conflict):
    code = "ALREADY_STARTED"


# -- helpers ---------------------------------------------------------------------------------------


def is_staff(viewer: Viewer, community_id: int) -> bool:
    return bool(viewer.roles_in(community_id) & STAFF_ROLES)


def _require_staff(viewer: Viewer, community_id: int) -> None:
    viewer.require_authenticated()
    if not is_staff(viewer, community_id):
        raise Forbidden("Only staff of the community can do this.")


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _key_share(session: AsyncSession, stmt: Select[T]) -> Select[T]:
    """FOR KEY SHARE on PostgreSQL: many hold it at once; FOR UPDATE waits for them all."""
    return stmt.with_for_update(read=True, key_share=True) if _postgres(session) else stmt


def _no_key_update(session: AsyncSession, stmt: Select[T]) -> Select[T]:
    """FOR NO KEY UPDATE on PostgreSQL: one at a time, alongside KEY SHARE holders."""
    return stmt.with_for_update(key_share=True) if _postgres(session) else stmt


def _for_update(session: AsyncSession, stmt: Select[T]) -> Select[T]:
    return stmt.with_for_update() if _postgres(session) else stmt


def _text(value: str, *, field: str, limit: int, what: str, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise ValidationFailed(f"Please give the {what}.", field=field)
    if len(cleaned) > limit:
        raise ValidationFailed(f"At most {limit} characters.", field=field)
    return cleaned


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationFailed("Give the time with a time zone.", field=field)
    return value.astimezone(UTC)


def _whole_minute(value: datetime, field: str) -> None:
    if value.second or value.microsecond:
        raise ValidationFailed("Give a time on a whole minute.", field=field)


def local(value: datetime) -> datetime:
    return value.astimezone(CHINA_TZ)


def _hhmm(value: datetime) -> str:
    return f"{local(value):%m-%d %H:%M}"


def week_bounds(day: date) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 (China time) of the week holding `day`, in UTC."""
    monday = day - timedelta(days=day.weekday())
    start = datetime.combine(monday, time(0, 0), CHINA_TZ).astimezone(UTC)
    return start, start + timedelta(days=7)


def _code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str:
    """A typed code (any case, with spaces or dashes) or a scanned QR payload → the bare code."""
    value = raw.strip().upper()
    if value.startswith(QR_PREFIX):
        value = value.rsplit(":", 1)[-1]
    return "".join(ch for ch in value if ch.isalnum())


def qr_payload(sign_up: SignUp) -> str:
    """What the QR code on a sign-up encodes: its id and check-in code."""
    return f"{QR_PREFIX}{sign_up.id}:{sign_up.check_in_code}"


def _constraint_of(exc: Exception) -> str:
    """The violated constraint's name (PostgreSQL) or the database's message (SQLite)."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if name:
            return str(name)
    return str(orig)


def _sqlstate(exc: Exception) -> str | None:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None)
        if state:
            return str(state)
    return None


def _violates(exc: Exception, index: str, *columns: str) -> bool:
    what = _constraint_of(exc)
    return what == index or (all(f"venue_sign_up.{c}" in what for c in columns) and "UNIQUE" in what)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def recipients_for(session: AsyncSession, sign_ups: Sequence[SignUp]) -> dict[int, set[int]]:
    """Who hears about each sign-up: whoever made it, the participant's own logins and their guardian's."""
    participant_ids = {s.participant_resident_id for s in sign_ups}
    guardians: dict[int, int] = {}
    own: dict[int, set[int]] = defaultdict(set)
    if participant_ids:
        for rid, guardian_id in (
            await session.execute(select(Resident.id, Resident.guardian_id).where(Resident.id.in_(participant_ids)))
        ).all():
            if guardian_id is not None:
                guardians[rid] = guardian_id
        rows = await session.execute(
            select(Account.resident_id, Account.id).where(
                Account.resident_id.in_(participant_ids | set(guardians.values())), Account.is_active.is_(True)
            )
        )
        for resident_id, account_id in rows.all():
            if resident_id is not None:
                own[resident_id].add(account_id)
    out: dict[int, set[int]] = {}
    for s in sign_ups:
        accounts = set(own.get(s.participant_resident_id, set()))
        guardian = guardians.get(s.participant_resident_id)
        if guardian is not None:
            accounts |= own.get(guardian, set())
        if s.signed_up_by_account_id is not None:
            accounts.add(s.signed_up_by_account_id)
        out[s.id] = accounts
    return out


async def _tell(
    uow: UnitOfWork, sign_ups: Sequence[SignUp], *, kind: str, title: str, body: str, community_id: int
) -> int:
    """One inbox notice per (sign-up, kind) for each of its recipients; a repeat adds nothing."""
    who = await recipients_for(uow.session, sign_ups)
    added = 0
    for s in sign_ups:
        added += await notifications.notify(
            uow,
            recipients=who[s.id],
            message=notifications.Message(
                community_id=community_id,
                event_key=f"venue-sign-up:{s.id}:{kind}",
                subject_kind="sign_up",
                subject_id=s.id,
                title=title,
                body=body,
            ),
        )
    return added


# -- venues, hours and closures ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenueDraft:
    community_id: int
    kind: VenueKind
    name: str
    capacity: int
    location: str = ""
    rules: str = ""
    bookable: bool = False
    min_notice_hours: int = 2
    max_booking_minutes: int = 120
    weekly_quota: int = 2
    needs_approval: bool = False


@dataclass(frozen=True, slots=True)
class OpeningSpan:
    weekday: int  # 0 Monday … 6 Sunday
    opens_minute: int
    closes_minute: int


async def create_venue(uow: UnitOfWork, *, viewer: Viewer, draft: VenueDraft) -> Venue:
    """Staff add a room. Raises Forbidden, ValidationFailed, Conflict (the name is taken)."""
    _require_staff(viewer, draft.community_id)
    name = _text(draft.name, field="name", limit=MAX_NAME, what="name")
    if not 1 <= draft.capacity <= MAX_CAPACITY:
        raise ValidationFailed(f"A room holds 1 to {MAX_CAPACITY} people.", field="capacity")
    if not 0 <= draft.min_notice_hours <= 24 * 14:
        raise ValidationFailed("Minimum notice is 0 to 336 hours.", field="minNoticeHours")
    if not 15 <= draft.max_booking_minutes <= 24 * 60:
        raise ValidationFailed("A booking lasts at most 15 minutes to 24 hours.", field="maxBookingMinutes")
    if not 0 <= draft.weekly_quota <= 50:
        raise ValidationFailed("The weekly quota is 0 (no limit) to 50.", field="weeklyQuota")
    taken = await uow.session.scalar(
        select(Venue.id).where(Venue.community_id == draft.community_id, Venue.name == name)
    )
    if taken is not None:
        raise Conflict("The community already has a room of that name.", field="name")
    venue = Venue(
        community_id=draft.community_id,
        kind=VenueKind(draft.kind).value,
        name=name,
        location=_text(draft.location, field="location", limit=200, what="place", required=False),
        capacity=draft.capacity,
        rules=_text(draft.rules, field="rules", limit=MAX_TEXT, what="rules", required=False),
        bookable=draft.bookable,
        min_notice_hours=draft.min_notice_hours,
        max_booking_minutes=draft.max_booking_minutes,
        weekly_quota=draft.weekly_quota,
        needs_approval=draft.needs_approval,
        active=True,
    )
    uow.session.add(venue)
    await uow.session.flush()
    return venue


async def _venue(session: AsyncSession, viewer: Viewer, venue_id: int) -> Venue:
    venue = await session.get(Venue, venue_id)
    if venue is None or venue.community_id not in viewer.community_ids:
        raise NotFound("No such venue.", field="venueId")
    return venue


async def set_opening_hours(
    uow: UnitOfWork, *, viewer: Viewer, venue_id: int, spans: Sequence[OpeningSpan]
) -> list[VenueOpeningHours]:
    """Replace a venue's weekly opening hours. Raises NotFound, Forbidden, ValidationFailed."""
    viewer.require_authenticated()
    venue = await _venue(uow.session, viewer, venue_id)
    _require_staff(viewer, venue.community_id)
    if len(spans) > 7 * 4:
        raise ValidationFailed("At most four opening spans a day.", field="hours")
    by_day: dict[int, list[OpeningSpan]] = defaultdict(list)
    for span in spans:
        if not 0 <= span.weekday <= 6:
            raise ValidationFailed("Weekdays run from 0 (Monday) to 6 (Sunday).", field="hours")
        if not 0 <= span.opens_minute < span.closes_minute <= 24 * 60:
            raise ValidationFailed("A span opens before it closes, within the day.", field="hours")
        by_day[span.weekday].append(span)
    for day_spans in by_day.values():
        ordered = sorted(day_spans, key=lambda s: s.opens_minute)
        if any(a.closes_minute > b.opens_minute for a, b in itertools.pairwise(ordered)):
            raise ValidationFailed("Spans of one day must not overlap.", field="hours")
    old = (await uow.session.scalars(select(VenueOpeningHours).where(VenueOpeningHours.venue_id == venue.id))).all()
    for row in old:
        await uow.session.delete(row)
    await uow.session.flush()
    rows = [
        VenueOpeningHours(
            venue_id=venue.id, weekday=s.weekday, opens_minute=s.opens_minute, closes_minute=s.closes_minute
        )
        for s in sorted(spans, key=lambda s: (s.weekday, s.opens_minute))
    ]
    uow.session.add_all(rows)
    await uow.session.flush()
    return rows


async def add_closure(
    uow: UnitOfWork, *, viewer: Viewer, venue_id: int, starts_at: datetime, ends_at: datetime, reason: str = ""
) -> VenueClosure:
    """Close a venue for a while (a holiday, repairs). Bookings and activities already made are kept."""
    viewer.require_authenticated()
    venue = await _venue(uow.session, viewer, venue_id)
    _require_staff(viewer, venue.community_id)
    start, end = _aware(starts_at, "startsAt"), _aware(ends_at, "endsAt")
    if end <= start:
        raise ValidationFailed("The closure must end after it starts.", field="endsAt")
    closure = VenueClosure(
        venue_id=venue.id,
        starts_at=start,
        ends_at=end,
        reason=_text(reason, field="reason", limit=200, what="reason", required=False),
    )
    uow.session.add(closure)
    await uow.session.flush()
    return closure


async def list_venues(session: AsyncSession, *, viewer: Viewer, community_id: int) -> list[Venue]:
    if community_id not in viewer.community_ids:
        return []
    rows = await session.scalars(
        select(Venue).where(Venue.community_id == community_id, Venue.active.is_(True)).order_by(Venue.id)
    )
    return list(rows.all())


async def opening_hours(session: AsyncSession, *, venue_ids: Sequence[int]) -> dict[int, list[VenueOpeningHours]]:
    rows = await session.scalars(
        select(VenueOpeningHours)
        .where(VenueOpeningHours.venue_id.in_(list(venue_ids)))
        .order_by(VenueOpeningHours.weekday, VenueOpeningHours.opens_minute)
    )
    out: dict[int, list[VenueOpeningHours]] = defaultdict(list)
    for row in rows.all():
        out[row.venue_id].append(row)
    return out


async def upcoming_closures(
    session: AsyncSession, *, venue_ids: Sequence[int], now: datetime | None = None
) -> dict[int, list[VenueClosure]]:
    now = now or utc_now()
    rows = await session.scalars(
        select(VenueClosure)
        .where(VenueClosure.venue_id.in_(list(venue_ids)), VenueClosure.ends_at > now)
        .order_by(VenueClosure.starts_at)
    )
    out: dict[int, list[VenueClosure]] = defaultdict(list)
    for row in rows.all():
        out[row.venue_id].append(row)
    return out


async def _closure_during(session: AsyncSession, venue_id: int, start: datetime, end: datetime) -> VenueClosure | None:
    return await session.scalar(
        select(VenueClosure)
        .where(VenueClosure.venue_id == venue_id, VenueClosure.starts_at < end, VenueClosure.ends_at > start)
        .limit(1)
    )


async def _within_opening_hours(session: AsyncSession, venue_id: int, start: datetime, end: datetime) -> bool:
    """True when [start, end) lies inside one opening span of its (China time) day."""
    s, e = local(start), local(end)
    if e.date() != s.date() and not (e.date() == s.date() + timedelta(days=1) and e.time() == time(0, 0)):
        return False
    opens = s.hour * 60 + s.minute
    closes = (e.hour * 60 + e.minute) or 24 * 60
    span = await session.scalar(
        select(VenueOpeningHours.id).where(
            VenueOpeningHours.venue_id == venue_id,
            VenueOpeningHours.weekday == s.weekday(),
            VenueOpeningHours.opens_minute <= opens,
            VenueOpeningHours.closes_minute >= closes,
        )
    )
    return span is not None


# -- room bookings ---------------------------------------------------------------------------------


async def book_room(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    venue_id: int,
    starts_at: datetime,
    ends_at: datetime,
    purpose: str = "",
    attendees: int = 1,
    now: datetime | None = None,
) -> RoomBooking:
    """A resident (or staff, for a group) books a room for a slot within its opening hours.

    Raises Unauthenticated, NotFound, Forbidden, ValidationFailed, NotBookable, TooShortNotice,
    OutsideOpeningHours, VenueClosed, QuotaExceeded, OverlappingBooking.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    venue = await _venue(uow.session, viewer, venue_id)
    staff = is_staff(viewer, venue.community_id)
    if not venue.bookable or not venue.active:
        raise NotBookable(f"{venue.name} cannot be booked; see its activities instead.", field="venueId")
    resident: Resident | None = None
    if viewer.resident_id is not None:
        # Locking the resident serialises one resident's bookings, so the weekly quota holds.
        resident = await uow.session.scalar(
            _for_update(uow.session, select(Resident).where(Resident.id == viewer.resident_id))
        )
    if resident is not None and resident.community_id != venue.community_id:
        resident = None
    if resident is None and not staff:
        raise Forbidden("Only a registered resident of the community can book a room.")
    start, end = _aware(starts_at, "startsAt"), _aware(ends_at, "endsAt")
    _whole_minute(start, "startsAt")
    _whole_minute(end, "endsAt")
    if end <= start:
        raise ValidationFailed("The booking must end after it starts.", field="endsAt")
    if end - start > timedelta(minutes=venue.max_booking_minutes):
        raise ValidationFailed(
            f"{venue.name} is booked for at most {venue.max_booking_minutes} minutes.", field="endsAt"
        )
    if start < now + timedelta(hours=venue.min_notice_hours):
        raise TooShortNotice(f"Book {venue.name} at least {venue.min_notice_hours} hours ahead.", field="startsAt")
    if start > now + MAX_BOOKING_AHEAD:
        raise ValidationFailed("Book at most 60 days ahead.", field="startsAt")
    if not 1 <= attendees <= venue.capacity:
        raise ValidationFailed(f"{venue.name} holds 1 to {venue.capacity} people.", field="attendees")
    clean_purpose = _text(purpose, field="purpose", limit=MAX_PURPOSE, what="purpose", required=False)
    if not await _within_opening_hours(uow.session, venue.id, start, end):
        raise OutsideOpeningHours(f"{venue.name} is not open for all of {_hhmm(start)}–{_hhmm(end)}.", field="startsAt")
    closure = await _closure_during(uow.session, venue.id, start, end)
    if closure is not None:
        raise VenueClosed(f"{venue.name} is closed then: {closure.reason or 'closed'}.", field="startsAt")
    activity = await uow.session.scalar(
        select(VenueActivity.title).where(
            VenueActivity.venue_id == venue.id,
            VenueActivity.cancelled_at.is_(None),
            VenueActivity.starts_at < end,
            VenueActivity.ends_at > start,
        )
    )
    if activity is not None:
        raise OverlappingBooking(f"{activity} uses {venue.name} then.", field="startsAt")
    if resident is not None and venue.weekly_quota:
        week_start, week_end = week_bounds(local(start).date())
        held = await uow.session.scalar(
            select(func.count()).where(
                RoomBooking.venue_id == venue.id,
                RoomBooking.resident_id == resident.id,
                RoomBooking.status.in_(HOLDING_BOOKING_STATUSES),
                RoomBooking.starts_at >= week_start,
                RoomBooking.starts_at < week_end,
            )
        )
        if int(held or 0) >= venue.weekly_quota:
            raise QuotaExceeded(
                f"You can book {venue.name} {venue.weekly_quota} times a week; that week is used up.",
                field="startsAt",
            )
    status = BookingStatus.PENDING if venue.needs_approval and not staff else BookingStatus.CONFIRMED
    booking_id = await _insert_unless_overlapping(
        uow,
        {
            "community_id": venue.community_id,
            "venue_id": venue.id,
            "resident_id": resident.id if resident else None,
            "account_id": viewer.account_id,
            "starts_at": start,
            "ends_at": end,
            "status": status.value,
            "purpose": clean_purpose,
            "attendees": attendees,
            "created_at": now,
        },
    )
    if booking_id is None:
        raise OverlappingBooking(
            f"{venue.name} is already booked during {_hhmm(start)}–{_hhmm(end)}.", field="startsAt"
        )
    booking = await uow.session.get(RoomBooking, booking_id)
    assert booking is not None
    return booking


async def _insert_unless_overlapping(uow: UnitOfWork, values: dict[str, Any]) -> int | None:
    """INSERT … SELECT … WHERE NOT EXISTS (an overlapping pending or confirmed booking), in one statement.

    On SQLite that is the whole guarantee (writers are serialised). On PostgreSQL two such inserts
    can both find nothing; the exclusion constraint then refuses the second, which waits for the
    first to commit. Returns the new id, or None when the room is taken.
    """
    table = RoomBooking.__table__
    overlap = exists().where(
        RoomBooking.venue_id == values["venue_id"],
        RoomBooking.status.in_(HOLDING_BOOKING_STATUSES),
        RoomBooking.starts_at < values["ends_at"],
        RoomBooking.ends_at > values["starts_at"],
    )
    source = select(*[literal(v, type_=table.c[k].type).label(k) for k, v in values.items()]).where(~overlap)
    stmt = insert(RoomBooking).from_select(list(values), source).returning(RoomBooking.id)
    try:
        async with uow.session.begin_nested():
            new_id = (await uow.session.execute(stmt)).scalar_one_or_none()
    except IntegrityError as exc:
        if _sqlstate(exc) == "23P01" or _constraint_of(exc) == OVERLAP_CONSTRAINT:
            return None
        raise
    return int(new_id) if new_id is not None else None


def visible_bookings(viewer: Viewer) -> Select[RoomBooking]:
    """Bookings that exist for the viewer: their own, and all of their staff communities'."""
    staff_of = [cid for cid in viewer.community_ids if is_staff(viewer, cid)]
    conds: list[Any] = [RoomBooking.community_id.in_(staff_of)]
    if viewer.account_id is not None:
        conds.append(RoomBooking.account_id == viewer.account_id)
    if viewer.resident_id is not None:
        conds.append(RoomBooking.resident_id == viewer.resident_id)
    return select(RoomBooking).where(or_(*conds), RoomBooking.community_id.in_(viewer.community_ids))


async def decide_room_booking(
    uow: UnitOfWork, *, viewer: Viewer, booking_id: int, approve: bool, note: str = "", now: datetime | None = None
) -> RoomBooking:
    """Staff approve or reject a pending booking; the booker is told. Raises NotFound, Forbidden, BookingNotPending."""
    viewer.require_authenticated()
    now = now or utc_now()
    booking = await uow.session.scalar(
        _for_update(uow.session, visible_bookings(viewer).where(RoomBooking.id == booking_id))
    )
    if booking is None:
        raise NotFound("No such booking.", field="bookingId")
    _require_staff(viewer, booking.community_id)
    if booking.status != BookingStatus.PENDING.value:
        raise BookingNotPending(f"This booking is {booking.status}, not waiting for a decision.", field="bookingId")
    clean_note = _text(note, field="note", limit=MAX_REASON, what="note", required=not approve)
    booking.status = (BookingStatus.CONFIRMED if approve else BookingStatus.REJECTED).value
    booking.decided_by_account_id = viewer.account_id
    booking.decided_at = now
    booking.decision_note = clean_note or None
    await uow.session.flush()
    venue = await uow.session.get(Venue, booking.venue_id)
    word = "已通过" if approve else "未通过"
    if booking.account_id is not None:
        await notifications.notify(
            uow,
            recipients=[booking.account_id],
            message=notifications.Message(
                community_id=booking.community_id,
                event_key=f"room-booking:{booking.id}:decided",
                subject_kind="room_booking",
                subject_id=booking.id,
                title=f"{venue.name if venue else '场地'}预约{word}",
                body=f"{_hhmm(booking.starts_at)}–{local(booking.ends_at):%H:%M}"
                + (f"：{clean_note}" if clean_note else ""),
            ),
        )
    return booking


async def cancel_room_booking(
    uow: UnitOfWork, *, viewer: Viewer, booking_id: int, now: datetime | None = None
) -> RoomBooking:
    """The booker (or staff) cancel a booking before it starts. Raises NotFound, BookingNotActive, AlreadyStarted."""
    viewer.require_authenticated()
    now = now or utc_now()
    booking = await uow.session.scalar(
        _for_update(uow.session, visible_bookings(viewer).where(RoomBooking.id == booking_id))
    )
    if booking is None:
        raise NotFound("No such booking.", field="bookingId")
    if booking.status not in HOLDING_BOOKING_STATUSES:
        raise BookingNotActive(f"This booking is {booking.status} already.", field="bookingId")
    if booking.starts_at <= now:
        raise AlreadyStarted("The booking has begun.", field="bookingId")
    booking.status = BookingStatus.CANCELLED.value
    await uow.session.flush()
    return booking


# -- activities and series -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivityDraft:
    venue_id: int
    title: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    kind: ActivityKind = ActivityKind.OTHER
    description: str = ""
    min_age: int | None = None
    max_age: int | None = None
    signup_opens_at: datetime | None = None  # default: now
    signup_closes_at: datetime | None = None  # default: the start
    price_cents: int = 0


@dataclass(frozen=True, slots=True)
class SeriesDraft:
    venue_id: int
    title: str
    weekday: int
    start_minute: int
    duration_minutes: int
    starts_on: date
    until: date
    capacity: int
    kind: ActivityKind = ActivityKind.OTHER
    description: str = ""
    min_age: int | None = None
    max_age: int | None = None
    price_cents: int = 0
    signup_opens_days_before: int = 7
    exceptions: Sequence[date] = field(default_factory=tuple)


def _check_ages(min_age: int | None, max_age: int | None) -> None:
    for value, name in ((min_age, "minAge"), (max_age, "maxAge")):
        if value is not None and not 0 <= value <= MAX_AGE:
            raise ValidationFailed(f"Ages run from 0 to {MAX_AGE}.", field=name)
    if min_age is not None and max_age is not None and min_age > max_age:
        raise ValidationFailed("The youngest age cannot be above the oldest.", field="maxAge")


def _check_capacity(capacity: int, venue: Venue) -> None:
    if not 1 <= capacity <= venue.capacity:
        raise ValidationFailed(f"{venue.name} takes 1 to {venue.capacity} people.", field="capacity")


def _check_price(price_cents: int) -> None:
    if not 0 <= price_cents <= MAX_PRICE_CENTS:
        raise ValidationFailed("The price is 0 (free) to 1,000 yuan.", field="priceCents")


async def create_activity(
    uow: UnitOfWork, *, viewer: Viewer, draft: ActivityDraft, now: datetime | None = None
) -> VenueActivity:
    """Staff put on an activity in a venue; they are its organiser.

    Raises Unauthenticated, NotFound, Forbidden, ValidationFailed, VenueClosed.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    venue = await _venue(uow.session, viewer, draft.venue_id)
    _require_staff(viewer, venue.community_id)
    title = _text(draft.title, field="title", limit=MAX_TITLE, what="title")
    description = _text(draft.description, field="description", limit=MAX_TEXT, what="description", required=False)
    start, end = _aware(draft.starts_at, "startsAt"), _aware(draft.ends_at, "endsAt")
    _whole_minute(start, "startsAt")
    _whole_minute(end, "endsAt")
    if end <= start:
        raise ValidationFailed("The activity must end after it starts.", field="endsAt")
    if start < now:
        raise ValidationFailed("The activity cannot start in the past.", field="startsAt")
    if end - start > MAX_ACTIVITY:
        raise ValidationFailed("An activity lasts at most 12 hours.", field="endsAt")
    _check_capacity(draft.capacity, venue)
    _check_ages(draft.min_age, draft.max_age)
    _check_price(draft.price_cents)
    opens = _aware(draft.signup_opens_at, "signupOpensAt") if draft.signup_opens_at else now
    closes = _aware(draft.signup_closes_at, "signupClosesAt") if draft.signup_closes_at else start
    if closes <= opens:
        raise ValidationFailed("Sign-up must close after it opens.", field="signupClosesAt")
    if closes > end:
        raise ValidationFailed("Sign-up must close by the end of the activity.", field="signupClosesAt")
    closure = await _closure_during(uow.session, venue.id, start, end)
    if closure is not None:
        raise VenueClosed(f"{venue.name} is closed then: {closure.reason or 'closed'}.", field="startsAt")
    activity = VenueActivity(
        community_id=venue.community_id,
        venue_id=venue.id,
        kind=ActivityKind(draft.kind).value,
        title=title,
        description=description,
        starts_at=start,
        ends_at=end,
        capacity=draft.capacity,
        min_age=draft.min_age,
        max_age=draft.max_age,
        signup_opens_at=opens,
        signup_closes_at=closes,
        price_cents=draft.price_cents,
        organiser_account_id=viewer.account_id,
        waitlist_seq=0,
        created_at=now,
    )
    uow.session.add(activity)
    await uow.session.flush()
    return activity


def occurrences(draft: SeriesDraft) -> list[datetime]:
    """Every start (UTC) of a weekly series from `starts_on` to `until`, without the exception dates."""
    skip = set(draft.exceptions)
    day = draft.starts_on + timedelta(days=(draft.weekday - draft.starts_on.weekday()) % 7)
    out = []
    while day <= draft.until:
        if day not in skip:
            local_start = datetime.combine(day, time(0, 0), CHINA_TZ) + timedelta(minutes=draft.start_minute)
            out.append(local_start.astimezone(UTC))
        day += timedelta(days=7)
    return out


async def create_series(
    uow: UnitOfWork, *, viewer: Viewer, draft: SeriesDraft, now: datetime | None = None
) -> tuple[ActivitySeries, list[VenueActivity]]:
    """A weekly activity (e.g. pottery every Saturday at 14:00): the series and each of its sessions.

    Sessions on exception dates, in the past or during a closure are left out. Sign-up for each
    opens `signup_opens_days_before` days ahead and closes at its start. Raises NotFound,
    Forbidden, ValidationFailed.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    venue = await _venue(uow.session, viewer, draft.venue_id)
    _require_staff(viewer, venue.community_id)
    title = _text(draft.title, field="title", limit=MAX_TITLE, what="title")
    description = _text(draft.description, field="description", limit=MAX_TEXT, what="description", required=False)
    if not 0 <= draft.weekday <= 6:
        raise ValidationFailed("Weekdays run from 0 (Monday) to 6 (Sunday).", field="weekday")
    if not 0 <= draft.start_minute < 24 * 60:
        raise ValidationFailed("Start within the day (minute 0 to 1439).", field="startMinute")
    if not 15 <= draft.duration_minutes <= 12 * 60 or draft.start_minute + draft.duration_minutes > 24 * 60:
        raise ValidationFailed("A session lasts 15 minutes to 12 hours, within its day.", field="durationMinutes")
    if draft.until < draft.starts_on:
        raise ValidationFailed("The series must end on or after its first day.", field="until")
    if (draft.until - draft.starts_on).days > MAX_SERIES_DAYS:
        raise ValidationFailed("A series runs for at most a year; add another after.", field="until")
    if not 0 <= draft.signup_opens_days_before <= 60:
        raise ValidationFailed("Sign-up opens 0 to 60 days ahead.", field="signupOpensDaysBefore")
    _check_capacity(draft.capacity, venue)
    _check_ages(draft.min_age, draft.max_age)
    _check_price(draft.price_cents)
    duration = timedelta(minutes=draft.duration_minutes)
    starts = [s for s in occurrences(draft) if s > now]
    closures = (
        await uow.session.scalars(
            select(VenueClosure).where(
                VenueClosure.venue_id == venue.id,
                VenueClosure.ends_at > now,
            )
        )
    ).all()
    starts = [s for s in starts if not any(c.starts_at < s + duration and c.ends_at > s for c in closures)]
    if not starts:
        raise ValidationFailed("No session of the series falls on an open day ahead.", field="until")
    series = ActivitySeries(
        community_id=venue.community_id,
        venue_id=venue.id,
        title=title,
        kind=ActivityKind(draft.kind).value,
        weekday=draft.weekday,
        start_minute=draft.start_minute,
        duration_minutes=draft.duration_minutes,
        starts_on=draft.starts_on,
        until_date=draft.until,
        exceptions=sorted({d.isoformat() for d in draft.exceptions}),
        organiser_account_id=viewer.account_id,
        created_at=now,
    )
    uow.session.add(series)
    await uow.session.flush()
    activities = [
        VenueActivity(
            community_id=venue.community_id,
            venue_id=venue.id,
            series_id=series.id,
            kind=series.kind,
            title=title,
            description=description,
            starts_at=start,
            ends_at=start + duration,
            capacity=draft.capacity,
            min_age=draft.min_age,
            max_age=draft.max_age,
            signup_opens_at=min(
                max(now, start - timedelta(days=draft.signup_opens_days_before)), start - timedelta(minutes=1)
            ),
            signup_closes_at=start,
            price_cents=draft.price_cents,
            organiser_account_id=viewer.account_id,
            waitlist_seq=0,
            created_at=now,
        )
        for start in starts
    ]
    uow.session.add_all(activities)
    await uow.session.flush()
    return series, activities


def _may_run(viewer: Viewer, activity: VenueActivity) -> bool:
    """Staff of the community, or the activity's organiser."""
    return is_staff(viewer, activity.community_id) or (
        viewer.account_id is not None and activity.organiser_account_id == viewer.account_id
    )


async def cancel_activity(
    uow: UnitOfWork, *, viewer: Viewer, activity_id: int, reason: str = "", now: datetime | None = None
) -> tuple[VenueActivity, int]:
    """The organiser (or staff) call an activity off; every sign-up is cancelled and its people told.

    A session of a series becomes one of the series' exceptions. Returns (activity, sign-ups
    cancelled). Raises NotFound, Forbidden, ActivityCancelled, AlreadyStarted, ValidationFailed.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    # FOR UPDATE waits for sign-ups in flight (they hold KEY SHARE) and holds back new ones.
    activity = await uow.session.scalar(
        _for_update(uow.session, select(VenueActivity).where(VenueActivity.id == activity_id))
    )
    if activity is None or activity.community_id not in viewer.community_ids:
        raise NotFound("No such activity.", field="activityId")
    if not _may_run(viewer, activity):
        raise Forbidden("Only the organiser or staff can call the activity off.")
    if activity.cancelled_at is not None:
        raise ActivityCancelled("This activity is called off already.", field="activityId")
    if activity.ends_at <= now:
        raise AlreadyStarted("The activity is over.", field="activityId")
    why = _text(reason, field="reason", limit=MAX_REASON, what="reason", required=False)
    activity.cancelled_at = now
    activity.cancel_reason = why or None
    result = await uow.session.execute(
        update(SignUp)
        .where(
            SignUp.activity_id == activity.id,
            SignUp.status.in_(
                [SignUpStatus.CONFIRMED.value, SignUpStatus.WAITLISTED.value, SignUpStatus.OFFERED.value]
            ),
        )
        .values(
            status=SignUpStatus.CANCELLED.value,
            seat=None,
            offer_expires_at=None,
            cancelled_at=now,
            cancel_reason="activity_cancelled",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if activity.series_id is not None:
        series = await uow.session.get(ActivitySeries, activity.series_id)
        if series is not None:
            day = local(activity.starts_at).date().isoformat()
            series.exceptions = sorted({*series.exceptions, day})
    await uow.session.flush()
    uow.enqueue(jobs.activity_cancelled(activity.id))
    return activity, _rowcount(result)


# -- sign-ups --------------------------------------------------------------------------------------


async def _participants(
    session: AsyncSession, viewer: Viewer, community_id: int, ids: Sequence[int], today: date
) -> list[Resident]:
    """The residents the viewer may sign up: themself, and children they are guardian of or live with.

    Staff may sign up anyone of the community (a phone call, the desk). Raises NotFound, NotGuardian.
    """
    rows = {r.id: r for r in (await session.scalars(select(Resident).where(Resident.id.in_(list(ids))))).all()}
    people = []
    for rid in ids:
        r = rows.get(rid)
        if r is None or r.community_id != community_id:
            raise NotFound("No such resident in this community.", field="participantIds")
        people.append(r)
    if is_staff(viewer, community_id):
        return people
    me = await session.get(Resident, viewer.resident_id) if viewer.resident_id is not None else None
    if me is None or me.community_id != community_id:
        raise NotGuardian("Only a registered resident of the community can sign up.", field="participantIds")
    adult = age_on(me.birth_date, today) >= ADULT_AGE
    for r in people:
        own_child = r.guardian_id == me.id
        household_child = (
            adult
            and r.household_id is not None
            and r.household_id == me.household_id
            and age_on(r.birth_date, today) < ADULT_AGE
        )
        if not (r.id == me.id or own_child or household_child):
            raise NotGuardian(
                f"You can sign up yourself and the children in your care, not {r.name}.", field="participantIds"
            )
    return people


async def blocked_until(
    session: AsyncSession, *, resident_ids: Sequence[int], policy: VenuePolicy, now: datetime
) -> dict[int, datetime]:
    """Participants blocked by repeated no-shows: `limit` no-shows within the window block them for a while."""
    if not resident_ids:
        return {}
    horizon = now - timedelta(days=policy.no_show_window_days + policy.no_show_block_days)
    rows = await session.execute(
        select(SignUp.participant_resident_id, VenueActivity.ends_at)
        .join(VenueActivity, VenueActivity.id == SignUp.activity_id)
        .where(
            SignUp.participant_resident_id.in_(list(resident_ids)),
            SignUp.status == SignUpStatus.NO_SHOW.value,
            VenueActivity.ends_at > horizon,
        )
        .order_by(SignUp.participant_resident_id, VenueActivity.ends_at.desc())
    )
    by_person: dict[int, list[datetime]] = defaultdict(list)
    for rid, ended in rows.all():
        by_person[rid].append(ended)
    out = {}
    for rid, ends in by_person.items():
        if len(ends) < policy.no_show_limit:
            continue
        latest, nth = ends[0], ends[policy.no_show_limit - 1]
        until = latest + timedelta(days=policy.no_show_block_days)
        if latest - nth <= timedelta(days=policy.no_show_window_days) and now < until:
            out[rid] = until
    return out


async def _someone_waiting(session: AsyncSession, activity_id: int) -> bool:
    found = await session.scalar(
        select(SignUp.id)
        .where(SignUp.activity_id == activity_id, SignUp.status == SignUpStatus.WAITLISTED.value)
        .limit(1)
    )
    return found is not None


async def seats_taken(session: AsyncSession, activity_id: int) -> set[int]:
    rows = await session.scalars(select(SignUp.seat).where(SignUp.activity_id == activity_id, SignUp.seat.is_not(None)))
    return {int(s) for s in rows.all() if s is not None}


def _is_retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialisation failure: the savepoint is rolled back and the step tried again."""
    return _sqlstate(exc) in ("40P01", "40001")


async def _take_seat(
    uow: UnitOfWork, activity: VenueActivity, make: Any, *, max_attempts: int | None = None
) -> SignUp | None:
    """Insert a seated sign-up on a free seat; the unique (activity, seat) index decides races.

    Each try takes a random free seat (so concurrent sign-ups rarely want the same one); a seat
    someone else took meanwhile means another try. None when no seat is left.
    """
    attempts = max_attempts or activity.capacity + 10
    for _ in range(attempts):
        taken = await seats_taken(uow.session, activity.id)
        free = [s for s in range(1, activity.capacity + 1) if s not in taken]
        if not free:
            return None
        row: SignUp = make(seat=secrets.choice(free), status=SignUpStatus.CONFIRMED, position=None)
        try:
            async with uow.session.begin_nested():
                uow.session.add(row)
                await uow.session.flush()
        except IntegrityError as exc:
            if _violates(exc, PARTICIPANT_INDEX, "activity_id", "participant_resident_id"):
                raise AlreadySignedUp("Already signed up for this activity.", field="participantIds") from exc
            if _violates(exc, SEAT_INDEX, "activity_id", "seat") or "check_in_code" in _constraint_of(exc):
                continue  # someone took that seat (or, once in a blue moon, that code): try again
            raise
        except DBAPIError as exc:
            if _is_retryable(exc):
                continue
            raise
        return row
    return None


async def _join_waitlist(uow: UnitOfWork, activity: VenueActivity, make: Any) -> SignUp:
    """Take the activity's next waitlist number (a conditional UPDATE … RETURNING) and queue up."""
    position = await uow.session.scalar(
        update(VenueActivity)
        .where(VenueActivity.id == activity.id, VenueActivity.cancelled_at.is_(None))
        .values(waitlist_seq=VenueActivity.waitlist_seq + 1)
        .returning(VenueActivity.waitlist_seq)
        .execution_options(synchronize_session=False)
    )
    if position is None:
        raise ActivityCancelled("This activity has been called off.", field="activityId")
    for _ in range(3):
        row: SignUp = make(seat=None, status=SignUpStatus.WAITLISTED, position=int(position))
        try:
            async with uow.session.begin_nested():
                uow.session.add(row)
                await uow.session.flush()
        except IntegrityError as exc:
            if _violates(exc, PARTICIPANT_INDEX, "activity_id", "participant_resident_id"):
                raise AlreadySignedUp("Already signed up for this activity.", field="participantIds") from exc
            if "check_in_code" in _constraint_of(exc):
                continue
            raise
        return row
    raise Conflict("Could not sign up; please try again.", field="activityId")


async def sign_up(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    activity_id: int,
    participant_ids: Sequence[int],
    policy: VenuePolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> list[SignUp]:
    """Sign up oneself, or one or more children, for an activity; each gets a seat or a waitlist place.

    All or nothing: every participant is checked (who they are to the viewer, age on the day,
    no-show block, not signed up yet) before any place is taken. A full activity is not an
    error: the sign-up joins the waitlist. Raises Unauthenticated, NotFound, ValidationFailed,
    ActivityCancelled, OutsideSignupWindow, NotGuardian, TooYoung, TooOld, Blocked, AlreadySignedUp.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    ids = list(dict.fromkeys(participant_ids))
    if not ids:
        raise ValidationFailed("Choose who takes part.", field="participantIds")
    if len(ids) > MAX_PARTICIPANTS:
        raise ValidationFailed(f"At most {MAX_PARTICIPANTS} people at once.", field="participantIds")
    activity = await uow.session.scalar(
        _key_share(uow.session, select(VenueActivity).where(VenueActivity.id == activity_id))
    )
    if activity is None or activity.community_id not in viewer.community_ids:
        raise NotFound("No such activity.", field="activityId")
    if activity.cancelled_at is not None:
        raise ActivityCancelled("This activity has been called off.", field="activityId")
    if not activity.signup_opens_at <= now < activity.signup_closes_at:
        raise OutsideSignupWindow(
            f"Sign-up is open from {_hhmm(activity.signup_opens_at)} to {_hhmm(activity.signup_closes_at)}.",
            field="activityId",
        )
    day = local(activity.starts_at).date()
    people = await _participants(uow.session, viewer, activity.community_id, ids, day)
    for person in people:
        age = age_on(person.birth_date, day)
        if activity.min_age is not None and age < activity.min_age:
            raise TooYoung(
                f"{person.name} is {age}; this is for ages {activity.min_age} and up.", field="participantIds"
            )
        if activity.max_age is not None and age > activity.max_age:
            raise TooOld(f"{person.name} is {age}; this is for ages up to {activity.max_age}.", field="participantIds")
    blocked = await blocked_until(uow.session, resident_ids=ids, policy=policy, now=now)
    for person in people:
        if person.id in blocked:
            until = blocked[person.id]
            raise Blocked(
                f"{person.name} missed {policy.no_show_limit} activities without cancelling; "
                f"sign-up is possible again from {local(until):%Y-%m-%d}.",
                until=until,
                field="participantIds",
            )
    already = (
        await uow.session.scalars(
            select(SignUp.participant_resident_id).where(
                SignUp.activity_id == activity.id,
                SignUp.participant_resident_id.in_(ids),
                SignUp.status != SignUpStatus.CANCELLED.value,
            )
        )
    ).all()
    if already:
        names = "、".join(p.name for p in people if p.id in set(already))
        raise AlreadySignedUp(f"Already signed up: {names}.", field="participantIds")

    waiting = await _someone_waiting(uow.session, activity.id)
    rows: list[SignUp] = []
    for person in people:

        def make(*, seat: int | None, status: SignUpStatus, position: int | None, _p: Resident = person) -> SignUp:
            return SignUp(
                community_id=activity.community_id,
                activity_id=activity.id,
                participant_resident_id=_p.id,
                signed_up_by_account_id=viewer.account_id,
                status=status.value,
                seat=seat,
                waitlist_position=position,
                check_in_code=_code(),
                created_at=now,
                updated_at=now,
            )

        row = None if waiting else await _take_seat(uow, activity, make)
        if row is None:
            waiting = True  # full: the rest of this family queues behind
            row = await _join_waitlist(uow, activity, make)
        rows.append(row)
    if (
        any(r.status == SignUpStatus.WAITLISTED.value for r in rows)
        and len(await seats_taken(uow.session, activity.id)) < activity.capacity
    ):
        # A seat came free while we queued: make sure the worker offers it (in waitlist order).
        uow.enqueue(jobs.offer_next(activity.id))
    return rows


def visible_sign_ups(viewer: Viewer) -> Select[SignUp]:
    """Sign-ups that exist for the viewer: made by them, for them, of activities they run, and staff's."""
    staff_of = [cid for cid in viewer.community_ids if is_staff(viewer, cid)]
    conds: list[Any] = [SignUp.community_id.in_(staff_of)]
    if viewer.account_id is not None:
        conds.append(SignUp.signed_up_by_account_id == viewer.account_id)
        conds.append(
            SignUp.activity_id.in_(
                select(VenueActivity.id).where(VenueActivity.organiser_account_id == viewer.account_id)
            )
        )
    if viewer.resident_id is not None:
        conds.append(SignUp.participant_resident_id == viewer.resident_id)
        conds.append(SignUp.participant_resident_id.in_(_wards(viewer.resident_id)))
    return select(SignUp).where(or_(*conds), SignUp.community_id.in_(viewer.community_ids))


def _wards(resident_id: int) -> Select[int]:
    """The residents whose registered guardian is `resident_id`."""
    return select(Resident.id).where(Resident.guardian_id == resident_id)


async def _is_own(session: AsyncSession, viewer: Viewer, row: SignUp) -> bool:
    """The viewer made the sign-up, takes part, or is the participant's registered guardian."""
    if (viewer.account_id is not None and row.signed_up_by_account_id == viewer.account_id) or (
        viewer.resident_id is not None and row.participant_resident_id == viewer.resident_id
    ):
        return True
    if viewer.resident_id is None:
        return False
    guardian = await session.scalar(select(Resident.guardian_id).where(Resident.id == row.participant_resident_id))
    return guardian is not None and guardian == viewer.resident_id


async def cancel_sign_up(uow: UnitOfWork, *, viewer: Viewer, sign_up_id: int, now: datetime | None = None) -> SignUp:
    """Cancel a place or a place in line (also how an offer is declined); a freed seat goes to the waitlist.

    Raises Unauthenticated, NotFound, SignUpNotActive, AlreadyStarted.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    row = await uow.session.scalar(_for_update(uow.session, visible_sign_ups(viewer).where(SignUp.id == sign_up_id)))
    if row is None:
        raise NotFound("No such sign-up.", field="signUpId")
    activity = await uow.session.get(VenueActivity, row.activity_id)
    assert activity is not None
    own = await _is_own(uow.session, viewer, row)
    if not (own or _may_run(viewer, activity)):
        raise NotFound("No such sign-up.", field="signUpId")
    if row.status not in (SignUpStatus.CONFIRMED.value, SignUpStatus.WAITLISTED.value, SignUpStatus.OFFERED.value):
        raise SignUpNotActive(f"This sign-up is {row.status}.", field="signUpId")
    if activity.starts_at <= now:
        raise AlreadyStarted("The activity has begun.", field="signUpId")
    held_seat = row.seat is not None
    row.status = SignUpStatus.CANCELLED.value
    row.seat = None
    row.offer_expires_at = None
    row.cancelled_at = now
    row.cancel_reason = "participant" if own else "organiser"
    row.updated_at = now
    await uow.session.flush()
    if held_seat:
        uow.enqueue(jobs.offer_next(activity.id))
    return row


async def accept_offer(uow: UnitOfWork, *, viewer: Viewer, sign_up_id: int, now: datetime | None = None) -> SignUp:
    """Take the seat offered from the waitlist, before the offer lapses. Raises NotFound, OfferNotOpen."""
    viewer.require_authenticated()
    now = now or utc_now()
    row = await uow.session.scalar(visible_sign_ups(viewer).where(SignUp.id == sign_up_id))
    if row is None or not await _is_own(uow.session, viewer, row):
        raise NotFound("No such sign-up.", field="signUpId")
    won = await uow.session.execute(
        update(SignUp)
        .where(
            SignUp.id == row.id,
            SignUp.status == SignUpStatus.OFFERED.value,
            SignUp.offer_expires_at > now,
        )
        .values(status=SignUpStatus.CONFIRMED.value, offer_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not _rowcount(won):
        raise OfferNotOpen(
            "There is no open offer on this sign-up (it was accepted, lapsed or withdrawn).", field="signUpId"
        )
    await uow.session.refresh(row)
    return row


async def check_in(
    uow: UnitOfWork, *, viewer: Viewer, activity_id: int, code: str, now: datetime | None = None
) -> SignUp:
    """Staff (or the organiser) check a participant in by the code on their sign-up (typed or scanned).

    A no-show recorded early is corrected. Raises NotFound, Forbidden, ActivityCancelled,
    CheckInClosed, AlreadyCheckedIn, SignUpNotActive.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    activity = await uow.session.get(VenueActivity, activity_id)
    if activity is None or activity.community_id not in viewer.community_ids:
        raise NotFound("No such activity.", field="activityId")
    if not _may_run(viewer, activity):
        raise Forbidden("Only the organiser or staff check people in.")
    if activity.cancelled_at is not None:
        raise ActivityCancelled("This activity has been called off.", field="activityId")
    opens, closes = activity.starts_at - CHECK_IN_OPENS_BEFORE, activity.ends_at + CHECK_IN_CLOSES_AFTER
    if not opens <= now <= closes:
        raise CheckInClosed(f"Check-in is open from {_hhmm(opens)} to {_hhmm(closes)}.", field="code")
    clean = normalise_code(code)
    row = await uow.session.scalar(
        _for_update(uow.session, select(SignUp).where(SignUp.activity_id == activity.id, SignUp.check_in_code == clean))
    )
    if row is None:
        raise NotFound("No sign-up of this activity has that code.", field="code")
    if row.status == SignUpStatus.ATTENDED.value:
        raise AlreadyCheckedIn("Checked in already.", field="code")
    if row.status not in (SignUpStatus.CONFIRMED.value, SignUpStatus.NO_SHOW.value):
        raise SignUpNotActive(f"This sign-up is {row.status}, not a confirmed place.", field="code")
    row.status = SignUpStatus.ATTENDED.value
    row.checked_in_at = now
    row.updated_at = now
    await uow.session.flush()
    return row


# -- the worker's side: offers, reminders, attendance ---------------------------------------------


async def offer_next(
    uow: UnitOfWork, *, activity_id: int, policy: VenuePolicy = DEFAULT_POLICY, now: datetime | None = None
) -> list[SignUp]:
    """Offer each free seat to the next waitlisted sign-up, in waitlist order, for a limited time.

    Each offer holds its seat, is told to the family, and has an expiry job. Idempotent: only free
    seats and waitlisted sign-ups change, under the activity's lock; a repeat finds nothing to do.
    """
    now = now or utc_now()
    activity = await uow.session.scalar(
        _no_key_update(uow.session, select(VenueActivity).where(VenueActivity.id == activity_id))
    )
    if activity is None or activity.cancelled_at is not None or activity.starts_at <= now:
        return []
    expires = min(now + timedelta(minutes=policy.offer_minutes), activity.starts_at)
    offered: list[SignUp] = []
    for _ in range(activity.capacity + 10):
        free = sorted(set(range(1, activity.capacity + 1)) - await seats_taken(uow.session, activity.id))
        if not free:
            break
        nxt = await uow.session.scalar(
            _for_update(
                uow.session,
                select(SignUp)
                .where(SignUp.activity_id == activity.id, SignUp.status == SignUpStatus.WAITLISTED.value)
                .order_by(SignUp.waitlist_position)
                .limit(1),
            )
        )
        if nxt is None:
            break
        try:
            async with uow.session.begin_nested():
                nxt.status = SignUpStatus.OFFERED.value
                nxt.seat = free[0]
                nxt.offer_expires_at = expires
                nxt.updated_at = now
                await uow.session.flush()
        except IntegrityError as exc:
            if _violates(exc, SEAT_INDEX, "activity_id", "seat"):
                await uow.session.refresh(nxt)
                continue  # a newcomer took that seat meanwhile: look again
            raise
        offered.append(nxt)
        uow.enqueue(jobs.expire_offer(nxt.id, delay_ms=int((expires - now).total_seconds() * 1000) + 1000))
    if offered:
        venue = await uow.session.get(Venue, activity.venue_id)
        for s in offered:
            await _tell(
                uow,
                [s],
                kind=f"offered:{s.waitlist_position}",
                title=f"候补到位：{activity.title}",
                body=(
                    f"{_hhmm(activity.starts_at)} {venue.name if venue else ''} 有空位了，"
                    f"请在 {_hhmm(expires)} 前确认，逾期将顺延给下一位。"
                ),
                community_id=activity.community_id,
            )
    return offered


async def expire_offer(uow: UnitOfWork, *, sign_up_id: int, now: datetime | None = None) -> bool:
    """Lapse an offer whose time is up; the seat moves on to the next in line.

    Idempotent: only an OFFERED sign-up past its expiry changes; True when this call did it.
    """
    now = now or utc_now()
    won = await uow.session.execute(
        update(SignUp)
        .where(
            SignUp.id == sign_up_id,
            SignUp.status == SignUpStatus.OFFERED.value,
            SignUp.offer_expires_at <= now,
        )
        .values(
            status=SignUpStatus.CANCELLED.value,
            seat=None,
            cancelled_at=now,
            cancel_reason="offer_expired",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not _rowcount(won):
        return False
    row = await uow.session.get(SignUp, sign_up_id)
    assert row is not None
    await uow.session.refresh(row)
    activity = await uow.session.get(VenueActivity, row.activity_id)
    uow.enqueue(jobs.offer_next(row.activity_id))
    if activity is not None:
        await _tell(
            uow,
            [row],
            kind="offer_expired",
            title=f"候补名额已过期：{activity.title}",
            body="您没有在期限内确认，名额已顺延给下一位。",
            community_id=activity.community_id,
        )
    return True


async def send_reminders(uow: UnitOfWork, *, activity_id: int, now: datetime | None = None) -> int:
    """Remind everyone with a place the day before. Idempotent: `reminded_at` is set once; returns notices added."""
    now = now or utc_now()
    won = await uow.session.execute(
        update(VenueActivity)
        .where(
            VenueActivity.id == activity_id,
            VenueActivity.reminded_at.is_(None),
            VenueActivity.cancelled_at.is_(None),
            VenueActivity.starts_at > now,
        )
        .values(reminded_at=now)
        .execution_options(synchronize_session=False)
    )
    if not _rowcount(won):
        return 0
    activity = await uow.session.get(VenueActivity, activity_id)
    assert activity is not None
    venue = await uow.session.get(Venue, activity.venue_id)
    rows = (
        await uow.session.scalars(
            select(SignUp)
            .where(SignUp.activity_id == activity.id, SignUp.status == SignUpStatus.CONFIRMED.value)
            .order_by(SignUp.id)
        )
    ).all()
    added = 0
    for s in rows:
        added += await _tell(
            uow,
            [s],
            kind="reminder",
            title=f"明天的活动：{activity.title}",
            body=f"{_hhmm(activity.starts_at)} 在{venue.name if venue else ''}，签到码 {s.check_in_code}。不能来请提前取消。",
            community_id=activity.community_id,
        )
    return added


async def close_attendance(uow: UnitOfWork, *, activity_id: int, now: datetime | None = None) -> int:
    """After check-in closes: confirmed sign-ups that never checked in are no-shows; open offers lapse.

    Idempotent: `attendance_closed_at` is set once. Returns the no-shows recorded.
    """
    now = now or utc_now()
    won = await uow.session.execute(
        update(VenueActivity)
        .where(
            VenueActivity.id == activity_id,
            VenueActivity.attendance_closed_at.is_(None),
            VenueActivity.cancelled_at.is_(None),
            VenueActivity.ends_at <= now - CHECK_IN_CLOSES_AFTER,
        )
        .values(attendance_closed_at=now)
        .execution_options(synchronize_session=False)
    )
    if not _rowcount(won):
        return 0
    no_shows = await uow.session.execute(
        update(SignUp)
        .where(SignUp.activity_id == activity_id, SignUp.status == SignUpStatus.CONFIRMED.value)
        .values(status=SignUpStatus.NO_SHOW.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await uow.session.execute(
        update(SignUp)
        .where(SignUp.activity_id == activity_id, SignUp.status == SignUpStatus.OFFERED.value)
        .values(
            status=SignUpStatus.CANCELLED.value,
            seat=None,
            cancelled_at=now,
            cancel_reason="offer_expired",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(no_shows)


async def tell_activity_cancelled(uow: UnitOfWork, *, activity_id: int) -> int:
    """Tell everyone whose sign-up the organiser's cancellation ended. Idempotent: one notice per (sign-up, kind)."""
    activity = await uow.session.get(VenueActivity, activity_id)
    if activity is None or activity.cancelled_at is None:
        return 0
    rows = (
        await uow.session.scalars(
            select(SignUp)
            .where(SignUp.activity_id == activity.id, SignUp.cancel_reason == "activity_cancelled")
            .order_by(SignUp.id)
        )
    ).all()
    reason = f"（{activity.cancel_reason}）" if activity.cancel_reason else ""
    return await _tell(
        uow,
        rows,
        kind="activity_cancelled",
        title=f"活动取消：{activity.title}",
        body=f"{_hhmm(activity.starts_at)} 的{activity.title}已取消{reason}。给您带来不便，敬请谅解。",
        community_id=activity.community_id,
    )


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    reminders: list[int]
    attendance: list[int]
    expired_offers: list[int]
    refills: list[int]


async def scan(uow: UnitOfWork, *, now: datetime | None = None) -> ScanOutcome:
    """Find what is due and enqueue a job for each (every one of them idempotent).

    Reminders for activities starting within a day; attendance for those whose check-in has
    closed; offers past their expiry (in case the delayed job was lost); seats left free while
    people wait (in case an offer_next job was lost).
    """
    now = now or utc_now()
    reminders = list(
        (
            await uow.session.scalars(
                select(VenueActivity.id).where(
                    VenueActivity.cancelled_at.is_(None),
                    VenueActivity.reminded_at.is_(None),
                    VenueActivity.starts_at > now,
                    VenueActivity.starts_at <= now + REMIND_BEFORE,
                )
            )
        ).all()
    )
    attendance = list(
        (
            await uow.session.scalars(
                select(VenueActivity.id).where(
                    VenueActivity.cancelled_at.is_(None),
                    VenueActivity.attendance_closed_at.is_(None),
                    VenueActivity.ends_at <= now - CHECK_IN_CLOSES_AFTER,
                )
            )
        ).all()
    )
    expired = list(
        (
            await uow.session.scalars(
                select(SignUp.id).where(SignUp.status == SignUpStatus.OFFERED.value, SignUp.offer_expires_at <= now)
            )
        ).all()
    )
    seated = (
        select(func.count())
        .where(SignUp.activity_id == VenueActivity.id, SignUp.seat.is_not(None))
        .correlate(VenueActivity)
        .scalar_subquery()
    )
    refills = list(
        (
            await uow.session.scalars(
                select(VenueActivity.id).where(
                    VenueActivity.cancelled_at.is_(None),
                    VenueActivity.starts_at > now,
                    exists().where(
                        SignUp.activity_id == VenueActivity.id, SignUp.status == SignUpStatus.WAITLISTED.value
                    ),
                    seated < VenueActivity.capacity,
                )
            )
        ).all()
    )
    for activity_id in reminders:
        uow.enqueue(jobs.send_reminders(activity_id))
    for activity_id in attendance:
        uow.enqueue(jobs.close_attendance(activity_id))
    for sign_up_id in expired:
        uow.enqueue(jobs.expire_offer(sign_up_id, delay_ms=0))
    for activity_id in refills:
        uow.enqueue(jobs.offer_next(activity_id))
    return ScanOutcome(reminders, attendance, expired, refills)


# -- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Places:
    """How full an activity is."""

    capacity: int
    taken: int
    waiting: int

    @property
    def left(self) -> int:
        return max(self.capacity - self.taken, 0)


async def places(session: AsyncSession, *, activities: Sequence[VenueActivity]) -> dict[int, Places]:
    """Seats taken and people waiting for each activity, in one grouped statement."""
    ids = [a.id for a in activities]
    out = {a.id: Places(a.capacity, 0, 0) for a in activities}
    if not ids:
        return out
    rows = await session.execute(
        select(
            SignUp.activity_id,
            func.count(SignUp.seat),
            func.count().filter(SignUp.status == SignUpStatus.WAITLISTED.value),
        )
        .where(SignUp.activity_id.in_(ids))
        .group_by(SignUp.activity_id)
    )
    for activity_id, taken, waiting in rows.all():
        out[activity_id] = Places(out[activity_id].capacity, int(taken), int(waiting))
    return out


async def activities_between(
    session: AsyncSession,
    *,
    viewer: Viewer,
    community_id: int,
    since: datetime,
    until: datetime,
    venue_id: int | None = None,
    include_cancelled: bool = False,
) -> list[VenueActivity]:
    if community_id not in viewer.community_ids:
        return []
    stmt = select(VenueActivity).where(
        VenueActivity.community_id == community_id,
        VenueActivity.starts_at >= since,
        VenueActivity.starts_at < until,
    )
    if venue_id is not None:
        stmt = stmt.where(VenueActivity.venue_id == venue_id)
    if not include_cancelled:
        stmt = stmt.where(VenueActivity.cancelled_at.is_(None))
    rows = await session.scalars(stmt.order_by(VenueActivity.starts_at, VenueActivity.id).limit(MAX_LISTED))
    return list(rows.all())


async def this_week(
    session: AsyncSession, *, viewer: Viewer, community_id: int, week_of: date | None = None
) -> list[tuple[VenueActivity, Places]]:
    """What is on in the community this week (Monday to Sunday, China time), with places left."""
    start, end = week_bounds(week_of or local(utc_now()).date())
    rows = await activities_between(session, viewer=viewer, community_id=community_id, since=start, until=end)
    counts = await places(session, activities=rows)
    return [(a, counts[a.id]) for a in rows]


async def my_sign_ups(
    session: AsyncSession, *, viewer: Viewer, include_past: bool = False, now: datetime | None = None
) -> list[SignUp]:
    """Sign-ups the viewer made or takes part in, soonest activity first (upcoming only unless asked)."""
    if viewer.account_id is None:
        return []
    now = now or utc_now()
    own: list[Any] = [SignUp.signed_up_by_account_id == viewer.account_id]
    if viewer.resident_id is not None:
        own.append(SignUp.participant_resident_id == viewer.resident_id)
        own.append(SignUp.participant_resident_id.in_(_wards(viewer.resident_id)))
    stmt = (
        select(SignUp)
        .join(VenueActivity, VenueActivity.id == SignUp.activity_id)
        .where(or_(*own), SignUp.community_id.in_(viewer.community_ids))
    )
    if not include_past:
        stmt = stmt.where(VenueActivity.ends_at > now)
    rows = await session.scalars(stmt.order_by(VenueActivity.starts_at, SignUp.id).limit(MAX_LISTED))
    return list(rows.all())


async def waiting_ahead(session: AsyncSession, *, sign_ups: Sequence[SignUp]) -> dict[int, int]:
    """For each waitlisted sign-up, how many are still waiting before it."""
    waiting = [s for s in sign_ups if s.status == SignUpStatus.WAITLISTED.value and s.waitlist_position is not None]
    out: dict[int, int] = {}
    for s in waiting:
        ahead = await session.scalar(
            select(func.count()).where(
                SignUp.activity_id == s.activity_id,
                SignUp.status == SignUpStatus.WAITLISTED.value,
                SignUp.waitlist_position < s.waitlist_position,
            )
        )
        out[s.id] = int(ahead or 0)
    return out


@dataclass(frozen=True, slots=True)
class UseFigure:
    """Use of one venue by one kind of activity over a period."""

    venue_id: int
    venue_name: str
    activity_kind: str
    activities: int
    capacity: int
    places_taken: int
    attended: int
    no_shows: int
    waitlisted: int  # sign-ups that had to queue: the demand beyond capacity
    fill_rate: float | None
    attendance_rate: float | None


@dataclass(frozen=True, slots=True)
class BookingFigure:
    venue_id: int
    venue_name: str
    confirmed: int
    pending: int
    rejected: int
    cancelled: int


async def figures(
    session: AsyncSession, *, viewer: Viewer, community_id: int, since: datetime, until: datetime
) -> tuple[list[UseFigure], list[BookingFigure]]:
    """Attendance, fill rate and waitlist demand per venue and activity kind, and room bookings per venue.

    Computed in SQL: one grouped statement over activities and their sign-ups, one over bookings.
    Staff only. Raises Forbidden, ValidationFailed.
    """
    _require_staff(viewer, community_id)
    start, end = _aware(since, "from"), _aware(until, "to")
    if end <= start:
        raise ValidationFailed("The period must end after it starts.", field="to")
    seated_or_done = [
        SignUpStatus.CONFIRMED.value,
        SignUpStatus.OFFERED.value,
        SignUpStatus.ATTENDED.value,
        SignUpStatus.NO_SHOW.value,
    ]
    per_activity = (
        select(
            SignUp.activity_id.label("activity_id"),
            func.count().filter(SignUp.status.in_(seated_or_done)).label("taken"),
            func.count().filter(SignUp.status == SignUpStatus.ATTENDED.value).label("attended"),
            func.count().filter(SignUp.status == SignUpStatus.NO_SHOW.value).label("no_shows"),
            func.count().filter(SignUp.waitlist_position.is_not(None)).label("waitlisted"),
        )
        .group_by(SignUp.activity_id)
        .subquery()
    )
    taken = func.coalesce(func.sum(per_activity.c.taken), 0)
    attended = func.coalesce(func.sum(per_activity.c.attended), 0)
    no_shows = func.coalesce(func.sum(per_activity.c.no_shows), 0)
    capacity = func.sum(VenueActivity.capacity)
    stmt = (
        select(
            Venue.id,
            Venue.name,
            VenueActivity.kind,
            func.count(VenueActivity.id),
            capacity,
            taken,
            attended,
            no_shows,
            func.coalesce(func.sum(per_activity.c.waitlisted), 0),
            cast(taken, Float) / func.nullif(capacity, 0),
            cast(attended, Float) / func.nullif(attended + no_shows, 0),
        )
        .select_from(VenueActivity)
        .join(Venue, Venue.id == VenueActivity.venue_id)
        .outerjoin(per_activity, per_activity.c.activity_id == VenueActivity.id)
        .where(
            VenueActivity.community_id == community_id,
            VenueActivity.cancelled_at.is_(None),
            VenueActivity.starts_at >= start,
            VenueActivity.starts_at < end,
        )
        .group_by(Venue.id, Venue.name, VenueActivity.kind)
        .order_by(Venue.id, VenueActivity.kind)
    )
    use = [
        UseFigure(
            venue_id=r[0],
            venue_name=r[1],
            activity_kind=r[2],
            activities=int(r[3]),
            capacity=int(r[4] or 0),
            places_taken=int(r[5]),
            attended=int(r[6]),
            no_shows=int(r[7]),
            waitlisted=int(r[8]),
            fill_rate=None if r[9] is None else round(float(r[9]), 4),
            attendance_rate=None if r[10] is None else round(float(r[10]), 4),
        )
        for r in (await session.execute(stmt)).all()
    ]
    booking_rows = await session.execute(
        select(
            Venue.id,
            Venue.name,
            *[func.count().filter(RoomBooking.status == s.value) for s in BookingStatus],
        )
        .select_from(RoomBooking)
        .join(Venue, Venue.id == RoomBooking.venue_id)
        .where(RoomBooking.community_id == community_id, RoomBooking.starts_at >= start, RoomBooking.starts_at < end)
        .group_by(Venue.id, Venue.name)
        .order_by(Venue.id)
    )
    statuses = [s.value for s in BookingStatus]
    bookings = []
    for r in booking_rows.all():
        counts = dict(zip(statuses, (int(v) for v in r[2:]), strict=True))
        bookings.append(
            BookingFigure(
                venue_id=r[0],
                venue_name=r[1],
                confirmed=counts["confirmed"],
                pending=counts["pending"],
                rejected=counts["rejected"],
                cancelled=counts["cancelled"],
            )
        )
    return use, bookings


# -- calendar tokens -------------------------------------------------------------------------------


async def reset_calendar_token(uow: UnitOfWork, *, viewer: Viewer) -> str:
    """A new secret for the viewer's personal calendar feed; the old one stops working. Shown once."""
    viewer.require_authenticated()
    assert viewer.account_id is not None
    token = new_token()
    existing = await uow.session.scalar(
        _for_update(uow.session, select(CalendarToken).where(CalendarToken.account_id == viewer.account_id))
    )
    if existing is None:
        uow.session.add(CalendarToken(account_id=viewer.account_id, token_hash=token_hash(token)))
    else:
        existing.token_hash = token_hash(token)
        existing.created_at = utc_now()
    await uow.session.flush()
    return token


@dataclass(frozen=True, slots=True)
class CalendarOwner:
    account_id: int
    resident_id: int | None


async def calendar_owner(session: AsyncSession, *, token: str) -> CalendarOwner | None:
    """Whose feed a calendar token opens (an active account), or None."""
    if not token or len(token) > 100:
        return None
    row = (
        await session.execute(
            select(Account.id, Account.resident_id)
            .join(CalendarToken, CalendarToken.account_id == Account.id)
            .where(CalendarToken.token_hash == token_hash(token), Account.is_active.is_(True))
        )
    ).one_or_none()
    return CalendarOwner(row[0], row[1]) if row else None


async def feed_sign_ups(
    session: AsyncSession, *, owner: CalendarOwner, since: datetime
) -> list[tuple[SignUp, VenueActivity, Venue, str]]:
    """The owner's live sign-ups (made by them or for them) with activity, venue and participant name."""
    own: list[Any] = [SignUp.signed_up_by_account_id == owner.account_id]
    if owner.resident_id is not None:
        own.append(SignUp.participant_resident_id == owner.resident_id)
        own.append(SignUp.participant_resident_id.in_(_wards(owner.resident_id)))
    rows = await session.execute(
        select(SignUp, VenueActivity, Venue, Resident.name)
        .join(VenueActivity, VenueActivity.id == SignUp.activity_id)
        .join(Venue, Venue.id == VenueActivity.venue_id)
        .join(Resident, Resident.id == SignUp.participant_resident_id)
        .where(
            or_(*own),
            SignUp.status.in_(
                [
                    SignUpStatus.CONFIRMED.value,
                    SignUpStatus.OFFERED.value,
                    SignUpStatus.WAITLISTED.value,
                    SignUpStatus.ATTENDED.value,
                ]
            ),
            VenueActivity.ends_at > since,
        )
        .order_by(VenueActivity.starts_at, SignUp.id)
        .limit(MAX_LISTED)
    )
    return [(s, a, v, name) for s, a, v, name in rows.all()]


async def feed_room_bookings(
    session: AsyncSession, *, owner: CalendarOwner, since: datetime
) -> list[tuple[RoomBooking, Venue]]:
    rows = await session.execute(
        select(RoomBooking, Venue)
        .join(Venue, Venue.id == RoomBooking.venue_id)
        .where(
            RoomBooking.account_id == owner.account_id,
            RoomBooking.status.in_(HOLDING_BOOKING_STATUSES),
            RoomBooking.ends_at > since,
        )
        .order_by(RoomBooking.starts_at)
        .limit(MAX_LISTED)
    )
    return [(b, v) for b, v in rows.all()]


async def venue_feed_rows(
    session: AsyncSession, *, venue_id: int, since: datetime, until: datetime
) -> tuple[Venue, list[VenueActivity], list[RoomBooking]] | None:
    """A venue's activities and its held bookings (times only) for the public feed; None if no such venue."""
    venue = await session.get(Venue, venue_id)
    if venue is None or not venue.active:
        return None
    activities = (
        await session.scalars(
            select(VenueActivity)
            .where(VenueActivity.venue_id == venue.id, VenueActivity.ends_at > since, VenueActivity.starts_at < until)
            .order_by(VenueActivity.starts_at)
            .limit(MAX_LISTED)
        )
    ).all()
    bookings = (
        await session.scalars(
            select(RoomBooking)
            .where(
                RoomBooking.venue_id == venue.id,
                RoomBooking.status == BookingStatus.CONFIRMED.value,
                RoomBooking.ends_at > since,
                RoomBooking.starts_at < until,
            )
            .order_by(RoomBooking.starts_at)
            .limit(MAX_LISTED)
        )
    ).all()
    return venue, list(activities), list(bookings)


# -- photos ------------------------------------------------------------------------------------------


def venue_photo_key(community_id: int, venue_id: int, extension: str) -> str:
    return f"venues/{community_id}/{venue_id}/{uuid.uuid4().hex}.{extension}"


async def add_venue_photos(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    store: PhotoStore,
    venue_id: int,
    photos: Sequence[bytes | PreparedPhoto],
    limits: PhotoLimits | None = None,
) -> list[VenuePhoto]:
    """Attach photos to a venue (staff of its community); at most `limits.max_count` per venue.

    Raw bytes are prepared here (api.core.images: checked, upright, metadata removed); callers with
    a transaction open should pass photos from `prepare_photos` instead. Files are written first
    and removed again if the transaction does not commit.

    Raises Unauthenticated, NotFound, Forbidden, ValidationFailed, TooManyPhotos, PhotoTooLarge,
    NotAnImage, UnsupportedImageType.
    """
    limits = limits or PhotoLimits()
    viewer.require_authenticated()
    venue = await _venue(uow.session, viewer, venue_id)
    _require_staff(viewer, venue.community_id)
    if not photos:
        raise ValidationFailed("Attach at least one photo.", field="photos")
    # Lock the venue so two uploads at once cannot both pass the count.
    await uow.session.execute(_for_update(uow.session, select(Venue.id).where(Venue.id == venue.id)))
    existing = await uow.session.scalar(
        select(func.count()).select_from(VenuePhoto).where(VenuePhoto.venue_id == venue.id)
    )
    check_count(len(photos), limits, existing=existing or 0, owner="venue")
    prepared = await ensure_prepared(photos, limits)
    keys = await store_unless_rolled_back(
        uow.session, store, prepared, lambda photo: venue_photo_key(venue.community_id, venue.id, photo.extension)
    )
    now = utc_now()
    rows = [
        VenuePhoto(
            community_id=venue.community_id,
            venue_id=venue.id,
            storage_key=key,
            content_type=photo.content_type,
            size_bytes=len(photo.content),
            width=photo.width,
            height=photo.height,
            created_at=now,
        )
        for key, photo in zip(keys, prepared, strict=True)
    ]
    uow.session.add_all(rows)
    await uow.session.flush()
    return rows


async def venue_photos(session: AsyncSession, *, venue_ids: Sequence[int]) -> dict[int, list[VenuePhoto]]:
    """The photos of each venue, oldest first."""
    rows = await session.scalars(select(VenuePhoto).where(VenuePhoto.venue_id.in_(venue_ids)).order_by(VenuePhoto.id))
    out: dict[int, list[VenuePhoto]] = defaultdict(list)
    for row in rows:
        out[row.venue_id].append(row)
    return out
