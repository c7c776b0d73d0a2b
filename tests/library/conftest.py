"""A small 通借通还 network for the library tests: the city library, a district library and a book house."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert, text
from strawberry.relay import GlobalID

from api.accounts.service import viewer_for_token
from api.core.clock import local_today
from api.core.crypto import mask_national_id
from api.core.database import Database
from api.core.viewer import Role, Viewer
from api.graphql.context import Services
from api.library import service as library
from api.library.models import Book, Branch, BranchKind, Copy, FloatPolicy, Loan, Reader
from api.models import metadata
from api.registry.models import Household, Resident
from api.settings import Settings
from tests.factories import Estate, Login, born_years_ago, make_estate, make_login, make_resident, national_id
from tests.jobs import JobRunner

_barcodes = itertools.count(1)


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


async def viewer_of(services: Services, login: Login) -> Viewer:
    async with services.db.read_session() as session:
        viewer = await viewer_for_token(session, login.token)
    assert viewer is not None
    return viewer


@dataclass
class Person:
    resident: Resident
    national_id: str  # the plain ID number, as read from the card
    login: Login | None = None


@dataclass
class Network:
    estate: Estate
    city: Branch  # 石家庄市图书馆: its copies float
    district: Branch  # 新华区图书馆: its copies go home
    house: Branch  # the estate's book house: its copies go home
    staff: Login  # staff of the estate's community: runs the book house
    admin: Login  # district admin of 新华区: runs the city and district libraries
    adult: Person
    elder: Person
    child: Person  # 10, the adult is the guardian
    book: Book
    other_book: Book

    async def staff_viewer(self, services: Services) -> Viewer:
        return await viewer_of(services, self.staff)

    async def admin_viewer(self, services: Services) -> Viewer:
        return await viewer_of(services, self.admin)


def plain_id(services: Services, resident: Resident) -> str:
    return services.cipher.decrypt(resident.national_id_encrypted)


async def make_network(services: Services) -> Network:
    estate = await make_estate(services, households=2, members=1)
    community = estate.community
    staff = await make_login(services, role=Role.STAFF, community=community)
    admin = await make_login(services, role=Role.DISTRICT_ADMIN, district=community.district)
    today = local_today()
    household = estate.households[0]
    adult_r = await make_resident(services, household, name="王芳", born=born_years_ago(today, 35), male=False)
    elder_r = await make_resident(services, estate.households[1], name="李大爷", born=born_years_ago(today, 70))
    child_r = await make_resident(services, household, name="王小明", born=born_years_ago(today, 10), guardian=adult_r)
    adult_login = await make_login(services, role=Role.RESIDENT, community=community, resident=adult_r)
    elder_login = await make_login(services, role=Role.RESIDENT, community=community, resident=elder_r)
    admin_v = await viewer_of(services, admin)
    staff_v = await viewer_of(services, staff)
    async with services.db.unit_of_work() as uow:
        city = await library.create_branch(
            uow, viewer=admin_v,
            draft=library.BranchDraft(code="sjz-city", name="石家庄市图书馆", kind=BranchKind.CITY),
        )  # fmt: skip
        district = await library.create_branch(
            uow, viewer=admin_v,
            draft=library.BranchDraft(code="xinhua", name="新华区图书馆", kind=BranchKind.DISTRICT,
                                      district=community.district, float_policy=FloatPolicy.RETURN_HOME),
        )  # fmt: skip
        house = await library.create_branch(
            uow, viewer=staff_v,
            draft=library.BranchDraft(code="house", name="智汇城书屋", kind=BranchKind.BOOK_HOUSE,
                                      community_id=community.id, float_policy=FloatPolicy.RETURN_HOME),
        )  # fmt: skip
        book = await library.add_book(
            uow, viewer=staff_v,
            draft=library.BookDraft(isbn="978-7-02-000220-7", title="红楼梦", author="曹雪芹", publisher="人民文学出版社",
                                    year=1996, subjects=("古典小说",)),
        )  # fmt: skip
        other = await library.add_book(
            uow, viewer=staff_v, draft=library.BookDraft(isbn="7-5442-1124-X", title="活着", author="余华")
        )
    return Network(
        estate=estate, city=city, district=district, house=house, staff=staff, admin=admin,
        adult=Person(adult_r, plain_id(services, adult_r), adult_login),
        elder=Person(elder_r, plain_id(services, elder_r), elder_login),
        child=Person(child_r, plain_id(services, child_r)),
        book=book, other_book=other,
    )  # fmt: skip


_RESTART = [
    f"setval(pg_get_serial_sequence('{t.name}', 'id'), 1, false)" for t in metadata.sorted_tables if "id" in t.c
]


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The test database, emptied afterwards with DELETEs: on these small tables much faster than
    the shared fixture's TRUNCATE of every table (the library tests are many and short).
    """
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(table.delete())
            # Ids start again at 1, as after the shared fixture's TRUNCATE ... RESTART IDENTITY.
            await conn.execute(text(f"SELECT {', '.join(_RESTART)}"))
        await database.dispose()


