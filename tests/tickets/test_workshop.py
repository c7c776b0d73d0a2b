"""小修小补 workshop: sessions, slot booking with a database-enforced capacity, cancellations."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from api.accounts.service import viewer_for_token
from api.core.clock import CHINA_TZ, utc_now
from api.core.viewer import Role, Viewer
from api.dispatch.models import Assignment, DispatchRequest, Responder
from api.notifications.models import Notification
from api.tickets import workshop
from api.tickets.models import Ticket, TicketCategory, WorkshopBooking, WorkshopSession
from api.tickets.seed import seed_workshop_sessions
from tests.factories import Login, make_estate, make_login, make_resident
from tests.tickets.conftest import Desk, make_responder

CREATE = """
mutation Create($input: CreateWorkshopSessionInput!) {
  createWorkshopSession(input: $input) {
    __typename
    ... on WorkshopSessionSuccess {
      session {
        id title location price priceCents currency free slotMinutes seatsPerSlot startsAt endsAt
        craftsperson { id displayName } category { code } slots { start end seatsLeft }
      }
    }
    ... on UserError { message field code }
  }
}
"""

SESSIONS = """
query Sessions($cid: ID!) { workshopSessions(communityId: $cid) { id title slots { start seatsLeft } } }
"""

BOOK = """
mutation Book($input: BookWorkshopSlotInput!) {
  bookWorkshopSlot(input: $input) {
    __typename
    ... on WorkshopBookingSuccess {
      booking {
        id status seat slotStart
        ticket { id kind status description category { code } }
        session { slots { start seatsLeft } }
      }
    }
    ... on UserError { message field code }
  }
}
"""

CANCEL_BOOKING = """
mutation Cancel($input: CancelWorkshopBookingInput!) {
  cancelWorkshopBooking(input: $input) {
    __typename
    ... on WorkshopBookingSuccess { booking { status seat ticket { status } session { slots { start seatsLeft } } } }
    ... on UserError { message field code }
  }
}
"""

CANCEL_SESSION = """
mutation CancelSession($input: CancelWorkshopSessionInput!) {
  cancelWorkshopSession(input: $input) {
    __typename
    ... on CancelWorkshopSessionSuccess { bookingsCancelled session { cancelledAt } }
    ... on UserError { message field code }
  }
}
"""

CLAIM = """
mutation Claim($input: ClaimTicketInput!) {
  claimTicket(input: $input) { __typename ... on UserError { code } }
}
"""

MY_BOOKINGS = "{ myWorkshopBookings { id status ticket { id status assignee { id } } } }"


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


def db_id(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


def saturday_morning(days_ahead: int = 2) -> datetime:
    """9:00 China time (01:00 UTC) a few days ahead."""
    return (utc_now() + timedelta(days=days_ahead)).replace(hour=1, minute=0, second=0, microsecond=0)


@dataclass
class Workshop:
    desk: Desk
    craftsperson: Login
    responder: Responder
    rival: Login  # another grab-enabled craftsperson with the same skills
    neighbour: Login  # a second resident of the community
    clothes_id: str

    @property
    def cid(self) -> int:
        return self.desk.estate.community.id


@pytest.fixture
async def shop(services, desk: Desk) -> Workshop:
    community = desk.estate.community
    craftsperson = await make_login(services, role=Role.CRAFTSPERSON, community=community)
    responder = await make_responder(
        services, craftsperson, community.id, skills=["tailoring", "haircut"], kind="craftsperson", grab_enabled=True
    )
    rival = await make_login(services, role=Role.CRAFTSPERSON, community=community)
    await make_responder(
        services, rival, community.id, skills=["tailoring", "haircut"], kind="craftsperson", grab_enabled=True
    )
    neighbour = await make_login(services, role=Role.RESIDENT, community=community, resident=desk.estate.residents[1])
    async with services.db.read_session() as session:
        clothes = await session.scalar(
            select(TicketCategory.id).where(
                TicketCategory.community_id == community.id, TicketCategory.code == "clothes"
            )
        )
    assert clothes is not None
    return Workshop(desk, craftsperson, responder, rival, neighbour, gid("TicketCategory", clothes))


def session_input(shop: Workshop, **overrides: Any) -> dict[str, Any]:
    start = saturday_morning()
    values: dict[str, Any] = {
        "responderId": gid("Responder", shop.responder.id),
        "categoryId": shop.clothes_id,
        "title": "周六广场便民服务",
        "location": "社区文化广场",
        "startsAt": start.isoformat(),
        "endsAt": (start + timedelta(hours=3)).isoformat(),
        "slotMinutes": 20,
        "seatsPerSlot": 2,
        "priceCents": 0,
    }
    values.update(overrides)
    return values


async def open_session(gql, shop: Workshop, **overrides: Any) -> dict[str, Any]:
    data = await gql(CREATE, {"input": session_input(shop, **overrides)}, token=shop.craftsperson.token)
    result = data["createWorkshopSession"]
    assert result["__typename"] == "WorkshopSessionSuccess", result
    session: dict[str, Any] = result["session"]
    return session


async def book(gql, login: Login, session_id: str, slot_start: str, description: str = "裤脚改短") -> dict[str, Any]:
    data = await gql(
        BOOK,
        {"input": {"sessionId": session_id, "slotStart": slot_start, "description": description}},
        token=login.token,
    )
    result: dict[str, Any] = data["bookWorkshopSlot"]
    return result


def seats_left(slots: list[dict[str, Any]], start: str) -> int:
    return int(next(s["seatsLeft"] for s in slots if s["start"] == start))


async def count(services, model: Any, *conds: Any) -> int:
    async with services.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*conds)) or 0)


# -- creating sessions ------------------------------------------------------------------------------


async def test_the_craftsperson_opens_a_session_cut_into_slots(services, gql, shop):
    # when
    session = await open_session(gql, shop, priceCents=1500)
    listed = await gql(SESSIONS, {"cid": gid("Community", shop.cid)}, token=shop.desk.reporter.token)
    # then
    start = saturday_morning()
    assert session["slotMinutes"] == 20
    assert session["seatsPerSlot"] == 2
    assert (session["price"], session["priceCents"], session["currency"], session["free"]) == (
        "15.00",
        1500,
        "CNY",
        False,
    )
    assert session["craftsperson"]["id"] == gid("Responder", shop.responder.id)
    assert session["category"]["code"] == "clothes"
    assert len(session["slots"]) == 9  # 9:00–12:00 in 20-minute slots
    assert datetime.fromisoformat(session["slots"][0]["start"]) == start
    assert datetime.fromisoformat(session["slots"][-1]["end"]) == start + timedelta(hours=3)
    assert {s["seatsLeft"] for s in session["slots"]} == {2}
    assert [s["id"] for s in listed["workshopSessions"]] == [session["id"]]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"endsAt": saturday_morning().isoformat()}, "endsAt"),  # ends when it starts
        ({"slotMinutes": 25}, "slotMinutes"),  # 180 minutes do not divide into 25
        ({"slotMinutes": 0}, "slotMinutes"),
        (
            {
                "startsAt": (saturday_morning(-3)).isoformat(),
                "endsAt": (saturday_morning(-3) + timedelta(hours=3)).isoformat(),
            },
            "startsAt",
        ),  # in the past
        ({"endsAt": (saturday_morning() + timedelta(hours=13)).isoformat()}, "endsAt"),  # longer than 12 hours
        ({"seatsPerSlot": 0}, "seatsPerSlot"),
        ({"priceCents": -1}, "priceCents"),
        ({"title": "   "}, "title"),
        ({"startsAt": saturday_morning().replace(tzinfo=None).isoformat()}, "startsAt"),  # no time zone
    ],
)
async def test_bad_sessions_are_typed_validation_errors_and_write_nothing(services, gql, shop, overrides, field):
    # when
    data = await gql(CREATE, {"input": session_input(shop, **overrides)}, token=shop.craftsperson.token)
    # then
    result = data["createWorkshopSession"]
    assert (result["__typename"], result["field"], result["code"]) == ("ValidationError", field, "INVALID")
    assert await count(services, WorkshopSession) == 0


async def test_the_service_must_be_a_workshop_category_with_a_skill_the_craftsperson_has(services, gql, shop):
    # given
    async with services.db.read_session() as session:
        ids = dict(
            (
                await session.execute(
                    select(TicketCategory.code, TicketCategory.id).where(TicketCategory.community_id == shop.cid)
                )
            ).all()
        )
    # when
    leak = await gql(
        CREATE,
        {"input": session_input(shop, categoryId=gid("TicketCategory", ids["leak"]))},
        token=shop.craftsperson.token,
    )
    watch = await gql(
        CREATE,
        {"input": session_input(shop, categoryId=gid("TicketCategory", ids["watch"]))},
        token=shop.craftsperson.token,
    )
    # then
    assert (leak["createWorkshopSession"]["__typename"], leak["createWorkshopSession"]["field"]) == (
        "ValidationError",
        "categoryId",
    )
    assert (watch["createWorkshopSession"]["__typename"], watch["createWorkshopSession"]["field"]) == (
        "ValidationError",
        "categoryId",
    )
    assert await count(services, WorkshopSession) == 0


async def test_only_staff_or_the_craftsperson_may_open_a_session(services, gql, gql_raw, shop):
    # when
    by_resident = await gql_raw(CREATE, {"input": session_input(shop)}, token=shop.desk.reporter.token)
    by_rival = await gql_raw(CREATE, {"input": session_input(shop)}, token=shop.rival.token)
    by_staff = await gql(CREATE, {"input": session_input(shop)}, token=shop.desk.staff.token)
    overlapping = await gql(CREATE, {"input": session_input(shop)}, token=shop.desk.staff.token)
    # then
    assert by_resident["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert by_rival["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert by_staff["createWorkshopSession"]["__typename"] == "WorkshopSessionSuccess"
    assert overlapping["createWorkshopSession"]["code"] == "SESSION_OVERLAP"
    assert await count(services, WorkshopSession) == 1


# -- booking ----------------------------------------------------------------------------------------


async def test_a_booking_becomes_a_workshop_ticket_assigned_to_the_craftsperson(services, gql, shop, runner):
    # given
    session = await open_session(gql, shop)
    slot = session["slots"][1]["start"]
    # when
    result = await book(gql, shop.desk.reporter, session["id"], slot)
    ran = await runner.drain(skip={"dispatch.expire_offer"})
    claimed = await gql(CLAIM, {"input": {"ticketId": result["booking"]["ticket"]["id"]}}, token=shop.rival.token)
    mine = await gql(MY_BOOKINGS, token=shop.desk.reporter.token)
    # then
    booking = result["booking"]
    assert result["__typename"] == "WorkshopBookingSuccess"
    assert (booking["status"], booking["seat"], booking["slotStart"]) == ("BOOKED", 1, slot)
    assert booking["ticket"]["kind"] == "WORKSHOP"
    assert booking["ticket"]["category"]["code"] == "clothes"
    assert booking["ticket"]["description"] == "裤脚改短"
    assert seats_left(booking["session"]["slots"], slot) == 1
    assert seats_left(booking["session"]["slots"], session["slots"][0]["start"]) == 2
    assert "ticket.assignment_changed" in ran
    ticket_id = db_id(booking["ticket"]["id"])
    async with services.db.read_session() as db:
        ticket = await db.get(Ticket, ticket_id)
        request = await db.scalar(select(DispatchRequest).where(DispatchRequest.subject_id == ticket_id))
        assignments = (await db.scalars(select(Assignment).where(Assignment.subject_id == ticket_id))).all()
    assert ticket is not None
    assert (ticket.status, ticket.assignee_responder_id) == ("assigned", shop.responder.id)
    assert ticket.callback_due_at is None
    assert ticket.resolution_due_at == datetime.fromisoformat(slot) + timedelta(minutes=20)
    assert request is not None
    assert request.state == "assigned"
    assert [(a.responder_id, a.state, a.mode) for a in assignments] == [(shop.responder.id, "accepted", "booking")]
    assert claimed["claimTicket"] == {"__typename": "ConflictError", "code": "ALREADY_ASSIGNED"}
    assert mine["myWorkshopBookings"][0]["ticket"]["status"] == "ASSIGNED"
    assert mine["myWorkshopBookings"][0]["ticket"]["assignee"]["id"] == gid("Responder", shop.responder.id)


async def test_a_resident_holds_at_most_one_seat_per_session(services, gql, shop):
    # given
    session = await open_session(gql, shop)
    first = await book(gql, shop.desk.reporter, session["id"], session["slots"][0]["start"])
    # when
    second = await book(gql, shop.desk.reporter, session["id"], session["slots"][4]["start"])
    # then
    assert first["__typename"] == "WorkshopBookingSuccess"
    assert (second["__typename"], second["code"]) == ("AlreadyBookedError", "ALREADY_BOOKED")
    assert await count(services, WorkshopBooking) == 1
    assert await count(services, Ticket) == 1


async def test_a_full_slot_is_a_slot_full_error(services, gql, shop):
    # given: one seat per slot, taken
    session = await open_session(gql, shop, seatsPerSlot=1)
    slot = session["slots"][2]["start"]
    taken = await book(gql, shop.desk.reporter, session["id"], slot)
    # when
    refused = await book(gql, shop.neighbour, session["id"], slot)
    # then
    assert taken["__typename"] == "WorkshopBookingSuccess"
    assert (refused["__typename"], refused["field"], refused["code"]) == ("SlotFullError", "slotStart", "SLOT_FULL")
    assert await count(services, WorkshopBooking) == 1
    assert await count(services, Ticket) == 1


async def test_a_time_that_is_not_a_slot_is_refused_and_china_time_is_understood(services, gql, shop):
    # given
    session = await open_session(gql, shop)
    first = datetime.fromisoformat(session["slots"][0]["start"])
    off_grid = (first + timedelta(minutes=5)).isoformat()
    after_end = datetime.fromisoformat(session["endsAt"]).isoformat()
    # when
    refused = [await book(gql, shop.desk.reporter, session["id"], start) for start in (off_grid, after_end)]
    refused_count = await count(services, WorkshopBooking)
    in_china_time = await book(gql, shop.desk.reporter, session["id"], first.astimezone(CHINA_TZ).isoformat())
    # then
    assert [(r["__typename"], r["field"]) for r in refused] == [("ValidationError", "slotStart")] * 2
    assert refused_count == 0
    assert in_china_time["booking"]["slotStart"] == session["slots"][0]["start"]


async def test_a_slot_that_has_begun_cannot_be_booked(services, gql, shop):
    # given: a session under way (moved into the past behind the API's back)
    session = await open_session(gql, shop)
    start = utc_now().replace(second=0, microsecond=0) - timedelta(minutes=40)
    async with services.db.unit_of_work() as uow:
        ws = await uow.session.get(WorkshopSession, db_id(session["id"]))
        assert ws is not None
        ws.starts_at, ws.ends_at = start, start + timedelta(hours=3)
    # when
    begun = await book(gql, shop.desk.reporter, session["id"], start.isoformat())
    upcoming = await book(gql, shop.desk.reporter, session["id"], (start + timedelta(minutes=60)).isoformat())
    # then
    assert (begun["__typename"], begun["field"]) == ("ValidationError", "slotStart")
    assert upcoming["__typename"] == "WorkshopBookingSuccess"


async def test_cancelling_frees_the_seat_and_cancels_the_ticket(services, gql, shop, runner):
    # given
    session = await open_session(gql, shop, seatsPerSlot=1)
    slot = session["slots"][0]["start"]
    booked = await book(gql, shop.desk.reporter, session["id"], slot)
    await runner.drain(skip={"dispatch.expire_offer"})
    # when
    cancelled = await gql(
        CANCEL_BOOKING, {"input": {"bookingId": booked["booking"]["id"]}}, token=shop.desk.reporter.token
    )
    again = await gql(CANCEL_BOOKING, {"input": {"bookingId": booked["booking"]["id"]}}, token=shop.desk.reporter.token)
    rebooked = await book(gql, shop.neighbour, session["id"], slot)
    # then
    result = cancelled["cancelWorkshopBooking"]
    assert (result["booking"]["status"], result["booking"]["seat"]) == ("CANCELLED", None)
    assert result["booking"]["ticket"]["status"] == "CANCELLED"
    assert seats_left(result["booking"]["session"]["slots"], slot) == 1
    assert again["cancelWorkshopBooking"]["code"] == "BOOKING_NOT_ACTIVE"
    assert (rebooked["__typename"], rebooked["booking"]["seat"]) == ("WorkshopBookingSuccess", 1)
    async with services.db.read_session() as db:
        request_states = (await db.scalars(select(DispatchRequest.state).order_by(DispatchRequest.id))).all()
        assignment_states = (await db.scalars(select(Assignment.state).order_by(Assignment.id))).all()
    assert request_states == ["closed", "assigned"]
    assert assignment_states == ["cancelled", "accepted"]


async def test_someone_else_cannot_cancel_a_booking(services, gql, shop):
    session = await open_session(gql, shop)
    booked = await book(gql, shop.desk.reporter, session["id"], session["slots"][0]["start"])
    result = await gql(CANCEL_BOOKING, {"input": {"bookingId": booked["booking"]["id"]}}, token=shop.neighbour.token)
    assert result["cancelWorkshopBooking"]["__typename"] == "NotFoundError"
    assert await count(services, WorkshopBooking, WorkshopBooking.status == "booked") == 1


async def test_cancelling_the_session_cancels_its_bookings_and_tells_the_residents(services, gql, shop, runner):
    # given: two residents booked, their tickets assigned
    session = await open_session(gql, shop)
    await book(gql, shop.desk.reporter, session["id"], session["slots"][0]["start"])
    await book(gql, shop.neighbour, session["id"], session["slots"][0]["start"])
    await runner.drain(skip={"dispatch.expire_offer"})
    # when: the craftsperson (not staff) calls it off
    data = await gql(
        CANCEL_SESSION, {"input": {"sessionId": session["id"], "reason": "下雨"}}, token=shop.craftsperson.token
    )
    await runner.drain(skip={"dispatch.expire_offer"})
    booking = await book(gql, shop.desk.reporter, session["id"], session["slots"][1]["start"])
    listed = await gql(SESSIONS, {"cid": gid("Community", shop.cid)}, token=shop.desk.reporter.token)
    # then
    result = data["cancelWorkshopSession"]
    assert result["__typename"] == "CancelWorkshopSessionSuccess"
    assert result["bookingsCancelled"] == 2
    assert result["session"]["cancelledAt"] is not None
    assert (booking["__typename"], booking["code"]) == ("ConflictError", "SESSION_CANCELLED")
    assert listed["workshopSessions"] == []
    async with services.db.read_session() as db:
        bookings = (await db.execute(select(WorkshopBooking.status, WorkshopBooking.seat))).all()
        tickets = (await db.scalars(select(Ticket.status))).all()
        told = (
            await db.execute(
                select(Notification.recipient_account_id, Notification.body).where(
                    Notification.title.contains("已撤销")
                )
            )
        ).all()
    assert sorted(bookings) == [("cancelled", None), ("cancelled", None)]
    assert list(tickets) == ["cancelled", "cancelled"]
    residents = {shop.desk.reporter.account.id, shop.neighbour.account.id}
    assert {account for account, _ in told if account in residents} == residents
    assert all(body == "活动已取消：周六广场便民服务（下雨）" for account, body in told if account in residents)


async def test_a_resident_of_another_community_cannot_book(services, gql, shop):
    # given
    other = await make_estate(services, households=1, members=1)
    outsider = await make_login(services, role=Role.RESIDENT, community=other.community, resident=other.residents[0])
    session = await open_session(gql, shop)
    # when
    result = await book(gql, outsider, session["id"], session["slots"][0]["start"])
    listed = await gql(SESSIONS, {"cid": gid("Community", shop.cid)}, token=outsider.token)
    # then
    assert (result["__typename"], result["field"]) == ("NotFoundError", "sessionId")
    assert listed["workshopSessions"] == []
    assert await count(services, WorkshopBooking) == 0
    assert await count(services, Ticket) == 0


async def test_demo_seed_opens_next_saturdays_pop_up(services, shop):
    # when: run twice, as `linli seed` may be
    async with services.db.unit_of_work() as uow:
        added = await seed_workshop_sessions(uow, community_id=shop.cid)
    async with services.db.unit_of_work() as uow:
        again = await seed_workshop_sessions(uow, community_id=shop.cid)
    # then
    async with services.db.read_session() as db:
        rows = (await db.scalars(select(WorkshopSession).order_by(WorkshopSession.responder_id))).all()
    assert (added, again) == (2, 0)  # both craftspeople
    for ws in rows:
        local = ws.starts_at.astimezone(CHINA_TZ)
        assert local.weekday() == 5
        assert (local.hour, local.minute) == (9, 0)
        assert 0 < (local.date() - utc_now().astimezone(CHINA_TZ).date()).days <= 7
        assert ws.ends_at - ws.starts_at == timedelta(hours=3)
        assert (ws.slot_minutes, ws.seats_per_slot, ws.price_cents) == (20, 2, 0)


# -- concurrency --------------------------------------------------------------------------------------


async def test_a_hundred_residents_racing_for_three_seats(services, gql_raw, shop):
    # given: 100 residents, each logged in, and a slot with 3 seats
    household = shop.desk.estate.households[2]
    logins = []
    for i in range(100):
        resident = await make_resident(services, household, name=f"抢座{i}")
        logins.append(
            await make_login(services, role=Role.RESIDENT, community=shop.desk.estate.community, resident=resident)
        )
    session = await open_session_as(gql_raw, shop, seatsPerSlot=3)
    slot = session["slots"][0]["start"]
    variables = {"input": {"sessionId": session["id"], "slotStart": slot, "description": "换拉链"}}
    # when
    started = time.perf_counter()
    bodies = await asyncio.gather(*(gql_raw(BOOK, variables, token=login.token) for login in logins))
    elapsed = time.perf_counter() - started
    # then
    assert [b.get("errors") for b in bodies] == [None] * 100
    kinds = [b["data"]["bookWorkshopSlot"]["__typename"] for b in bodies]
    assert kinds.count("WorkshopBookingSuccess") == 3
    assert kinds.count("SlotFullError") == 97
    async with services.db.read_session() as db:
        seats = sorted((await db.scalars(select(WorkshopBooking.seat))).all())
        tickets = await db.scalar(select(func.count()).select_from(Ticket))
    assert seats == [1, 2, 3]
    assert tickets == 3
    print(f"\n100 concurrent bookings for 3 seats: {elapsed:.2f}s")


async def test_one_resident_racing_themself_gets_one_seat(services, gql_raw, shop):
    # given
    session = await open_session_as(gql_raw, shop, seatsPerSlot=3)
    # when: ten bookings of the same resident at once, each for another slot
    bodies = await asyncio.gather(
        *(
            gql_raw(
                BOOK,
                {"input": {"sessionId": session["id"], "slotStart": slot["start"]}},
                token=shop.desk.reporter.token,
            )
            for slot in session["slots"][:9]
        )
    )
    # then
    kinds = sorted(b["data"]["bookWorkshopSlot"]["__typename"] for b in bodies)
    assert kinds == ["AlreadyBookedError"] * 8 + ["WorkshopBookingSuccess"]
    assert await count(services, WorkshopBooking) == 1


async def test_a_seat_held_by_an_open_transaction_is_retried_on_the_next_seat(services, gql, shop):
    # given: a slot with 2 seats; A has taken seat 1 and not committed yet
    session = await open_session(gql, shop, seatsPerSlot=2)
    slot = datetime.fromisoformat(session["slots"][0]["start"])
    async with services.db.read_session() as db:
        viewer_a = await viewer_for_token(db, shop.desk.reporter.token)
        viewer_b = await viewer_for_token(db, shop.neighbour.token)
    assert viewer_a is not None
    assert viewer_b is not None
    a_inserted, release_a = asyncio.Event(), asyncio.Event()

    async def book_as(viewer: Viewer, *, hold: bool) -> int | None:
        async with services.db.unit_of_work() as uow:
            booking = await workshop.book(
                uow, viewer=viewer, session_id=db_id(session["id"]), slot_start=slot, description="改衣"
            )
            if hold:
                a_inserted.set()
                await release_a.wait()
        return booking.seat

    task_a = asyncio.create_task(book_as(viewer_a, hold=True))
    await a_inserted.wait()
    # when: B reads no committed seat, tries seat 1 and must wait for A
    task_b = asyncio.create_task(book_as(viewer_b, hold=False))
    await asyncio.sleep(0.3)
    b_waited = not task_b.done()
    release_a.set()
    seat_a, seat_b = await asyncio.gather(task_a, task_b)
    # then: the unique index made B wait, then B took the next seat
    assert b_waited
    assert (seat_a, seat_b) == (1, 2)
    assert await count(services, WorkshopBooking) == 2


async def open_session_as(gql_raw, shop: Workshop, **overrides: Any) -> dict[str, Any]:
    body = await gql_raw(CREATE, {"input": session_input(shop, **overrides)}, token=shop.craftsperson.token)
    session: dict[str, Any] = body["data"]["createWorkshopSession"]["session"]
    return session
