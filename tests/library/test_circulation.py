"""Readers, checkout, return anywhere, renewals and loan rules, through the library service."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from api.core.clock import local_today, utc_now
from api.core.errors import Forbidden
from api.core.viewer import Role
from api.graphql.context import Services
from api.library import service as library
from api.library.models import ClosedDay, CopyStatus, Loan, Reader, ReaderCategory
from api.library.service import ReturnAction, RuleValues, end_of_day
from api.registry.service import GuardianRequired
from api.registry.validation import InvalidNationalId
from tests.factories import born_years_ago, make_estate, make_login, national_id
from tests.library.conftest import (
    Network,
    add_copies,
    at,
    checkin,
    checkout,
    copy_state,
    enrol,
    library_counts,
    viewer_of,
)

# -- readers ------------------------------------------------------------------------------------


async def test_a_resident_becomes_a_reader_with_their_id_card_found_by_its_keyed_hash(
    services: Services, net: Network
) -> None:
    # given: the resident, logged in, gives their own ID number (lower-case x, spaces: normalised)
    viewer = await viewer_of(services, net.adult.login)  # type: ignore[arg-type]
    # when
    async with services.db.unit_of_work() as uow:
        reader = await library.become_reader(
            uow, viewer=viewer, cipher=services.cipher, national_id=f" {net.adult.national_id.lower()} "
        )
    async with services.db.unit_of_work() as uow:
        again = await library.become_reader(
            uow, viewer=viewer, cipher=services.cipher, national_id=net.adult.national_id
        )
    # then: one reader, keyed by the resident's lookup hash; the plain number is stored nowhere
    assert again.id == reader.id
    assert reader.resident_id == net.adult.resident.id
    assert reader.id_hash == net.adult.resident.national_id_hash
    assert reader.category == ReaderCategory.ADULT.value
    async with services.db.read_session() as session:
        dump = " ".join(str(r) for r in (await session.execute(text("SELECT * FROM library_reader"))).all())
    assert net.adult.national_id not in dump


async def test_a_child_becomes_a_reader_only_with_the_guardian_present(services: Services, net: Network) -> None:
    # given
    staff = await net.staff_viewer(services)
    guardian = await viewer_of(services, net.adult.login)  # type: ignore[arg-type]

    async def become(viewer, guardian_id: str | None = None) -> Reader:
        async with services.db.unit_of_work() as uow:
            return await library.become_reader(
                uow, viewer=viewer, cipher=services.cipher, national_id=net.child.national_id,
                guardian_national_id=guardian_id,
            )  # fmt: skip

    # when / then: staff alone, or with someone else's ID card, are refused
    with pytest.raises(GuardianRequired) as alone:
        await become(staff)
    with pytest.raises(GuardianRequired):
        await become(staff, net.elder.national_id)
    assert alone.value.field == "guardianNationalId"
    assert (await library_counts(services))["library_reader"] == 0
    # the guardian themselves, logged in, may
    reader = await become(guardian)
    assert reader.category == ReaderCategory.CHILD.value
    assert reader.guardian_resident_id == net.adult.resident.id


async def test_unknown_and_invalid_id_numbers_are_typed_errors_and_others_numbers_reveal_nothing(
    services: Services, net: Network
) -> None:
    # given
    staff = await net.staff_viewer(services)
    neighbour = await viewer_of(services, net.elder.login)  # type: ignore[arg-type]
    stranger = national_id(born_years_ago(local_today(), 40), seq=777)
    bad = net.adult.national_id[:-1] + ("0" if net.adult.national_id[-1] != "0" else "1")

    async def become(viewer, number: str) -> Reader:
        async with services.db.unit_of_work() as uow:
            return await library.become_reader(uow, viewer=viewer, cipher=services.cipher, national_id=number)

    # when / then
    with pytest.raises(library.UnknownReader):
        await become(staff, stranger)
    with pytest.raises(InvalidNationalId):
        await become(staff, bad)
    with pytest.raises(library.UnknownReader):  # a resident cannot enrol (or probe) someone else
        await become(neighbour, net.adult.national_id)
    assert (await library_counts(services))["library_reader"] == 0


# -- checkout -----------------------------------------------------------------------------------


async def test_the_id_card_is_the_reader_card_an_adult_is_enrolled_at_the_first_checkout(
    services: Services, net: Network
) -> None:
    # given: the adult is a resident but not yet a reader
    [copy] = await add_copies(services, net, net.house, 1)
    # when
    loan = await checkout(services, net, net.house, copy.barcode, person=net.adult)
    # then: 30 days, to the end of that day in China; slot 1; the copy is out
    async with services.db.read_session() as session:
        reader = await session.scalar(select(Reader).where(Reader.resident_id == net.adult.resident.id))
    assert reader is not None
    assert loan.reader_id == reader.id
    assert loan.slot == 1
    assert loan.due_at == end_of_day(local_today() + timedelta(days=30))
    assert await copy_state(services, copy.id) == (CopyStatus.ON_LOAN.value, net.house.id, None)


async def test_the_fourth_book_is_refused_with_loan_limit_reached_and_nothing_is_written(
    services: Services, net: Network
) -> None:
    # given: three books out
    copies = await add_copies(services, net, net.house, 4)
    for copy in copies[:3]:
        await checkout(services, net, net.house, copy.barcode, person=net.adult)
    before = await library_counts(services)
    # when
    with pytest.raises(library.LoanLimitReached) as refused:
        await checkout(services, net, net.house, copies[3].barcode, person=net.adult)
    # then
    assert refused.value.limit == 3
    assert refused.value.code == "LOAN_LIMIT_REACHED"
    assert await library_counts(services) == before
    assert (await copy_state(services, copies[3].id))[0] == CopyStatus.AVAILABLE.value


async def test_a_child_cannot_be_enrolled_at_the_desk_without_the_guardian(services: Services, net: Network) -> None:
    [copy] = await add_copies(services, net, net.house, 1)
    with pytest.raises(library.UnknownReader) as refused:
        await checkout(services, net, net.house, copy.barcode, person=net.child)
    assert "guardian" in refused.value.message
    assert (await library_counts(services))["library_loan"] == 0


async def test_the_most_specific_rule_wins_with_the_network_rule_as_fallback(services: Services, net: Network) -> None:
    # given: network: 3 books; the book house: 2 books; the book house for elders: 5 books;
    # everywhere: picture books for children 14 days
    admin, staff = await net.admin_viewer(services), await net.staff_viewer(services)
    async with services.db.unit_of_work() as uow:
        set_rule = library.set_loan_rule
        await set_rule(uow, viewer=admin, branch_id=None, reader_category=None, item_type=None, values=RuleValues())
        await set_rule(uow, viewer=staff, branch_id=net.house.id, reader_category=None, item_type=None,
                       values=RuleValues(max_loans=2))  # fmt: skip
        await set_rule(uow, viewer=staff, branch_id=net.house.id, reader_category=ReaderCategory.ELDER,
                       item_type=None, values=RuleValues(max_loans=5))  # fmt: skip
        await set_rule(uow, viewer=admin, branch_id=None, reader_category=ReaderCategory.CHILD,
                       item_type="picture_book", values=RuleValues(loan_days=14))  # fmt: skip
    # when
    async with services.db.read_session() as session:

        async def rule(branch_id: int, category: str, item_type: str = "book") -> RuleValues:
            return await library.rule_for(session, branch_id=branch_id, category=category, item_type=item_type)

        adult_house = await rule(net.house.id, "adult")
        elder_house = await rule(net.house.id, "elder")
        adult_city = await rule(net.city.id, "adult")
        child_picture = await rule(net.city.id, "child", "picture_book")
        child_house_picture = await rule(net.house.id, "child", "picture_book")
    # then: the branch beats the category, which beats the item type
    assert (adult_house.max_loans, elder_house.max_loans, adult_city.max_loans) == (2, 5, 3)
    assert (child_picture.loan_days, child_picture.max_loans) == (14, 3)
    assert (child_house_picture.loan_days, child_house_picture.max_loans) == (30, 2)


async def test_only_district_admins_set_network_rules(services: Services, net: Network) -> None:
    staff = await net.staff_viewer(services)
    with pytest.raises(Forbidden):
        async with services.db.unit_of_work() as uow:
            await library.set_loan_rule(uow, viewer=staff, branch_id=None, reader_category=None, item_type=None,
                                        values=RuleValues(max_loans=10))  # fmt: skip


async def test_closed_days_push_the_due_date_to_the_next_open_day(services: Services, net: Network) -> None:
    # given: the book house is closed on the day a loan would fall due, and the day after
    due_day = local_today() + timedelta(days=30)
    staff = await net.staff_viewer(services)
    async with services.db.unit_of_work() as uow:
        added = await library.add_closed_days(
            uow, viewer=staff, branch_id=net.house.id, days=[due_day, due_day + timedelta(days=1)], note="春节"
        )
    [copy] = await add_copies(services, net, net.house, 1)
    # when
    loan = await checkout(services, net, net.house, copy.barcode, person=net.adult)
    # then
    assert added == 2
    assert loan.due_at == end_of_day(due_day + timedelta(days=2))
    async with services.db.read_session() as session:
        assert len((await session.scalars(select(ClosedDay))).all()) == 2


async def test_a_late_return_suspends_the_reader_for_days_late_times_the_rule_factor(
    services: Services, net: Network
) -> None:
    # given: 2 suspension days per day late; a book borrowed 40 days ago (due 10 days ago)
    admin = await net.admin_viewer(services)
    async with services.db.unit_of_work() as uow:
        await library.set_loan_rule(uow, viewer=admin, branch_id=None, reader_category=None, item_type=None,
                                    values=RuleValues(suspension_days_per_overdue_day=2))  # fmt: skip
    copies = await add_copies(services, net, net.house, 2)
    await checkout(services, net, net.house, copies[0].barcode, person=net.adult, now=at(-40))
    # when: it comes back today, at the city library
    out = await checkin(services, net, net.city, copies[0].barcode)
    # then: 20 days of suspension, to the end of the day
    assert out.days_overdue == 10
    assert out.suspended_until == end_of_day(local_today() + timedelta(days=20))
    with pytest.raises(library.ReaderSuspended) as refused:
        await checkout(services, net, net.house, copies[1].barcode, person=net.adult)
    assert refused.value.until == out.suspended_until
    # and 21 days later they may borrow again
    loan = await checkout(services, net, net.house, copies[1].barcode, person=net.adult, now=at(21))
    assert loan.returned_at is None


async def test_a_reader_with_an_overdue_book_out_cannot_borrow_another(services: Services, net: Network) -> None:
    copies = await add_copies(services, net, net.house, 2)
    await checkout(services, net, net.house, copies[0].barcode, person=net.adult, now=at(-31))
    with pytest.raises(library.ReaderSuspended) as refused:
        await checkout(services, net, net.house, copies[1].barcode, person=net.adult)
    assert refused.value.until is None
    assert "overdue" in refused.value.message


async def test_a_copy_on_loan_or_in_transit_is_not_available(services: Services, net: Network) -> None:
    # given: one copy on loan, a book-house copy returned at the city library (in transit home)
    copies = await add_copies(services, net, net.house, 2)
    await checkout(services, net, net.house, copies[0].barcode, person=net.adult)
    await checkout(services, net, net.house, copies[1].barcode, person=net.adult)
    await checkin(services, net, net.city, copies[1].barcode)
    # when / then
    with pytest.raises(library.CopyNotAvailable) as on_loan:
        await checkout(services, net, net.house, copies[0].barcode, person=net.elder)
    with pytest.raises(library.CopyNotAvailable) as in_transit:
        await checkout(services, net, net.city, copies[1].barcode, person=net.elder)
    assert (on_loan.value.status, in_transit.value.status) == ("on_loan", "in_transit")


# -- return anywhere ----------------------------------------------------------------------------


async def test_a_floating_copy_stays_where_it_is_returned(services: Services, net: Network) -> None:
    # given: a city library copy (its copies float) borrowed at the city library
    [copy] = await add_copies(services, net, net.city, 1)
    await checkout(services, net, net.city, copy.barcode, person=net.adult)
    # when: returned at the book house
    out = await checkin(services, net, net.house, copy.barcode)
    # then: on the book house's shelf; its home is still the city library
    assert out.placement == library.Placement(ReturnAction.SHELVED, net.house.id)
    assert await copy_state(services, copy.id) == (CopyStatus.AVAILABLE.value, net.house.id, None)
    assert out.loan is not None
    assert out.loan.return_branch_id == net.house.id


async def test_a_return_home_copy_goes_home_in_transit_and_is_shelved_on_arrival(
    services: Services, net: Network
) -> None:
    # given: a book house copy (its copies go home) borrowed at the book house
    [copy] = await add_copies(services, net, net.house, 1)
    await checkout(services, net, net.house, copy.barcode, person=net.adult)
    # when: returned at the district library, then passing through the city library, then home
    out = await checkin(services, net, net.district, copy.barcode)
    state_out = await copy_state(services, copy.id)
    passing = await checkin(services, net, net.city, copy.barcode)
    arrived = await checkin(services, net, net.house, copy.barcode)
    # then
    assert out.placement == library.Placement(ReturnAction.TRANSIT_HOME, net.house.id)
    assert state_out == (CopyStatus.IN_TRANSIT.value, net.district.id, net.house.id)
    assert passing.placement == library.Placement(ReturnAction.IN_TRANSIT, net.house.id)
    assert arrived.loan is None
    assert arrived.placement == library.Placement(ReturnAction.SHELVED, net.house.id)
    assert await copy_state(services, copy.id) == (CopyStatus.AVAILABLE.value, net.house.id, None)


async def test_returning_a_copy_that_is_not_out_is_a_typed_error(services: Services, net: Network) -> None:
    [copy] = await add_copies(services, net, net.house, 1)
    with pytest.raises(library.NotOnLoan):
        await checkin(services, net, net.house, copy.barcode)


async def test_readers_check_out_and_return_their_own_books_but_not_for_others(
    services: Services, net: Network
) -> None:
    # given: the adult is a reader, logged in; the book house is unstaffed (自助)
    reader = await enrol(services, net, net.adult)
    elder = await enrol(services, net, net.elder)
    me = await viewer_of(services, net.adult.login)  # type: ignore[arg-type]
    copies = await add_copies(services, net, net.house, 2)
    # when
    loan = await checkout(services, net, net.house, copies[0].barcode, reader_id=reader.id, viewer=me)
    out = await checkin(services, net, net.city, copies[0].barcode, viewer=me)
    # then
    assert loan.reader_id == reader.id
    assert out.loan is not None
    assert out.loan.id == loan.id
    with pytest.raises(Forbidden):
        await checkout(services, net, net.house, copies[1].barcode, reader_id=elder.id, viewer=me)
    await checkout(services, net, net.house, copies[1].barcode, person=net.elder)
    with pytest.raises(Forbidden):  # nor return someone else's loan
        await checkin(services, net, net.house, copies[1].barcode, viewer=me)


async def test_staff_act_only_at_their_own_branches(services: Services, net: Network) -> None:
    # given: staff of another community; the book house's staff at the city library
    other = await make_estate(services, households=1, members=1)
    outsider = await viewer_of(services, await make_login(services, role=Role.STAFF, community=other.community))
    staff = await net.staff_viewer(services)
    # when / then
    for viewer, branch in ((outsider, net.house), (staff, net.city), (staff, net.district)):
        with pytest.raises(Forbidden):
            async with services.db.unit_of_work() as uow:
                await library.add_copies(uow, viewer=viewer, book_id=net.book.id, branch_id=branch.id,
                                         barcodes=["X-1"])  # fmt: skip
    assert (await library_counts(services))["library_copy"] == 0


# -- renewals -----------------------------------------------------------------------------------


async def test_a_renewal_extends_from_the_due_date_once_then_is_refused(services: Services, net: Network) -> None:
    # given
    [copy] = await add_copies(services, net, net.house, 1)
    loan = await checkout(services, net, net.house, copy.barcode, person=net.adult)
    staff = await net.staff_viewer(services)
    # when
    async with services.db.unit_of_work() as uow:
        renewed = await library.renew(uow, viewer=staff, loan_id=loan.id)
    with pytest.raises(library.RenewalRefused) as again:
        async with services.db.unit_of_work() as uow:
            await library.renew(uow, viewer=staff, loan_id=loan.id)
    # then
    assert renewed.renewals == 1
    assert renewed.due_at == end_of_day(local_today() + timedelta(days=60))
    assert again.value.reason is library.RenewalRefusedReason.NO_RENEWALS_LEFT


async def test_a_renewal_is_refused_when_someone_holds_the_title(services: Services, net: Network) -> None:
    # given: the adult has the only copy; the elder holds the title
    [copy] = await add_copies(services, net, net.house, 1)
    loan = await checkout(services, net, net.house, copy.barcode, person=net.adult)
    elder = await enrol(services, net, net.elder)
    async with services.db.unit_of_work() as uow:
        await library.place_hold(uow, viewer=await net.staff_viewer(services), book_id=net.book.id,
                                 pickup_branch_id=net.house.id, reader_id=elder.id)  # fmt: skip
    me = await viewer_of(services, net.adult.login)  # type: ignore[arg-type]
    # when
    with pytest.raises(library.RenewalRefused) as refused:
        async with services.db.unit_of_work() as uow:
            await library.renew(uow, viewer=me, loan_id=loan.id)
    # then
    assert refused.value.reason is library.RenewalRefusedReason.ON_HOLD
    async with services.db.read_session() as session:
        assert (await session.get(Loan, loan.id)).renewals == 0  # type: ignore[union-attr]


async def test_an_overdue_loan_cannot_be_renewed(services: Services, net: Network) -> None:
    [copy] = await add_copies(services, net, net.house, 1)
    loan = await checkout(services, net, net.house, copy.barcode, person=net.adult, now=utc_now() - timedelta(days=31))
    with pytest.raises(library.RenewalRefused) as refused:
        async with services.db.unit_of_work() as uow:
            await library.renew(uow, viewer=await net.staff_viewer(services), loan_id=loan.id)
    assert refused.value.reason is library.RenewalRefusedReason.OVERDUE
