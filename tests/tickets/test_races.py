"""Races on PostgreSQL: many requests at once for the same work; the database decides one winner.

The GraphQL races send every request at once through the ASGI app in one event loop, over a pool
of up to 30 connections, so up to 30 transactions really run at the same time in PostgreSQL.
The worker race runs the `dispatch.assign` handler in 20 threads, each with its own event loop
and so its own Database (as 20 worker threads would).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from api.accounts.models import Account, AccountSession, RoleGrant
from api.core.clock import utc_now
from api.core.crypto import mask_phone, new_token, token_hash
from api.core.database import Database
from api.core.viewer import Role
from api.dispatch import service as dispatch_service
from api.dispatch.models import ACTIVE_STATES, Assignment, DispatchRequest, Responder
from api.tickets.models import Ticket
from tests.conftest import TABLES
from tests.factories import fresh_phone
from tests.tickets.conftest import Desk, gid, new_ticket
from worker import runtime
from worker.actors import dispatch as dispatch_actors

pytestmark = pytest.mark.timeout(60)

CLAIM = """
mutation Claim($input: ClaimTicketInput!) {
  claimTicket(input: $input) { __typename ... on AssignmentSuccess { assignment { id } } ... on UserError { code } }
}
"""
ASSIGN = """
mutation Assign($input: AssignTicketInput!) {
  assignTicket(input: $input) { __typename ... on AssignmentSuccess { assignment { id } } ... on UserError { code } }
}
"""
ANSWER = """
mutation Answer($input: AnswerOfferInput!) {
  answerOffer(input: $input) { __typename ... on AnswerOfferSuccess { assignment { state } } ... on UserError { code } }
}
"""


@pytest.fixture
async def db(settings) -> AsyncIterator[Database]:
    """The test database with a pool big enough for real concurrency (replaces the shared fixture here)."""
    database = Database(settings.database_url, pool_size=15)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        await database.dispose()


async def crowd(services, desk: Desk, n: int, *, skills: list[str], grab: bool) -> list[tuple[str, int]]:
    """`n` craftspeople of the desk's community, each logged in: [(bearer token, responder id)]."""
    cid = desk.estate.community.id
    tokens = [new_token() for _ in range(n)]
    async with services.db.unit_of_work() as uow:
        accounts = []
        for i in range(n):
            phone = fresh_phone()
            accounts.append(
                Account(
                    phone_hash=services.cipher.lookup_hash(phone), phone_encrypted=services.cipher.encrypt(phone),
                    phone_masked=mask_phone(phone), password_hash="!", display_name=f"师傅{i}",
                )
            )  # fmt: skip
        uow.session.add_all(accounts)
        await uow.session.flush()
        responders = [
            Responder(community_id=cid, account_id=a.id, kind="craftsperson", display_name=a.display_name,
                      skills=skills, grab_enabled=grab, max_open=5)
            for a in accounts
        ]  # fmt: skip
        uow.session.add_all(responders)
        uow.session.add_all(
            RoleGrant(account_id=a.id, role=Role.CRAFTSPERSON.value, community_id=cid) for a in accounts
        )
        uow.session.add_all(
            AccountSession(account_id=a.id, token_hash=token_hash(t), expires_at=utc_now() + timedelta(hours=1))
            for a, t in zip(accounts, tokens, strict=True)
        )
        await uow.session.flush()
        return [(t, r.id) for t, r in zip(tokens, responders, strict=True)]


async def active_rows(services, ticket_id: int) -> list[Assignment]:
    async with services.db.read_session() as session:
        rows = await session.scalars(
            select(Assignment).where(Assignment.subject_id == ticket_id, Assignment.state.in_(ACTIVE_STATES))
        )
        return list(rows.all())


def typenames(results: list[dict[str, Any]], field: str) -> Counter[str]:
    return Counter(r["data"][field]["__typename"] if r.get("data") else r["errors"][0]["message"] for r in results)


async def test_a_hundred_craftspeople_claim_one_grab_ticket_and_one_wins(services, gql_raw, desk, runner):
    # given: clothes mending is grab work; a hundred tailors want it
    tailors = await crowd(services, desk, 100, skills=["tailoring"], grab=True)
    ticket = await new_ticket(services, desk, "clothes")
    variables = {"input": {"ticketId": gid("Ticket", ticket.id)}}
    # when: all at once
    results = await asyncio.gather(*(gql_raw(CLAIM, variables, token=token) for token, _ in tailors))
    # then
    assert typenames(results, "claimTicket") == Counter({"AssignmentSuccess": 1, "ConflictError": 99})
    active = await active_rows(services, ticket.id)
    assert len(active) == 1
    winner = next(r for r in results if r["data"]["claimTicket"]["__typename"] == "AssignmentSuccess")
    assert winner["data"]["claimTicket"]["assignment"]["id"] == gid("Assignment", active[0].id)
    assert active[0].responder_id in {rid for _, rid in tailors}
    await runner.drain(skip={"tickets.notify"})
    async with services.db.read_session() as session:
        row = await session.get(Ticket, ticket.id)
        total = await session.scalar(select(func.count()).select_from(Assignment))
    assert row is not None
    assert (row.status, row.assignee_responder_id) == ("assigned", active[0].responder_id)
    assert total == 1


