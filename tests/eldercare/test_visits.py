"""Visits end to end through GraphQL and the worker handlers: offers, booking, check-in and check-out with
findings, hazard tickets, the time bank, requests, campaigns and the escalation of missed visits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from api.core.clock import utc_now
from api.eldercare import service as visits
from api.eldercare.models import TimeAccount, TimeEntry, Visit, VisitFinding
from api.notifications.models import Notification
from api.registry.models import ResidentTag
from api.tickets.models import Ticket, TicketCategory
from tests.eldercare.conftest import Care, count, db_id, gid, tomorrow_at
from tests.jobs import JobRunner

VISIT_FIELDS = "__typename ... on VisitSuccess { visit { id state checkedInAt volunteer { name } findings { severity ticketId staffAlerted } } } ... on UserError { code field message }"
REQUEST = f"mutation R($input: RequestVisitInput!) {{ requestVisit(input: $input) {{ {VISIT_FIELDS} }} }}"
ANSWER = f"mutation A($input: AnswerVisitOfferInput!) {{ answerVisitOffer(input: $input) {{ {VISIT_FIELDS} }} }}"
CHECK_IN = f"mutation I($input: CheckInVisitInput!) {{ checkInVisit(input: $input) {{ {VISIT_FIELDS} }} }}"
CHECK_OUT = f"mutation O($input: CheckOutVisitInput!) {{ checkOutVisit(input: $input) {{ {VISIT_FIELDS} }} }}"
ASSIGN = f"mutation S($input: AssignVisitInput!) {{ assignVisit(input: $input) {{ {VISIT_FIELDS} }} }}"
CANCEL = f"mutation C($input: CancelVisitInput!) {{ cancelVisit(input: $input) {{ {VISIT_FIELDS} }} }}"
REDEEM = """
mutation R($input: RedeemHoursInput!) {
  redeemHours(input: $input) { __typename ... on RedeemHoursSuccess { balanceMinutes } ... on UserError { code message } }
}
"""
STATEMENT = """
query S($id: ID!) { timeBankStatement(volunteerId: $id) { balanceMinutes entries { kind minutes balanceAfter visitId } } }
"""
OFFERS = "{ myVisitOffers { id state visitType elderName address checklist { code label } } }"
SAFETY_OK = [{"code": c, "answer": "ok"} for c in ("gas", "electricity", "fire_exits", "doors", "medicines")]


def escort_input(care: Care, resident_id: int, **kw: Any) -> dict[str, Any]:
    return {"input": {"residentId": gid("Resident", resident_id), "visitType": "HOSPITAL_ESCORT",
                      "startsAt": tomorrow_at(8).isoformat(), "endsAt": tomorrow_at(12).isoformat(),
                      "note": "市一院复诊", **kw}}  # fmt: skip


async def offered_visit(gql, care: Care, runner: JobRunner) -> str:
    """The daughter asks for an escort for grandpa; the worker offers it to the volunteer with the skill."""
    data = await gql(REQUEST, escort_input(care, care.grandpa.id), token=care.daughter.token)
    assert data["requestVisit"]["__typename"] == "VisitSuccess", data
    await runner.drain(skip={"dispatch.expire_offer"})
    return str(data["requestVisit"]["visit"]["id"])


async def test_a_relative_asks_the_volunteer_accepts_checks_in_and_out_and_earns_hours(
    services, gql, care: Care, runner
):
    # given: an escort asked for by grandpa's daughter
    visit_id = await offered_visit(gql, care, runner)
    # then: offered to the volunteer with the escort skill, who sees it and is told
    offers = (await gql(OFFERS, token=care.far.login.token))["myVisitOffers"]
    assert [(o["id"], o["state"], o["elderName"], o["address"]) for o in offers] == [
        (visit_id, "OFFERED", "李爷爷", "3号楼2单元201")
    ]
    assert [c["code"] for c in offers[0]["checklist"]] == ["arrived", "seen", "home"]
    assert await count(services, Notification, Notification.recipient_account_id == care.far.login.account.id) == 1
    # the other volunteer has no offer to answer
    wrong = await gql(ANSWER, {"input": {"visitId": visit_id, "accept": True}}, token=care.near.login.token)
    assert wrong["answerVisitOffer"]["code"] == "OFFER_NOT_OPEN"
    # when: checking out before checking in is refused
    accepted = await gql(ANSWER, {"input": {"visitId": visit_id, "accept": True}}, token=care.far.login.token)
    assert accepted["answerVisitOffer"]["visit"]["state"] == "ASSIGNED"
    early = await gql(CHECK_OUT, {"input": {"visitId": visit_id, "checklist": []}}, token=care.far.login.token)
    assert early["checkOutVisit"]["__typename"] == "VisitNotCheckedInError"
    # when: in, and out with an incomplete checklist, then the full one
    checked_in = await gql(CHECK_IN, {"input": {"visitId": visit_id}}, token=care.far.login.token)
    assert checked_in["checkInVisit"]["visit"]["state"] == "CHECKED_IN"
    twice = await gql(CHECK_IN, {"input": {"visitId": visit_id}}, token=care.far.login.token)
    assert twice["checkInVisit"]["__typename"] == "VisitAlreadyCheckedInError"
    partial = await gql(CHECK_OUT, {"input": {"visitId": visit_id, "checklist": [{"code": "arrived", "answer": "ok"}]}},
                        token=care.far.login.token)  # fmt: skip
    assert (partial["checkOutVisit"]["__typename"], partial["checkOutVisit"]["field"]) == (
        "ValidationError",
        "checklist.seen",
    )
    async with services.db.unit_of_work() as uow:  # the escort took 150 minutes
        row = await uow.session.get(Visit, db_id(visit_id))
        row.checked_in_at = utc_now() - timedelta(minutes=150)
    done = await gql(CHECK_OUT, {"input": {"visitId": visit_id, "report": "顺利就诊", "checklist": [
        {"code": c, "answer": "ok"} for c in ("arrived", "seen", "home")]}}, token=care.far.login.token)  # fmt: skip
    assert done["checkOutVisit"]["visit"]["state"] == "DONE"
    # then: 150 minutes credited from the community pool (balanced), once
    statement = await gql(STATEMENT, {"id": gid("Volunteer", care.far.volunteer_id)}, token=care.far.login.token)
    assert statement["timeBankStatement"]["balanceMinutes"] == 150
    assert statement["timeBankStatement"]["entries"] == [
        {"kind": "credit", "minutes": 150, "balanceAfter": 150, "visitId": visit_id}
    ]
    async with services.db.read_session() as session:
        amounts = (await session.scalars(select(TimeEntry.amount_minutes))).all()
        pool = await session.scalar(select(TimeAccount.balance_minutes).where(TimeAccount.kind == "pool"))
    assert sorted(amounts) == [-150, 150]
    assert pool == -150
    # when: redeeming more than held, then what is held
    too_much = await gql(REDEEM, {"input": {"volunteerId": gid("Volunteer", care.far.volunteer_id), "minutes": 151}},
                         token=care.far.login.token)  # fmt: skip
    assert too_much["redeemHours"]["__typename"] == "InsufficientHoursError"
    spent = await gql(REDEEM, {"input": {"volunteerId": gid("Volunteer", care.far.volunteer_id), "minutes": 100,
                                         "note": "为母亲兑换上门理发"}}, token=care.far.login.token)  # fmt: skip
    assert spent["redeemHours"] == {"__typename": "RedeemHoursSuccess", "balanceMinutes": 50}


async def test_a_hazard_found_on_a_visit_opens_a_repair_ticket_once(services, gql, care: Care, runner):
    # given: a safety check booked for the near volunteer and checked in
    async with services.db.unit_of_work(services.jobs) as uow:
        visit_id = await visits.request_visit(
            uow, community_id=care.cid, resident_id=care.grandma.id, visit_type="safety_check",
            starts_at=tomorrow_at(9), ends_at=tomorrow_at(10), source_key="test:safety",
        )  # fmt: skip
    await runner.drain(skip={"dispatch.expire_offer"})
    booked = await gql(ASSIGN, {"input": {"visitId": gid("Visit", visit_id), "volunteerId": gid("Volunteer", care.near.volunteer_id)}},
                       token=care.staff.token)  # fmt: skip
    assert booked["assignVisit"]["visit"]["state"] == "ASSIGNED"
    await gql(CHECK_IN, {"input": {"visitId": gid("Visit", visit_id)}}, token=care.near.login.token)
    # when: checked out with a gas hazard, a fire-exit hazard (no ticket category) and a concern
    answers = [dict(a, answer="problem") if a["code"] in ("gas", "fire_exits") else a for a in SAFETY_OK]
    out = await gql(CHECK_OUT, {"input": {"visitId": gid("Visit", visit_id), "checklist": answers, "findings": [
        {"itemCode": "gas", "severity": "HAZARD", "note": "燃气软管老化开裂"},
        {"itemCode": "fire_exits", "severity": "HAZARD", "note": "楼道堆放杂物"},
        {"itemCode": "medicines", "severity": "CONCERN", "note": "降压药快吃完了"},
    ]}}, token=care.near.login.token)  # fmt: skip
    assert out["checkOutVisit"]["__typename"] == "VisitSuccess"
    ran = await runner.drain(skip={"dispatch.expire_offer"})
    assert ran.count("eldercare.hazard_found") == 2
    # then: a gas repair ticket at grandma's home, linked to the finding; staff told about the fire exit
    async with services.db.read_session() as session:
        findings = {f.item_code: f for f in (await session.scalars(select(VisitFinding))).all()}
        ticket = await session.get(Ticket, findings["gas"].ticket_id)
        category = await session.get(TicketCategory, ticket.category_id) if ticket else None
    assert ticket is not None
    assert category is not None
    assert category.code == "gas"
    assert (ticket.building_id, ticket.unit, ticket.room) == (care.buildings[0].id, 1, "101")
    assert ticket.reporter_account_id == care.near.login.account.id
    assert findings["fire_exits"].ticket_id is None
    assert findings["fire_exits"].staff_alerted_at is not None
    assert findings["medicines"].ticket_id is None
    assert findings["medicines"].staff_alerted_at is None
    # when: the job is delivered again
    from worker.actors.eldercare import handle_hazard_found

    await handle_hazard_found(findings["gas"].id)
    await handle_hazard_found(findings["fire_exits"].id)
    # then: nothing new
    assert await count(services, Ticket) == 1
    assert await count(services, Notification, Notification.event_key.like("visit-hazard:%")) == 2  # staff + admin
    seen = (await gql("query V($id: ID!) { node(id: $id) { ... on Visit { findings { itemCode ticketId staffAlerted } } } }",
                      {"id": gid("Visit", visit_id)}, token=care.staff.token))["node"]["findings"]  # fmt: skip
    assert seen[0] == {"itemCode": "gas", "ticketId": gid("Ticket", ticket.id), "staffAlerted": False}


async def test_who_may_ask_for_a_visit(services, gql, care: Care, runner):
    # a neighbour who is neither the elder, family nor staff
    stranger = await gql(REQUEST, escort_input(care, care.grandpa.id), token=care.near.login.token)
    assert stranger["requestVisit"]["__typename"] == "NotARelativeError"
    # staff may, for anyone; a past time or an unrequestable type is refused
    assert (await gql(REQUEST, escort_input(care, care.uncle.id), token=care.staff.token))["requestVisit"][
        "__typename"
    ] == "VisitSuccess"
    past = escort_input(care, care.grandpa.id, startsAt=(utc_now() - timedelta(hours=2)).isoformat())
    assert (await gql(REQUEST, past, token=care.daughter.token))["requestVisit"]["code"] == "INVALID"
    holiday = escort_input(care, care.grandpa.id, visitType="HOLIDAY_DELIVERY")
    assert (await gql(REQUEST, holiday, token=care.daughter.token))["requestVisit"]["code"] == "INVALID"
    # the daughter may cancel what she asked for
    asked = await gql(REQUEST, escort_input(care, care.grandpa.id), token=care.daughter.token)
    cancelled = await gql(CANCEL, {"input": {"visitId": asked["requestVisit"]["visit"]["id"], "reason": "改期"}},
                          token=care.daughter.token)  # fmt: skip
    assert cancelled["cancelVisit"]["visit"]["state"] == "CANCELLED"


async def test_request_visit_is_idempotent_by_source_key(services, care: Care, runner):
    async def meal() -> int:
        async with services.db.unit_of_work(services.jobs) as uow:
            return await visits.request_visit(
                uow, community_id=care.cid, resident_id=care.uncle.id, visit_type="meal_delivery",
                starts_at=tomorrow_at(11), ends_at=tomorrow_at(12), source_key="canteen:reservation:42",
            )  # fmt: skip

    first, second = await meal(), await meal()
    assert first == second
    assert await count(services, Visit, Visit.source_key == "canteen:reservation:42") == 1
    await runner.drain(skip={"dispatch.expire_offer"})
    assert (
        await count(services, Notification, Notification.event_key.like("visit-offer:%")) == 1
    )  # one offer, told once


async def test_double_booking_and_answers_are_typed(services, gql, gql_raw, care: Care, runner):
    # given: two overlapping visits, the near volunteer booked on the first
    ids = []
    for i, resident in enumerate((care.grandma, care.uncle)):
        async with services.db.unit_of_work(services.jobs) as uow:
            ids.append(await visits.request_visit(
                uow, community_id=care.cid, resident_id=resident.id, visit_type="companionship",
                starts_at=tomorrow_at(14) + timedelta(minutes=30 * i), ends_at=tomorrow_at(15) + timedelta(minutes=30 * i),
                source_key=f"test:{i}"))  # fmt: skip
    await runner.drain(skip={"dispatch.expire_offer"})
    near = gid("Volunteer", care.near.volunteer_id)
    first = await gql(ASSIGN, {"input": {"visitId": gid("Visit", ids[0]), "volunteerId": near}}, token=care.staff.token)
    assert first["assignVisit"]["__typename"] == "VisitSuccess"
    # when / then
    clash = await gql(ASSIGN, {"input": {"visitId": gid("Visit", ids[1]), "volunteerId": near}}, token=care.staff.token)
    assert clash["assignVisit"]["__typename"] == "VolunteerDoubleBookedError"
    nope = await gql_raw(
        ASSIGN, {"input": {"visitId": gid("Visit", ids[1]), "volunteerId": near}}, token=care.daughter.token
    )
    assert nope["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = await gql(CHECK_IN, {"input": {"visitId": gid("Visit", ids[0])}}, token=care.far.login.token)
    assert other["checkInVisit"]["__typename"] == "NotFoundError"


async def test_missed_visits_are_escalated_to_staff_once(services, care: Care, runner):
    # given: a visit that ended two days ago with nobody checked in
    async with services.db.unit_of_work(services.jobs) as uow:
        visit_id = await visits.request_visit(
            uow, community_id=care.cid, resident_id=care.uncle.id, visit_type="safety_check",
            starts_at=tomorrow_at(9), ends_at=tomorrow_at(10), source_key="test:missed",
        )  # fmt: skip
        row = await uow.session.get(Visit, visit_id)
        row.starts_at, row.ends_at = utc_now() - timedelta(days=2, hours=1), utc_now() - timedelta(days=2)
    await runner.drain(skip={"dispatch.expire_offer"})
    # when: the scan runs twice
    from worker.actors.eldercare import handle_scan

    await handle_scan("1")
    await handle_scan("2")
    # then: missed, and staff and the admin told once each
    async with services.db.read_session() as session:
        row = await session.get(Visit, visit_id)
    assert row is not None
    assert row.state == "missed"
    assert row.escalated_at is not None
    titles = await count(services, Notification, Notification.event_key == f"visit-missed:{visit_id}")
    assert titles == 2


async def test_a_holiday_campaign_delivers_once_per_targeted_household(services, gql, care: Care, runner):
    create = """
    mutation C($input: CreateHolidayCampaignInput!) {
      createHolidayCampaign(input: $input) { __typename ... on HolidayCampaignSuccess { campaign { id } } }
    }
    """
    data = await gql(create, {"input": {"communityId": gid("Community", care.cid), "name": "元宵节送汤圆",
                                        "tags": ["LIVES_ALONE", "NO_FAMILY_SUPPORT"],
                                        "startsAt": tomorrow_at(9).isoformat(), "endsAt": tomorrow_at(17).isoformat()}},
                     token=care.staff.token)  # fmt: skip
    campaign_id = data["createHolidayCampaign"]["campaign"]["id"]
    await runner.drain(skip={"dispatch.expire_offer"})
    from worker.actors.eldercare import handle_generate_campaign

    await handle_generate_campaign(db_id(campaign_id))  # redelivered
    rows = [v for v in (await count_rows(services)) if v.campaign_id == db_id(campaign_id)]
    assert sorted(v.household_id for v in rows) == sorted([care.homes[0].id, care.homes[2].id])
    listed = await gql("query L($c: ID!) { holidayCampaigns(communityId: $c) { households delivered generatedAt } }",
                       {"c": gid("Community", care.cid)}, token=care.staff.token)  # fmt: skip
    assert listed["holidayCampaigns"][0]["households"] == 2
    assert listed["holidayCampaigns"][0]["delivered"] == 0
    assert ResidentTag.LIVES_ALONE.value == "lives_alone"


async def count_rows(services) -> list[Visit]:
    async with services.db.read_session() as session:
        return list((await session.scalars(select(Visit))).all())


async def test_a_declined_offer_moves_to_the_next_volunteer_and_nobody_left_escalates(
    services, gql, care: Care, runner
):
    # given: a companionship visit for grandma, offered first to the volunteer in her unit
    async with services.db.unit_of_work(services.jobs) as uow:
        visit_id = await visits.request_visit(
            uow, community_id=care.cid, resident_id=care.grandma.id, visit_type="companionship",
            starts_at=tomorrow_at(15), ends_at=tomorrow_at(16), source_key="test:decline",
        )  # fmt: skip
    await runner.drain(skip={"dispatch.expire_offer"})
    assert [o["id"] for o in (await gql(OFFERS, token=care.near.login.token))["myVisitOffers"]] == [
        gid("Visit", visit_id)
    ]
    # when: she declines
    declined = await gql(ANSWER, {"input": {"visitId": gid("Visit", visit_id), "accept": False, "note": "那天去医院"}},
                         token=care.near.login.token)  # fmt: skip
    assert declined["answerVisitOffer"]["visit"]["state"] == "PLANNED"
    await runner.drain(skip={"dispatch.expire_offer"})
    # then: dispatch offers it to the other volunteer, who is told through the visit's event handler
    offers = (await gql(OFFERS, token=care.far.login.token))["myVisitOffers"]
    assert [(o["id"], o["state"]) for o in offers] == [(gid("Visit", visit_id), "OFFERED")]
    assert await count(services, Notification, Notification.recipient_account_id == care.far.login.account.id) == 1
    # when: he declines too, nobody is left: staff are told to arrange it by hand
    await gql(ANSWER, {"input": {"visitId": gid("Visit", visit_id), "accept": False}}, token=care.far.login.token)
    await runner.drain(skip={"dispatch.expire_offer"})
    assert await count(services, Notification, Notification.event_key.like(f"visit-unassigned:{visit_id}:%")) == 2
    async with services.db.read_session() as session:
        row = await session.get(Visit, visit_id)
    assert row is not None
    assert row.state == "planned"
