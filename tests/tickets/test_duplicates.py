"""Possible duplicates (same building, or within the category's radius) and marking a duplicate."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import select

from api.core.viewer import Role
from api.dispatch import service as dispatch_service
from api.dispatch.models import Assignment, DispatchRequest
from api.tickets import service as tickets_service
from api.tickets.models import Ticket, TicketEvent
from api.tickets.service import EARTH_RADIUS_M, Action, Place, TicketDraft, distance_m, transition
from tests.factories import Login, make_estate, make_login
from tests.tickets.conftest import category_of, gid, new_ticket, table_counts, viewer_of

LAT, LON = 38.04, 114.51

POSSIBLE = """
query Possible($category: ID!, $place: PlaceInput!) {
  possibleDuplicates(categoryId: $category, place: $place) { id status }
}
"""
MARK = """
mutation Mark($input: MarkDuplicateInput!) {
  markTicketDuplicate(input: $input) {
    __typename
    ... on TicketSuccess { ticket { id status closedAt duplicateOf { id } } }
    ... on UserError { message field code }
  }
}
"""


def north(metres: float) -> Place:
    return Place(latitude=LAT + math.degrees(metres / EARTH_RADIUS_M), longitude=LON)


def east(metres: float) -> Place:
    return Place(latitude=LAT, longitude=LON + math.degrees(metres / (EARTH_RADIUS_M * math.cos(math.radians(LAT)))))


def test_the_distance_is_the_great_circle_distance():
    p30, p80 = north(30), east(80)
    assert distance_m(LAT, LON, p30.latitude, p30.longitude) == pytest.approx(30.0, abs=0.01)  # type: ignore[arg-type]
    assert distance_m(LAT, LON, p80.latitude, p80.longitude) == pytest.approx(80.0, abs=0.01)  # type: ignore[arg-type]
    # Beijing to Shanghai: 1,067 km on a sphere of radius 6,371 km
    assert round(distance_m(39.9042, 116.4074, 31.2304, 121.4737) / 1000) == 1067


async def outside_ticket(services) -> tuple[Login, Ticket]:
    """Another community with a staff member and a street-light ticket of theirs."""
    other = await make_estate(services, households=1, members=1)
    async with services.db.unit_of_work() as uow:
        await tickets_service.ensure_categories(uow, community_ids=[other.community.id])
    staff = await make_login(services, role=Role.STAFF, community=other.community)
    category = await category_of(services, other.community.id, "street_light")
    async with services.db.unit_of_work() as uow:
        ticket = await tickets_service.submit(
            uow,
            viewer=await viewer_of(services, staff),
            draft=TicketDraft(category_id=category.id, description="路灯", place=Place(latitude=LAT, longitude=LON)),
        )
    return staff, ticket


async def test_possible_duplicates_by_radius_and_by_building(services, gql, desk):
    # given: street lights at, 30 m and 49.97 m north of, and 80 m east of a point; one closed; a road
    here = await new_ticket(services, desk, "street_light", place=Place(latitude=LAT, longitude=LON))
    near = await new_ticket(services, desk, "street_light", place=north(30))
    edge = await new_ticket(services, desk, "street_light", place=north(49.97))  # just inside 50 m
    await new_ticket(services, desk, "street_light", place=east(80))
    closed = await new_ticket(services, desk, "street_light", place=north(10))
    async with services.db.unit_of_work() as uow:
        await transition(
            uow, viewer=await viewer_of(services, desk.staff), ticket_id=closed.id, action=Action.REJECT, note="已修"
        )
    await new_ticket(services, desk, "road_damage", place=Place(latitude=LAT, longitude=LON))
    # and leaks in two buildings, one cancelled
    leak = await new_ticket(services, desk, "leak", household=0)
    cancelled = await new_ticket(services, desk, "leak", household=2)  # the same building
    async with services.db.unit_of_work() as uow:
        await transition(
            uow, viewer=await viewer_of(services, desk.reporter), ticket_id=cancelled.id, action=Action.CANCEL
        )
    await new_ticket(services, desk, "leak", household=1)  # the other building
    light_cat = gid("TicketCategory", here.category_id)
    # when
    by_point = await gql(
        POSSIBLE, {"category": light_cat, "place": {"latitude": LAT, "longitude": LON}}, token=desk.reporter.token
    )
    by_building = await gql(
        POSSIBLE,
        {
            "category": gid("TicketCategory", leak.category_id),
            "place": {"buildingId": gid("Building", desk.estate.buildings[0].id)},
        },
        token=desk.reporter.token,
    )
    by_words = await gql(POSSIBLE, {"category": light_cat, "place": {"addressText": "东门"}}, token=desk.reporter.token)
    # then
    assert sorted(t["id"] for t in by_point["possibleDuplicates"]) == sorted(
        gid("Ticket", t.id) for t in (here, near, edge)
    )
    assert [t["id"] for t in by_building["possibleDuplicates"]] == [gid("Ticket", leak.id)]
    assert by_words["possibleDuplicates"] == []


async def test_possible_duplicates_only_in_the_viewers_communities(services, gql_raw, desk):
    outsider, _ = await outside_ticket(services)
    here = await new_ticket(services, desk, "street_light", place=Place(latitude=LAT, longitude=LON))
    body = await gql_raw(
        POSSIBLE,
        {"category": gid("TicketCategory", here.category_id), "place": {"latitude": LAT, "longitude": LON}},
        token=outsider.token,
    )
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]


async def test_marking_a_duplicate_links_both_and_stops_dispatch(services, gql, desk):
    # given: two reports of the same light; the second has an open offer
    original = await new_ticket(services, desk, "street_light", place=Place(latitude=LAT, longitude=LON))
    copy = await new_ticket(services, desk, "street_light", place=north(20))
    async with services.db.unit_of_work() as uow:
        request = await dispatch_service.get_request(uow.session, kind="ticket", subject_id=copy.id)
        assert request is not None
        offer = await dispatch_service.offer_to_best_candidate(uow, request_id=request.id)
    assert offer is not None
    # when
    data = await gql(
        MARK,
        {"input": {"ticketId": gid("Ticket", copy.id), "originalId": gid("Ticket", original.id)}},
        token=desk.staff.token,
    )
    # then
    marked = data["markTicketDuplicate"]
    assert marked["__typename"] == "TicketSuccess"
    assert marked["ticket"]["status"] == "DUPLICATE"
    assert marked["ticket"]["closedAt"] is not None
    assert marked["ticket"]["duplicateOf"] == {"id": gid("Ticket", original.id)}
    async with services.db.read_session() as session:
        request_state = await session.scalar(select(DispatchRequest.state).where(DispatchRequest.subject_id == copy.id))
        offer_state = await session.scalar(select(Assignment.state).where(Assignment.id == offer.id))
        original_events = (
            await session.execute(
                select(TicketEvent.kind, TicketEvent.note)
                .where(TicketEvent.ticket_id == original.id)
                .order_by(TicketEvent.id)
            )
        ).all()
        copy_events = (
            await session.execute(
                select(TicketEvent.from_status, TicketEvent.to_status, TicketEvent.note)
                .where(TicketEvent.ticket_id == copy.id)
                .order_by(TicketEvent.id)
            )
        ).all()
        original_row = await session.get(Ticket, original.id)
    assert request_state == "closed"
    assert offer_state == "cancelled"
    assert original_events[-1] == ("duplicate_linked", f"#{copy.id} reports the same problem")
    assert copy_events[-1] == ("submitted", "duplicate", f"Duplicate of #{original.id}")
    assert original_row is not None
    assert original_row.status == "submitted"  # the original goes on
    async with services.db.unit_of_work() as uow:  # a late dispatch job changes nothing
        assert await dispatch_service.offer_to_best_candidate(uow, request_id=offer.request_id) is None


async def test_marking_a_duplicate_refuses_bad_originals_and_writes_nothing(services, gql, gql_raw, desk):
    # given
    original = await new_ticket(services, desk, "street_light", place=Place(latitude=LAT, longitude=LON))
    copy = await new_ticket(services, desk, "street_light", place=north(20))
    third = await new_ticket(services, desk, "street_light", place=north(25))
    closed = await new_ticket(services, desk, "street_light", place=north(5))
    _, elsewhere = await outside_ticket(services)
    async with services.db.unit_of_work() as uow:
        await transition(
            uow, viewer=await viewer_of(services, desk.staff), ticket_id=closed.id, action=Action.REJECT, note="重复"
        )
    done = await gql(
        MARK,
        {"input": {"ticketId": gid("Ticket", third.id), "originalId": gid("Ticket", copy.id)}},
        token=desk.staff.token,
    )
    assert done["markTicketDuplicate"]["__typename"] == "TicketSuccess"
    before = await table_counts(services)

    async def mark(ticket_id: int, original_id: int, token: str = desk.staff.token) -> dict[str, Any]:
        data = await gql(
            MARK,
            {"input": {"ticketId": gid("Ticket", ticket_id), "originalId": gid("Ticket", original_id)}},
            token=token,
        )
        result: dict[str, Any] = data["markTicketDuplicate"]
        return result

    # when / then
    assert await mark(copy.id, copy.id) == {
        "__typename": "ValidationError",
        "message": "Choose another ticket of this community as the original.",
        "field": "originalId",
        "code": "INVALID",
    }
    hidden = await mark(copy.id, elsewhere.id)
    assert (hidden["__typename"], hidden["field"]) == ("NotFoundError", "originalId")
    chained = await mark(original.id, third.id)
    assert (chained["__typename"], chained["field"], chained["message"]) == (
        "ValidationError",
        "originalId",
        "The original is itself a duplicate; choose its original.",
    )
    gone = await mark(copy.id, closed.id)
    assert (gone["__typename"], gone["field"]) == ("ValidationError", "originalId")
    again = await mark(third.id, original.id)
    assert (again["__typename"], again["field"]) == ("IllegalTransitionError", "ticketId")
    forbidden = await gql_raw(
        MARK,
        {"input": {"ticketId": gid("Ticket", copy.id), "originalId": gid("Ticket", original.id)}},
        token=desk.reporter.token,
    )
    assert [e["extensions"]["code"] for e in forbidden["errors"]] == ["FORBIDDEN"]
    assert await table_counts(services) == before
