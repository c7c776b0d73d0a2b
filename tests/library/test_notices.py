"""Notices by the worker: due soon, overdue in stages, hold ready and expired; each sent once.
History anonymisation keeps the statistics.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from api.core.clock import utc_now
from api.graphql.context import Services
from api.library import notices
from api.library import service as library
from api.library.figures import figures
from api.library.models import LibraryNotice, Loan
from api.notifications.models import Notification
from tests.jobs import JobRunner
from tests.library.conftest import Network, add_copies, at, checkin, checkout, enrol
from worker.actors import library as library_actors


async def inbox(services: Services, account_id: int) -> list[tuple[str, str]]:
    async with services.db.read_session() as session:
        rows = await session.execute(
            select(Notification.title, Notification.body)
            .where(Notification.recipient_account_id == account_id)
            .order_by(Notification.id)
        )
        return [(t, b) for t, b in rows.all()]


async def notice_rows(services: Services) -> list[tuple[int | None, int | None, str, int]]:
    async with services.db.read_session() as session:
        rows = await session.execute(
            select(
                LibraryNotice.loan_id, LibraryNotice.hold_id, LibraryNotice.stage, LibraryNotice.recipients
            ).order_by(LibraryNotice.id)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def scan(services: Services, now=None) -> notices.ScanOutcome:
    async with services.db.unit_of_work(services.jobs) as uow:
        return await notices.scan(uow, now=now)


async def test_a_due_soon_reminder_is_sent_once_even_when_the_job_is_redelivered(
    services: Services, net: Network, runner: JobRunner
) -> None:
    # given: a loan due in two days
    [copy] = await add_copies(services, net, net.house, 1)
    loan = await checkout(services, net, net.house, copy.barcode, person=net.adult, now=at(-28))
    # when: the hourly scan runs twice, and the notice job is delivered three times
    first = await scan(services)
    second = await scan(services)
    await runner.drain()
    again = await library_actors.handle_loan_notice(loan.id, "due_soon_0")
    await runner.drain()
    # then: one reminder in the reader's inbox, one notice row
    assert first.notices == [("loan", loan.id, "due_soon_0")]
    assert second.notices == [("loan", loan.id, "due_soon_0")]  # still unsent when the second scan ran
    assert again is None
    assert await notice_rows(services) == [(loan.id, None, "due_soon_0", 1)]
    [(title, body)] = await inbox(services, net.adult.login.account.id)  # type: ignore[union-attr]
    assert title == "还书提醒"
    assert "《红楼梦》" in body
    assert (await scan(services)).notices == []


async def test_overdue_notices_go_out_in_stages_and_only_the_latest_stage_is_sent_after_a_gap(
    services: Services, net: Network, runner: JobRunner
) -> None:
    # given: a loan 8 days overdue, never noticed (the worker was down): only the 7-day stage is due
    [copy] = await add_copies(services, net, net.house, 1)
    loan = await checkout(services, net, net.house, copy.barcode, person=net.adult, now=at(-38))
    # when
    eight = await scan(services)
    await runner.drain()
    nine = await scan(services, now=at(1))
    async with services.db.unit_of_work() as uow:  # 23 days pass
        await uow.session.execute(
            update(Loan).where(Loan.id == loan.id).values(due_at=loan.due_at - timedelta(days=23))
        )
    thirty_one = await scan(services)
    await runner.drain()
    # redelivering an old stage sends nothing
    again = await library_actors.handle_loan_notice(loan.id, "overdue_7")
    # then
    assert eight.notices == [("loan", loan.id, "overdue_7")]
    assert nine.notices == []
    assert thirty_one.notices == [("loan", loan.id, "overdue_30")]
    assert again is None
    assert [stage for _, _, stage, _ in await notice_rows(services)] == ["overdue_7", "overdue_30"]
    messages = await inbox(services, net.adult.login.account.id)  # type: ignore[union-attr]
    assert [t for t, _ in messages] == ["逾期提醒", "逾期提醒"]
    assert "已逾期8天" in messages[0][1]
    assert "已逾期31天" in messages[1][1]
    async with services.db.read_session() as session:
        assert (await session.get(Loan, loan.id)).overdue_stage == 30  # type: ignore[union-attr]


async def test_a_childs_notices_go_to_the_guardian(services: Services, net: Network, runner: JobRunner) -> None:
    child = await enrol(services, net, net.child)
    [copy] = await add_copies(services, net, net.house, 1)
    loan = await checkout(services, net, net.house, copy.barcode, reader_id=child.id, now=at(-32))
    await scan(services)
    await runner.drain()
    assert await notice_rows(services) == [(loan.id, None, "overdue_1", 1)]
    assert [t for t, _ in await inbox(services, net.adult.login.account.id)] == ["逾期提醒"]  # type: ignore[union-attr]


async def test_hold_ready_and_hold_expired_are_sent_once(services: Services, net: Network, runner: JobRunner) -> None:
    # given: the copy is trapped on the book house's shelf for the adult
    [copy] = await add_copies(services, net, net.house, 1)
    adult = await enrol(services, net, net.adult)
    async with services.db.unit_of_work(services.jobs) as uow:
        placed = await library.place_hold(uow, viewer=await net.staff_viewer(services), book_id=net.book.id,
                                          pickup_branch_id=net.house.id, reader_id=adult.id)  # fmt: skip
    await runner.drain()
    await scan(services)  # the safety net finds the notice sent already
    await runner.drain()
    # when: eight days later the hourly scan expires it
    expired = await scan(services, now=at(8))
    await runner.drain()
    await library_actors.handle_hold_notice(placed.id, "hold_expired")
    # then
    assert expired.expired_holds == [placed.id]
    assert await notice_rows(services) == [(None, placed.id, "hold_ready", 1), (None, placed.id, "hold_expired", 1)]
    assert [t for t, _ in await inbox(services, net.adult.login.account.id)] == ["预约到书", "预约已过期"]  # type: ignore[union-attr]
    assert copy.id is not None


async def test_old_history_is_anonymised_and_still_counted(services: Services, net: Network) -> None:
    # given: a loan returned 200 days ago and one returned yesterday
    copies = await add_copies(services, net, net.house, 2)
    old = await checkout(services, net, net.house, copies[0].barcode, person=net.adult, now=at(-210))
    await checkin(services, net, net.house, copies[0].barcode, now=at(-200))
    recent = await checkout(services, net, net.house, copies[1].barcode, person=net.adult, now=at(-5))
    await checkin(services, net, net.house, copies[1].barcode, now=at(-1))
    # when: history is kept 180 days
    async with services.db.unit_of_work() as uow:
        count = await library.anonymise_history(uow, older_than=timedelta(days=180))
    async with services.db.unit_of_work() as uow:
        again = await library.anonymise_history(uow, older_than=timedelta(days=180))
    # then
    assert (count, again) == (1, 0)
    async with services.db.read_session() as session:
        old_row, recent_row = await session.get(Loan, old.id), await session.get(Loan, recent.id)
        assert old_row is not None
        assert recent_row is not None
        assert (old_row.reader_id, old_row.anonymised_at is not None) == (None, True)
        assert recent_row.reader_id == recent.reader_id
        history = await library.loans_of(session, reader_id=recent.reader_id or 0, include_past=True)
        stats = await figures(session, viewer=await net.staff_viewer(services), branch_id=net.house.id,
                              since=at(-365), until=utc_now())  # fmt: skip
    assert [loan.id for loan in history] == [recent.id]
    assert stats.loans == 2
    assert stats.top_titles[0].loans == 2