@pytest.fixture
async def net(services: Services) -> Network:
    return await make_network(services)


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


async def add_copies(services: Services, net: Network, branch: Branch, n: int, *, book: Book | None = None,
                     prefix: str | None = None) -> list[Copy]:  # fmt: skip
    """`n` copies of the network's book (or `book`) at `branch`, added by whoever runs that branch."""
    viewer = await (net.staff_viewer(services) if branch.kind == "book_house" else net.admin_viewer(services))
    base = prefix or f"{branch.code}-"
    async with services.db.unit_of_work() as uow:
        return await library.add_copies(
            uow, viewer=viewer, book_id=(book or net.book).id, branch_id=branch.id,
            barcodes=[f"{base}{next(_barcodes):06d}" for _ in range(n)],
        )  # fmt: skip


async def enrol(services: Services, net: Network, person: Person) -> Reader:
    staff = await net.staff_viewer(services)
    async with services.db.unit_of_work() as uow:
        return await library.become_reader(
            uow, viewer=staff, cipher=services.cipher, national_id=person.national_id,
            guardian_national_id=net.adult.national_id if person is net.child else None,
        )  # fmt: skip


async def bulk_readers(services: Services, household: Household, n: int, *, born: date) -> list[int]:
    """`n` adult residents who are readers, written in two statements; returns reader ids."""
    cipher = services.cipher
    rows = []
    for i in range(n):
        nid = national_id(born, seq=10_000 + i)
        rows.append(
            {"community_id": household.community_id, "household_id": household.id, "name": f"读者{i}",
             "gender": "male", "birth_date": born, "national_id_encrypted": cipher.encrypt(nid),
             "national_id_hash": cipher.lookup_hash(nid), "national_id_masked": mask_national_id(nid)}
        )  # fmt: skip
    async with services.db.unit_of_work() as uow:
        ids = (await uow.session.scalars(insert(Resident).returning(Resident.id), rows)).all()
        readers = [
            {"resident_id": rid, "id_hash": row["national_id_hash"], "category": "adult"}
            for rid, row in zip(ids, rows, strict=True)
        ]
        reader_ids = (await uow.session.scalars(insert(Reader).returning(Reader.id), readers)).all()
    return list(reader_ids)


async def rows(services: Services, sql: str, **params: object) -> list[tuple[object, ...]]:
    async with services.db.read_session() as session:
        return [tuple(r) for r in (await session.execute(text(sql), params)).all()]


def at(days: float, base: datetime | None = None) -> datetime:
    """A moment `days` from now (or from `base`)."""
    from api.core.clock import utc_now

    return (base or utc_now()) + timedelta(days=days)


async def checkout(
    services: Services, net: Network, branch: Branch, barcode: str, *, person: Person | None = None,
    reader_id: int | None = None, viewer: Viewer | None = None, now: datetime | None = None,
) -> Loan:  # fmt: skip
    """Check out at `branch` as its staff (or `viewer`), by the person's ID card or a reader id."""
    if viewer is None:
        viewer = await (net.staff_viewer(services) if branch.kind == "book_house" else net.admin_viewer(services))
    async with services.db.unit_of_work(services.jobs) as uow:
        return await library.check_out(
            uow, viewer=viewer, cipher=services.cipher, branch_id=branch.id, barcode=barcode,
            national_id=person.national_id if person else None, reader_id=reader_id, now=now,
        )  # fmt: skip


async def checkin(
    services: Services, net: Network, branch: Branch, barcode: str, *, viewer: Viewer | None = None,
    now: datetime | None = None,
) -> library.ReturnOutcome:  # fmt: skip
    if viewer is None:
        viewer = await (net.staff_viewer(services) if branch.kind == "book_house" else net.admin_viewer(services))
    async with services.db.unit_of_work(services.jobs) as uow:
        return await library.return_copy(uow, viewer=viewer, branch_id=branch.id, barcode=barcode, now=now)


async def copy_state(services: Services, copy_id: int) -> tuple[str, int, int | None]:
    """(status, current branch, transit destination) of a copy."""
    async with services.db.read_session() as session:
        copy = await session.get(Copy, copy_id)
    assert copy is not None
    return copy.status, copy.current_branch_id, copy.transit_to_branch_id


async def library_counts(services: Services) -> dict[str, int]:
    """Rows in the library tables (to show that a refused request wrote nothing)."""
    tables = ["library_book", "library_copy", "library_reader", "library_loan", "library_hold", "library_notice"]
    async with services.db.read_session() as session:
        return {t: int(await session.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in tables}
