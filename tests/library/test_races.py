"""Races on PostgreSQL: the loan limit and one loan per copy hold under concurrent checkouts.

Each checkout runs through the service in its own unit of work; asyncio.gather starts them all
at once, and the pool's 20 connections let 20 transactions race in PostgreSQL at any moment (a
semaphore keeps them to the pool's size: beyond it SQLAlchemy opens overflow connections and
closes them again on return, and the test would time connection set-up instead of the race).
The database decides: the (reader, slot) and (copy) partial unique indexes among active loans.
Each race is repeated 20 times from the same starting state.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert as sa_insert
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from api.core.database import Database
from api.core.db import is_unique_violation
from api.core.errors import DomainError
from api.core.viewer import Viewer
from api.graphql.context import Services
from api.library import service as library
from api.library.models import Loan
from tests.conftest import TABLES, make_settings
from tests.library.conftest import Network, add_copies, bulk_readers, enrol, rows

pytestmark = pytest.mark.timeout(120)

REPEATS = 20
POOL = 20


@pytest.fixture
def settings(pg_url):
    return make_settings(pg_url, db_pool_size=POOL)


@pytest.fixture
async def db(settings) -> AsyncIterator[Database]:
    """The test database with a pool big enough for real concurrency (replaces the shared fixture here)."""
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        await database.dispose()


async def attempt(
    services: Services, gate: asyncio.Semaphore, viewer: Viewer, branch_id: int, barcode: str, reader_id: int
) -> str:
    """One checkout in its own transaction: "ok" or the refusal's code."""
    async with gate:
        try:
            async with services.db.unit_of_work() as uow:
                await library.check_out(
                    uow, viewer=viewer, cipher=services.cipher, branch_id=branch_id, barcode=barcode,
                    reader_id=reader_id,
                )  # fmt: skip
        except DomainError as exc:
            return exc.code
    return "ok"


async def reset(services: Services) -> None:
    """Every copy back on the shelf, no loans: the next round starts from the same state."""
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(text("DELETE FROM library_loan"))
        await uow.session.execute(text("UPDATE library_copy SET status = 'available'"))


async def test_500_concurrent_checkouts_by_one_reader_over_50_copies_leave_exactly_3_loans(
    services: Services, net: Network
) -> None:
    # given: one reader, 50 copies on the shelf, 10 checkout requests per copy
    reader = await enrol(services, net, net.adult)
    copies = await add_copies(services, net, net.house, 50)
    staff = await net.staff_viewer(services)
    barcodes = [copies[i % 50].barcode for i in range(500)]
    gate = asyncio.Semaphore(POOL)
    for round_ in range(REPEATS):
        # when: all 500 at once
        results = await asyncio.gather(
            *(attempt(services, gate, staff, net.house.id, barcode, reader.id) for barcode in barcodes)
        )
        # then: three loans in slots 1..3, three copies on loan; everyone else refused with a typed error
        outcome = Counter(results)
        loans = await rows(
            services,
            "SELECT slot, copy_id FROM library_loan WHERE reader_id = :r AND returned_at IS NULL ORDER BY slot",
            r=reader.id,
        )
        on_loan = await rows(services, "SELECT id FROM library_copy WHERE status = 'on_loan' ORDER BY id")
        assert outcome["ok"] == 3, (round_, outcome)
        assert set(outcome) <= {"ok", "LOAN_LIMIT_REACHED", "COPY_NOT_AVAILABLE"}, outcome
        # a request for one of the three lent copies may see it gone before it sees the limit
        assert outcome["LOAN_LIMIT_REACHED"] >= 500 - 3 - 3 * 9, outcome
        assert [slot for slot, _ in loans] == [1, 2, 3]
        assert sorted(int(str(copy_id)) for _, copy_id in loans) == [copy_id for (copy_id,) in on_loan]
        await reset(services)


async def test_200_readers_taking_the_same_copy_leave_one_loan(services: Services, net: Network) -> None:
    # given: 200 readers and one copy
    readers = await bulk_readers(services, net.estate.households[0], 200, born=net.adult.resident.birth_date)
    [copy] = await add_copies(services, net, net.house, 1)
    staff = await net.staff_viewer(services)
    gate = asyncio.Semaphore(POOL)
    for round_ in range(REPEATS):
        # when: everyone at once
        results = await asyncio.gather(
            *(attempt(services, gate, staff, net.house.id, copy.barcode, reader_id) for reader_id in readers)
        )
        # then: one loan; 199 told the copy is not available
        loans = await rows(
            services, "SELECT reader_id FROM library_loan WHERE copy_id = :c AND returned_at IS NULL", c=copy.id
        )
        assert Counter(results) == Counter({"ok": 1, "COPY_NOT_AVAILABLE": 199}), round_
        assert len(loans) == 1
        assert loans[0][0] in readers
        assert await rows(services, "SELECT status FROM library_copy WHERE id = :c", c=copy.id) == [("on_loan",)]
        await reset(services)


async def test_the_database_itself_refuses_a_taken_slot_or_a_copy_lent_twice(services: Services, net: Network) -> None:
    # given: one active loan in slot 1 of copy A
    reader = await enrol(services, net, net.adult)
    a, b = await add_copies(services, net, net.house, 2)
    loan = await library_loan(services, net, reader.id, a.barcode)
    base = {"book_id": net.book.id, "reader_id": reader.id, "reader_category": "adult", "branch_id": net.house.id,
            "loaned_at": loan.loaned_at, "due_at": loan.due_at, "renewals": 0, "overdue_stage": 0}  # fmt: skip

    async def insert(**values: object) -> None:
        async with services.db.unit_of_work() as uow:
            await uow.session.execute(sa_insert(Loan), [{**base, **values}])

    # when / then: written behind the service's back, the same slot or the same copy is refused
    with pytest.raises(IntegrityError) as same_slot:
        await insert(copy_id=b.id, slot=1)
    with pytest.raises(IntegrityError) as same_copy:
        await insert(copy_id=a.id, slot=2)
    assert is_unique_violation(same_slot.value)
    assert is_unique_violation(same_copy.value)
    # a returned loan frees both: the indexes cover active loans only
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(text("UPDATE library_loan SET returned_at = now()"))
    await insert(copy_id=a.id, slot=1)
    assert len(await rows(services, "SELECT id FROM library_loan WHERE slot = 1")) == 2


async def library_loan(services: Services, net: Network, reader_id: int, barcode: str) -> Loan:
    staff = await net.staff_viewer(services)
    async with services.db.unit_of_work() as uow:
        return await library.check_out(
            uow, viewer=staff, cipher=services.cipher, branch_id=net.house.id, barcode=barcode, reader_id=reader_id
        )
