"""Venue types: rooms, opening hours, activities, sign-ups and room bookings (Relay nodes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Self

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.dataloader import DataLoader

from api.graphql.context import Info
from api.graphql.loaders import request_loader as _loader
from api.registry.models import Resident as ResidentModel
from api.venues import models
from api.venues import service as venues_service

VenueKindEnum = strawberry.enum(models.VenueKind, name="VenueKind", description="What a room is for.")
ActivityKindEnum = strawberry.enum(models.ActivityKind, name="ActivityKind", description="What sort of activity.")
SignUpStatusEnum = strawberry.enum(
    models.SignUpStatus,
    name="SignUpStatus",
    description="confirmed (has a seat), waitlisted, offered (a freed seat is held until the offer expires), "
    "cancelled, attended (checked in) or no_show.",
)
RoomBookingStatusEnum = strawberry.enum(
    models.BookingStatus,
    name="RoomBookingStatus",
    description="pending (awaits staff), confirmed, rejected, cancelled.",
)
CURRENCY = "CNY"


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1


def venues_loader(info: Info) -> DataLoader[int, models.Venue | None]:
    async def load(ids: list[int]) -> list[models.Venue | None]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.Venue).where(
                        models.Venue.id.in_(ids), models.Venue.community_id.in_(info.context.viewer.community_ids)
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "venues.venue", load)


def activities_loader(info: Info) -> DataLoader[int, models.VenueActivity | None]:
    async def load(ids: list[int]) -> list[models.VenueActivity | None]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.VenueActivity).where(
                        models.VenueActivity.id.in_(ids),
                        models.VenueActivity.community_id.in_(info.context.viewer.community_ids),
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "venues.activity", load)


def _places_loader(info: Info) -> DataLoader[int, venues_service.Places]:
    async def load(ids: list[int]) -> list[venues_service.Places]:
        rows = [r for r in await activities_loader(info).load_many(ids) if r is not None]
        async with info.context.db.read_session() as session:
            counts = await venues_service.places(session, activities=rows)
        return [counts.get(i, venues_service.Places(0, 0, 0)) for i in ids]

    return _loader(info, "venues.places", load)


def _hours_loader(info: Info) -> DataLoader[int, list[models.VenueOpeningHours]]:
    async def load(ids: list[int]) -> list[list[models.VenueOpeningHours]]:
        async with info.context.db.read_session() as session:
            hours = await venues_service.opening_hours(session, venue_ids=ids)
        return [hours.get(i, []) for i in ids]

    return _loader(info, "venues.hours", load)


def _photos_loader(info: Info) -> DataLoader[int, list[models.VenuePhoto]]:
    async def load(ids: list[int]) -> list[list[models.VenuePhoto]]:
        async with info.context.db.read_session() as session:
            photos = await venues_service.venue_photos(session, venue_ids=ids)
        return [photos.get(i, []) for i in ids]

    return _loader(info, "venues.photos", load)


def _closures_loader(info: Info) -> DataLoader[int, list[models.VenueClosure]]:
    async def load(ids: list[int]) -> list[list[models.VenueClosure]]:
        async with info.context.db.read_session() as session:
            closures = await venues_service.upcoming_closures(session, venue_ids=ids)
        return [closures.get(i, []) for i in ids]

    return _loader(info, "venues.closures", load)


def _names_loader(info: Info) -> DataLoader[int, str]:
    """Participants' names (only ever asked for through a sign-up the viewer may see)."""

    async def load(ids: list[int]) -> list[str]:
        async with info.context.db.read_session() as session:
            result = await session.execute(
                select(ResidentModel.id, ResidentModel.name).where(ResidentModel.id.in_(ids))
            )
            rows: dict[int, str] = {int(row[0]): str(row[1]) for row in result.all()}
        return [rows.get(i, "") for i in ids]

    return _loader(info, "venues.names", load)


def _ahead_loader(info: Info) -> DataLoader[int, int]:
    async def load(ids: list[int]) -> list[int]:
        async with info.context.db.read_session() as session:
            rows = (await session.scalars(select(models.SignUp).where(models.SignUp.id.in_(ids)))).all()
            ahead = await venues_service.waiting_ahead(session, sign_ups=rows)
        return [ahead.get(i, 0) for i in ids]

    return _loader(info, "venues.ahead", load)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# -- venues -----------------------------------------------------------------------------------------


