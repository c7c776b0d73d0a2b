"""The catalogue: books by ISBN, copies by barcode, CSV import, search with availability, and figures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api.core.clock import utc_now
from api.core.errors import Forbidden, ValidationFailed
from api.graphql.context import Services
from api.library import service as library
from api.library.figures import figures
from api.library.isbn import InvalidIsbn, isbn10_check, isbn13_check
from api.library.models import Book, Copy
from api.library.service import BookDraft
from tests.library.conftest import Network, add_copies, at, checkin, checkout, enrol, library_counts


def isbn13(n: int) -> str:
    core = f"978{n:09d}"
    return core + isbn13_check(core)


async def test_a_book_is_catalogued_by_its_normalised_isbn_once(services: Services, net: Network) -> None:
    # given
    staff = await net.staff_viewer(services)
    before = await library_counts(services)

    async def add(isbn: str) -> Book:
        async with services.db.unit_of_work() as uow:
            return await library.add_book(
                uow, viewer=staff, draft=BookDraft(isbn=isbn, title=" 平凡的 世界 ", author="路遥")
            )

    # when
    book = await add("7-5302-1087-" + isbn10_check("753021087"))
    # then: stored as ISBN-13; the ISBN-13 form of the same number is a duplicate; a bad one is refused
    assert book.isbn == "978753021087" + isbn13_check("978753021087")
    assert book.title == "平凡的 世界"
    with pytest.raises(library.DuplicateIsbn):
        await add(book.isbn)
    with pytest.raises(InvalidIsbn):
        await add("978-7-5302-1087-0" if not book.isbn.endswith("0") else "978-7-5302-1087-1")
    assert (await library_counts(services))["library_book"] == before["library_book"] + 1


async def test_only_library_staff_catalogue_books(services: Services, net: Network) -> None:
    from tests.library.conftest import viewer_of

    resident = await viewer_of(services, net.adult.login)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        async with services.db.unit_of_work() as uow:
            await library.add_book(uow, viewer=resident, draft=BookDraft(isbn=isbn13(1), title="书", author="人"))


async def test_copies_with_a_barcode_in_use_or_given_twice_are_refused_and_none_is_written(
    services: Services, net: Network
) -> None:
    [existing] = await add_copies(services, net, net.house, 1, prefix="ZH-")
    staff = await net.staff_viewer(services)
    before = await library_counts(services)
    for barcodes in (["ZH-NEW-1", existing.barcode], ["ZH-NEW-2", "ZH-NEW-2"]):
        with pytest.raises(library.DuplicateBarcode):
            async with services.db.unit_of_work() as uow:
                await library.add_copies(uow, viewer=staff, book_id=net.book.id, branch_id=net.house.id,
                                         barcodes=barcodes)  # fmt: skip
    assert await library_counts(services) == before


async def test_a_csv_import_of_a_thousand_books_reports_each_bad_row_and_writes_only_the_good_ones(
    services: Services, net: Network
) -> None:
    # given: 1,000 good rows (one title already catalogued, one ISBN-10), and bad rows among them
    lines = ["书名,作者,ISBN,条码,出版社,出版年,主题"]
    for i in range(1000):
        isbn = net.book.isbn if i == 0 else isbn13(100_000 + i)
        lines.append(f"书{i},作者{i % 37},{isbn},ZH{i:05d},出版社,{1980 + i % 40},儿童;绘本")
    lines.insert(11, "坏书,某人,978-0-306-40615-8,ZH-BAD-1,,,")  # line 12: wrong check digit
    lines.insert(21, ",某人,9780306406157,ZH-BAD-2,,,")  # line 22: no title
    lines.insert(31, "重复条码,某人,9780306406157,ZH00001,,,")  # line 32: a barcode given twice
    lines.insert(41, "年份,某人,9780306406157,ZH-BAD-4,,二〇一九,")  # line 42: the year is not a number
    lines.insert(51, "空条码,某人,9780306406157,,,,")  # line 52: no barcode
    staff = await net.staff_viewer(services)
    books_before = (await library_counts(services))["library_book"]
    # when
    async with services.db.unit_of_work() as uow:
        report = await library.import_catalogue(uow, viewer=staff, branch_id=net.house.id, csv_text="\n".join(lines))
    # then
    assert (report.rows, report.copies_created, report.books_created) == (1005, 1000, 999)
    assert [(e.line, e.field) for e in report.errors] == [
        (12, "isbn"), (22, "title"), (32, "barcode"), (42, "year"), (52, "barcode"),
    ]  # fmt: skip
    async with services.db.read_session() as session:
        copies = await session.scalar(select(func.count()).where(Copy.home_branch_id == net.house.id))
        bad = await session.scalar(select(func.count()).where(Copy.barcode.like("ZH-BAD%")))
        book = await session.scalar(select(Book).where(Book.isbn == isbn13(100_007)))
        on_existing = await session.scalar(select(func.count()).where(Copy.book_id == net.book.id))
    assert (copies, bad, on_existing) == (1000, 0, 1)
    assert book is not None
    assert (book.title, book.year, book.subjects) == ("书7", 1987, ["儿童", "绘本"])
    assert (await library_counts(services))["library_book"] == books_before + 999


async def test_a_csv_without_the_needed_columns_is_refused(services: Services, net: Network) -> None:
    staff = await net.staff_viewer(services)
    with pytest.raises(ValidationFailed) as refused:
        async with services.db.unit_of_work() as uow:
            await library.import_catalogue(uow, viewer=staff, branch_id=net.house.id, csv_text="title,author\n书,人")
    assert "isbn, barcode" in refused.value.message


async def test_search_by_title_author_or_isbn_shows_availability_per_branch(services: Services, net: Network) -> None:
    # given: 红楼梦: 2 copies at the book house (one out), 1 at the city library; 活着: none
    house = await add_copies(services, net, net.house, 2)
    await add_copies(services, net, net.city, 1)
    await checkout(services, net, net.house, house[0].barcode, person=net.adult)

    async def search(query: str) -> list[Book]:
        async with services.db.read_session() as session:
            return list((await session.scalars(library.catalogue_query(query).order_by(Book.id))).all())

    # when
    by_title = await search("红楼")
    by_author = await search("余华")
    by_isbn10 = await search("7-5442-1124-X")
    by_isbn13 = await search("978-7-02-000220-7")
    wildcard = await search("%")
    async with services.db.read_session() as session:
        found = await library.availability(session, book_ids=[net.book.id, net.other_book.id])
    # then
    assert [b.title for b in by_title] == ["红楼梦"]
    assert [b.title for b in by_author] == ["活着"]
    assert [b.title for b in by_isbn10] == ["活着"]
    assert [b.title for b in by_isbn13] == ["红楼梦"]
    assert wildcard == []  # LIKE wildcards are searched for literally
    assert found[net.book.id] == [
        library.BranchAvailability(net.book.id, net.city.id, copies=1, available=1),
        library.BranchAvailability(net.book.id, net.house.id, copies=2, available=1),
    ]
    assert found[net.other_book.id] == []


async def test_figures_count_loans_per_branch_and_month_top_titles_overdue_rate_and_floating_copies(
    services: Services, net: Network
) -> None:
    # given: three 红楼梦 loans and one 活着 loan at the book house, one at the city library; one
    # returned late; a city copy returned at the book house (it floats) and a house copy in transit
    city = await add_copies(services, net, net.city, 1)
    house = await add_copies(services, net, net.house, 3)
    other = await add_copies(services, net, net.house, 1, book=net.other_book)
    adult = await enrol(services, net, net.adult)
    elder = await enrol(services, net, net.elder)
    child = await enrol(services, net, net.child)
    await checkout(services, net, net.house, house[0].barcode, reader_id=child.id, now=at(-40))
    await checkin(services, net, net.house, house[0].barcode, now=at(-5))  # 5 days late
    await checkout(services, net, net.house, house[1].barcode, reader_id=adult.id)
    await checkout(services, net, net.house, other[0].barcode, reader_id=elder.id)
    await checkout(services, net, net.city, city[0].barcode, reader_id=elder.id)
    await checkin(services, net, net.house, city[0].barcode)  # floats: now at the book house
    await checkout(services, net, net.house, house[2].barcode, reader_id=elder.id)
    await checkin(services, net, net.city, house[2].barcode)  # goes home: in transit, at the city
    staff, admin = await net.staff_viewer(services), await net.admin_viewer(services)
    # when
    async with services.db.read_session() as session:
        network = await figures(session, viewer=admin, branch_id=None, since=at(-60), until=utc_now() + timedelta(1))
        here = await figures(session, viewer=staff, branch_id=net.house.id, since=at(-60), until=at(1))
        with pytest.raises(Forbidden):
            await figures(session, viewer=staff, branch_id=net.city.id, since=at(-60), until=at(1))
    # then
    assert (network.loans, network.overdue_loans, network.overdue_rate) == (5, 1, 0.2)
    assert [(t.title, t.loans) for t in network.top_titles] == [("红楼梦", 4), ("活着", 1)]
    assert sum(m.loans for m in network.per_branch_month) == 5
    assert {m.branch_id for m in network.per_branch_month} == {net.house.id, net.city.id}
    assert (network.copies, network.copies_away_from_home) == (5, 2)
    assert (here.loans, here.copies, here.copies_away_from_home, here.copies_from_elsewhere) == (4, 4, 1, 1)
