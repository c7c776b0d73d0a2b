"""Hall jobs through the real handlers (JobRunner): step notices, lapse warnings and escalation, once each."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from api.core.clock import utc_now
from api.hall import jobs as hall_jobs
from api.hall import service as hall
from api.hall.models import HallApplication, HallApplicationEvent
from api.notifications.models import Notification
from tests.hall.conftest import Desk, apply, documents_for, move
from tests.jobs import HANDLERS, JobRunner


async def inbox(services, account_id: int) -> list[str]:
    async with services.db.read_session() as session:
        rows = await session.scalars(
            select(Notification.title).where(Notification.recipient_account_id == account_id).order_by(Notification.id)
        )
        return list(rows.all())


async def set_clock(services, application_id: int, *, warn_in: timedelta, due_in: timedelta) -> None:
    now = utc_now()
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(
            update(HallApplication)
            .where(HallApplication.id == application_id)
            .values(warn_at=now + warn_in, due_at=now + due_in)
        )


async def test_each_step_reaches_the_inbox_once(services, desk: Desk, runner: JobRunner):
    # given: a new application
    app = await apply(services, desk, "residence-certificate")
    # when
    assert await runner.drain() == ["hall.application_changed"]
    # then: the hall's staff and the admin hear of it, the applicant does not need to
    assert await inbox(services, desk.staff.account.id) == ["新的办事申请：居住证明"]
    assert await inbox(services, desk.admin.account.id) == ["新的办事申请：居住证明"]
    assert await inbox(services, desk.resident.account.id) == []
    # when: accepted and rejected
    await move(services, "accept", desk.staff_viewer, app.id)
    await move(services, "reject", desk.staff_viewer, app.id, reason="材料不实")
    await runner.drain()
    assert await inbox(services, desk.resident.account.id) == ["居住证明：已受理", "居住证明：未予办理"]
    # a redelivered message adds nothing
    async with services.db.read_session() as session:
        last = await session.scalar(select(HallApplicationEvent.id).order_by(HallApplicationEvent.id.desc()).limit(1))
    await HANDLERS["hall.application_changed"](application_id=app.id, event_id=last)
    assert len(await inbox(services, desk.resident.account.id)) == 2


async def test_the_scan_warns_then_escalates_each_once(services, desk: Desk, runner: JobRunner):
    # given: one accepted application (handled by the desk's staff) and one nobody accepted
    mine = await apply(services, desk, "door-card")
    await move(services, "accept", desk.staff_viewer, mine.id)
    waiting = await apply(services, desk, "rental-registration")
    await runner.drain()
    before_staff = len(await inbox(services, desk.staff.account.id))
    # when: a working day is left for both
    for app in (mine, waiting):
        await set_clock(services, app.id, warn_in=-timedelta(minutes=1), due_in=timedelta(hours=3))
    await HANDLERS["hall.scan"](period_key="1")
    await HANDLERS["hall.scan"](period_key="2")  # again: nothing new
    # then: the handler and the hall's staff are warned, once per application
    staff_titles = (await inbox(services, desk.staff.account.id))[before_staff:]
    assert sorted(staff_titles) == ["即将超时：房屋出租登记", "即将超时：门禁卡办理/补办"]
    admin_titles = await inbox(services, desk.admin.account.id)
    assert admin_titles.count("即将超时：房屋出租登记") == admin_titles.count("即将超时：门禁卡办理/补办") == 1
    assert "即将超时：门禁卡办理/补办" not in await inbox(services, desk.resident.account.id)
    # when: the limit lapses
    await set_clock(services, mine.id, warn_in=-timedelta(hours=9), due_in=-timedelta(minutes=1))
    await HANDLERS["hall.scan"](period_key="3")
    await HANDLERS["hall.scan"](period_key="4")
    # then: escalated once, to the community's admin and the handler
    assert (await inbox(services, desk.admin.account.id)).count("已超时：门禁卡办理/补办") == 1
    assert (await inbox(services, desk.staff.account.id)).count("已超时：门禁卡办理/补办") == 1
    async with services.db.read_session() as session:
        row = await session.get(HallApplication, mine.id)
        assert row is not None
        assert row.escalated_at is not None
        kinds = (await session.scalars(select(HallApplicationEvent.kind).where(
            HallApplicationEvent.application_id == mine.id).order_by(HallApplicationEvent.id))).all()  # fmt: skip
    assert kinds == ["submitted", "accepted", "warned", "escalated"]
    # and: documents asked for and resubmitted start a new clock that can warn again
    await move(services, "request_documents", desk.staff_viewer, mine.id, slots=["id_card"], note="照片模糊")
    async with services.db.unit_of_work(services.jobs) as uow:
        await hall.resubmit_documents(uow, viewer=desk.resident_viewer, store=services.photos, application_id=mine.id,
                                      documents=documents_for("door-card"))  # fmt: skip
    await set_clock(services, mine.id, warn_in=-timedelta(minutes=1), due_in=timedelta(hours=3))
    await HANDLERS["hall.scan"](period_key="5")
    assert (await inbox(services, desk.staff.account.id)).count("即将超时：门禁卡办理/补办") == 2


async def test_closed_applications_never_lapse(services, desk: Desk, runner: JobRunner):
    app = await apply(services, desk, "door-card")
    await move(services, "reject", desk.staff_viewer, app.id, reason="重复")
    await set_clock(services, app.id, warn_in=-timedelta(days=2), due_in=-timedelta(days=1))
    await HANDLERS["hall.scan"](period_key="1")
    async with services.db.read_session() as session:
        row = await session.get(HallApplication, app.id)
    assert row is not None
    assert (row.warned_at, row.escalated_at) == (None, None)


def test_the_scan_runs_every_five_minutes_on_the_hall_queue() -> None:
    assert [(name, every) for name, every, _ in hall_jobs.PERIODIC] == [("hall.scan", timedelta(minutes=5))]
    job = hall_jobs.scan("k")
    assert (job.actor_name, job.queue_name) == ("hall.scan", "hall")
    assert set(HANDLERS) >= {"hall.scan", "hall.application_changed"}
