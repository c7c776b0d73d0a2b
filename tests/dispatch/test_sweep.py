"""The sweep: when the broker lost a message (a restart without saving), the database says what to send again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from api.core.clock import utc_now
from api.dispatch import service as dispatch
from api.dispatch.models import Assignment
from tests.jobs import JobRunner
from tests.tickets.conftest import Desk, make_desk, new_ticket

STALE = timedelta(minutes=2)


@pytest.fixture
async def desk(services) -> Desk:
    return await make_desk(services)


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


async def _sweep(services, now) -> dispatch.SweepOutcome:
    async with services.db.unit_of_work(services.jobs) as uow:
        return await dispatch.sweep(uow, stale_after=STALE, now=now)


async def test_a_request_whose_assign_job_was_lost_is_offered_after_the_sweep(services, desk, jobs, runner) -> None:
    # given: a ticket whose dispatch.assign message vanished with the broker
    ticket = await new_ticket(services, desk, "leak")
    jobs.sent.clear()
    async with services.db.read_session() as session:
        request = await dispatch.get_request(session, kind="ticket", subject_id=ticket.id)
    assert request is not None
    # when: the sweep runs before and after the request went stale
    early = await _sweep(services, utc_now())
    late = await _sweep(services, utc_now() + STALE + timedelta(seconds=1))
    await runner.drain(skip={"dispatch.expire_offer"})
    # then: only the stale request is sent again, and it is offered once
    assert early.reassigned == []
    assert late.reassigned == [request.id]
    async with services.db.read_session() as session:
        offers = (await session.scalars(select(Assignment.state).where(Assignment.request_id == request.id))).all()
    assert offers == ["offered"]
    # and: a second sweep finds the request moving again (it has an active offer)
    assert (await _sweep(services, utc_now() + STALE * 2)).reassigned == []


async def test_an_offer_whose_expiry_job_was_lost_expires_after_the_sweep(services, desk, jobs, runner) -> None:
    ticket = await new_ticket(services, desk, "leak")
    await runner.drain(skip={"dispatch.expire_offer"})
    async with services.db.read_session() as session:
        offer = await session.scalar(select(Assignment).where(Assignment.subject_id == ticket.id))
    assert offer is not None
    assert offer.expires_at is not None
    late = offer.expires_at + STALE + timedelta(seconds=1)
    outcome = await _sweep(services, late)
    assert outcome.expired == [offer.id]
    assert [o.job.kwargs for o in jobs.sent if o.job.actor_name == "dispatch.expire_offer"][-1] == {
        "assignment_id": offer.id
    }
