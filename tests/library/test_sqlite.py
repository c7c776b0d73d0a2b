"""The embedded default: the library works on SQLite too (one writer at a time takes the place of the races)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.app import build_services
from api.core.clock import utc_now
from api.core.database import Database
from api.core.jobs import RecordingJobSender
from api.core.migrations import upgrade
from api.graphql.context import Services
from api.library import notices
from api.library import service as library
from api.library.figures import figures
from api.library.models import CopyStatus
from api.library.seed import seed_library_demo
from tests.conftest import make_settings
from tests.library.conftest import add_copies, at, checkin, checkout, copy_state, enrol, make_network


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Services]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    services = build_services(make_settings(url), jobs=RecordingJobSender())
    services.db = Database(url)
    try:
        yield services
    finally:
        await services.db.dispose()


async def test_lending_holds_notices_and_figures_on_sqlite(lite: Services) -> None:
    # given
    net = await make_network(lite)
    copies = await add_copies(lite, net, net.house, 4)
    child = await enrol(lite, net, net.child)
    # when: three books out, a fourth refused; the last copy lent long ago (now overdue); the
    # child's hold traps the first copy returned (at the city library) and it goes to the book house
    for copy in copies[:3]:
        await checkout(lite, net, net.house, copy.barcode, person=net.adult)
    with pytest.raises(library.LoanLimitReached):
        await checkout(lite, net, net.house, copies[3].barcode, person=net.adult)
    late = await checkout(lite, net, net.house, copies[3].barcode, person=net.elder, now=at(-33))
    async with lite.db.unit_of_work(lite.jobs) as uow:
        await library.place_hold(uow, viewer=await net.staff_viewer(lite), book_id=net.book.id,
                                 pickup_branch_id=net.house.id, reader_id=child.id)  # fmt: skip
    out = await checkin(lite, net, net.city, copies[0].barcode)
    arrived = await checkin(lite, net, net.house, copies[0].barcode)
    async with lite.db.unit_of_work(lite.jobs) as uow:
        scanned = await notices.scan(uow)
    async with lite.db.unit_of_work() as uow:
        sent = await notices.send_loan_notice(uow, loan_id=late.id, stage="overdue_1")
    async with lite.db.read_session() as session:
        stats = await figures(session, viewer=await net.staff_viewer(lite), branch_id=net.house.id,
                              since=at(-60), until=utc_now())  # fmt: skip
    # then
    assert out.placement.action is library.ReturnAction.TRANSIT_TO_HOLD
    assert arrived.placement.action is library.ReturnAction.HOLD_SHELF
    assert (await copy_state(lite, copies[0].id))[0] == CopyStatus.ON_HOLD_SHELF.value
    assert ("loan", late.id, "overdue_1") in scanned.notices
    assert sent == 1
    assert stats.loans == 4
    assert stats.overdue_loans == 1
    assert len(stats.per_branch_month) in (1, 2)  # the late loan may fall in the previous month


async def test_the_demo_network_is_seeded_once(lite: Services) -> None:
    from tests.factories import make_community

    await make_community(lite.db, code="zhihuicheng", name="智汇城社区", district="裕华区")
    first = await seed_library_demo(lite.db)
    again = await seed_library_demo(lite.db)
    assert (first.branches, first.books, first.copies) == (3, 50, 1700)  # two book houses lack their community
    assert (again.branches, again.copies) == (0, 0)
