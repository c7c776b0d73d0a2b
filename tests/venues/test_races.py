"""Races on PostgreSQL: the database, not the application, keeps capacity and keeps rooms from double booking.

Every request is sent at once through the ASGI app (or the service) in one event loop over a pool
of up to 40 connections, so up to 40 transactions really run side by side in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from api.core.database import Database
from api.venues import service as venues
from api.venues.models import RoomBooking, SignUp, SignUpStatus, VenueActivity
from tests.conftest import TABLES, make_settings
from tests.venues.conftest import Hall, at, crowd, gid, make_activity, next_weekday

pytestmark = pytest.mark.timeout(120)

SIGN_UP = """
mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) { __typename ... on SignUpSuccess { confirmed waitlisted } ... on UserError { code message } }
}
"""
BOOK = """
mutation Book($input: BookRoomInput!) {
  bookRoom(input: $input) { __typename ... on RoomBookingSuccess { booking { id } } ... on UserError { code } }
}
"""


@pytest.fixture
def settings(pg_url):
    return make_settings(pg_url, db_pool_size=20)


@pytest.fixture
async def db(settings) -> AsyncIterator[Database]:
    """The test database with a pool of 20 (+20 overflow) for real concurrency."""
    database = Database(settings.database_url, pool_size=20)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        await database.dispose()


async def sign_ups_of(services, activity_id: int) -> list[SignUp]:
    async with services.db.read_session() as session:
        rows = await session.scalars(select(SignUp).where(SignUp.activity_id == activity_id).order_by(SignUp.id))
        return list(rows.all())


def outcome(results: list[dict[str, Any]], field: str) -> Counter[str]:
    return Counter(r["data"][field]["__typename"] if r.get("data") else r["errors"][0]["message"] for r in results)


async def test_300_concurrent_sign_ups_for_30_places(services, gql_raw, hall: Hall):
    # given: 300 residents, 30 places
    people = await crowd(services, hall.estate.community, 300)
    activity = await make_activity(services, hall, title="亲子阅读", capacity=30, min_age=None, max_age=None)
    # when: all at once
    results = await asyncio.gather(
        *(
            gql_raw(
                SIGN_UP,
                {
                    "input": {
                        "activityId": gid("Activity", activity.id),
                        "participantIds": [gid("Resident", p.resident_id)],
                    }
                },
                token=p.token,
            )
            for p in people
        )
    )
    # then: every request succeeded; exactly 30 seats, 270 in line
    assert outcome(results, "signUp") == Counter({"SignUpSuccess": 300})
    assert sum(r["data"]["signUp"]["confirmed"] for r in results) == 30
    assert sum(r["data"]["signUp"]["waitlisted"] for r in results) == 270
    rows = await sign_ups_of(services, activity.id)
    confirmed = [r for r in rows if r.status == SignUpStatus.CONFIRMED.value]
    waiting = [r for r in rows if r.status == SignUpStatus.WAITLISTED.value]
    assert (len(confirmed), len(waiting), len(rows)) == (30, 270, 300)
    assert sorted(r.seat or 0 for r in confirmed) == list(range(1, 31))
    assert all(r.waitlist_position is None for r in confirmed)
    # positions 1..270 with no gap or repeat, handed out in the order the sign-ups were made
    assert [r.waitlist_position for r in waiting] == list(range(1, 271))
    assert all(r.seat is None for r in waiting)
    assert len({r.participant_resident_id for r in rows}) == 300
    async with services.db.read_session() as session:
        assert await session.scalar(select(VenueActivity.waitlist_seq).where(VenueActivity.id == activity.id)) == 270


async def test_mixed_concurrent_cancels_and_sign_ups_keep_the_invariant(services, hall: Hall, runner):
    # given: 10 places taken and 30 waiting
    capacity = 10
    people = await crowd(services, hall.estate.community, 80)
    activity = await make_activity(services, hall, capacity=capacity, min_age=None, max_age=None)
    cid = hall.cid
    first = await asyncio.gather(*(_sign_up(services, p.viewer(cid), activity.id, p.resident_id) for p in people[:40]))
    seated = [row for row in first if row.seat is not None]
    queued = [row for row in first if row.seat is None]
    assert (len(seated), len(queued)) == (capacity, 30)
    by_resident = {p.resident_id: p for p in people}
    # when: 6 seated and 5 queued cancel, 40 newcomers sign up, and offer_next runs, all at once
    operations = [
        *(_cancel(services, by_resident[r.participant_resident_id].viewer(cid), r.id) for r in seated[:6]),
        *(_cancel(services, by_resident[r.participant_resident_id].viewer(cid), r.id) for r in queued[:5]),
        *(_sign_up(services, p.viewer(cid), activity.id, p.resident_id) for p in people[40:]),
        *(_offer_next(services, activity.id) for _ in range(5)),
    ]
    random.Random(7).shuffle(operations)
    await asyncio.gather(*operations)
    # then, at once: never more than the capacity seated, no seat or position twice
    rows = await sign_ups_of(services, activity.id)
    _assert_invariant(rows, capacity)
    # and once the worker has caught up: every freed seat is offered, to the first in line
    await runner.drain(skip={"venues.expire_offer"})
    rows = await sign_ups_of(services, activity.id)
    _assert_invariant(rows, capacity)
    holding = [r for r in rows if r.seat is not None]
    offered = [r for r in rows if r.status == SignUpStatus.OFFERED.value]
    still_waiting = [r for r in rows if r.status == SignUpStatus.WAITLISTED.value]
    assert len(holding) == capacity
    assert len(offered) == 6
    assert max(r.waitlist_position or 0 for r in offered) < min(r.waitlist_position or 0 for r in still_waiting)
    assert len(still_waiting) == 30 - 5 - 6 + 40


def _assert_invariant(rows: list[SignUp], capacity: int) -> None:
    seats = [r.seat for r in rows if r.seat is not None]
    positions = [r.waitlist_position for r in rows if r.waitlist_position is not None]
    assert len(seats) <= capacity
    assert len(seats) == len(set(seats))
    assert all(1 <= s <= capacity for s in seats)
    assert len(positions) == len(set(positions))
    assert {r.status for r in rows if r.seat is not None} <= {"confirmed", "offered"}
    live = [r.participant_resident_id for r in rows if r.status != "cancelled"]
    assert len(live) == len(set(live))


async def _sign_up(services, viewer, activity_id: int, resident_id: int) -> SignUp:
    async with services.db.unit_of_work(services.jobs) as uow:
        [row] = await venues.sign_up(uow, viewer=viewer, activity_id=activity_id, participant_ids=[resident_id])
    return row


async def _cancel(services, viewer, sign_up_id: int) -> None:
    async with services.db.unit_of_work(services.jobs) as uow:
        await venues.cancel_sign_up(uow, viewer=viewer, sign_up_id=sign_up_id)


async def _offer_next(services, activity_id: int) -> None:
    async with services.db.unit_of_work(services.jobs) as uow:
        await venues.offer_next(uow, activity_id=activity_id)


async def test_100_concurrent_overlapping_room_bookings_give_exactly_one(services, gql_raw, hall: Hall):
    # given: 100 residents want the meeting room on the same morning, each a slightly different hour
    people = await crowd(services, hall.estate.community, 100)
    day = next_weekday(2, weeks=1)  # a Wednesday, over a week ahead
    requests = [
        {"input": {"venueId": gid("Venue", hall.meeting_room.id),
                   "startsAt": (at(day, 10) + timedelta(minutes=i % 50)).isoformat(),
                   "endsAt": (at(day, 11) + timedelta(minutes=i % 50)).isoformat(), "purpose": "自习"}}
        for i in range(100)
    ]  # fmt: skip
    # when
    results = await asyncio.gather(*(gql_raw(BOOK, r, token=p.token) for r, p in zip(requests, people, strict=True)))
    # then
    assert outcome(results, "bookRoom") == Counter({"RoomBookingSuccess": 1, "OverlappingBookingError": 99})
    async with services.db.read_session() as session:
        held = (await session.scalars(select(RoomBooking).where(RoomBooking.status == "confirmed"))).all()
    assert len(held) == 1


async def test_the_database_itself_refuses_an_overlapping_booking(services, hall: Hall):
    # given: a confirmed booking
    day = next_weekday(2, weeks=1)
    async with services.db.unit_of_work() as uow:
        uow.session.add(
            RoomBooking(community_id=hall.cid, venue_id=hall.meeting_room.id, starts_at=at(day, 10),
                        ends_at=at(day, 12), status="confirmed", purpose="", attendees=1)
        )  # fmt: skip
    # when: a row written past the service overlaps it
    with pytest.raises(IntegrityError) as refused:
        async with services.db.unit_of_work() as uow:
            uow.session.add(
                RoomBooking(community_id=hall.cid, venue_id=hall.meeting_room.id, starts_at=at(day, 11),
                            ends_at=at(day, 13), status="pending", purpose="", attendees=1)
            )  # fmt: skip
    # then: the exclusion constraint; a cancelled or adjacent booking is fine
    assert "ex_venue_room_booking_no_overlap" in str(refused.value)
    async with services.db.unit_of_work() as uow:
        uow.session.add_all(
            [
                RoomBooking(community_id=hall.cid, venue_id=hall.meeting_room.id, starts_at=at(day, 11),
                            ends_at=at(day, 13), status="cancelled", purpose="", attendees=1),
                RoomBooking(community_id=hall.cid, venue_id=hall.meeting_room.id, starts_at=at(day, 12),
                            ends_at=at(day, 13), status="confirmed", purpose="", attendees=1),
            ]
        )  # fmt: skip


async def test_the_database_itself_refuses_a_seat_twice(services, hall: Hall):
    # given
    activity = await make_activity(services, hall, capacity=2)
    [row] = await _sign_up_staff(services, hall, activity.id, hall.kids[0].id)
    # when: a second row on the same seat, past the service
    with pytest.raises(IntegrityError) as refused:
        async with services.db.unit_of_work() as uow:
            uow.session.add(
                SignUp(community_id=hall.cid, activity_id=activity.id, participant_resident_id=hall.kids[1].id,
                       status="confirmed", seat=row.seat, check_in_code="AAAAAA")
            )  # fmt: skip
    # then
    assert "uq_venue_sign_up_activity_id_seat" in str(refused.value)


async def _sign_up_staff(services, hall: Hall, activity_id: int, *residents: int) -> list[SignUp]:
    async with services.db.unit_of_work(services.jobs) as uow:
        return await venues.sign_up(uow, viewer=hall.staff_viewer, activity_id=activity_id, participant_ids=residents)
