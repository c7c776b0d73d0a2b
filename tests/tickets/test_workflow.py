"""The ticket workflow through GraphQL: who may take which step, from which status, and what it changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from api.core.clock import utc_now
from api.core.viewer import Role
from api.dispatch import service as dispatch_service
from api.dispatch.models import DispatchRequest, Responder
from api.tickets import service as tickets_service
from api.tickets.models import Ticket, TicketEvent
from api.tickets.service import Action, calendar_for
from tests.factories import Login, make_estate, make_login
from tests.tickets.conftest import Desk, gid, make_responder, new_ticket, table_counts, viewer_of

CHANGE = """
mutation Change($input: ChangeTicketStatusInput!) {
  changeTicketStatus(input: $input) {
    __typename
    ... on TicketSuccess { ticket { id status cycle acknowledgedAt resolvedAt closedAt callbackDueAt resolutionDueAt
                                    waitingOnResident } }
    ... on UserError { message field code }
  }
}
"""
COMMENT = """
mutation Comment($input: CommentOnTicketInput!) {
  commentOnTicket(input: $input) { __typename ... on UserError { message field code } }
}
"""
RATE = """
mutation Rate($input: RateTicketInput!) {
  rateTicket(input: $input) {
    __typename ... on TicketSuccess { ticket { rating ratingComment } } ... on UserError { message field code }
  }
}
"""
FOLLOW_UP = """
mutation FollowUp($input: AnswerFollowUpInput!) {
  answerFollowUp(input: $input) {
    __typename ... on TicketSuccess { ticket { status cycle } } ... on UserError { message field code }
  }
}
"""
EVENTS = """
query Events($id: ID!) {
  node(id: $id) { ... on Ticket { events(last: 100) { kind note public fromStatus toStatus byStaff } } }
}
"""


@dataclass
class Cast:
    """Everyone who might touch a ticket."""

    desk: Desk
    craft: Login  # the assignee: a craftsperson, no staff role
    craft_responder: Responder
    stranger: Login  # a resident of the same community
    outsider: Login  # staff of another community

    def login(self, role: str) -> Login:
        return {
            "reporter": self.desk.reporter,
            "assignee": self.craft,
            "staff": self.desk.staff,
            "stranger": self.stranger,
            "outsider": self.outsider,
        }[role]


@pytest.fixture
async def cast(services, desk) -> Cast:
    craft = await make_login(services, role=Role.CRAFTSPERSON, community=desk.estate.community)
    responder = await make_responder(
        services, craft, desk.estate.community.id, skills=["plumbing"], kind="craftsperson"
    )
    stranger = await make_login(
        services, role=Role.RESIDENT, community=desk.estate.community, resident=desk.estate.residents[1]
    )
    other = await make_estate(services, households=1, members=1)
    outsider = await make_login(services, role=Role.STAFF, community=other.community)
    return Cast(desk, craft, responder, stranger, outsider)


async def assign(services, cast: Cast, ticket_id: int, responder_id: int | None = None) -> None:
    """Staff assign the ticket by hand and the ticket hears of it (as the worker would do)."""
    async with services.db.unit_of_work() as uow:
        assignment = await dispatch_service.assign_by_hand(
            uow, viewer=await viewer_of(services, cast.desk.staff), kind="ticket", subject_id=ticket_id,
            responder_id=responder_id or cast.craft_responder.id,
        )  # fmt: skip
    async with services.db.unit_of_work() as uow:
        await tickets_service.on_assignment_changed(
            uow, request_id=assignment.request_id, event="reassigned", assignment_id=assignment.id
        )


async def staff_step(services, cast: Cast, ticket_id: int, action: Action, note: str | None = None) -> None:
    async with services.db.unit_of_work() as uow:
        await tickets_service.transition(
            uow, viewer=await viewer_of(services, cast.desk.staff), ticket_id=ticket_id, action=action, note=note
        )


async def prepare(services, cast: Cast, state: str) -> int:
    """A leak ticket in `state`: submitted, assigned, waiting (on the resident) or resolved."""
    ticket = await new_ticket(services, cast.desk, "leak")
    if state != "submitted":
        await assign(services, cast, ticket.id)
    if state == "waiting":
        await staff_step(services, cast, ticket.id, Action.AWAIT_RESIDENT)
    if state == "resolved":
        await staff_step(services, cast, ticket.id, Action.RESOLVE)
    return ticket.id


async def change(gql_raw, login: Login, ticket_id: int, action: str, note: str | None = None, **extra: Any) -> Any:
    body = await gql_raw(
        CHANGE,
        {"input": {"ticketId": gid("Ticket", ticket_id), "action": action, "note": note, **extra}},
        token=login.token,
    )
    if body.get("errors"):
        return body["errors"][0]["extensions"]["code"]
    return body["data"]["changeTicketStatus"]


def outcome(result: Any) -> str:
    if isinstance(result, str):
        return result  # a GraphQL error code
    return "ok" if result["__typename"] == "TicketSuccess" else result["__typename"]


async def event_count(services, ticket_id: int) -> int:
    async with services.db.read_session() as session:
        return int(await session.scalar(select(func.count()).where(TicketEvent.ticket_id == ticket_id)) or 0)


async def reload(services, ticket_id: int) -> Ticket:
    async with services.db.read_session() as session:
        ticket: Ticket | None = await session.get(Ticket, ticket_id)
    assert ticket is not None
    return ticket


# action -> (the status it starts from, who may take it)
RULES: dict[Action, tuple[str, set[str]]] = {
    Action.ACKNOWLEDGE: ("assigned", {"staff", "assignee"}),
    Action.START: ("assigned", {"staff", "assignee"}),
    Action.AWAIT_RESIDENT: ("assigned", {"staff"}),
    Action.RESUME: ("waiting", {"staff"}),
    Action.RESOLVE: ("assigned", {"staff", "assignee"}),
    Action.CLOSE: ("resolved", {"staff", "reporter"}),
    Action.REJECT: ("submitted", {"staff"}),
    Action.CANCEL: ("assigned", {"staff", "reporter"}),
    Action.REOPEN: ("resolved", {"staff", "reporter"}),
}
ROLES = ["reporter", "assignee", "staff", "stranger", "outsider"]


async def test_who_may_take_each_step(services, gql_raw, cast):
    # given / when: each role tries each step on a ticket where the step is legal
    seen: dict[tuple[str, str], str] = {}
    for action, (state, allowed) in RULES.items():
        # the refused first, all on one ticket (an assigned one, so that the assignee can see it)
        refused_on = await prepare(services, cast, "assigned" if state == "submitted" else state)
        events_before = await event_count(services, refused_on)
        for role in ROLES:
            if role in allowed:
                continue
            seen[(action.name, role)] = outcome(
                await change(gql_raw, cast.login(role), refused_on, action.name, "原因")
            )
        assert await event_count(services, refused_on) == events_before, action
        for role in sorted(allowed):
            ticket_id = await prepare(services, cast, state)
            seen[(action.name, role)] = outcome(await change(gql_raw, cast.login(role), ticket_id, action.name, "原因"))
    # then
    expected = {
        (action.name, role): "ok"
        if role in allowed
        else "NotFoundError"
        if role in ("stranger", "outsider")
        else "FORBIDDEN"
        for action, (_, allowed) in RULES.items()
        for role in ROLES
    }
    assert seen == expected


async def test_illegal_transitions_are_typed_and_write_nothing(services, gql_raw, cast):
    # given: a fresh ticket, an assigned and waiting one, and an acknowledged one
    fresh = await prepare(services, cast, "submitted")
    waiting = await prepare(services, cast, "waiting")
    acked = await prepare(services, cast, "assigned")
    await staff_step(services, cast, acked, Action.ACKNOWLEDGE)
    before = await table_counts(services)
    staff = cast.desk.staff
    # when
    attempts = [
        (fresh, "START"),
        (fresh, "CLOSE"),
        (fresh, "REOPEN"),
        (fresh, "RESOLVE"),
        (fresh, "RESUME"),  # not waiting
        (waiting, "AWAIT_RESIDENT"),  # waiting already
        (waiting, "REJECT"),  # assigned work is not rejected
        (acked, "ACKNOWLEDGE"),  # first contact is recorded already
    ]
    results = [await change(gql_raw, staff, ticket_id, action, "原因") for ticket_id, action in attempts]
    # then
    assert [(r["__typename"], r["field"], r["code"]) for r in results] == [
        ("IllegalTransitionError", "action", "ILLEGAL_TRANSITION")
    ] * len(attempts)
    assert results[1]["message"] == "A submitted ticket cannot be closed."
    assert await table_counts(services) == before


async def test_reject_and_reopen_need_a_note(services, gql_raw, cast):
    fresh = await prepare(services, cast, "submitted")
    resolved = await prepare(services, cast, "resolved")
    before = await table_counts(services)
    results = [
        await change(gql_raw, cast.desk.staff, fresh, "REJECT"),
        await change(gql_raw, cast.desk.staff, fresh, "REJECT", "   "),
        await change(gql_raw, cast.desk.reporter, resolved, "REOPEN"),
        await change(gql_raw, cast.desk.staff, fresh, "REJECT", "x" * 2001),
    ]
    assert [(r["__typename"], r["field"]) for r in results] == [("ValidationError", "note")] * 4
    assert results[0]["message"] == "Add a note saying why."
    assert await table_counts(services) == before
    done = await change(gql_raw, cast.desk.staff, fresh, "REJECT", "不属于社区管辖")
    assert (done["ticket"]["status"], done["ticket"]["closedAt"] is not None) == ("REJECTED", True)


async def test_waiting_on_the_resident_pauses_and_resuming_pushes_the_due_times(services, gql_raw, cast):
    # given
    ticket_id = await prepare(services, cast, "submitted")
    paused = await change(gql_raw, cast.desk.staff, ticket_id, "AWAIT_RESIDENT", "等居民回家")
    assert paused["ticket"]["waitingOnResident"] is True
    assert paused["ticket"]["status"] == "SUBMITTED"  # a pause, not a status
    # the wait began three days ago
    since = utc_now() - timedelta(days=3)
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(update(Ticket).where(Ticket.id == ticket_id).values(waiting_since=since))
    old = await reload(services, ticket_id)
    assert old.callback_due_at is not None
    assert old.resolution_due_at is not None
    # when
    t0 = utc_now()
    resumed = await change(gql_raw, cast.desk.staff, ticket_id, "RESUME")
    t1 = utc_now()
    # then: each due time moved on by the office minutes waited (measured at the moment of resuming)
    row = await reload(services, ticket_id)
    async with services.db.read_session() as session:
        calendar = await calendar_for(session, row.community_id)
    for old_due, new_due in (
        (old.callback_due_at, row.callback_due_at),
        (old.resolution_due_at, row.resolution_due_at),
    ):
        low = calendar.add(old_due, calendar.between(since, t0))
        high = calendar.add(old_due, calendar.between(since, t1))
        assert new_due is not None
        assert low <= new_due <= high
        assert calendar.between(old_due, new_due) >= 3 * 60  # three days hold at least 3 office hours
    assert resumed["ticket"]["waitingOnResident"] is False
    assert row.waiting_since is None
    events = await gql_ok(gql_raw, EVENTS, {"id": gid("Ticket", ticket_id)}, cast.desk.staff)
    assert [e["kind"] for e in events["node"]["events"]][-2:] == ["await_resident", "resume"]


async def gql_ok(gql_raw, query: str, variables: dict[str, Any], login: Login) -> dict[str, Any]:
    body = await gql_raw(query, variables, token=login.token)
    assert not body.get("errors"), body["errors"]
    data: dict[str, Any] = body["data"]
    return data


async def test_the_whole_cycle_resolve_close_reopen_with_the_last_assignee_preferred(
    services, gql_raw, cast, jobs, runner
):
    # given: an assigned leak, acknowledged and started by the assignee
    ticket_id = await prepare(services, cast, "assigned")
    acked = await change(gql_raw, cast.craft, ticket_id, "ACKNOWLEDGE", "已联系居民")
    started = await change(gql_raw, cast.craft, ticket_id, "START")
    # when: resolved by the assignee and closed by the reporter
    resolved = await change(gql_raw, cast.craft, ticket_id, "RESOLVE", "已更换阀门")
    row = await reload(services, ticket_id)
    closed = await change(gql_raw, cast.desk.reporter, ticket_id, "CLOSE")
    # then
    assert acked["ticket"]["status"] == "ASSIGNED"  # first contact keeps the assigned status
    assert acked["ticket"]["acknowledgedAt"] is not None
    assert started["ticket"]["status"] == "IN_PROGRESS"
    assert resolved["ticket"]["status"] == "RESOLVED"
    assert row.resolved_at is not None
    assert row.follow_up_due_at == row.resolved_at + timedelta(days=7)
    assert closed["ticket"]["status"] == "CLOSED"
    assert closed["ticket"]["closedAt"] is not None
    async with services.db.read_session() as session:
        request = await dispatch_service.get_request(session, kind="ticket", subject_id=ticket_id)
    assert request is not None
    assert request.state == "closed"

    # when: the reporter reopens it — it leaks again
    jobs.sent.clear()
    t0 = utc_now()
    reopened = await change(gql_raw, cast.desk.reporter, ticket_id, "REOPEN", "又漏了")
    t1 = utc_now()
    # then: a new cycle with new clocks, and dispatch looks again, the last assignee first
    r = reopened["ticket"]
    assert (r["status"], r["cycle"], r["acknowledgedAt"], r["resolvedAt"], r["closedAt"]) == (
        "REOPENED", 2, None, None, None,
    )  # fmt: skip
    again = await reload(services, ticket_id)
    async with services.db.read_session() as session:
        calendar = await calendar_for(session, again.community_id)
    # the leak's targets (30 office minutes to call back, 24 office hours to fix) count from the reopen
    assert again.callback_due_at is not None
    assert calendar.add(t0, 30) <= again.callback_due_at <= calendar.add(t1, 30)
    assert again.resolution_due_at is not None
    assert calendar.add(t0, 24 * 60) <= again.resolution_due_at <= calendar.add(t1, 24 * 60)
    assert (again.sla_warned_at, again.escalation_level, again.rating) == (None, 0, None)
    assert again.assignee_responder_id is None
    assert again.follow_up_due_at is None
    async with services.db.read_session() as session:
        request = await session.scalar(select(DispatchRequest).where(DispatchRequest.subject_id == ticket_id))
    assert request is not None
    assert (request.state, request.preferred_responder_id) == ("open", cast.craft_responder.id)
    assert [o.job.kwargs for o in jobs.sent if o.job.actor_name == "dispatch.assign"] == [{"request_id": request.id}]
    await runner.drain(skip={"dispatch.expire_offer"})
    async with services.db.read_session() as session:
        offered = await dispatch_service.active_assignments(session, kind="ticket", subject_ids=[ticket_id])
    # the desk's plumber is equally placed and loaded; the last assignee wins the tie
    assert offered[ticket_id].responder_id == cast.craft_responder.id
    assert offered[ticket_id].state == "offered"
    assert "continuity" in [r["code"] for r in offered[ticket_id].reasons]


async def test_comments_public_and_internal(services, gql, gql_raw, cast):
    # given
    ticket_id = await prepare(services, cast, "assigned")
    tid = gid("Ticket", ticket_id)
    # when
    for login, note, public in [
        (cast.desk.staff, "内部：联系物业", False),
        (cast.desk.staff, "师傅明天上午到", True),
        (cast.craft, "内部：需要换阀门", False),
        (cast.desk.reporter, "我下午在家", False),  # the reporter cannot write internal notes
    ]:
        result = await gql(COMMENT, {"input": {"ticketId": tid, "note": note, "public": public}}, token=login.token)
        assert result["commentOnTicket"]["__typename"] == "TicketSuccess"
    empty = await gql(COMMENT, {"input": {"ticketId": tid, "note": "  "}}, token=cast.desk.staff.token)
    hidden = await gql(COMMENT, {"input": {"ticketId": tid, "note": "我也是"}}, token=cast.stranger.token)
    # then
    as_reporter = await gql(EVENTS, {"id": tid}, token=cast.desk.reporter.token)
    as_staff = await gql(EVENTS, {"id": tid}, token=cast.desk.staff.token)
    as_assignee = await gql(EVENTS, {"id": tid}, token=cast.craft.token)

    def comments(data: dict[str, Any]) -> list[tuple[str, bool, bool]]:
        return [(e["note"], e["public"], e["byStaff"]) for e in data["node"]["events"] if e["kind"] == "comment"]

    assert comments(as_reporter) == [("师傅明天上午到", True, True), ("我下午在家", True, False)]
    everything = [
        ("内部：联系物业", False, True),
        ("师傅明天上午到", True, True),
        ("内部：需要换阀门", False, True),
        ("我下午在家", True, False),
    ]
    assert comments(as_staff) == everything
    assert comments(as_assignee) == everything
    assert all(e["public"] for e in as_reporter["node"]["events"])
    assert (empty["commentOnTicket"]["__typename"], empty["commentOnTicket"]["field"]) == ("ValidationError", "note")
    assert hidden["commentOnTicket"]["__typename"] == "NotFoundError"


async def test_a_rating_from_1_to_5_once_by_the_reporter(services, gql, gql_raw, cast):
    # given
    open_id = await prepare(services, cast, "assigned")
    ticket_id = await prepare(services, cast, "resolved")
    tid = gid("Ticket", ticket_id)

    async def rate(login: Login, value: int, ticket: str = tid) -> Any:
        body = await gql_raw(
            RATE, {"input": {"ticketId": ticket, "rating": value, "comment": " 很好 "}}, token=login.token
        )
        return body["errors"][0]["extensions"]["code"] if body.get("errors") else body["data"]["rateTicket"]

    # when / then
    too_early = await rate(cast.desk.reporter, 5, gid("Ticket", open_id))
    assert too_early["__typename"] == "IllegalTransitionError"
    for bad in (0, 6, -1):
        r = await rate(cast.desk.reporter, bad)
        assert (r["__typename"], r["field"], r["code"]) == ("ValidationError", "rating", "INVALID")
    assert await rate(cast.desk.staff, 5) == "FORBIDDEN"
    assert await rate(cast.craft, 5) == "FORBIDDEN"
    before = await event_count(services, ticket_id)
    rated = await rate(cast.desk.reporter, 4)
    twice = await rate(cast.desk.reporter, 5)
    assert rated == {"__typename": "TicketSuccess", "ticket": {"rating": 4, "ratingComment": "很好"}}
    assert (twice["__typename"], twice["code"], twice["field"]) == ("ConflictError", "ALREADY_RATED", "ticketId")
    assert await event_count(services, ticket_id) == before + 1
    assert (await reload(services, ticket_id)).rating == 4


async def test_follow_up_yes_closes_no_reopens_and_a_new_cycle_asks_again(services, gql, gql_raw, cast):
    # given: two resolved tickets
    fixed = await prepare(services, cast, "resolved")
    broken = await prepare(services, cast, "resolved")

    async def answer(login: Login, ticket_id: int, still_fixed: bool) -> Any:
        body = await gql_raw(
            FOLLOW_UP, {"input": {"ticketId": gid("Ticket", ticket_id), "stillFixed": still_fixed}}, token=login.token
        )
        return body["errors"][0]["extensions"]["code"] if body.get("errors") else body["data"]["answerFollowUp"]

    # when / then
    assert await answer(cast.desk.staff, fixed, True) == "FORBIDDEN"
    assert await answer(cast.desk.reporter, fixed, True) == {
        "__typename": "TicketSuccess",
        "ticket": {"status": "CLOSED", "cycle": 1},
    }
    assert (await answer(cast.desk.reporter, fixed, False))["__typename"] == "IllegalTransitionError"  # answered
    assert await answer(cast.desk.reporter, broken, False) == {
        "__typename": "TicketSuccess",
        "ticket": {"status": "REOPENED", "cycle": 2},
    }
    # the second cycle gets its own follow-up question
    await assign(services, cast, broken)
    await staff_step(services, cast, broken, Action.RESOLVE)
    async with services.db.unit_of_work() as uow:
        asked = await tickets_service.follow_ups_due(uow, now=utc_now() + timedelta(days=8))
    assert asked == [broken]
    assert await answer(cast.desk.reporter, broken, True) == {
        "__typename": "TicketSuccess",
        "ticket": {"status": "CLOSED", "cycle": 2},
    }