@strawberry.type(description="One opening span on one weekday (China time).")
class OpeningHours:
    weekday: int = strawberry.field(description="0 Monday … 6 Sunday.")
    opens: str = strawberry.field(description="Opening time, HH:MM.")
    closes: str = strawberry.field(description="Closing time, HH:MM (24:00 is midnight).")

    @classmethod
    def from_model(cls, m: models.VenueOpeningHours) -> Self:
        return cls(weekday=m.weekday, opens=_clock(m.opens_minute), closes=_clock(m.closes_minute))


@strawberry.type(description="A time the venue is closed (a holiday, repairs).")
class VenueClosure:
    starts_at: dt.datetime = strawberry.field(description="Closed from.")
    ends_at: dt.datetime = strawberry.field(description="Closed until.")
    reason: str = strawberry.field(description="Why, shown to residents.")


@strawberry.type(description="A room of the community: the children's room, library, sports room or meeting room.")
class Venue(relay.Node):
    db_id: relay.NodeID[int]
    kind: models.VenueKind = strawberry.field(description="What the room is for.")
    name: str = strawberry.field(description="Name, e.g. 儿童活动室.")
    location: str = strawberry.field(description="Where, e.g. 党群服务中心四楼.")
    capacity: int = strawberry.field(description="How many people it holds.")
    rules: str = strawberry.field(description="House rules shown before booking or signing up.")
    bookable: bool = strawberry.field(description="Whether residents can book the whole room (bookRoom).")
    min_notice_hours: int = strawberry.field(description="A booking must start at least this many hours ahead.")
    max_booking_minutes: int = strawberry.field(description="The longest booking, in minutes.")
    weekly_quota: int = strawberry.field(description="Bookings per resident per week (Monday–Sunday); 0 = no limit.")
    needs_approval: bool = strawberry.field(description="Bookings wait for staff approval.")
    community_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: models.Venue) -> Self:
        return cls(
            db_id=m.id, kind=models.VenueKind(m.kind), name=m.name, location=m.location, capacity=m.capacity,
            rules=m.rules, bookable=m.bookable, min_notice_hours=m.min_notice_hours,
            max_booking_minutes=m.max_booking_minutes, weekly_quota=m.weekly_quota, needs_approval=m.needs_approval,
            community_id=m.community_id,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await venues_loader(info).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="Weekly opening hours, by weekday then time.")
    async def opening_hours(self, info: Info) -> list[OpeningHours]:
        return [OpeningHours.from_model(h) for h in await _hours_loader(info).load(self.db_id)]

    @strawberry.field(description="Closures that have not ended yet, soonest first.")
    async def closures(self, info: Info) -> list[VenueClosure]:
        rows = await _closures_loader(info).load(self.db_id)
        return [VenueClosure(starts_at=c.starts_at, ends_at=c.ends_at, reason=c.reason) for c in rows]

    @strawberry.field(description="Path of the venue's public iCalendar feed (activities and booked times).")
    def calendar_path(self) -> str:
        return f"/calendar/venues/{self.db_id}.ics"

    @strawberry.field(description="Photos of the venue, oldest first.")
    async def photos(self, info: Info) -> list[VenuePhoto]:
        return [VenuePhoto.from_model(p) for p in await _photos_loader(info).load(self.db_id)]


VENUE_PHOTO_PREFIX = "/media/venue-photos/"


@strawberry.type(description="A photo of a venue; metadata (EXIF, GPS, XMP) was removed on upload.")
class VenuePhoto(relay.Node):
    db_id: relay.NodeID[int]
    content_type: str = strawberry.field(description="image/jpeg, image/png or image/webp.")
    width: int = strawberry.field(description="Width in pixels, upright.")
    height: int = strawberry.field(description="Height in pixels, upright.")
    created_at: dt.datetime = strawberry.field(description="When it was added.")

    @classmethod
    def from_model(cls, m: models.VenuePhoto) -> Self:
        return cls(db_id=m.id, content_type=m.content_type, width=m.width, height=m.height, created_at=m.created_at)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.VenuePhoto).where(
                        models.VenuePhoto.id.in_(ids),
                        models.VenuePhoto.community_id.in_(info.context.viewer.community_ids),
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="Where to GET the bytes, sending the same bearer token (relative to the API).")
    def url(self) -> str:
        return f"{VENUE_PHOTO_PREFIX}{relay.GlobalID('VenuePhoto', str(self.db_id))}"


# -- activities ---------------------------------------------------------------------------------------