async def test_fifty_staff_assignments_at_once_leave_exactly_one_active(services, gql_raw, desk):
    # given: an open leak and five plumbers staff might pick
    plumbers = [rid for _, rid in await crowd(services, desk, 5, skills=["plumbing"], grab=False)]
    ticket = await new_ticket(services, desk, "leak")
    tid = gid("Ticket", ticket.id)
    # when: fifty assignments by hand at once
    results = await asyncio.gather(
        *(
            gql_raw(
                ASSIGN,
                {"input": {"ticketId": tid, "responderId": gid("Responder", plumbers[i % 5])}},
                token=desk.staff.token,
            )
            for i in range(50)
        )
    )
    # then: each either won or was told of the conflict; exactly one assignment is active
    outcomes = typenames(results, "assignTicket")
    assert set(outcomes) <= {"AssignmentSuccess", "ConflictError"}, outcomes
    assert outcomes["AssignmentSuccess"] >= 1
    active = await active_rows(services, ticket.id)
    assert len(active) == 1
    async with services.db.read_session() as session:
        states = Counter(
            (await session.scalars(select(Assignment.state).where(Assignment.subject_id == ticket.id))).all()
        )
    assert states == Counter({"accepted": 1, "cancelled": outcomes["AssignmentSuccess"] - 1})


async def test_a_hundred_replays_of_one_acceptance_succeed_once(services, gql_raw, desk, jobs):
    # given: an offer to the plumber
    ticket = await new_ticket(services, desk, "leak")
    async with services.db.unit_of_work(services.jobs) as uow:
        request = await dispatch_service.get_request(uow.session, kind="ticket", subject_id=ticket.id)
        assert request is not None
        offer = await dispatch_service.offer_to_best_candidate(uow, request_id=request.id)
    assert offer is not None
    assert offer.responder_id == desk.plumber_responder.id
    token = desk.plumber.token
    variables = {"input": {"assignmentId": gid("Assignment", offer.id), "accept": True}}
    # when: the app retries the same answer a hundred times at once
    results = await asyncio.gather(*(gql_raw(ANSWER, variables, token=token) for _ in range(100)))
    # then
    assert typenames(results, "answerOffer") == Counter({"AnswerOfferSuccess": 1, "OfferNotOpenError": 99})
    async with services.db.read_session() as session:
        row = await session.get(Assignment, offer.id)
        state = await session.scalar(select(DispatchRequest.state).where(DispatchRequest.id == offer.request_id))
    assert row is not None
    assert (row.state, state) == ("accepted", "assigned")
    accepted = [o for o in jobs.sent if o.job.kwargs.get("event") == "accepted"]
    assert len(accepted) == 1


async def test_twenty_concurrent_assign_jobs_make_one_offer(services, desk, jobs, runner):
    # given: an open request and plenty of candidates
    await crowd(services, desk, 10, skills=["plumbing"], grab=False)
    ticket = await new_ticket(services, desk, "leak")
    async with services.db.read_session() as session:
        request = await dispatch_service.get_request(session, kind="ticket", subject_id=ticket.id)
    assert request is not None
    jobs.sent.clear()
    start = threading.Barrier(20)
    failures: list[BaseException] = []

    def worker_thread() -> None:
        async def run() -> None:
            try:
                await dispatch_actors.handle_assign(request.id)
            finally:
                await runtime.database().dispose()  # this loop's own Database

        try:
            start.wait(timeout=10)
            asyncio.run(run())
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker_thread) for _ in range(20)]
    # when: twenty worker threads deliver the same job at once
    for t in threads:
        t.start()

    def join_all() -> None:
        for t in threads:
            t.join(timeout=30)

    await asyncio.to_thread(join_all)
    # then
    assert failures == []
    async with services.db.read_session() as session:
        offers = (await session.scalars(select(Assignment).where(Assignment.request_id == request.id))).all()
        attempts = await session.scalar(select(DispatchRequest.attempts).where(DispatchRequest.id == request.id))
    assert [a.state for a in offers] == ["offered"]
    assert attempts == 1
    assert Counter(o.job.actor_name for o in jobs.sent) == Counter(
        {"dispatch.expire_offer": 1, "ticket.assignment_changed": 1}
    )
