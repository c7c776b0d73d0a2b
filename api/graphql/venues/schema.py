"""Venue queries and mutations: rooms, opening hours, room bookings, activities, sign-ups, check-in."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from strawberry import relay
from strawberry.file_uploads import Upload

from api.core.clock import utc_now
from api.core.errors import DomainError, Forbidden, NotFound, Unauthenticated, ValidationFailed
from api.core.images import prepare_photos
from api.graphql.context import Info
from api.graphql.errors import (
    ConflictError,
    NotFoundError,
    UserError,
    ValidationError,
    auth_error,
    to_user_error,
)
from api.graphql.pagination import decode_id, decode_ids
from api.graphql.tickets.photos import PhotoError, close_uploads, photo_limits, photo_result_error, read_uploads
from api.graphql.venues.types import (
    Activity,
    ActivitySeries,
    RoomBooking,
    SignUp,
    Venue,
    VenuePhoto,
    activities_with_places,
)
from api.venues import models
from api.venues import service as venues_service

InputArg = strawberry.argument(description="The mutation's input.")
CommunityArg = Annotated[relay.GlobalID, strawberry.argument(description="The community.")]
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


# -- errors -------------------------------------------------------------------------------------------


@strawberry.type(description="Sign-up is not open now (it has not opened yet, or has closed).")
class OutsideSignupWindowError(UserError):
    pass


@strawberry.type(description="A participant is younger than the activity's youngest age on the day.")
class TooYoungError(UserError):
    pass


@strawberry.type(description="A participant is older than the activity's oldest age on the day.")
class TooOldError(UserError):
    pass


@strawberry.type(description="A participant is already signed up (or waiting) for this activity.")
class AlreadySignedUpError(UserError):
    pass


@strawberry.type(description="Repeated no-shows: this participant cannot sign up until `until`.")
class SignUpBlockedError(UserError):
    until: dt.datetime = strawberry.field(description="Sign-up is possible again from this time.")


@strawberry.type(description="You can sign up only yourself and the children in your care.")
class NotGuardianError(UserError):
    pass


@strawberry.type(description="The activity has been called off.")
class ActivityCancelledError(UserError):
    pass


@strawberry.type(description="The sign-up is cancelled or over already.")
class SignUpNotActiveError(UserError):
    pass


@strawberry.type(description="There is no open seat offer on this sign-up (accepted, lapsed or withdrawn).")
class SeatOfferNotOpenError(UserError):
    pass


@strawberry.type(description="This participant has been checked in already.")
class AlreadyCheckedInError(UserError):
    pass


@strawberry.type(description="Check-in is not open now (it opens an hour before and closes two hours after).")
class CheckInClosedError(UserError):
    pass


@strawberry.type(description="The room is booked, or used by an activity, at that time.")
class OverlappingBookingError(UserError):
    pass


@strawberry.type(description="The venue is not open for the whole of that time.")
class OutsideOpeningHoursError(UserError):
    pass


@strawberry.type(description="The venue is closed then (a holiday, repairs).")
class VenueClosedError(UserError):
    pass


@strawberry.type(description="Your bookings of this room for that week are used up.")
class BookingQuotaExceededError(UserError):
    pass


@strawberry.type(description="The booking starts too soon: the room needs more notice.")
class TooShortNoticeError(UserError):
    pass


@strawberry.type(description="This room cannot be booked; sign up for its activities instead.")
class NotBookableError(UserError):
    pass


@strawberry.type(description="It has begun (or is over): it can no longer be cancelled.")
class AlreadyStartedError(UserError):
    pass


_TYPED: dict[type[DomainError], type[UserError]] = {
    venues_service.OutsideSignupWindow: OutsideSignupWindowError,
    venues_service.TooYoung: TooYoungError,
    venues_service.TooOld: TooOldError,
    venues_service.AlreadySignedUp: AlreadySignedUpError,
    venues_service.NotGuardian: NotGuardianError,
    venues_service.ActivityCancelled: ActivityCancelledError,
    venues_service.SignUpNotActive: SignUpNotActiveError,
    venues_service.OfferNotOpen: SeatOfferNotOpenError,
    venues_service.AlreadyCheckedIn: AlreadyCheckedInError,
    venues_service.CheckInClosed: CheckInClosedError,
    venues_service.OverlappingBooking: OverlappingBookingError,
    venues_service.OutsideOpeningHours: OutsideOpeningHoursError,
    venues_service.VenueClosed: VenueClosedError,
    venues_service.QuotaExceeded: BookingQuotaExceededError,
    venues_service.TooShortNotice: TooShortNoticeError,
    venues_service.NotBookable: NotBookableError,
    venues_service.AlreadyStarted: AlreadyStartedError,
}

ERROR_TYPES: list[type[UserError]] = [*_TYPED.values(), SignUpBlockedError]


def _error(exc: DomainError, allowed: list[type[UserError]]) -> Any:
    if isinstance(exc, venues_service.Blocked) and SignUpBlockedError in allowed:
        return SignUpBlockedError(message=exc.message, field=exc.field, code=exc.code, until=exc.until)
    gql_type = _TYPED.get(type(exc))
    if gql_type is not None and gql_type in allowed:
        return gql_type(message=exc.message, field=exc.field, code=exc.code)
    return to_user_error(exc, allowed)


def _minute(value: str, field: str) -> int:
    match = _CLOCK.match(value.strip())
    if match is None or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValidationFailed("Give times as HH:MM, 00:00 to 24:00.", field=field)
    return int(match.group(1)) * 60 + int(match.group(2))


def _policy(info: Info) -> venues_service.VenuePolicy:
    return venues_service.VenuePolicy.from_settings(info.context.services.settings)


# -- inputs and results -------------------------------------------------------------------------------


@strawberry.input(description="A new room (staff).")
class CreateVenueInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    kind: models.VenueKind = strawberry.field(description="What the room is for.")
    name: str = strawberry.field(description="Name (1 to 100 characters, unique in the community).")
    capacity: int = strawberry.field(description="How many people it holds (1 to 500).")
    location: str = strawberry.field(default="", description="Where, e.g. 党群服务中心四楼.")
    rules: str = strawberry.field(default="", description="House rules.")
    bookable: bool = strawberry.field(default=False, description="Residents may book the whole room.")
    min_notice_hours: int = strawberry.field(default=2, description="Bookings start at least this many hours ahead.")
    max_booking_minutes: int = strawberry.field(default=120, description="Longest booking (15 to 1440 minutes).")
    weekly_quota: int = strawberry.field(default=2, description="Bookings per resident per week; 0 = no limit.")
    needs_approval: bool = strawberry.field(default=False, description="Bookings wait for staff approval.")


@strawberry.type(description="The venue.")
class VenueSuccess:
    venue: Venue = strawberry.field(description="The venue.")


VENUE_ERRORS: list[type[UserError]] = [ValidationError, NotFoundError, ConflictError]
VenueResult = Annotated[
    VenueSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("VenueResult", description="The venue, or why the change was refused."),
]


@strawberry.input(description="One opening span: a weekday and the times it opens and closes (China time).")
class OpeningHoursInput:
    weekday: int = strawberry.field(description="0 Monday … 6 Sunday.")
    opens: str = strawberry.field(description="HH:MM, e.g. 09:00.")
    closes: str = strawberry.field(description="HH:MM, e.g. 17:00 (24:00 is midnight).")


@strawberry.input(description="Replace a venue's weekly opening hours (staff). Days not listed are closed.")
class SetOpeningHoursInput:
    venue_id: relay.GlobalID = strawberry.field(description="The venue.")
    hours: list[OpeningHoursInput] = strawberry.field(description="Every opening span of the week.")


@strawberry.input(description="Close a venue for a while (staff).")
class AddVenueClosureInput:
    venue_id: relay.GlobalID = strawberry.field(description="The venue.")
    starts_at: dt.datetime = strawberry.field(description="Closed from (with a time zone).")
    ends_at: dt.datetime = strawberry.field(description="Closed until.")
    reason: str = strawberry.field(default="", description="Why, shown to residents (e.g. 国庆节).")


@strawberry.input(description="Book a room for a time slot (a resident of the community; staff for a group).")
class BookRoomInput:
    venue_id: relay.GlobalID = strawberry.field(description="The room (it must be bookable).")
    starts_at: dt.datetime = strawberry.field(description="Start, with a time zone, on a whole minute.")
    ends_at: dt.datetime = strawberry.field(description="End, on the same day within the opening hours.")
    purpose: str = strawberry.field(default="", description="What for (at most 200 characters).")
    attendees: int = strawberry.field(default=1, description="How many people come.")


@strawberry.type(description="The room booking.")
class RoomBookingSuccess:
    booking: RoomBooking = strawberry.field(description="The booking.")


BOOK_ROOM_ERRORS: list[type[UserError]] = [
    OverlappingBookingError, OutsideOpeningHoursError, VenueClosedError, BookingQuotaExceededError,
    TooShortNoticeError, NotBookableError, ValidationError, NotFoundError, ConflictError,
]  # fmt: skip
BookRoomResult = Annotated[
    RoomBookingSuccess | OverlappingBookingError | OutsideOpeningHoursError | VenueClosedError
    | BookingQuotaExceededError | TooShortNoticeError | NotBookableError | ValidationError | NotFoundError
    | ConflictError,
    strawberry.union("BookRoomResult", description="The booking, or why the room cannot be booked then."),
]  # fmt: skip


@strawberry.input(description="Approve or reject a pending room booking (staff); the booker is told.")
class DecideRoomBookingInput:
    booking_id: relay.GlobalID = strawberry.field(description="The pending booking.")
    approve: bool = strawberry.field(description="True approves, false rejects.")
    note: str = strawberry.field(default="", description="Note to the booker; required when rejecting.")


@strawberry.input(description="Cancel a room booking before it starts (the booker, or staff).")
class CancelRoomBookingInput:
    booking_id: relay.GlobalID = strawberry.field(description="The booking.")


ROOM_BOOKING_ERRORS: list[type[UserError]] = [AlreadyStartedError, ValidationError, NotFoundError, ConflictError]
RoomBookingResult = Annotated[
    RoomBookingSuccess | AlreadyStartedError | ValidationError | NotFoundError | ConflictError,
    strawberry.union("RoomBookingResult", description="The booking, or why the change was refused."),
]


@strawberry.input(description="A new activity in a venue (staff, who become its organiser).")
class CreateActivityInput:
    venue_id: relay.GlobalID = strawberry.field(description="The venue.")
    title: str = strawberry.field(description="Title (1 to 100 characters).")
    starts_at: dt.datetime = strawberry.field(description="Start, with a time zone, on a whole minute.")
    ends_at: dt.datetime = strawberry.field(description="End; at most 12 hours after the start.")
    capacity: int = strawberry.field(description="Places (1 to the venue's capacity).")
    kind: models.ActivityKind = strawberry.field(default=models.ActivityKind.OTHER, description="What sort.")
    description: str = strawberry.field(default="", description="What to expect and bring.")
    min_age: int | None = strawberry.field(default=None, description="Youngest age on the day.")
    max_age: int | None = strawberry.field(default=None, description="Oldest age on the day.")
    signup_opens_at: dt.datetime | None = strawberry.field(default=None, description="Sign-up opens (default: now).")
    signup_closes_at: dt.datetime | None = strawberry.field(
        default=None, description="Sign-up closes (default: the start)."
    )
    price_cents: int = strawberry.field(default=0, description="Price in fen; 0 is free.")


@strawberry.type(description="The activity.")
class ActivitySuccess:
    activity: Activity = strawberry.field(description="The activity.")


ACTIVITY_ERRORS: list[type[UserError]] = [VenueClosedError, ValidationError, NotFoundError, ConflictError]
CreateActivityResult = Annotated[
    ActivitySuccess | VenueClosedError | ValidationError | NotFoundError | ConflictError,
    strawberry.union("CreateActivityResult", description="The activity, or why it was refused."),
]


@strawberry.input(description="A weekly activity (staff): one session each week from startsOn to until.")
class CreateActivitySeriesInput:
    venue_id: relay.GlobalID = strawberry.field(description="The venue.")
    title: str = strawberry.field(description="Title of every session.")
    weekday: int = strawberry.field(description="0 Monday … 6 Sunday (5 is Saturday).")
    starts_at_time: str = strawberry.field(description="Start time, HH:MM China time.")
    duration_minutes: int = strawberry.field(description="Length of each session (15 to 720 minutes).")
    starts_on: dt.date = strawberry.field(description="First day of the series.")
    until: dt.date = strawberry.field(description="Last day (at most a year after the first).")
    capacity: int = strawberry.field(description="Places per session.")
    kind: models.ActivityKind = strawberry.field(default=models.ActivityKind.OTHER, description="What sort.")
    description: str = strawberry.field(default="", description="What to expect and bring.")
    min_age: int | None = strawberry.field(default=None, description="Youngest age on the day.")
    max_age: int | None = strawberry.field(default=None, description="Oldest age on the day.")
    price_cents: int = strawberry.field(default=0, description="Price in fen; 0 is free.")
    signup_opens_days_before: int = strawberry.field(default=7, description="Sign-up opens this many days ahead.")
    exceptions: list[dt.date] = strawberry.field(default_factory=list, description="Days without a session.")


@strawberry.type(description="The series and its sessions.")
class ActivitySeriesSuccess:
    series: ActivitySeries = strawberry.field(description="The series.")
    activities: list[Activity] = strawberry.field(description="Every session made, in order.")


CreateActivitySeriesResult = Annotated[
    ActivitySeriesSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("CreateActivitySeriesResult", description="The series, or why it was refused."),
]


@strawberry.input(description="Sign up for an activity: yourself, or one or more children in your care.")
class SignUpInput:
    activity_id: relay.GlobalID = strawberry.field(description="The activity.")
    participant_ids: list[relay.GlobalID] = strawberry.field(
        description="Residents who take part (1 to 10): yourself and/or the children in your care."
    )


@strawberry.type(description="Each participant's place: a seat, or a place on the waitlist when it is full.")
class SignUpSuccess:
    sign_ups: list[SignUp] = strawberry.field(description="One per participant, in the order given.")
    confirmed: int = strawberry.field(description="How many got a seat.")
    waitlisted: int = strawberry.field(description="How many joined the waitlist.")


SIGN_UP_ERRORS: list[type[UserError]] = [
    OutsideSignupWindowError, TooYoungError, TooOldError, AlreadySignedUpError, SignUpBlockedError, NotGuardianError,
    ActivityCancelledError, ValidationError, NotFoundError, ConflictError,
]  # fmt: skip
SignUpResult = Annotated[
    SignUpSuccess | OutsideSignupWindowError | TooYoungError | TooOldError | AlreadySignedUpError | SignUpBlockedError
    | NotGuardianError | ActivityCancelledError | ValidationError | NotFoundError | ConflictError,
    strawberry.union("SignUpResult", description="The places taken (full means waitlisted), or why nobody was signed up."),
]  # fmt: skip


@strawberry.input(description="Cancel a sign-up (also declines a seat offer); a freed seat goes to the waitlist.")
class CancelSignUpInput:
    sign_up_id: relay.GlobalID = strawberry.field(description="The sign-up.")


@strawberry.type(description="The sign-up.")
class SignUpChangeSuccess:
    sign_up: SignUp = strawberry.field(description="The sign-up.")


CANCEL_SIGN_UP_ERRORS: list[type[UserError]] = [
    SignUpNotActiveError,
    AlreadyStartedError,
    NotFoundError,
    ValidationError,
]
CancelSignUpResult = Annotated[
    SignUpChangeSuccess | SignUpNotActiveError | AlreadyStartedError | NotFoundError | ValidationError,
    strawberry.union("CancelSignUpResult", description="The cancelled sign-up, or why it was refused."),
]


@strawberry.input(description="Take the seat offered from the waitlist before the offer expires.")
class AcceptOfferInput:
    sign_up_id: relay.GlobalID = strawberry.field(description="The offered sign-up.")


AcceptOfferResult = Annotated[
    SignUpChangeSuccess | SeatOfferNotOpenError | NotFoundError | ValidationError,
    strawberry.union("AcceptOfferResult", description="The confirmed sign-up, or why the offer is not open."),
]


@strawberry.input(description="Check a participant in by their code (staff or the organiser).")
class CheckInInput:
    activity_id: relay.GlobalID = strawberry.field(description="The activity.")
    code: str = strawberry.field(description="The sign-up's check-in code, or its scanned QR payload.")


CHECK_IN_ERRORS: list[type[UserError]] = [
    AlreadyCheckedInError, CheckInClosedError, ActivityCancelledError, SignUpNotActiveError, NotFoundError,
    ValidationError,
]  # fmt: skip
CheckInResult = Annotated[
    SignUpChangeSuccess | AlreadyCheckedInError | CheckInClosedError | ActivityCancelledError | SignUpNotActiveError
    | NotFoundError | ValidationError,
    strawberry.union("CheckInResult", description="The checked-in sign-up, or why not."),
]  # fmt: skip


@strawberry.input(description="Call an activity off (the organiser or staff); everyone signed up is told.")
class CancelActivityInput:
    activity_id: relay.GlobalID = strawberry.field(description="The activity.")
    reason: str = strawberry.field(default="", description="Why, told to the families.")


@strawberry.type(description="The activity was called off.")
class CancelActivitySuccess:
    activity: Activity = strawberry.field(description="The activity.")
    sign_ups_cancelled: int = strawberry.field(description="Sign-ups ended (their people are being told).")


CANCEL_ACTIVITY_ERRORS: list[type[UserError]] = [
    ActivityCancelledError, AlreadyStartedError, NotFoundError, ValidationError,
]  # fmt: skip
CancelActivityResult = Annotated[
    CancelActivitySuccess | ActivityCancelledError | AlreadyStartedError | NotFoundError | ValidationError,
    strawberry.union("CancelActivityResult", description="The called-off activity, or why it was refused."),
]


@strawberry.type(description="Your personal calendar feed: subscribe to the path in a calendar app.")
class CalendarFeed:
    token: str = strawberry.field(description="The feed's secret; shown only now. A new one retires the old.")
    path: str = strawberry.field(description="Path of the feed, with the token: /calendar/me.ics?token=….")


# -- figures ------------------------------------------------------------------------------------------


@strawberry.type(description="Use of one venue by one kind of activity over the period.")
class VenueUseFigure:
    venue: Venue = strawberry.field(description="The venue.")
    activity_kind: models.ActivityKind = strawberry.field(description="The kind of activity.")
    activities: int = strawberry.field(description="Sessions held (not called off).")
    capacity: int = strawberry.field(description="Places offered in all.")
    places_taken: int = strawberry.field(description="Places taken.")
    attended: int = strawberry.field(description="Participants checked in.")
    no_shows: int = strawberry.field(description="Participants who did not come.")
    waitlisted: int = strawberry.field(description="Sign-ups that had to queue: demand beyond the places.")
    fill_rate: float | None = strawberry.field(description="Places taken ÷ places offered.")
    attendance_rate: float | None = strawberry.field(description="Attended ÷ (attended + no-shows).")


@strawberry.type(description="Room bookings of one venue over the period, by status.")
class RoomBookingFigure:
    venue: Venue = strawberry.field(description="The venue.")
    confirmed: int = strawberry.field(description="Confirmed bookings.")
    pending: int = strawberry.field(description="Bookings awaiting approval.")
    rejected: int = strawberry.field(description="Rejected bookings.")
    cancelled: int = strawberry.field(description="Cancelled bookings.")


@strawberry.type(description="Use figures of a community's venues, computed in SQL.")
class VenueFigures:
    activities: list[VenueUseFigure] = strawberry.field(description="Per venue and activity kind.")
    room_bookings: list[RoomBookingFigure] = strawberry.field(description="Per venue.")


# -- queries ------------------------------------------------------------------------------------------


def _bad_input(exc: DomainError) -> GraphQLError:
    return GraphQLError(exc.message, extensions={"code": "BAD_USER_INPUT", "field": exc.field})


@strawberry.input(description="Photos for a venue, sent as a multipart request (GraphQL multipart request spec).")
class AddVenuePhotosInput:
    venue_id: relay.GlobalID = strawberry.field(description="The venue.")
    photos: list[Upload] = strawberry.field(description="JPEG, PNG or WebP files (see photoUploadLimits).")


@strawberry.type(description="The photos were added.")
class AddVenuePhotosSuccess:
    venue: Venue = strawberry.field(description="The venue, with all its photos.")
    photos: list[VenuePhoto] = strawberry.field(description="The photos just added.")


AddVenuePhotosResult = Annotated[
    AddVenuePhotosSuccess | NotFoundError | ValidationError | PhotoError,
    strawberry.union("AddVenuePhotosResult", description="The photos, or why they were refused."),
]


@strawberry.type
class VenuesQuery:
    @strawberry.field(description="The community's rooms with their opening hours.")
    async def venues(self, info: Info, community_id: CommunityArg) -> list[Venue]:
        async with info.context.db.read_session() as session:
            rows = await venues_service.list_venues(
                session, viewer=info.context.viewer, community_id=decode_id(community_id, "Community")
            )
        return [Venue.from_model(r) for r in rows]

    @strawberry.field(description="What is on in the community this week (Monday–Sunday), with places left.")
    async def this_week(
        self,
        info: Info,
        community_id: CommunityArg,
        week_of: Annotated[
            dt.date | None, strawberry.argument(description="Any day of the week wanted (default: today).")
        ] = None,
    ) -> list[Activity]:
        async with info.context.db.read_session() as session:
            rows = await venues_service.this_week(
                session, viewer=info.context.viewer, community_id=decode_id(community_id, "Community"), week_of=week_of
            )
        return activities_with_places(rows)

    @strawberry.field(description="Your sign-ups and your children's, soonest activity first.")
    async def my_sign_ups(
        self,
        info: Info,
        include_past: Annotated[bool, strawberry.argument(description="Also list activities that are over.")] = False,
    ) -> list[SignUp]:
        async with info.context.db.read_session() as session:
            rows = await venues_service.my_sign_ups(session, viewer=info.context.viewer, include_past=include_past)
        return [SignUp.from_model(r) for r in rows]

    @strawberry.field(description="Your room bookings that have not ended, soonest first.")
    async def my_room_bookings(self, info: Info) -> list[RoomBooking]:
        viewer = info.context.viewer
        if viewer.account_id is None:
            return []
        async with info.context.db.read_session() as session:
            rows = await session.scalars(
                select(models.RoomBooking)
                .where(models.RoomBooking.account_id == viewer.account_id, models.RoomBooking.ends_at > utc_now())
                .order_by(models.RoomBooking.starts_at)
                .limit(venues_service.MAX_LISTED)
            )
            return [RoomBooking.from_model(r) for r in rows.all()]

    @strawberry.field(description="Room bookings awaiting approval in the community (staff), soonest first.")
    async def pending_room_bookings(self, info: Info, community_id: CommunityArg) -> list[RoomBooking]:
        viewer = info.context.viewer
        cid = decode_id(community_id, "Community")
        if not venues_service.is_staff(viewer, cid):
            return []
        async with info.context.db.read_session() as session:
            rows = await session.scalars(
                select(models.RoomBooking)
                .where(
                    models.RoomBooking.community_id == cid,
                    models.RoomBooking.status == models.BookingStatus.PENDING.value,
                )
                .order_by(models.RoomBooking.starts_at)
                .limit(venues_service.MAX_LISTED)
            )
            return [RoomBooking.from_model(r) for r in rows.all()]

    @strawberry.field(description="Attendance, fill rate and waitlist demand per venue and activity kind (staff).")
    async def venue_figures(
        self,
        info: Info,
        community_id: CommunityArg,
        from_: Annotated[dt.datetime, strawberry.argument(name="from", description="Activities starting from.")],
        to: Annotated[dt.datetime, strawberry.argument(description="Activities starting before.")],
    ) -> VenueFigures:
        try:
            async with info.context.db.read_session() as session:
                use, bookings = await venues_service.figures(
                    session, viewer=info.context.viewer, community_id=decode_id(community_id, "Community"),
                    since=from_, until=to,
                )  # fmt: skip
                venues = {v.id: v for v in await venues_service.list_venues(
                    session, viewer=info.context.viewer, community_id=decode_id(community_id, "Community"))}  # fmt: skip
        except (Forbidden, Unauthenticated) as exc:
            raise auth_error(exc) from exc
        except DomainError as exc:
            raise _bad_input(exc) from exc
        return VenueFigures(
            activities=[
                VenueUseFigure(
                    venue=Venue.from_model(venues[u.venue_id]),
                    activity_kind=models.ActivityKind(u.activity_kind),
                    activities=u.activities,
                    capacity=u.capacity,
                    places_taken=u.places_taken,
                    attended=u.attended,
                    no_shows=u.no_shows,
                    waitlisted=u.waitlisted,
                    fill_rate=u.fill_rate,
                    attendance_rate=u.attendance_rate,
                )
                for u in use
                if u.venue_id in venues
            ],
            room_bookings=[
                RoomBookingFigure(
                    venue=Venue.from_model(venues[b.venue_id]),
                    confirmed=b.confirmed,
                    pending=b.pending,
                    rejected=b.rejected,
                    cancelled=b.cancelled,
                )
                for b in bookings
                if b.venue_id in venues
            ],
        )


# -- mutations ----------------------------------------------------------------------------------------


@strawberry.type
class VenuesMutation:
    @strawberry.mutation(description="Add a room to the community (staff).")
    async def create_venue(self, info: Info, input: Annotated[CreateVenueInput, InputArg]) -> VenueResult:
        try:
            draft = venues_service.VenueDraft(
                community_id=decode_id(input.community_id, "Community"), kind=input.kind, name=input.name,
                capacity=input.capacity, location=input.location, rules=input.rules, bookable=input.bookable,
                min_notice_hours=input.min_notice_hours, max_booking_minutes=input.max_booking_minutes,
                weekly_quota=input.weekly_quota, needs_approval=input.needs_approval,
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await venues_service.create_venue(uow, viewer=info.context.viewer, draft=draft)
        except DomainError as exc:
            return _error(exc, VENUE_ERRORS)
        return VenueSuccess(venue=Venue.from_model(row))

    @strawberry.mutation(description="Replace a venue's weekly opening hours (staff).")
    async def set_opening_hours(self, info: Info, input: Annotated[SetOpeningHoursInput, InputArg]) -> VenueResult:
        try:
            spans = [
                venues_service.OpeningSpan(
                    weekday=h.weekday, opens_minute=_minute(h.opens, "hours"), closes_minute=_minute(h.closes, "hours")
                )
                for h in input.hours
            ]
            venue_id = decode_id(input.venue_id, "Venue")
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                await venues_service.set_opening_hours(uow, viewer=info.context.viewer, venue_id=venue_id, spans=spans)
                row = await uow.session.get(models.Venue, venue_id)
        except DomainError as exc:
            return _error(exc, VENUE_ERRORS)
        assert row is not None
        return VenueSuccess(venue=Venue.from_model(row))

    @strawberry.mutation(
        description="Add photos to a venue (staff of its community); anyone in the community sees them."
    )
    async def add_venue_photos(
        self, info: Info, input: Annotated[AddVenuePhotosInput, InputArg]
    ) -> AddVenuePhotosResult:
        services, viewer = info.context.services, info.context.viewer
        limits = photo_limits(services.settings)
        try:
            try:  # a venue the viewer may not change costs one query, not the decoding of its photos
                venue_id = decode_id(input.venue_id, "Venue")
                viewer.require_authenticated()
                async with info.context.db.read_session() as session:
                    venue = await session.get(models.Venue, venue_id)
                    if venue is None or venue.community_id not in viewer.community_ids:
                        raise NotFound("No such venue.", field="venueId")
                    if not venues_service.is_staff(viewer, venue.community_id):
                        raise Forbidden("Only staff of the community can do this.")
            except DomainError:
                await close_uploads(input.photos)
                raise
            # Read and decode before the transaction: decoding is slow and must not hold a connection.
            prepared = await prepare_photos(
                await read_uploads(input.photos, limits, viewer), limits=limits, owner="venue"
            )
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                rows = await venues_service.add_venue_photos(
                    uow, viewer=viewer, store=services.photos, venue_id=venue_id, photos=prepared, limits=limits
                )
                row = await uow.session.get(models.Venue, venue_id)
        except DomainError as exc:
            return photo_result_error(exc, [NotFoundError, ValidationError])
        assert row is not None
        return AddVenuePhotosSuccess(venue=Venue.from_model(row), photos=[VenuePhoto.from_model(r) for r in rows])

    @strawberry.mutation(description="Close a venue for a while, e.g. a public holiday (staff).")
    async def add_venue_closure(self, info: Info, input: Annotated[AddVenueClosureInput, InputArg]) -> VenueResult:
        try:
            venue_id = decode_id(input.venue_id, "Venue")
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                await venues_service.add_closure(
                    uow, viewer=info.context.viewer, venue_id=venue_id, starts_at=input.starts_at,
                    ends_at=input.ends_at, reason=input.reason,
                )  # fmt: skip
                row = await uow.session.get(models.Venue, venue_id)
        except DomainError as exc:
            return _error(exc, VENUE_ERRORS)
        assert row is not None
        return VenueSuccess(venue=Venue.from_model(row))

    @strawberry.mutation(description="Book a room for a slot within its opening hours; overlapping bookings never win.")
    async def book_room(self, info: Info, input: Annotated[BookRoomInput, InputArg]) -> BookRoomResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await venues_service.book_room(
                    uow, viewer=info.context.viewer, venue_id=decode_id(input.venue_id, "Venue"),
                    starts_at=input.starts_at, ends_at=input.ends_at, purpose=input.purpose, attendees=input.attendees,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, BOOK_ROOM_ERRORS)
        return RoomBookingSuccess(booking=RoomBooking.from_model(row))

    @strawberry.mutation(description="Approve or reject a pending room booking (staff).")
    async def decide_room_booking(
        self, info: Info, input: Annotated[DecideRoomBookingInput, InputArg]
    ) -> RoomBookingResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await venues_service.decide_room_booking(
                    uow, viewer=info.context.viewer, booking_id=decode_id(input.booking_id, "RoomBooking"),
                    approve=input.approve, note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, ROOM_BOOKING_ERRORS)
        return RoomBookingSuccess(booking=RoomBooking.from_model(row))

    @strawberry.mutation(description="Cancel a room booking before it starts (the booker, or staff).")
    async def cancel_room_booking(
        self, info: Info, input: Annotated[CancelRoomBookingInput, InputArg]
    ) -> RoomBookingResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await venues_service.cancel_room_booking(
                    uow, viewer=info.context.viewer, booking_id=decode_id(input.booking_id, "RoomBooking")
                )
        except DomainError as exc:
            return _error(exc, ROOM_BOOKING_ERRORS)
        return RoomBookingSuccess(booking=RoomBooking.from_model(row))

    @strawberry.mutation(description="Put on an activity in a venue (staff, who become its organiser).")
    async def create_activity(
        self, info: Info, input: Annotated[CreateActivityInput, InputArg]
    ) -> CreateActivityResult:
        try:
            draft = venues_service.ActivityDraft(
                venue_id=decode_id(input.venue_id, "Venue"), title=input.title, starts_at=input.starts_at,
                ends_at=input.ends_at, capacity=input.capacity, kind=input.kind, description=input.description,
                min_age=input.min_age, max_age=input.max_age, signup_opens_at=input.signup_opens_at,
                signup_closes_at=input.signup_closes_at, price_cents=input.price_cents,
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await venues_service.create_activity(uow, viewer=info.context.viewer, draft=draft)
        except DomainError as exc:
            return _error(exc, ACTIVITY_ERRORS)
        return ActivitySuccess(activity=Activity.from_model(row, venues_service.Places(row.capacity, 0, 0)))

    @strawberry.mutation(description="Put on a weekly activity: a session each week, with days left out (staff).")
    async def create_activity_series(
        self, info: Info, input: Annotated[CreateActivitySeriesInput, InputArg]
    ) -> CreateActivitySeriesResult:
        try:
            draft = venues_service.SeriesDraft(
                venue_id=decode_id(input.venue_id, "Venue"), title=input.title, weekday=input.weekday,
                start_minute=_minute(input.starts_at_time, "startsAtTime"), duration_minutes=input.duration_minutes,
                starts_on=input.starts_on, until=input.until, capacity=input.capacity, kind=input.kind,
                description=input.description, min_age=input.min_age, max_age=input.max_age,
                price_cents=input.price_cents, signup_opens_days_before=input.signup_opens_days_before,
                exceptions=tuple(input.exceptions),
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                series, rows = await venues_service.create_series(uow, viewer=info.context.viewer, draft=draft)
        except DomainError as exc:
            return _error(exc, [ValidationError, NotFoundError, ConflictError])
        return ActivitySeriesSuccess(
            series=ActivitySeries.from_model(series),
            activities=[Activity.from_model(r, venues_service.Places(r.capacity, 0, 0)) for r in rows],
        )

    @strawberry.mutation(
        description="Sign up yourself or children in your care; when the activity is full they join the waitlist."
    )
    async def sign_up(self, info: Info, input: Annotated[SignUpInput, InputArg]) -> SignUpResult:
        try:
            if len(input.participant_ids) > venues_service.MAX_PARTICIPANTS:
                raise ValidationFailed(
                    f"At most {venues_service.MAX_PARTICIPANTS} people at once.", field="participantIds"
                )
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                rows = await venues_service.sign_up(
                    uow, viewer=info.context.viewer, activity_id=decode_id(input.activity_id, "Activity"),
                    participant_ids=decode_ids(input.participant_ids, "Resident"), policy=_policy(info),
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, SIGN_UP_ERRORS)
        confirmed = sum(1 for r in rows if r.status == models.SignUpStatus.CONFIRMED.value)
        return SignUpSuccess(
            sign_ups=[SignUp.from_model(r) for r in rows], confirmed=confirmed, waitlisted=len(rows) - confirmed
        )

    @strawberry.mutation(description="Cancel a sign-up (or decline a seat offer); the seat goes to the next in line.")
    async def cancel_sign_up(self, info: Info, input: Annotated[CancelSignUpInput, InputArg]) -> CancelSignUpResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await venues_service.cancel_sign_up(
                    uow, viewer=info.context.viewer, sign_up_id=decode_id(input.sign_up_id, "SignUp")
                )
        except DomainError as exc:
            return _error(exc, CANCEL_SIGN_UP_ERRORS)
        return SignUpChangeSuccess(sign_up=SignUp.from_model(row))

    @strawberry.mutation(description="Accept a seat offered from the waitlist before the offer expires.")
    async def accept_offer(self, info: Info, input: Annotated[AcceptOfferInput, InputArg]) -> AcceptOfferResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await venues_service.accept_offer(
                    uow, viewer=info.context.viewer, sign_up_id=decode_id(input.sign_up_id, "SignUp")
                )
        except DomainError as exc:
            return _error(exc, [SeatOfferNotOpenError, NotFoundError, ValidationError])
        return SignUpChangeSuccess(sign_up=SignUp.from_model(row))

    @strawberry.mutation(description="Check a participant in with the code from their sign-up (staff or organiser).")
    async def check_in(self, info: Info, input: Annotated[CheckInInput, InputArg]) -> CheckInResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await venues_service.check_in(
                    uow, viewer=info.context.viewer, activity_id=decode_id(input.activity_id, "Activity"),
                    code=input.code,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, CHECK_IN_ERRORS)
        return SignUpChangeSuccess(sign_up=SignUp.from_model(row))

    @strawberry.mutation(description="Call an activity off; everyone signed up is told (organiser or staff).")
    async def cancel_activity(
        self, info: Info, input: Annotated[CancelActivityInput, InputArg]
    ) -> CancelActivityResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row, count = await venues_service.cancel_activity(
                    uow, viewer=info.context.viewer, activity_id=decode_id(input.activity_id, "Activity"),
                    reason=input.reason,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, CANCEL_ACTIVITY_ERRORS)
        return CancelActivitySuccess(activity=Activity.from_model(row), sign_ups_cancelled=count)

    @strawberry.mutation(
        description="Get a new secret link to your personal calendar feed (the old link stops working)."
    )
    async def reset_calendar_token(self, info: Info) -> CalendarFeed:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                token = await venues_service.reset_calendar_token(uow, viewer=info.context.viewer)
        except Unauthenticated as exc:
            raise auth_error(exc) from exc
        return CalendarFeed(token=token, path=f"/calendar/me.ics?token={token}")


NODE_TYPES = [Venue, Activity, SignUp, RoomBooking]