@strawberry.type(description="One session of an activity in a venue (e.g. Saturday's paper cutting).")
class Activity(relay.Node):
    db_id: relay.NodeID[int]
    kind: models.ActivityKind = strawberry.field(description="What sort of activity.")
    title: str = strawberry.field(description="Title, e.g. 剪纸.")
    description: str = strawberry.field(description="What to expect and bring.")
    starts_at: dt.datetime = strawberry.field(description="Start.")
    ends_at: dt.datetime = strawberry.field(description="End.")
    capacity: int = strawberry.field(description="Places in all.")
    min_age: int | None = strawberry.field(description="Youngest age allowed on the day, if any.")
    max_age: int | None = strawberry.field(description="Oldest age allowed on the day, if any.")
    signup_opens_at: dt.datetime = strawberry.field(description="Sign-up opens.")
    signup_closes_at: dt.datetime = strawberry.field(description="Sign-up closes.")
    price_cents: int = strawberry.field(description="Price per participant in fen; 0 is free.")
    currency: str = strawberry.field(description="Currency of the price: CNY.")
    cancelled_at: dt.datetime | None = strawberry.field(description="When the organiser called it off.")
    cancel_reason: str | None = strawberry.field(description="Why it was called off.")
    row: strawberry.Private[models.VenueActivity]
    known_places: strawberry.Private[venues_service.Places | None] = None

    @classmethod
    def from_model(cls, m: models.VenueActivity, places: venues_service.Places | None = None) -> Self:
        return cls(
            db_id=m.id, kind=models.ActivityKind(m.kind), title=m.title, description=m.description,
            starts_at=m.starts_at, ends_at=m.ends_at, capacity=m.capacity, min_age=m.min_age, max_age=m.max_age,
            signup_opens_at=m.signup_opens_at, signup_closes_at=m.signup_closes_at, price_cents=m.price_cents,
            currency=CURRENCY, cancelled_at=m.cancelled_at, cancel_reason=m.cancel_reason, row=m, known_places=places,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await activities_loader(info).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    async def _places(self, info: Info) -> venues_service.Places:
        if self.known_places is not None:
            return self.known_places
        return await _places_loader(info).load(self.db_id)

    @strawberry.field(description="The price in yuan as a decimal string, e.g. 0.00 (free).")
    def price(self) -> str:
        return f"{self.price_cents // 100}.{self.price_cents % 100:02d}"

    @strawberry.field(description="True when taking part costs nothing.")
    def free(self) -> bool:
        return self.price_cents == 0

    @strawberry.field(description="Places still free (0 when full: new sign-ups join the waitlist).")
    async def places_left(self, info: Info) -> int:
        return (await self._places(info)).left

    @strawberry.field(description="Places taken (confirmed, offered, attended or no-show).")
    async def places_taken(self, info: Info) -> int:
        return (await self._places(info)).taken

    @strawberry.field(description="People on the waitlist now.")
    async def waitlist_length(self, info: Info) -> int:
        return (await self._places(info)).waiting

    @strawberry.field(description="The venue it takes place in.")
    async def venue(self, info: Info) -> Venue | None:
        row = await venues_loader(info).load(self.row.venue_id)
        return Venue.from_model(row) if row else None

    @strawberry.field(description="The weekly series it belongs to, if any (a global id of type ActivitySeries).")
    def series_id(self) -> relay.GlobalID | None:
        return relay.GlobalID("ActivitySeries", str(self.row.series_id)) if self.row.series_id else None

    @strawberry.field(description="Every sign-up, for the organiser and staff (the check-in list); empty for others.")
    async def sign_ups(self, info: Info) -> list[SignUp]:
        viewer = info.context.viewer
        if not (
            venues_service.is_staff(viewer, self.row.community_id)
            or (viewer.account_id is not None and self.row.organiser_account_id == viewer.account_id)
        ):
            return []
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.SignUp)
                    .where(models.SignUp.activity_id == self.db_id)
                    .order_by(models.SignUp.seat.is_(None), models.SignUp.seat, models.SignUp.waitlist_position)
                )
            ).all()
        return [SignUp.from_model(r) for r in rows]


@strawberry.type(description="A weekly activity from which sessions are made.")
class ActivitySeries:
    id: relay.GlobalID = strawberry.field(description="Global id (type ActivitySeries).")
    title: str = strawberry.field(description="Title of every session.")
    weekday: int = strawberry.field(description="0 Monday … 6 Sunday.")
    starts_at_time: str = strawberry.field(description="Start time each week, HH:MM China time.")
    duration_minutes: int = strawberry.field(description="Length of each session.")
    starts_on: dt.date = strawberry.field(description="First day of the series.")
    until: dt.date = strawberry.field(description="Last day of the series.")
    exceptions: list[dt.date] = strawberry.field(description="Days without a session.")

    @classmethod
    def from_model(cls, m: models.ActivitySeries) -> Self:
        return cls(
            id=relay.GlobalID("ActivitySeries", str(m.id)), title=m.title, weekday=m.weekday,
            starts_at_time=_clock(m.start_minute), duration_minutes=m.duration_minutes, starts_on=m.starts_on,
            until=m.until_date, exceptions=[dt.date.fromisoformat(d) for d in m.exceptions or []],
        )  # fmt: skip


