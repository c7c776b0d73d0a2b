"""Holds: the first returned copy is trapped for the first reader in the queue, and moves on when not collected."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from api.core.clock import local_today
from api.graphql.context import Services
from api.library import jobs as library_jobs
from api.library import service as library
from api.library.models import CopyStatus, Hold, HoldStatus, Reader
from api.library.service import HoldRefusedReason, ReturnAction, RuleValues, end_of_day
from tests.library.conftest import Network, add_copies, at, checkin, checkout, copy_state, enrol, library_counts


async def hold(services: Services, net: Network, reader: Reader, pickup_id: int, book_id: int | None = None) -> Hold:
    """Staff of the pickup branch place a hold for the reader."""
    runs = net.staff_viewer if pickup_id == net.house.id else net.admin_viewer
    async with services.db.unit_of_work(services.jobs) as uow:
        return await library.place_hold(uow, viewer=await runs(services), book_id=book_id or net.book.id,
                                        pickup_branch_id=pickup_id, reader_id=reader.id)  # fmt: skip


async def hold_row(services: Services, hold_id: int) -> Hold:
    async with services.db.read_session() as session:
        row = await session.get(Hold, hold_id)
    assert row is not None
    return row


def jobs_of(services: Services, actor: str) -> list[dict[str, object]]:
    return [o.job.kwargs for o in services.jobs.sent if o.job.actor_name == actor]  # type: ignore[attr-defined]


async def test_the_returned_copy_is_trapped_for_the_first_hold_and_sent_to_its_pickup_branch(
    services: Services, net: Network
) -> None:
    # given: the only copy (the district library's) is out; the adult holds it for pickup at the book
    # house, then the elder for pickup at the city library
    [copy] = await add_copies(services, net, net.district, 1)
    other = await enrol(services, net, net.child)
    await checkout(services, net, net.district, copy.barcode, reader_id=other.id)
    adult, elder = await enrol(services, net, net.adult), await enrol(services, net, net.elder)
    first = await hold(services, net, adult, net.house.id)
    second = await hold(services, net, elder, net.city.id)
    # when: it is returned at the city library
    out = await checkin(services, net, net.city, copy.barcode)
    # then: trapped for the adult (first in the queue), not for the elder whose pickup is right here
    assert out.placement == library.Placement(ReturnAction.TRANSIT_TO_HOLD, net.house.id, first.id)
    assert await copy_state(services, copy.id) == (CopyStatus.IN_TRANSIT.value, net.city.id, net.house.id)
    trapped = await hold_row(services, first.id)
    assert (trapped.status, trapped.trapped_copy_id, trapped.expires_at) == ("trapped", copy.id, None)
    async with services.db.read_session() as session:
        assert await library.hold_position(session, await hold_row(services, second.id)) == 1

    # when: it arrives at the book house
    arrived = await checkin(services, net, net.house, copy.barcode)
    # then: on the hold shelf, collect within 7 days; the adult is told
    assert arrived.placement == library.Placement(ReturnAction.HOLD_SHELF, net.house.id, first.id)
    assert await copy_state(services, copy.id) == (CopyStatus.ON_HOLD_SHELF.value, net.house.id, None)
    assert (await hold_row(services, first.id)).expires_at == end_of_day(local_today() + timedelta(days=7))
    assert jobs_of(services, "library.hold_notice") == [{"hold_id": first.id, "stage": library_jobs.HOLD_READY}]

    # then: nobody else may borrow it; the adult collects it
    with pytest.raises(library.CopyNotAvailable) as taken:
        await checkout(services, net, net.house, copy.barcode, reader_id=elder.id)
    loan = await checkout(services, net, net.house, copy.barcode, reader_id=adult.id)
    assert taken.value.status == CopyStatus.ON_HOLD_SHELF.value
    assert loan.reader_id == adult.id
    collected = await hold_row(services, first.id)
    assert collected.status == HoldStatus.COLLECTED.value
    assert collected.closed_at is not None


async def test_a_hold_takes_a_copy_on_the_pickup_shelf_at_once(services: Services, net: Network) -> None:
    # given: one copy on the city library's shelf, one on the book house's
    city_copy = (await add_copies(services, net, net.city, 1))[0]
    house_copy = (await add_copies(services, net, net.house, 1))[0]
    adult = await enrol(services, net, net.adult)
    # when
    placed = await hold(services, net, adult, net.house.id)
    # then: the book house's copy is set aside; the city's stays on the shelf
    row = await hold_row(services, placed.id)
    assert (row.status, row.trapped_copy_id) == (HoldStatus.TRAPPED.value, house_copy.id)
    assert (await copy_state(services, house_copy.id))[0] == CopyStatus.ON_HOLD_SHELF.value
    assert (await copy_state(services, city_copy.id))[0] == CopyStatus.AVAILABLE.value


async def test_an_uncollected_hold_expires_and_the_copy_goes_to_the_next_reader(
    services: Services, net: Network
) -> None:
    # given: the copy waits on the book house's hold shelf for the adult; the elder is next
    [copy] = await add_copies(services, net, net.house, 1)
    adult, elder = await enrol(services, net, net.adult), await enrol(services, net, net.elder)
    first = await hold(services, net, adult, net.house.id)
    second = await hold(services, net, elder, net.house.id)
    # when: eight days later
    async with services.db.unit_of_work(services.jobs) as uow:
        expired = await library.expire_holds(uow, now=at(8))
    # then: the adult's hold expired; the same copy is now set aside for the elder, with a new week
    assert expired == [first.id]
    assert (await hold_row(services, first.id)).status == HoldStatus.EXPIRED.value
    nxt = await hold_row(services, second.id)
    assert (nxt.status, nxt.trapped_copy_id) == (HoldStatus.TRAPPED.value, copy.id)
    assert nxt.expires_at == end_of_day(local_today() + timedelta(days=8 + 7))
    assert (await copy_state(services, copy.id))[0] == CopyStatus.ON_HOLD_SHELF.value
    assert jobs_of(services, "library.hold_notice")[-2:] == [
        {"hold_id": second.id, "stage": library_jobs.HOLD_READY},
        {"hold_id": first.id, "stage": library_jobs.HOLD_EXPIRED},
    ]
    # and a second run finds nothing more to expire
    async with services.db.unit_of_work(services.jobs) as uow:
        assert await library.expire_holds(uow, now=at(8)) == []


async def test_cancelling_a_trapped_hold_puts_the_copy_back_on_the_shelf(services: Services, net: Network) -> None:
    [copy] = await add_copies(services, net, net.house, 1)
    adult = await enrol(services, net, net.adult)
    placed = await hold(services, net, adult, net.house.id)
    async with services.db.unit_of_work(services.jobs) as uow:
        cancelled = await library.cancel_hold(uow, viewer=await net.staff_viewer(services), hold_id=placed.id)
    assert cancelled.status == HoldStatus.CANCELLED.value
    assert await copy_state(services, copy.id) == (CopyStatus.AVAILABLE.value, net.house.id, None)


async def test_holds_are_refused_with_a_reason(services: Services, net: Network) -> None:
    # given: one hold each at most; the adult has one copy out and holds the other title
    admin = await net.admin_viewer(services)
    async with services.db.unit_of_work() as uow:
        await library.set_loan_rule(uow, viewer=admin, branch_id=None, reader_category=None, item_type=None,
                                    values=RuleValues(holds_allowed=1))  # fmt: skip
    [copy] = await add_copies(services, net, net.house, 1)
    adult, elder = await enrol(services, net, net.adult), await enrol(services, net, net.elder)
    await checkout(services, net, net.house, copy.barcode, reader_id=adult.id)
    await hold(services, net, elder, net.house.id)
    before = await library_counts(services)
    # when / then
    with pytest.raises(library.HoldRefused) as on_loan:
        await hold(services, net, adult, net.house.id)
    with pytest.raises(library.HoldRefused) as duplicate:
        await hold(services, net, elder, net.city.id)
    with pytest.raises(library.HoldRefused) as limit:
        await hold(services, net, elder, net.house.id, book_id=net.other_book.id)
    assert on_loan.value.reason is HoldRefusedReason.ALREADY_ON_LOAN
    assert duplicate.value.reason is HoldRefusedReason.LIMIT  # the one hold allowed is taken
    assert limit.value.reason is HoldRefusedReason.LIMIT
    assert await library_counts(services) == before


async def test_a_second_hold_on_the_same_title_is_a_duplicate(services: Services, net: Network) -> None:
    elder = await enrol(services, net, net.elder)
    await hold(services, net, elder, net.house.id)
    with pytest.raises(library.HoldRefused) as duplicate:
        await hold(services, net, elder, net.city.id)
    assert duplicate.value.reason is HoldRefusedReason.DUPLICATE
    async with services.db.read_session() as session:
        assert len((await session.scalars(select(Hold))).all()) == 1
