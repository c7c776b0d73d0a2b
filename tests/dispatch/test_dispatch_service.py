"""The dispatch engine on PostgreSQL: offers, answers, expiry, escalation, assignment by hand, grabs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from api.core.clock import CHINA_TZ, utc_now
from api.core.errors import Forbidden, NotFound, ValidationFailed
from api.core.viewer import Role
from api.dispatch import service as dispatch
from api.dispatch.models import Assignment, AvailabilityWindow, DispatchRequest, Responder, TimeOff
from api.tickets.models import Ticket, TicketEvent
from tests.factories import Login, make_estate, make_login
from tests.jobs import JobRunner
from tests.tickets.conftest import Desk, make_desk, make_responder, new_ticket, viewer_of

MONDAY_10 = datetime(2024, 3, 4, 10, 0, tzinfo=CHINA_TZ)  # a Monday morning, China time


@pytest.fixture
async def desk(services) -> Desk:
    return await make_desk(services)


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


async def craftsperson(services, desk: Desk, *, skills: list[str], **extra) -> tuple[Login, Responder]:
    login = await make_login(services, role=Role.CRAFTSPERSON, community=desk.estate.community)
    responder = await make_responder(
        services, login, desk.estate.community.id, skills=skills, kind="craftsperson", **extra
    )
    return login, responder


async def request_of(services, ticket_id: int) -> DispatchRequest:
    async with services.db.read_session() as session:
        request = await dispatch.get_request(session, kind="ticket", subject_id=ticket_id)
    assert request is not None
    return request


async def offer(services, request_id: int, now: datetime | None = None) -> Assignment | None:
    async with services.db.unit_of_work(services.jobs) as uow:
        return await dispatch.offer_to_best_candidate(uow, request_id=request_id, now=now)


async def answer(services, login: Login, assignment_id: int, *, accept: bool) -> Assignment:
    viewer = await viewer_of(services, login)
    async with services.db.unit_of_work(services.jobs) as uow:
        return await dispatch.answer_offer(uow, viewer=viewer, assignment_id=assignment_id, accept=accept)


async def expire(services, assignment_id: int, now: datetime) -> bool:
    async with services.db.unit_of_work(services.jobs) as uow:
        return await dispatch.expire_offer(uow, assignment_id=assignment_id, now=now)


async def states(services, request_id: int) -> list[tuple[int, str]]:
    async with services.db.read_session() as session:
        rows = await session.execute(
            select(Assignment.responder_id, Assignment.state)
            .where(Assignment.request_id == request_id)
            .order_by(Assignment.id)
        )
        return [(r, s) for r, s in rows.all()]


def sent(jobs, actor: str) -> list[dict[str, Any]]:
    return [o.job.kwargs for o in jobs.sent if o.job.actor_name == actor]


# -- the offer chain ---------------------------------------------------------------------------


async def test_offer_decline_expire_until_nobody_is_left_then_escalate(services, desk, jobs, runner):
    # given: three plumbers; the neighbour lives in the ticket's building
    neighbour_login, neighbour = await craftsperson(
        services, desk, skills=["plumbing"], home_building_id=desk.estate.buildings[0].id
    )
    _, third = await craftsperson(services, desk, skills=["plumbing"])
    ticket = await new_ticket(services, desk, "leak")
    request = await request_of(services, ticket.id)
    assert sent(jobs, "dispatch.assign") == [{"request_id": request.id}]
    t0 = utc_now()

    # when: the best candidate is offered the job and declines
    first = await offer(services, request.id, now=t0)
    assert first is not None
    assert first.responder_id == neighbour.id
    assert first.expires_at == t0 + timedelta(seconds=900)
    assert [r["code"] for r in first.reasons][:4] == ["rank", "skill", "available", "same_building"]
    assert first.reasons[0]["detail"] == "ranked 1 of 3 eligible"
    declined = await answer(services, neighbour_login, first.id, accept=False)
    assert declined.state == "declined"
    assert sent(jobs, "dispatch.assign")[-1] == {"request_id": request.id}

    # then: the next one (the lower id of two equals) is offered; the decliner is not
    second = await offer(services, request.id, now=t0)
    assert second is not None
    assert second.responder_id == desk.plumber_responder.id
    assert second.reasons[0]["detail"] == "ranked 1 of 2 eligible"
    assert second.expires_at is not None
    assert await offer(services, request.id, now=t0) is None  # one active offer at a time

    # when: nobody answers in time
    assert await expire(services, second.id, now=second.expires_at - timedelta(seconds=1)) is False  # not yet
    assert await expire(services, second.id, now=second.expires_at) is True
    assert await expire(services, second.id, now=second.expires_at) is False  # a redelivery changes nothing
    third_offer = await offer(services, request.id, now=second.expires_at)
    assert third_offer is not None
    assert third_offer.responder_id == third.id
    assert third_offer.expires_at is not None
    assert await expire(services, third_offer.id, now=third_offer.expires_at + timedelta(minutes=1)) is True

    # then: nobody is left, the request is escalated once
    escalations_before = len(sent(jobs, "ticket.assignment_changed"))
    assert await offer(services, request.id) is None
    assert await offer(services, request.id) is None
    changes = sent(jobs, "ticket.assignment_changed")
    assert changes[escalations_before:] == [{"request_id": request.id, "event": "escalated", "assignment_id": None}]
    assert (await request_of(services, ticket.id)).state == "escalated"
    assert (await request_of(services, ticket.id)).attempts == 3
    assert await states(services, request.id) == [
        (neighbour.id, "declined"),
        (desk.plumber_responder.id, "expired"),
        (third.id, "expired"),
    ]
    assert [k["event"] for k in changes] == [
        "offered",
        "declined",
        "offered",
        "expired",
        "offered",
        "expired",
        "escalated",
    ]

    # when the ticket side hears about it
    await runner.drain(skip={"dispatch.expire_offer", "dispatch.assign"})
    async with services.db.read_session() as session:
        row = await session.get(Ticket, ticket.id)
        notes = (
            await session.scalars(
                select(TicketEvent.note).where(TicketEvent.kind == "assignment").order_by(TicketEvent.id)
            )
        ).all()
    assert row is not None
    assert row.escalation_level == 1
    assert row.status == "submitted"
    assert row.assignee_responder_id is None
    assert notes[-1] == "Nobody available: staff will assign it"


async def test_an_answer_after_expiry_is_refused(services, desk):
    # given: an offer made long ago, never expired by the worker
    login, _ = await craftsperson(services, desk, skills=["plumbing"], home_building_id=desk.estate.buildings[0].id)
    ticket = await new_ticket(services, desk, "leak")
    request = await request_of(services, ticket.id)
    stale = await offer(services, request.id, now=utc_now() - timedelta(hours=2))
    assert stale is not None
    # when / then
    with pytest.raises(dispatch.OfferNotOpen):
        await answer(services, login, stale.id, accept=True)
    assert await states(services, request.id) == [(stale.responder_id, "offered")]
    assert (await request_of(services, ticket.id)).state == "open"


async def test_accepting_twice_is_refused_the_second_time(services, desk, jobs):
    login, _ = await craftsperson(services, desk, skills=["plumbing"], home_building_id=desk.estate.buildings[0].id)
    ticket = await new_ticket(services, desk, "leak")
    request = await request_of(services, ticket.id)
    made = await offer(services, request.id)
    assert made is not None
    accepted = await answer(services, login, made.id, accept=True)
    with pytest.raises(dispatch.OfferNotOpen):
        await answer(services, login, made.id, accept=True)
    with pytest.raises(dispatch.OfferNotOpen):
        await answer(services, login, made.id, accept=False)
    assert accepted.state == "accepted"
    assert (await request_of(services, ticket.id)).state == "assigned"
    assert [k["event"] for k in sent(jobs, "ticket.assignment_changed")] == ["offered", "accepted"]


async def test_only_the_offered_responder_may_answer(services, desk):
    await craftsperson(services, desk, skills=["plumbing"], home_building_id=desk.estate.buildings[0].id)
    ticket = await new_ticket(services, desk, "leak")
    made = await offer(services, (await request_of(services, ticket.id)).id)
    assert made is not None
    with pytest.raises(NotFound):
        await answer(services, desk.plumber, made.id, accept=True)
    with pytest.raises(NotFound):
        await answer(services, desk.plumber, 10_000_000, accept=True)


# -- by hand and by grab -----------------------------------------------------------------------


async def test_assigning_by_hand_withdraws_the_open_offer(services, desk, jobs):
    # given: an offer to the neighbour
    login, neighbour = await craftsperson(
        services, desk, skills=["plumbing"], home_building_id=desk.estate.buildings[0].id
    )
    ticket = await new_ticket(services, desk, "leak")
    request = await request_of(services, ticket.id)
    made = await offer(services, request.id)
    assert made is not None
    staff = await viewer_of(services, desk.staff)
    # when: staff give it to the electrician (no plumbing skill: staff may choose anyone active)
    async with services.db.unit_of_work(services.jobs) as uow:
        manual = await dispatch.assign_by_hand(
            uow, viewer=staff, kind="ticket", subject_id=ticket.id, responder_id=desk.electrician_responder.id,
            note="他顺路",
        )  # fmt: skip
    # then
    assert manual.mode == "manual"
    assert manual.state == "accepted"
    assert manual.assigned_by_account_id == desk.staff.account.id
    assert manual.reasons == [{"code": "manual", "detail": "chosen by staff"}]
    assert await states(services, request.id) == [
        (neighbour.id, "cancelled"),
        (desk.electrician_responder.id, "accepted"),
    ]
    assert (await request_of(services, ticket.id)).state == "assigned"
    assert sent(jobs, "ticket.assignment_changed")[-1] == {
        "request_id": request.id,
        "event": "reassigned",
        "assignment_id": manual.id,
    }
    with pytest.raises(dispatch.OfferNotOpen):
        await answer(services, login, made.id, accept=True)
    assert made.expires_at is not None
    assert await expire(services, made.id, now=made.expires_at + timedelta(seconds=1)) is False


async def test_assigning_by_hand_checks_who_and_whom(services, desk):
    ticket = await new_ticket(services, desk, "leak")
    other = await make_estate(services, households=1, members=1)
    outsider_login = await make_login(services, role=Role.STAFF, community=other.community)
    outsider = await make_responder(services, outsider_login, other.community.id, skills=["plumbing"])
    _, retired = await craftsperson(services, desk, skills=["plumbing"], active=False)
    staff = await viewer_of(services, desk.staff)
    reporter = await viewer_of(services, desk.reporter)

    async def assign(viewer, responder_id: int) -> None:
        async with services.db.unit_of_work() as uow:
            await dispatch.assign_by_hand(
                uow, viewer=viewer, kind="ticket", subject_id=ticket.id, responder_id=responder_id
            )

    with pytest.raises(Forbidden):
        await assign(reporter, desk.plumber_responder.id)
    with pytest.raises(NotFound) as other_community:
        await assign(staff, outsider.id)
    with pytest.raises(ValidationFailed) as inactive:
        await assign(staff, retired.id)
    with pytest.raises(NotFound) as stranger:
        await assign(await viewer_of(services, outsider_login), desk.plumber_responder.id)
    assert other_community.value.field == "responderId"
    assert inactive.value.field == "responderId"
    assert stranger.value.field == "subjectId"
    assert await states(services, (await request_of(services, ticket.id)).id) == []


async def test_an_eligible_craftsperson_claims_grab_work_once(services, desk, jobs):
    # given: clothes mending is grab work; no offers go out for it
    tailor_login, tailor = await craftsperson(services, desk, skills=["tailoring"], grab_enabled=True)
    rival_login, _ = await craftsperson(services, desk, skills=["tailoring"], grab_enabled=True)
    ticket = await new_ticket(services, desk, "clothes")
    request = await request_of(services, ticket.id)
    assert request.mode == "grab"
    assert sent(jobs, "dispatch.assign") == []
    assert await offer(services, request.id) is None
    # when
    async with services.db.unit_of_work(services.jobs) as uow:
        claimed = await dispatch.claim(
            uow, viewer=await viewer_of(services, tailor_login), kind="ticket", subject_id=ticket.id
        )
    # then
    assert (claimed.mode, claimed.state, claimed.responder_id) == ("grab", "accepted", tailor.id)
    assert (await request_of(services, ticket.id)).state == "assigned"
    with pytest.raises(dispatch.AlreadyAssigned):
        async with services.db.unit_of_work() as uow:
            await dispatch.claim(
                uow, viewer=await viewer_of(services, rival_login), kind="ticket", subject_id=ticket.id
            )
    assert await states(services, request.id) == [(tailor.id, "accepted")]


@pytest.mark.parametrize(
    ("skills", "extra", "why"),
    [
        pytest.param(["plumbing"], {"grab_enabled": True}, "does not have the skill tailoring", id="no-skill"),
        pytest.param(["tailoring"], {"grab_enabled": False}, "you do not take grab work", id="grab-disabled"),
        pytest.param(["tailoring"], {"grab_enabled": True, "max_open": 0}, "already has 0 open jobs", id="full"),
    ],
)
async def test_an_ineligible_claim_is_refused_and_changes_nothing(services, desk, skills, extra, why):
    login, _ = await craftsperson(services, desk, skills=skills, **extra)
    ticket = await new_ticket(services, desk, "clothes")
    with pytest.raises(ValidationFailed) as refused:
        async with services.db.unit_of_work() as uow:
            await dispatch.claim(uow, viewer=await viewer_of(services, login), kind="ticket", subject_id=ticket.id)
    assert refused.value.field == "subjectId"
    assert why in refused.value.message
    request = await request_of(services, ticket.id)
    assert request.state == "open"
    assert await states(services, request.id) == []


async def test_a_claimer_on_leave_is_refused(services, desk):
    login, tailor = await craftsperson(services, desk, skills=["tailoring"], grab_enabled=True)
    now = utc_now()
    async with services.db.unit_of_work() as uow:
        uow.session.add(
            TimeOff(responder_id=tailor.id, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1))
        )
    ticket = await new_ticket(services, desk, "clothes")
    with pytest.raises(ValidationFailed, match="on leave"):
        async with services.db.unit_of_work() as uow:
            await dispatch.claim(uow, viewer=await viewer_of(services, login), kind="ticket", subject_id=ticket.id)


async def test_offer_work_cannot_be_claimed(services, desk):
    login, _ = await craftsperson(services, desk, skills=["plumbing"], grab_enabled=True)
    ticket = await new_ticket(services, desk, "leak")
    with pytest.raises(ValidationFailed, match="not open to claim"):
        async with services.db.unit_of_work() as uow:
            await dispatch.claim(uow, viewer=await viewer_of(services, login), kind="ticket", subject_id=ticket.id)


# -- what the candidates look like -------------------------------------------------------------


async def candidates(services, ticket_id: int, now: datetime) -> dict[int, object]:
    request = await request_of(services, ticket_id)
    async with services.db.read_session() as session:
        return {c.responder_id: c for c in await dispatch.candidates_for(session, request, now)}


async def test_load_counts_open_offers_and_accepted_work_only(services, desk):
    # given: the plumber holds one accepted job and one open offer; an older job is completed
    first = await new_ticket(services, desk, "leak")
    second = await new_ticket(services, desk, "leak", household=1)
    third = await new_ticket(services, desk, "leak", household=2)
    staff = await viewer_of(services, desk.staff)
    for t in (first, third):
        async with services.db.unit_of_work() as uow:
            await dispatch.assign_by_hand(
                uow, viewer=staff, kind="ticket", subject_id=t.id, responder_id=desk.plumber_responder.id
            )
    async with services.db.unit_of_work() as uow:
        await dispatch.finish(uow, kind="ticket", subject_id=third.id, completed=True)
    made = await offer(services, (await request_of(services, second.id)).id)
    assert made is not None
    assert made.responder_id == desk.plumber_responder.id
    # when
    found = await candidates(services, second.id, utc_now())
    # then
    assert found[desk.plumber_responder.id].open_load == 2  # type: ignore[attr-defined]
    assert found[desk.electrician_responder.id].open_load == 0  # type: ignore[attr-defined]


async def test_a_full_responder_is_skipped(services, desk):
    # given: the only other plumber is at their limit
    _, busy = await craftsperson(
        services, desk, skills=["plumbing"], max_open=1, home_building_id=desk.estate.buildings[0].id
    )
    earlier = await new_ticket(services, desk, "leak", household=1)
    async with services.db.unit_of_work() as uow:
        await dispatch.assign_by_hand(
            uow,
            viewer=await viewer_of(services, desk.staff),
            kind="ticket",
            subject_id=earlier.id,
            responder_id=busy.id,
        )
    ticket = await new_ticket(services, desk, "leak")
    # when
    made = await offer(services, (await request_of(services, ticket.id)).id)
    # then: the neighbour would rank first, but is full
    assert made is not None
    assert made.responder_id == desk.plumber_responder.id
    assert made.reasons[0]["detail"] == "ranked 1 of 1 eligible"


async def test_time_off_excludes_only_while_it_lasts(services, desk):
    # given: the neighbouring plumber is away this morning
    _, away = await craftsperson(services, desk, skills=["plumbing"], home_building_id=desk.estate.buildings[0].id)
    async with services.db.unit_of_work() as uow:
        uow.session.add(
            TimeOff(
                responder_id=away.id,
                starts_at=MONDAY_10 - timedelta(hours=2),
                ends_at=MONDAY_10 + timedelta(hours=2),
                reason="看病",
            )
        )
    ticket = await new_ticket(services, desk, "leak")
    # then
    assert (await candidates(services, ticket.id, MONDAY_10))[away.id].on_leave is True  # type: ignore[attr-defined]
    later = MONDAY_10 + timedelta(hours=2)  # the end is exclusive
    assert (await candidates(services, ticket.id, later))[away.id].on_leave is False  # type: ignore[attr-defined]
    made = await offer(services, (await request_of(services, ticket.id)).id, now=MONDAY_10)
    assert made is not None
    assert made.responder_id == desk.plumber_responder.id


async def test_availability_windows_rank_those_working_now_first(services, desk):
    # given: the neighbour works Monday afternoons only; the other plumber has no windows (any time)
    _, neighbour = await craftsperson(services, desk, skills=["plumbing"], home_building_id=desk.estate.buildings[0].id)
    async with services.db.unit_of_work() as uow:
        uow.session.add(
            AvailabilityWindow(responder_id=neighbour.id, weekday=0, start_minute=13 * 60, end_minute=18 * 60)
        )
        uow.session.add(
            AvailabilityWindow(responder_id=neighbour.id, weekday=1, start_minute=9 * 60, end_minute=12 * 60)
        )
    ticket = await new_ticket(services, desk, "leak")
    request_id = (await request_of(services, ticket.id)).id
    # then: Monday 10:00 is outside; Monday 13:00 (05:00 UTC) inside
    assert (await candidates(services, ticket.id, MONDAY_10))[neighbour.id].available_now is False  # type: ignore[attr-defined]
    assert (await candidates(services, ticket.id, MONDAY_10.replace(hour=13)))[neighbour.id].available_now is True  # type: ignore[attr-defined]
    morning = await offer(services, request_id, now=MONDAY_10)
    assert morning is not None
    assert morning.responder_id == desk.plumber_responder.id
    assert morning.expires_at is not None
    assert await expire(services, morning.id, now=morning.expires_at)
    async with services.db.read_session() as session:
        tried = await session.scalar(select(func.count()).select_from(Assignment))
    assert tried == 1
    afternoon = await offer(services, request_id, now=MONDAY_10.replace(hour=13))
    assert afternoon is not None
    assert afternoon.responder_id == neighbour.id
    assert "available" in [r["code"] for r in afternoon.reasons]


async def test_whoever_did_the_last_job_in_the_building_breaks_a_tie(services, desk):
    # given: two equal plumbers; the second did an earlier job in this building
    _, second = await craftsperson(services, desk, skills=["plumbing"])
    earlier = await new_ticket(services, desk, "leak")
    async with services.db.unit_of_work() as uow:
        await dispatch.assign_by_hand(
            uow,
            viewer=await viewer_of(services, desk.staff),
            kind="ticket",
            subject_id=earlier.id,
            responder_id=second.id,
        )
        await dispatch.finish(uow, kind="ticket", subject_id=earlier.id, completed=True)
    ticket = await new_ticket(services, desk, "leak")
    # when
    made = await offer(services, (await request_of(services, ticket.id)).id)
    # then
    assert made is not None
    assert made.responder_id == second.id
    assert "continuity" in [r["code"] for r in made.reasons]
