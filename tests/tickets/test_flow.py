from __future__ import annotations

from sqlalchemy import func, select
from strawberry.relay import GlobalID

from api.dispatch.models import Assignment
from api.notifications.models import Notification
from api.tickets.models import Ticket, TicketCategory, TicketEvent

SUBMIT = """
mutation Submit($input: SubmitTicketInput!) {
  submitTicket(input: $input) {
    __typename
    ... on SubmitTicketSuccess { ticket { id status callbackDueAt resolutionDueAt category { code } } }
    ... on EmergencyNoticeError { message notice field code }
    ... on UserError { message field code }
  }
}
"""

CHANGE = """
mutation Change($input: ChangeTicketStatusInput!) {
  changeTicketStatus(input: $input) {
    __typename
    ... on TicketSuccess { ticket { status acknowledgedAt } }
    ... on UserError { message field code }
  }
}
"""

OFFERS = "{ myOffers { id state reasons { code } ticket { id } } }"
ANSWER = """
mutation Answer($input: AnswerOfferInput!) {
  answerOffer(input: $input) { __typename ... on AnswerOfferSuccess { assignment { state } } ... on UserError { code } }
}
"""


async def category_id(services, community_id: int, code: str) -> str:
    async with services.db.read_session() as session:
        cid = await session.scalar(
            select(TicketCategory.id).where(TicketCategory.community_id == community_id, TicketCategory.code == code)
        )
    return str(GlobalID("TicketCategory", str(cid)))


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


async def test_a_leak_is_offered_to_the_plumber_who_accepts_and_the_reporter_sees_it(services, gql, desk, runner):
    # given
    household = desk.estate.households[0]
    cat = await category_id(services, desk.estate.community.id, "leak")
    # when: the resident reports a leak at home
    data = await gql(
        SUBMIT,
        {
            "input": {
                "categoryId": cat,
                "description": "厨房水管漏水",
                "place": {
                    "buildingId": gid("Building", household.building_id),
                    "unit": household.unit,
                    "room": household.room,
                },
                "answers": {"where": "厨房"},
            }
        },
        token=desk.reporter.token,
    )
    ticket = data["submitTicket"]["ticket"]
    ran = await runner.drain(skip={"dispatch.expire_offer"})
    offers = await gql(OFFERS, token=desk.plumber.token)
    offer = offers["myOffers"][0]
    answered = await gql(ANSWER, {"input": {"assignmentId": offer["id"], "accept": True}}, token=desk.plumber.token)
    await runner.drain(skip={"dispatch.expire_offer"})
    # then
    assert data["submitTicket"]["__typename"] == "SubmitTicketSuccess"
    assert ticket["status"] == "SUBMITTED"
    assert "dispatch.assign" in ran
    assert offer["ticket"]["id"] == ticket["id"]
    assert {"skill", "available", "same_community"} <= {r["code"] for r in offer["reasons"]}
    assert answered["answerOffer"]["assignment"]["state"] == "accepted"
    async with services.db.read_session() as session:
        row = await session.scalar(select(Ticket))
        active = await session.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.state == "accepted")
        )
        inbox = (await session.scalars(select(Notification.recipient_account_id))).all()
    assert row.status == "assigned"
    assert row.assignee_responder_id == desk.plumber_responder.id
    assert active == 1
    assert desk.reporter.account.id in inbox  # told the job was taken
    assert desk.staff.account.id in inbox  # told about the new ticket


async def test_gas_smell_blocks_submission_with_the_emergency_notice(services, gql, desk):
    household = desk.estate.households[0]
    cat = await category_id(services, desk.estate.community.id, "gas")
    data = await gql(
        SUBMIT,
        {
            "input": {
                "categoryId": cat,
                "description": "燃气灶打不着",
                "place": {
                    "buildingId": gid("Building", household.building_id),
                    "unit": household.unit,
                    "room": household.room,
                },
                "answers": {"smell_gas": True},
            }
        },
        token=desk.reporter.token,
    )
    assert data["submitTicket"]["__typename"] == "EmergencyNoticeError"
    assert "119" in data["submitTicket"]["notice"]
    async with services.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 0


async def test_illegal_transition_is_typed_and_changes_nothing(services, gql, desk, runner):
    cat = await category_id(services, desk.estate.community.id, "street_light")
    data = await gql(
        SUBMIT,
        {"input": {"categoryId": cat, "description": "路灯不亮", "place": {"latitude": 38.04, "longitude": 114.51}}},
        token=desk.reporter.token,
    )
    tid = data["submitTicket"]["ticket"]["id"]
    closed = await gql(CHANGE, {"input": {"ticketId": tid, "action": "CLOSE"}}, token=desk.staff.token)
    ack = await gql(
        CHANGE, {"input": {"ticketId": tid, "action": "ACKNOWLEDGE", "note": "已电话联系"}}, token=desk.staff.token
    )
    assert closed["changeTicketStatus"]["__typename"] == "IllegalTransitionError"
    assert ack["changeTicketStatus"]["ticket"]["status"] == "ACKNOWLEDGED"
    async with services.db.read_session() as session:
        events = (await session.scalars(select(TicketEvent.to_status).order_by(TicketEvent.id))).all()
    assert events == ["submitted", "acknowledged"]


async def test_redelivered_dispatch_jobs_change_nothing_twice(services, gql, desk, runner):
    household = desk.estate.households[0]
    cat = await category_id(services, desk.estate.community.id, "leak")
    await gql(
        SUBMIT,
        {
            "input": {
                "categoryId": cat,
                "description": "漏水",
                "place": {
                    "buildingId": gid("Building", household.building_id),
                    "unit": household.unit,
                    "room": household.room,
                },
                "answers": {"where": "卫生间"},
            }
        },
        token=desk.reporter.token,
    )
    await runner.drain(skip={"dispatch.expire_offer"})
    # when every job is delivered a second time
    for outbound in list(runner.done):
        from tests.jobs import HANDLERS

        await HANDLERS[outbound.job.actor_name](**outbound.job.kwargs)
    # then
    async with services.db.read_session() as session:
        assignments = await session.scalar(select(func.count()).select_from(Assignment))
        events = await session.scalar(select(func.count()).select_from(TicketEvent))
        notes = await session.scalar(select(func.count()).select_from(Notification))
    assert assignments == 1
    assert events == 2  # submitted + offered
    assert notes >= 1
