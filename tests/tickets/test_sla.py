"""SLA clocks: warn at 80%, escalate 1 → 2 → 3, pause while waiting, switch clocks at first contact."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from api.core.clock import CHINA_TZ
from api.core.viewer import Role
from api.notifications.models import Notification
from api.tickets import service as tickets_service
from api.tickets.models import Ticket, TicketEvent
from api.tickets.service import Action, SlaOutcome
from tests.factories import make_login
from tests.tickets.conftest import new_ticket, viewer_of

SKIP_DISPATCH = {"dispatch.assign", "dispatch.expire_offer"}


def cst(day: str, hhmm: str) -> datetime:
    """China time; 2024-03-04 is a Monday."""
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=CHINA_TZ)


MON_0900 = cst("2024-03-04", "09:00")


async def scan(services, now: datetime) -> SlaOutcome:
    async with services.db.unit_of_work(services.jobs) as uow:
        return await tickets_service.sla_scan(uow, now=now)


async def act(services, login, ticket_id: int, action: Action, now: datetime, note: str | None = None) -> Ticket:
    viewer = await viewer_of(services, login)
    async with services.db.unit_of_work(services.jobs) as uow:
        return await tickets_service.transition(
            uow, viewer=viewer, ticket_id=ticket_id, action=action, note=note, now=now
        )


async def reload(services, ticket_id: int) -> Ticket:
    async with services.db.read_session() as session:
        ticket: Ticket | None = await session.get(Ticket, ticket_id)
    assert ticket is not None
    return ticket


async def sla_notes(services, ticket_id: int) -> list[str]:
    async with services.db.read_session() as session:
        rows = await session.scalars(
            select(TicketEvent.note)
            .where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "sla")
            .order_by(TicketEvent.id)
        )
        return [n or "" for n in rows.all()]


async def inbox_keys(services, account_id: int) -> set[str]:
    async with services.db.read_session() as session:
        rows = await session.scalars(
            select(Notification.event_key).where(Notification.recipient_account_id == account_id)
        )
        return set(rows.all())


async def test_callback_warns_at_80_percent_then_escalates_level_by_level(services, desk, runner):
    # given: a street light reported Monday 09:00; first contact is due within 60 office minutes
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=desk.estate.community)
    ticket = await new_ticket(services, desk, "street_light", now=MON_0900)
    assert ticket.callback_due_at == cst("2024-03-04", "10:00")
    await runner.drain(skip=SKIP_DISPATCH)
    admin_before = await inbox_keys(services, admin.account.id)
    staff_before = await inbox_keys(services, desk.staff.account.id)
    expected = [
        ("09:47", SlaOutcome([], [])),  # 78%
        ("09:48", SlaOutcome([ticket.id], [])),  # 80%
        ("09:59", SlaOutcome([], [])),  # warned once
        ("10:00", SlaOutcome([], [(ticket.id, 1)])),  # due: the assignee's level
        ("10:29", SlaOutcome([], [])),
        ("10:30", SlaOutcome([], [(ticket.id, 2)])),  # half the target late: the staff lead
        ("10:59", SlaOutcome([], [])),
        ("11:00", SlaOutcome([], [(ticket.id, 3)])),  # a whole target late: the community admin
        ("16:00", SlaOutcome([], [])),
    ]
    admin_seen: list[set[str]] = []
    # when: the scan runs through the morning, its notifications delivered after each run
    for hhmm, outcome in expected:
        assert await scan(services, cst("2024-03-04", hhmm)) == outcome, hhmm
        assert await scan(services, cst("2024-03-04", hhmm)) == SlaOutcome([], [])  # a repeat does nothing
        await runner.drain(skip=SKIP_DISPATCH)
        admin_seen.append(await inbox_keys(services, admin.account.id) - admin_before)
    # then
    row = await reload(services, ticket.id)
    assert row.escalation_level == 3
    assert row.sla_warned_at == cst("2024-03-04", "09:48")
    assert await sla_notes(services, ticket.id) == [
        "warning: due 2024-03-04T02:00:00+00:00",
        "escalation level 1",
        "escalation level 2",
        "escalation level 3",
    ]
    async with services.db.read_session() as session:
        sla_events = (
            await session.scalars(
                select(TicketEvent.id)
                .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "sla")
                .order_by(TicketEvent.id)
            )
        ).all()
    keys = [f"ticket-event:{i}" for i in sla_events]
    assert set(keys) <= await inbox_keys(services, desk.staff.account.id) - staff_before
    assert admin_seen[-1] == {keys[3]}  # the admin hears only of level 3
    assert all(seen == set() for seen in admin_seen[:7])
    assert not set(keys) & await inbox_keys(services, desk.reporter.account.id)  # internal


async def test_an_injury_runs_the_tighter_callback_at_all_hours(services, desk):
    # given: two loose manhole covers reported on a Monday evening, one with someone hurt
    evening = cst("2024-03-04", "20:00")
    hurt = await new_ticket(services, desk, "manhole", now=evening, injury=True)
    unhurt = await new_ticket(services, desk, "manhole", now=evening)
    # then: 10 minutes on the clock for the injury; the other waits for the office to open
    assert hurt.callback_due_at == cst("2024-03-04", "20:10")
    assert unhurt.callback_due_at == cst("2024-03-05", "09:00")
    assert await scan(services, cst("2024-03-04", "20:07")) == SlaOutcome([], [])
    assert await scan(services, cst("2024-03-04", "20:08")) == SlaOutcome([hurt.id], [])
    assert await scan(services, cst("2024-03-04", "20:10")) == SlaOutcome([], [(hurt.id, 1)])
    assert await scan(services, cst("2024-03-04", "20:15")) == SlaOutcome([], [(hurt.id, 2)])
    assert await scan(services, cst("2024-03-04", "20:20")) == SlaOutcome([], [(hurt.id, 3)])
    assert (await reload(services, unhurt.id)).escalation_level == 0
    # the other's 30 office minutes start at 08:30: 80% gone at 08:54
    assert await scan(services, cst("2024-03-05", "08:53")) == SlaOutcome([], [])
    assert await scan(services, cst("2024-03-05", "08:54")) == SlaOutcome([unhurt.id], [])


async def test_waiting_on_the_resident_pauses_the_clock_and_resuming_moves_the_due_times(services, desk):
    # given: due 10:00 Monday (call-back) and Wednesday 15:00 (resolution, 24 office hours)
    ticket = await new_ticket(services, desk, "street_light", now=MON_0900)
    assert ticket.resolution_due_at == cst("2024-03-06", "15:00")
    # when: staff wait on the resident from 09:10 Monday
    await act(services, desk.staff, ticket.id, Action.AWAIT_RESIDENT, cst("2024-03-04", "09:10"))
    # then: no warning or escalation however late it gets
    assert await scan(services, cst("2024-03-04", "09:55")) == SlaOutcome([], [])
    assert await scan(services, cst("2024-03-07", "12:00")) == SlaOutcome([], [])
    # when: the resident answers Tuesday 09:10 — 540 office minutes later
    resumed = await act(services, desk.staff, ticket.id, Action.RESUME, cst("2024-03-05", "09:10"))
    # then: both due times move on by exactly that
    assert resumed.waiting_since is None
    assert resumed.callback_due_at == cst("2024-03-05", "10:00")
    assert resumed.resolution_due_at == cst("2024-03-07", "15:00")
    assert await scan(services, cst("2024-03-05", "09:47")) == SlaOutcome([], [])
    assert await scan(services, cst("2024-03-05", "10:00")) == SlaOutcome([], [(ticket.id, 1)])


async def test_a_wait_outside_office_hours_moves_nothing(services, desk):
    ticket = await new_ticket(services, desk, "street_light", now=MON_0900)
    await act(services, desk.staff, ticket.id, Action.AWAIT_RESIDENT, cst("2024-03-04", "18:00"))
    resumed = await act(services, desk.staff, ticket.id, Action.RESUME, cst("2024-03-05", "08:00"))
    assert (resumed.callback_due_at, resumed.resolution_due_at) == (ticket.callback_due_at, ticket.resolution_due_at)


async def test_first_contact_switches_to_the_resolution_clock_which_warns_on_its_own(services, desk):
    # given: the call-back warning went out, then first contact was made in time
    ticket = await new_ticket(services, desk, "street_light", now=MON_0900)
    assert await scan(services, cst("2024-03-04", "09:48")) == SlaOutcome([ticket.id], [])
    await act(services, desk.staff, ticket.id, Action.ACKNOWLEDGE, cst("2024-03-04", "09:55"))
    # then: the call-back's lateness no longer counts
    assert await scan(services, cst("2024-03-04", "11:00")) == SlaOutcome([], [])
    # 80% of 1,440 office minutes before Wednesday 15:00 is 288 minutes before it: 10:12
    assert await scan(services, cst("2024-03-06", "10:11")) == SlaOutcome([], [])
    assert await scan(services, cst("2024-03-06", "10:12")) == SlaOutcome([ticket.id], [])
    assert await scan(services, cst("2024-03-06", "15:00")) == SlaOutcome([], [(ticket.id, 1)])
    # half the target (720 office minutes) late: 150 on Wednesday, 540 on Thursday, 30 on Friday
    assert await scan(services, cst("2024-03-08", "08:59")) == SlaOutcome([], [])
    assert await scan(services, cst("2024-03-08", "09:00")) == SlaOutcome([], [(ticket.id, 2)])


async def test_a_reopened_cycle_is_timed_from_the_reopen(services, desk):
    # given: a ticket from a month ago, resolved and reopened today
    ticket = await new_ticket(services, desk, "street_light", now=MON_0900 - timedelta(days=28))
    old = MON_0900 - timedelta(days=28)
    await act(services, desk.staff, ticket.id, Action.ACKNOWLEDGE, old + timedelta(minutes=5))
    await act(services, desk.staff, ticket.id, Action.RESOLVE, old + timedelta(hours=2))
    reopened = await act(services, desk.reporter, ticket.id, Action.REOPEN, MON_0900, note="又不亮了")
    assert reopened.callback_due_at == cst("2024-03-04", "10:00")
    # then: the new call-back clock runs from the reopen, not from the first submission
    assert await scan(services, cst("2024-03-04", "09:01")) == SlaOutcome([], [])
    assert await scan(services, cst("2024-03-04", "09:48")) == SlaOutcome([ticket.id], [])
    assert await scan(services, cst("2024-03-04", "10:00")) == SlaOutcome([], [(ticket.id, 1)])


async def test_closed_tickets_are_not_scanned(services, desk):
    ticket = await new_ticket(services, desk, "street_light", now=MON_0900)
    await act(services, desk.staff, ticket.id, Action.REJECT, cst("2024-03-04", "09:05"), note="不属于社区管辖")
    assert await scan(services, cst("2024-03-09", "12:00")) == SlaOutcome([], [])