# -- sign-ups -----------------------------------------------------------------------------------------


@strawberry.type(description="A participant's place, or place in line, at one activity.")
class SignUp(relay.Node):
    db_id: relay.NodeID[int]
    status: models.SignUpStatus = strawberry.field(description="Where the sign-up stands.")
    seat: int | None = strawberry.field(description="Seat number (1..capacity) while it holds a place.")
    waitlist_position: int | None = strawberry.field(
        description="Its number on the waitlist (kept after an offer, for the record)."
    )
    offer_expires_at: dt.datetime | None = strawberry.field(description="An offered seat must be accepted by then.")
    check_in_code: str = strawberry.field(description="Short code staff enter at check-in.")
    checked_in_at: dt.datetime | None = strawberry.field(description="When the participant was checked in.")
    created_at: dt.datetime = strawberry.field(description="When the sign-up was made.")
    cancelled_at: dt.datetime | None = strawberry.field(description="When it was cancelled.")
    cancel_reason: str | None = strawberry.field(
        description="participant, organiser, activity_cancelled or offer_expired."
    )
    row: strawberry.Private[models.SignUp]

    @classmethod
    def from_model(cls, m: models.SignUp) -> Self:
        return cls(
            db_id=m.id, status=models.SignUpStatus(m.status), seat=m.seat, waitlist_position=m.waitlist_position,
            offer_expires_at=m.offer_expires_at, check_in_code=m.check_in_code, checked_in_at=m.checked_in_at,
            created_at=m.created_at, cancelled_at=m.cancelled_at, cancel_reason=m.cancel_reason, row=m,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    venues_service.visible_sign_ups(info.context.viewer).where(models.SignUp.id.in_(ids))
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="What a check-in QR code encodes (checkIn accepts it as the code).")
    def qr_payload(self) -> str:
        return venues_service.qr_payload(self.row)

    @strawberry.field(description="Who takes part: the resident's global id.")
    def participant_id(self) -> relay.GlobalID:
        return relay.GlobalID("Resident", str(self.row.participant_resident_id))

    @strawberry.field(description="Who takes part: their name.")
    async def participant_name(self, info: Info) -> str:
        return await _names_loader(info).load(self.row.participant_resident_id)

    @strawberry.field(description="For a waitlisted sign-up, how many still wait before it; null otherwise.")
    async def waiting_ahead(self, info: Info) -> int | None:
        if self.row.status != models.SignUpStatus.WAITLISTED.value:
            return None
        return await _ahead_loader(info).load(self.db_id)

    @strawberry.field(description="The activity.")
    async def activity(self, info: Info) -> Activity | None:
        row = await activities_loader(info).load(self.row.activity_id)
        return Activity.from_model(row) if row else None


# -- room bookings ------------------------------------------------------------------------------------


@strawberry.type(description="A booking of a whole room for a time slot.")
class RoomBooking(relay.Node):
    db_id: relay.NodeID[int]
    status: models.BookingStatus = strawberry.field(description="pending, confirmed, rejected or cancelled.")
    starts_at: dt.datetime = strawberry.field(description="Start.")
    ends_at: dt.datetime = strawberry.field(description="End.")
    purpose: str = strawberry.field(description="What the room is for, e.g. 寒假自习.")
    attendees: int = strawberry.field(description="How many people come.")
    decision_note: str | None = strawberry.field(description="Staff's note on approval or rejection.")
    decided_at: dt.datetime | None = strawberry.field(description="When staff decided.")
    created_at: dt.datetime = strawberry.field(description="When it was booked.")
    venue_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: models.RoomBooking) -> Self:
        return cls(
            db_id=m.id, status=models.BookingStatus(m.status), starts_at=m.starts_at, ends_at=m.ends_at,
            purpose=m.purpose, attendees=m.attendees, decision_note=m.decision_note, decided_at=m.decided_at,
            created_at=m.created_at, venue_id=m.venue_id,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    venues_service.visible_bookings(info.context.viewer).where(models.RoomBooking.id.in_(ids))
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="The room booked.")
    async def venue(self, info: Info) -> Venue | None:
        row = await venues_loader(info).load(self.venue_id)
        return Venue.from_model(row) if row else None


def activities_with_places(
    rows: Sequence[tuple[models.VenueActivity, venues_service.Places]],
) -> list[Activity]:
    return [Activity.from_model(a, p) for a, p in rows]
