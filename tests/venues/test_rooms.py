"""Venues and room bookings through GraphQL: opening hours, closures, notice, quota, approval, overlaps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from api.core.clock import utc_now
from api.notifications.models import Notification
from api.venues import service as venues
from api.venues.models import RoomBooking
from tests.venues.conftest import Hall, at, count, gid, make_activity, next_weekday

BOOK = """
mutation Book($input: BookRoomInput!) {
  bookRoom(input: $input) {
    __typename
    ... on RoomBookingSuccess { booking { id status startsAt endsAt purpose venue { name } } }
    ... on UserError { message field code }
  }
}
"""
DECIDE = """
mutation Decide($input: DecideRoomBookingInput!) {
  decideRoomBooking(input: $input) {
    __typename ... on RoomBookingSuccess { booking { status decisionNote } } ... on UserError { field code }
  }
}
"""
VENUES = """
query Venues($cid: ID!) {
  venues(communityId: $cid) {
    id kind name capacity bookable weeklyQuota calendarPath
    openingHours { weekday opens closes }
    closures { reason }
  }
}
"""
CREATE_VENUE = """
mutation Create($input: CreateVenueInput!) {
  createVenue(input: $input) { __typename ... on VenueSuccess { venue { name kind } } ... on UserError { field code } }
}
"""
SET_HOURS = """
mutation Hours($input: SetOpeningHoursInput!) {
  setOpeningHours(input: $input) {
    __typename ... on VenueSuccess { venue { openingHours { weekday opens closes } } } ... on UserError { field code }
  }
}
"""
CLOSE = """
mutation Close($input: AddVenueClosureInput!) {
  addVenueClosure(input: $input) { __typename ... on VenueSuccess { venue { closures { reason } } } }
}
"""


def booking(hall: Hall, day, start: tuple[int, int], end: tuple[int, int], **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "venueId": gid("Venue", hall.meeting_room.id),
            "startsAt": at(day, *start).isoformat(),
            "endsAt": at(day, *end).isoformat(),
            "purpose": "寒假自习",
            **extra,
        }
    }


async def book(gql, token: str, variables: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await gql(BOOK, variables, token=token))["bookRoom"]
    return result


async def test_staff_set_up_rooms_and_residents_see_them(gql, gql_raw, hall: Hall):
    # given
    created = await gql(
        CREATE_VENUE,
        {"input": {"communityId": hall.community_gid, "kind": "LIBRARY", "name": "图书室", "capacity": 24}},
        token=hall.staff.token,
    )
    venue_id = gid("Venue", int(hall.meeting_room.id) + 1)  # the new one
    hours = await gql(
        SET_HOURS,
        {
            "input": {
                "venueId": venue_id,
                "hours": [{"weekday": d, "opens": "09:00", "closes": "17:00"} for d in range(6)],
            }
        },
        token=hall.staff.token,
    )
    bad_hours = await gql(
        SET_HOURS,
        {"input": {"venueId": venue_id, "hours": [{"weekday": 0, "opens": "17:00", "closes": "09:00"}]}},
        token=hall.staff.token,
    )
    duplicate = await gql(
        CREATE_VENUE,
        {"input": {"communityId": hall.community_gid, "kind": "LIBRARY", "name": "图书室", "capacity": 24}},
        token=hall.staff.token,
    )
    by_resident = await gql_raw(
        CREATE_VENUE,
        {"input": {"communityId": hall.community_gid, "kind": "LIBRARY", "name": "书房", "capacity": 4}},
        token=hall.parent.token,
    )
    # when
    listed = await gql(VENUES, {"cid": hall.community_gid}, token=hall.parent.token)
    # then
    assert created["createVenue"] == {"__typename": "VenueSuccess", "venue": {"name": "图书室", "kind": "LIBRARY"}}
    assert hours["setOpeningHours"]["venue"]["openingHours"][0] == {"weekday": 0, "opens": "09:00", "closes": "17:00"}
    assert bad_hours["setOpeningHours"] == {"__typename": "ValidationError", "field": "hours", "code": "INVALID"}
    assert duplicate["createVenue"] == {"__typename": "ConflictError", "field": "name", "code": "CONFLICT"}
    assert by_resident["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    rooms = listed["venues"]
    assert [r["name"] for r in rooms] == ["儿童活动室", "会议室", "图书室"]
    assert [len(r["openingHours"]) for r in rooms] == [6, 6, 6]
    assert rooms[1]["bookable"] is True
    assert rooms[2]["calendarPath"] == f"/calendar/venues/{hall.meeting_room.id + 1}.ics"


async def test_a_resident_books_the_meeting_room(services, gql, hall: Hall):
    # given
    day = next_weekday(1, weeks=1)
    # when
    result = await book(gql, hall.parent.token, booking(hall, day, (9, 0), (12, 0)))
    # then
    assert result["__typename"] == "RoomBookingSuccess"
    assert result["booking"]["status"] == "CONFIRMED"
    assert result["booking"]["venue"] == {"name": "会议室"}


@pytest.mark.parametrize(
    ("case", "typename", "code"),
    [
        ("before_opening", "OutsideOpeningHoursError", "OUTSIDE_OPENING_HOURS"),
        ("after_closing", "OutsideOpeningHoursError", "OUTSIDE_OPENING_HOURS"),
        ("sunday", "OutsideOpeningHoursError", "OUTSIDE_OPENING_HOURS"),
        ("too_long", "ValidationError", "INVALID"),
        ("too_soon", "TooShortNoticeError", "TOO_SHORT_NOTICE"),
        ("closed", "VenueClosedError", "VENUE_CLOSED"),
        ("overlap", "OverlappingBookingError", "OVERLAPPING_BOOKING"),
        ("activity", "OverlappingBookingError", "OVERLAPPING_BOOKING"),
        ("quota", "BookingQuotaExceededError", "QUOTA_EXCEEDED"),
        ("not_bookable", "NotBookableError", "NOT_BOOKABLE"),
        ("backwards", "ValidationError", "INVALID"),
    ],
)
async def test_booking_refusals_are_typed_and_write_nothing(services, gql, hall: Hall, case, typename, code):
    # given
    day = next_weekday(2, weeks=1)  # a Wednesday
    variables = booking(hall, day, (14, 0), (15, 0))
    if case == "before_opening":
        variables = booking(hall, day, (8, 30), (10, 0))
    elif case == "after_closing":
        variables = booking(hall, day, (16, 0), (17, 30))
    elif case == "sunday":
        variables = booking(hall, next_weekday(6, weeks=1), (10, 0), (11, 0))
    elif case == "too_long":
        variables = booking(hall, day, (9, 0), (12, 30))  # 210 minutes, the room allows 180
    elif case == "too_soon":
        soon = venues.local(utc_now() + timedelta(minutes=30))
        variables = booking(hall, soon.date(), (soon.hour, 0), (soon.hour, 59))
    elif case == "closed":
        async with services.db.unit_of_work() as uow:
            await venues.add_closure(
                uow, viewer=hall.staff_viewer, venue_id=hall.meeting_room.id, starts_at=at(day, 0),
                ends_at=at(day + timedelta(days=1), 0), reason="消防检查",
            )  # fmt: skip
    elif case == "overlap":
        assert (await book(gql, hall.neighbour.token, booking(hall, day, (13, 30), (14, 30))))["__typename"] == (
            "RoomBookingSuccess"
        )
    elif case == "activity":
        await make_activity(
            services, hall, venue_id=hall.meeting_room.id, title="党课", starts_at=at(day, 14, 30),
            ends_at=at(day, 16), min_age=None, max_age=None,
        )  # fmt: skip
    elif case == "quota":
        for morning in ((9, 0), (10, 0)):  # two this week already (the quota is two)
            result = await book(
                gql, hall.parent.token, booking(hall, day - timedelta(days=1), morning, (morning[0], 45))
            )
            assert result["__typename"] == "RoomBookingSuccess"
    elif case == "not_bookable":
        variables["input"]["venueId"] = gid("Venue", hall.children_room.id)
    elif case == "backwards":
        variables = booking(hall, day, (15, 0), (14, 0))
    before = await count(services, RoomBooking)
    # when
    result = await book(gql, hall.parent.token, variables)
    # then
    assert (result["__typename"], result["code"]) == (typename, code), result
    assert await count(services, RoomBooking) == before


async def test_a_room_that_needs_approval_waits_for_staff(services, gql, hall: Hall):
    # given
    async with services.db.unit_of_work() as uow:
        room = await uow.session.get(type(hall.meeting_room), hall.meeting_room.id)
        assert room is not None
        room.needs_approval = True
    day = next_weekday(3, weeks=1)
    pending = await book(gql, hall.parent.token, booking(hall, day, (9, 0), (10, 0)))
    booking_id = pending["booking"]["id"]
    # while it is pending the slot is held
    rival = await book(gql, hall.neighbour.token, booking(hall, day, (9, 30), (10, 30)))
    # when
    no_reason = await gql(DECIDE, {"input": {"bookingId": booking_id, "approve": False}}, token=hall.staff.token)
    rejected = await gql(
        DECIDE, {"input": {"bookingId": booking_id, "approve": False, "note": "当天有会议"}}, token=hall.staff.token
    )
    again = await gql(DECIDE, {"input": {"bookingId": booking_id, "approve": True}}, token=hall.staff.token)
    # then
    assert pending["booking"]["status"] == "PENDING"
    assert rival["__typename"] == "OverlappingBookingError"
    assert no_reason["decideRoomBooking"] == {"__typename": "ValidationError", "field": "note", "code": "INVALID"}
    assert rejected["decideRoomBooking"]["booking"] == {"status": "REJECTED", "decisionNote": "当天有会议"}
    assert again["decideRoomBooking"] == {
        "__typename": "ConflictError",
        "field": "bookingId",
        "code": "BOOKING_NOT_PENDING",
    }
    async with services.db.read_session() as session:
        told = (
            await session.scalars(
                select(Notification.title).where(Notification.recipient_account_id == hall.parent.account.id)
            )
        ).all()
    assert told == ["会议室预约未通过"]
    # and once rejected, the slot is free again
    assert (await book(gql, hall.neighbour.token, booking(hall, day, (9, 30), (10, 30))))["__typename"] == (
        "RoomBookingSuccess"
    )
