"""Submitting tickets through GraphQL (on behalf, validation), and dispatch as responders see it."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select
from strawberry.relay import GlobalID

from api.core.viewer import Role
from api.dispatch import service as dispatch_service
from api.tickets.models import Ticket
from api.tickets.service import ensure_categories
from tests.factories import make_estate, make_login
from tests.tickets.conftest import category_of, gid, make_responder, table_counts

SUBMIT = """
mutation Submit($input: SubmitTicketInput!) {
  submitTicket(input: $input) {
    __typename
    ... on SubmitTicketSuccess { ticket { id status channel contactName reporter { id } category { code } } }
    ... on UserError { message field code }
  }
}
"""
TICKETS = "{ tickets(first: 10) { totalCount edges { node { id channel } } } }"
INBOX = "{ inbox(first: 10) { edges { node { title ticket { id } } } } }"
OFFERS = "{ myOffers { id state ticket { id description } } }"
ANSWER = """
mutation Answer($input: AnswerOfferInput!) {
  answerOffer(input: $input) {
    __typename ... on AnswerOfferSuccess { assignment { state mode responder { id } } } ... on UserError { field code }
  }
}
"""
ASSIGN = """
mutation Assign($input: AssignTicketInput!) {
  assignTicket(input: $input) {
    __typename ... on AssignmentSuccess { assignment { state mode responder { id } } } ... on UserError { field code }
  }
}
"""
CLAIM = """
mutation Claim($input: ClaimTicketInput!) {
  claimTicket(input: $input) {
    __typename ... on AssignmentSuccess { assignment { state mode } } ... on UserError { message field code }
  }
}
"""


async def leak_input(services, desk, **overrides: Any) -> dict[str, Any]:
    h = desk.estate.households[0]
    category = await category_of(services, desk.estate.community.id, "leak")
    values: dict[str, Any] = {
        "categoryId": gid("TicketCategory", category.id),
        "description": "卫生间漏水",
        "place": {"buildingId": gid("Building", h.building_id), "unit": h.unit, "room": h.room},
        "answers": {"where": "卫生间"},
    }
    values.update(overrides)
    return values


async def submit(gql_raw, token: str, values: dict[str, Any]) -> Any:
    body = await gql_raw(SUBMIT, {"input": values}, token=token)
    if body.get("errors"):
        return body["errors"][0]["extensions"]["code"]
    return body["data"]["submitTicket"]


# -- on behalf ---------------------------------------------------------------------------------


async def test_staff_submit_a_phone_call_on_a_residents_behalf(services, gql, gql_raw, desk, runner):
    resident = desk.estate.residents[0]  # the desk reporter's own resident record
    # when: staff take the call, naming the resident
    named = await submit(
        gql_raw, desk.staff.token,
        await leak_input(services, desk, channel="PHONE", onBehalfOfResidentId=gid("Resident", resident.id)),
    )  # fmt: skip
    # and another from someone not registered, by contact name
    by_name = await submit(
        gql_raw, desk.staff.token,
        await leak_input(services, desk, channel="WALK_IN", contactName=" 王阿姨 ", place={"addressText": "3号楼楼下"},
                         categoryId=gid("TicketCategory", (await category_of(services, desk.estate.community.id, "street_light")).id),
                         answers=None),
    )  # fmt: skip
    # then
    assert named["__typename"] == "SubmitTicketSuccess"
    assert named["ticket"]["channel"] == "PHONE"
    assert named["ticket"]["reporter"] == {"id": gid("Resident", resident.id)}
    assert by_name["__typename"] == "SubmitTicketSuccess"
    assert (by_name["ticket"]["channel"], by_name["ticket"]["contactName"]) == ("WALK_IN", "王阿姨")
    async with services.db.read_session() as session:
        rows = {t.channel: t for t in (await session.scalars(select(Ticket))).all()}
    assert (rows["phone"].reporter_resident_id, rows["phone"].reporter_account_id) == (resident.id, None)
    assert rows["phone"].created_by_account_id == desk.staff.account.id
    assert (rows["walk_in"].reporter_resident_id, rows["walk_in"].reporter_account_id) == (None, None)
    # the resident sees the ticket taken for them, and hears of it in their inbox
    mine = await gql(TICKETS, token=desk.reporter.token)
    assert [e["node"]["id"] for e in mine["tickets"]["edges"]] == [named["ticket"]["id"]]
    await runner.drain(skip={"dispatch.assign", "dispatch.expire_offer"})
    inbox = await gql(INBOX, token=desk.reporter.token)
    assert [e["node"]["ticket"]["id"] for e in inbox["inbox"]["edges"]] == [named["ticket"]["id"]]


async def test_on_behalf_is_for_staff_and_needs_someone_to_call_back(services, gql_raw, desk):
    other = await make_estate(services, households=1, members=1)
    before = await table_counts(services)
    resident_id = gid("Resident", desk.estate.residents[1].id)
    as_resident_phone = await submit(
        gql_raw, desk.reporter.token, await leak_input(services, desk, channel="PHONE", contactName="我")
    )
    as_resident_behalf = await submit(
        gql_raw, desk.reporter.token, await leak_input(services, desk, onBehalfOfResidentId=resident_id)
    )
    nobody = await submit(gql_raw, desk.staff.token, await leak_input(services, desk, channel="PHONE"))
    foreign = await submit(
        gql_raw, desk.staff.token,
        await leak_input(services, desk, channel="PHONE", onBehalfOfResidentId=gid("Resident", other.residents[0].id)),
    )  # fmt: skip
    assert as_resident_phone == "FORBIDDEN"
    assert as_resident_behalf == "FORBIDDEN"
    assert (nobody["__typename"], nobody["field"]) == ("ValidationError", "contactName")
    assert (foreign["__typename"], foreign["field"]) == ("NotFoundError", "onBehalfOfResidentId")
    assert await table_counts(services) == before


# -- validation --------------------------------------------------------------------------------

# (case, change to a valid leak submission, error type, field at fault)
CASES: list[tuple[str, Any, str, str]] = [
    ("empty description", {"description": ""}, "ValidationError", "description"),
    ("blank description", {"description": " \n "}, "ValidationError", "description"),
    ("4,001 characters", {"description": "漏" * 4001}, "ValidationError", "description"),
    ("unknown category", {"categoryId": gid("TicketCategory", 10_000_000)}, "NotFoundError", "categoryId"),
    ("id of another type", {"categoryId": gid("Building", 1)}, "NotFoundError", "categoryId"),
    ("other community's category", "other-category", "NotFoundError", "categoryId"),
    ("other community's building", "other-building", "NotFoundError", "buildingId"),
    ("home without building", {"place": {"latitude": 38.04, "longitude": 114.51}}, "ValidationError", "buildingId"),
    ("latitude without longitude", {"place": {"latitude": 38.04}}, "ValidationError", "latitude"),
    ("off the earth", {"place": {"latitude": 91.0, "longitude": 114.51}}, "ValidationError", "latitude"),
    ("nowhere", {"place": {}}, "ValidationError", "place"),
    ("no such unit", "unit-9", "ValidationError", "unit"),
    ("no such room", "room-999", "NotFoundError", "room"),
    ("answer of wrong type", {"answers": {"where": 5}}, "ValidationError", "answers.where"),
    ("not one of the choices", {"answers": {"where": "阳台"}}, "ValidationError", "answers.where"),
    ("missing required answer", {"answers": {}}, "ValidationError", "answers.where"),
    ("unknown answer key", {"answers": {"where": "厨房", "floor": 3}}, "ValidationError", "answers"),
    ("answers not an object", {"answers": [1, 2]}, "ValidationError", "answers"),
]


async def test_bad_submissions_are_typed_errors_and_write_nothing(services, gql_raw, desk):
    # given: a valid leak submission to spoil one way at a time, and another community
    other = await make_estate(services, households=1, members=1)
    async with services.db.unit_of_work() as uow:
        await ensure_categories(uow, community_ids=[other.community.id])
    other_leak = gid("TicketCategory", (await category_of(services, other.community.id, "leak")).id)
    other_place = {"buildingId": gid("Building", other.buildings[0].id), "unit": 1, "room": "101"}
    valid = await leak_input(services, desk)
    before = await table_counts(services)
    seen: dict[str, tuple[str, str | None]] = {}
    # when
    for case, change, _, _ in CASES:
        values = copy.deepcopy(valid)
        if change == "other-category":
            values["categoryId"] = other_leak
        elif change == "other-building":
            values["place"] = other_place
        elif change == "unit-9":
            values["place"]["unit"] = 9
        elif change == "room-999":
            values["place"]["room"] = "999"
        else:
            values.update(change)
        result = await submit(gql_raw, desk.reporter.token, values)
        assert result["message"], case
        seen[case] = (result["__typename"], result["field"])
    # then
    assert seen == {case: (typename, field) for case, _, typename, field in CASES}
    assert await table_counts(services) == before


async def test_4000_characters_are_accepted(services, gql_raw, desk):
    result = await submit(gql_raw, desk.reporter.token, await leak_input(services, desk, description="漏" * 4000))
    assert result["__typename"] == "SubmitTicketSuccess"
    counts = await table_counts(services)
    assert (counts["tickets"], counts["events"], counts["requests"]) == (1, 1, 1)
    assert counts["outbox"] == 2  # dispatch.assign and tickets.notify


# -- dispatch as responders see it -------------------------------------------------------------


async def test_a_craftsperson_sees_the_offered_ticket_and_answers(services, gql, desk, runner):
    # given: a craftsperson (no staff role) in the leak's building
    craft = await make_login(services, role=Role.CRAFTSPERSON, community=desk.estate.community)
    responder = await make_responder(
        services, craft, desk.estate.community.id, skills=["plumbing"], kind="craftsperson",
        home_building_id=desk.estate.buildings[0].id,
    )  # fmt: skip
    submitted = await gql(SUBMIT, {"input": await leak_input(services, desk)}, token=desk.reporter.token)
    ticket_id = submitted["submitTicket"]["ticket"]["id"]
    before = await gql(TICKETS, token=craft.token)
    await runner.drain(skip={"dispatch.expire_offer"})
    # when
    offers = await gql(OFFERS, token=craft.token)
    answered = await gql(
        ANSWER, {"input": {"assignmentId": offers["myOffers"][0]["id"], "accept": True}}, token=craft.token
    )
    await runner.drain(skip={"dispatch.expire_offer"})
    after = await gql(TICKETS, token=craft.token)
    # then
    assert before["tickets"]["totalCount"] == 0
    assert offers["myOffers"][0]["ticket"] == {"id": ticket_id, "description": "卫生间漏水"}
    assert answered["answerOffer"] == {
        "__typename": "AnswerOfferSuccess",
        "assignment": {"state": "accepted", "mode": "auto", "responder": {"id": gid("Responder", responder.id)}},
    }
    assert [e["node"]["id"] for e in after["tickets"]["edges"]] == [ticket_id]


async def test_staff_assign_by_hand_and_others_may_not(services, gql, gql_raw, desk):
    submitted = await gql(SUBMIT, {"input": await leak_input(services, desk)}, token=desk.reporter.token)
    tid = submitted["submitTicket"]["ticket"]["id"]
    values = {
        "input": {"ticketId": tid, "responderId": gid("Responder", desk.plumber_responder.id), "note": "熟悉这栋楼"}
    }
    by_reporter = await gql_raw(ASSIGN, values, token=desk.reporter.token)
    by_staff = await gql(ASSIGN, values, token=desk.staff.token)
    nobody = await gql(
        ASSIGN, {"input": {**values["input"], "responderId": gid("Responder", 10_000_000)}}, token=desk.staff.token
    )
    assert [e["extensions"]["code"] for e in by_reporter["errors"]] == ["FORBIDDEN"]
    assert by_staff["assignTicket"] == {
        "__typename": "AssignmentSuccess",
        "assignment": {
            "state": "accepted",
            "mode": "manual",
            "responder": {"id": gid("Responder", desk.plumber_responder.id)},
        },
    }
    assert nobody["assignTicket"] == {"__typename": "NotFoundError", "field": "responderId", "code": "NOT_FOUND"}
    ticket_id = int(GlobalID.from_id(tid).node_id)
    async with services.db.read_session() as session:
        active = await dispatch_service.active_assignments(session, kind="ticket", subject_ids=[ticket_id])
    assert (active[ticket_id].responder_id, active[ticket_id].note) == (desk.plumber_responder.id, "熟悉这栋楼")


async def test_claiming_grab_work_through_graphql(services, gql, desk):
    tailor = await make_login(services, role=Role.CRAFTSPERSON, community=desk.estate.community)
    await make_responder(
        services, tailor, desk.estate.community.id, skills=["tailoring"], kind="craftsperson", grab_enabled=True
    )
    clothes = await category_of(services, desk.estate.community.id, "clothes")
    h = desk.estate.households[0]
    submitted = await gql(
        SUBMIT,
        {"input": {"categoryId": gid("TicketCategory", clothes.id), "description": "裤脚改短",
                   "place": {"buildingId": gid("Building", h.building_id), "unit": h.unit, "room": h.room}}},
        token=desk.reporter.token,
    )  # fmt: skip
    tid = submitted["submitTicket"]["ticket"]["id"]
    claimed = await gql(CLAIM, {"input": {"ticketId": tid}}, token=tailor.token)
    by_plumber = await gql(CLAIM, {"input": {"ticketId": tid}}, token=desk.plumber.token)
    again = await gql(CLAIM, {"input": {"ticketId": tid}}, token=tailor.token)
    assert claimed["claimTicket"] == {
        "__typename": "AssignmentSuccess",
        "assignment": {"state": "accepted", "mode": "grab"},
    }
    assert (by_plumber["claimTicket"]["__typename"], by_plumber["claimTicket"]["field"]) == (
        "ValidationError",
        "subjectId",
    )
    assert again["claimTicket"]["__typename"] == "ConflictError"
