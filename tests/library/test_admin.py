"""Running the network through GraphQL: branches, their policy, loan rules, closed days, lost copies, reader QR."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from api.core.clock import utc_now
from api.core.crypto import ExpiredSignedToken, InvalidSignedToken, sign_token, verify_token
from api.graphql.context import Services
from api.library import service as library
from api.library.models import Reader
from tests.library.conftest import Network, add_copies, checkout, enrol, gid, library_counts, rows

CREATE_BRANCH = """
mutation($input: CreateBranchInput!) {
  createBranch(input: $input) {
    __typename ... on CreateBranchSuccess { branch { code name kind floatPolicy district } }
    ... on UserError { message field code }
  }
}
"""
SET_POLICY = """
mutation($input: SetBranchPolicyInput!) {
  setBranchPolicy(input: $input) {
    __typename ... on SetBranchPolicySuccess { branch { code floatPolicy } } ... on UserError { message field code }
  }
}
"""
SET_RULE = """
mutation($input: SetLoanRuleInput!) {
  setLoanRule(input: $input) {
    __typename
    ... on SetLoanRuleSuccess { rule { readerCategory itemType maxLoans loanDays renewals branch { code } } }
    ... on UserError { message field code }
  }
}
"""
CLOSED = """
mutation($input: AddClosedDaysInput!) {
  addClosedDays(input: $input) {
    __typename ... on AddClosedDaysSuccess { added } ... on UserError { message field code }
  }
}
"""
LOST = """
mutation($input: MarkCopyLostInput!) {
  markCopyLost(input: $input) {
    __typename
    ... on MarkCopyLostSuccess { copy { barcode status } loan { id returnedAt } hold { id status } }
    ... on UserError { message field code }
  }
}
"""
CARD = "{ myReader { readerCard { payload expiresAt } } }"
CHECK_OUT = """
mutation($input: CheckOutInput!) {
  checkOut(input: $input) {
    __typename ... on CheckOutSuccess { loan { id } } ... on InvalidReaderQrError { expired }
    ... on UserError { message field code }
  }
}
"""


def _forbidden(body: dict[str, Any]) -> None:
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["data"] is None


async def _count(services: Services, table: str) -> int:
    [(n,)] = await rows(services, f"SELECT count(*) FROM {table}")
    assert isinstance(n, int)
    return n


async def test_admins_create_branches_and_staff_set_their_policy(
    services: Services, net: Network, gql, gql_raw
) -> None:
    admin, staff = net.admin.token, net.staff.token
    community = gid("Community", net.estate.community.id)
    district = net.estate.community.district

    # when: the district admin adds a district library, the community's staff a book house
    lib = await gql(CREATE_BRANCH, {"input": {"code": "xinhua-2", "name": " 新华区 第二图书馆 ", "kind": "DISTRICT",
                                              "district": district, "floatPolicy": "RETURN_HOME"}}, token=admin)  # fmt: skip
    house = await gql(CREATE_BRANCH, {"input": {"code": "house-2", "name": "二号书屋", "kind": "BOOK_HOUSE",
                                                "communityId": community}}, token=staff)  # fmt: skip

    # then
    assert lib["createBranch"] == {"__typename": "CreateBranchSuccess", "branch": {
        "code": "xinhua-2", "name": "新华区 第二图书馆", "kind": "DISTRICT", "floatPolicy": "RETURN_HOME",
        "district": district}}  # fmt: skip
    assert house["createBranch"]["branch"]["floatPolicy"] == "FLOAT"
    assert await _count(services, "library_branch") == 5

    # refusals write nothing: staff may not add a library, a resident nothing; bad and duplicate codes
    _forbidden(await gql_raw(CREATE_BRANCH, {"input": {"code": "lib-x", "name": "X", "kind": "DISTRICT",
                                                       "district": district}}, token=staff))  # fmt: skip
    _forbidden(await gql_raw(CREATE_BRANCH, {"input": {"code": "house-x", "name": "X", "kind": "BOOK_HOUSE",
                                                       "communityId": community}},
                             token=net.adult.login.token))  # type: ignore[union-attr]  # fmt: skip
    bad = await gql(CREATE_BRANCH, {"input": {"code": "Bad Code", "name": "X", "kind": "CITY"}}, token=admin)
    assert (bad["createBranch"]["__typename"], bad["createBranch"]["field"]) == ("ValidationError", "code")
    orphan = await gql(CREATE_BRANCH, {"input": {"code": "orphan", "name": "X", "kind": "BOOK_HOUSE"}}, token=admin)
    assert (orphan["createBranch"]["__typename"], orphan["createBranch"]["field"]) == ("ValidationError", "communityId")
    long_address = await gql(
        CREATE_BRANCH, {"input": {"code": "addr", "name": "X", "kind": "CITY", "address": "路" * 201}}, token=admin
    )
    assert (long_address["createBranch"]["__typename"], long_address["createBranch"]["field"]) == (
        "ValidationError", "address",
    )  # fmt: skip
    dup = await gql(CREATE_BRANCH, {"input": {"code": "house", "name": "X", "kind": "CITY"}}, token=admin)
    assert (dup["createBranch"]["__typename"], dup["createBranch"]["field"]) == ("ConflictError", "code")
    assert await _count(services, "library_branch") == 5

    # when: the staff let the book house's copies float; a resident may not
    policy = await gql(SET_POLICY, {"input": {"branchId": gid("Branch", net.house.id), "floatPolicy": "FLOAT"}},
                       token=staff)  # fmt: skip
    assert policy["setBranchPolicy"] == {"__typename": "SetBranchPolicySuccess",
                                         "branch": {"code": "house", "floatPolicy": "FLOAT"}}  # fmt: skip
    _forbidden(await gql_raw(SET_POLICY, {"input": {"branchId": gid("Branch", net.district.id),
                                                    "floatPolicy": "FLOAT"}}, token=staff))  # fmt: skip
    assert await rows(services, "SELECT code, float_policy FROM library_branch WHERE code IN ('house', 'xinhua') "
                                "ORDER BY code") == [("house", "float"), ("xinhua", "return_home")]  # fmt: skip


async def test_loan_rules_are_set_updated_and_checked(services: Services, net: Network, gql, gql_raw) -> None:
    staff, house = net.staff.token, gid("Branch", net.house.id)
    base = {"branchId": house, "readerCategory": "ADULT", "itemType": "book", "maxLoans": 5, "loanDays": 14}

    # when: a rule is created, then the same branch × category × item type is updated
    first = await gql(SET_RULE, {"input": base}, token=staff)
    second = await gql(SET_RULE, {"input": {**base, "maxLoans": 2, "renewals": 0}}, token=staff)
    await gql(SET_RULE, {"input": {**base, "readerCategory": None, "itemType": None, "maxLoans": 7}}, token=staff)

    # then: one rule per key, and the most specific wins
    assert first["setLoanRule"]["rule"] == {"readerCategory": "ADULT", "itemType": "book", "maxLoans": 5,
                                            "loanDays": 14, "renewals": 1, "branch": {"code": "house"}}  # fmt: skip
    assert (second["setLoanRule"]["rule"]["maxLoans"], second["setLoanRule"]["rule"]["renewals"]) == (2, 0)
    assert await _count(services, "library_loan_rule") == 2
    async with services.db.read_session() as session:
        adult = await library.rule_for(session, branch_id=net.house.id, category="adult", item_type="book")
        elder = await library.rule_for(session, branch_id=net.house.id, category="elder", item_type="book")
    assert (adult.max_loans, adult.loan_days, elder.max_loans) == (2, 14, 7)

    # refusals: values out of range name their field; not staff of the branch is forbidden; nothing written
    for field, value in [("maxLoans", 21), ("maxLoans", 0), ("loanDays", 366), ("renewals", -1),
                         ("suspensionDaysPerOverdueDay", 31)]:  # fmt: skip
        bad = await gql(SET_RULE, {"input": {**base, field: value}}, token=staff)
        assert (bad["setLoanRule"]["__typename"], bad["setLoanRule"]["field"]) == ("ValidationError", field)
    bad_type = await gql(SET_RULE, {"input": {**base, "itemType": "Big Books!"}}, token=staff)
    assert bad_type["setLoanRule"]["field"] == "itemType"
    _forbidden(await gql_raw(SET_RULE, {"input": {**base, "branchId": gid("Branch", net.city.id)}}, token=staff))
    assert await rows(services, "SELECT max_loans, renewals FROM library_loan_rule ORDER BY id") == [(2, 0), (7, 1)]


async def test_closed_days_move_due_dates_to_the_next_open_day(services: Services, net: Network, gql, gql_raw) -> None:
    # given: loans of 14 days at the book house
    staff, house = net.staff.token, gid("Branch", net.house.id)
    await gql(SET_RULE, {"input": {"branchId": house, "maxLoans": 3, "loanDays": 14}}, token=staff)
    today = library.local_day(utc_now())
    due_day = today + timedelta(days=14)

    # when: the due day and the day after are closed (the second call repeats one day)
    first = await gql(CLOSED, {"input": {"branchId": house, "days": [due_day.isoformat()], "note": "国庆节"}},
                      token=staff)  # fmt: skip
    second = await gql(CLOSED, {"input": {"branchId": house, "note": "国庆节",
                                          "days": [due_day.isoformat(), (due_day + timedelta(days=1)).isoformat()]}},
                       token=staff)  # fmt: skip
    [copy] = await add_copies(services, net, net.house, 1)
    reader = await enrol(services, net, net.adult)
    loan = await checkout(services, net, net.house, copy.barcode, reader_id=reader.id)

    # then
    assert (first["addClosedDays"]["added"], second["addClosedDays"]["added"]) == (1, 1)
    assert library.local_day(loan.due_at) == due_day + timedelta(days=2)

    # refusals write nothing
    empty = await gql(CLOSED, {"input": {"branchId": house, "days": []}}, token=staff)
    assert (empty["addClosedDays"]["__typename"], empty["addClosedDays"]["field"]) == ("ValidationError", "days")
    long_note = await gql(CLOSED, {"input": {"branchId": house, "days": [today.isoformat()], "note": "长" * 101}},
                          token=staff)  # fmt: skip
    assert long_note["addClosedDays"]["field"] == "note"
    _forbidden(await gql_raw(CLOSED, {"input": {"branchId": house, "days": [today.isoformat()]}},
                             token=net.adult.login.token))  # type: ignore[union-attr]  # fmt: skip
    assert await _count(services, "library_closed_day") == 2


async def test_a_lost_copy_closes_its_loan_and_requeues_its_hold(
    services: Services, net: Network, gql, gql_raw
) -> None:
    # given: a copy on loan to the adult; two copies of another title, the first set aside for the elder's hold
    staff = net.staff.token
    [lent] = await add_copies(services, net, net.house, 1)
    adult = await enrol(services, net, net.adult)
    elder = await enrol(services, net, net.elder)
    loan = await checkout(services, net, net.house, lent.barcode, reader_id=adult.id)
    held, spare = await add_copies(services, net, net.house, 2, book=net.other_book)
    async with services.db.unit_of_work(services.jobs) as uow:
        hold = await library.place_hold(uow, viewer=await net.staff_viewer(services), book_id=net.other_book.id,
                                        pickup_branch_id=net.house.id, reader_id=elder.id)  # fmt: skip
    assert (hold.status, hold.trapped_copy_id) == ("trapped", held.id)

    # when: the lent copy is lost
    out = (await gql(LOST, {"input": {"barcode": lent.barcode}}, token=staff))["markCopyLost"]

    # then: the copy is lost and the loan closed (the reader's slot is free again)
    assert (out["copy"], out["loan"]["id"], out["hold"]) == (
        {"barcode": lent.barcode, "status": "LOST"}, gid("Loan", loan.id), None,
    )  # fmt: skip
    assert await rows(services, "SELECT returned_at IS NOT NULL, return_branch_id FROM library_loan WHERE id = :id",
                      id=loan.id) == [(True, None)]  # fmt: skip

    # when: the copy set aside for the hold is lost, then the spare one too
    retrapped = (await gql(LOST, {"input": {"barcode": held.barcode}}, token=staff))["markCopyLost"]
    assert await rows(services, "SELECT status, trapped_copy_id FROM library_hold") == [("trapped", spare.id)]
    requeued = (await gql(LOST, {"input": {"barcode": spare.barcode}}, token=staff))["markCopyLost"]

    # then: the hold is set aside again from the spare copy, then waits for the next copy
    assert (retrapped["hold"]["status"], retrapped["loan"]) == ("TRAPPED", None)
    assert requeued["hold"] == {"id": gid("Hold", hold.id), "status": "WAITING"}
    assert await rows(services, "SELECT status, trapped_copy_id, expires_at FROM library_hold") == [
        ("waiting", None, None)
    ]

    # refusals write nothing
    before = await library_counts(services)
    again = (await gql(LOST, {"input": {"barcode": lent.barcode}}, token=staff))["markCopyLost"]
    assert (again["__typename"], again["field"]) == ("ConflictError", "barcode")
    missing = (await gql(LOST, {"input": {"barcode": "NO-SUCH"}}, token=staff))["markCopyLost"]
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "barcode")
    [other] = await add_copies(services, net, net.house, 1)
    _forbidden(await gql_raw(LOST, {"input": {"barcode": other.barcode}},
                             token=net.adult.login.token))  # type: ignore[union-attr]  # fmt: skip
    assert await rows(services, "SELECT status FROM library_copy WHERE id = :id", id=other.id) == [("available",)]
    assert {**before, "library_copy": before["library_copy"] + 1} == await library_counts(services)


async def test_checkout_by_reader_qr_and_forged_or_expired_codes(services: Services, net: Network, gql) -> None:
    # given: the adult is a reader and shows their QR code
    staff, house = net.staff.token, gid("Branch", net.house.id)
    copies = await add_copies(services, net, net.house, 2)
    reader = await enrol(services, net, net.adult)
    card = (await gql(CARD, token=net.adult.login.token))["myReader"]["readerCard"]  # type: ignore[union-attr]
    secret = services.settings.secret_key.get_secret_value()

    async def out(qr: str, **extra: str) -> dict[str, Any]:
        result = await gql(CHECK_OUT, {"input": {"branchId": house, "barcode": copies[0].barcode, "readerQr": qr,
                                                 **extra}}, token=staff)  # fmt: skip
        return dict(result["checkOut"])

    # when / then: a tampered, a forged and an expired code are refused, and nothing is lent
    _body, mac = card["payload"].split(".")
    other_reader = library.reader_card(secret, Reader(id=reader.id + 1)).payload.split(".")[0]
    expired = library.reader_card(secret, reader, now=utc_now() - library.READER_CARD_TTL - timedelta(seconds=1))
    forged = library.reader_card("another-secret-key-of-32-characters!", reader)
    for qr, was_expired in [(f"{other_reader}.{mac}", False), (forged.payload, False), ("garbage", False),
                            (expired.payload, True)]:  # fmt: skip
        refused = await out(qr)
        assert (refused["__typename"], refused["field"], refused["code"], refused["expired"]) == (
            "InvalidReaderQrError", "readerQr", "INVALID_READER_CARD", was_expired,
        )  # fmt: skip
    both = await out(card["payload"], nationalId=net.adult.national_id)
    assert (both["__typename"], both["field"]) == ("ValidationError", "readerQr")
    assert await _count(services, "library_loan") == 0

    # when: the genuine code is scanned
    lent = await out(card["payload"])

    # then
    assert lent["__typename"] == "CheckOutSuccess"
    assert await rows(services, "SELECT reader_id, copy_id FROM library_loan") == [(reader.id, copies[0].id)]
    assert (await gql(CARD, token=staff))["myReader"] is None


def test_signed_tokens_are_bound_to_key_purpose_and_time() -> None:
    token = sign_token("k" * 32, purpose="a", payload="reader:1", expires_at=1000)
    assert verify_token("k" * 32, purpose="a", token=token, now=999) == "reader:1"
    with pytest.raises(ExpiredSignedToken):
        verify_token("k" * 32, purpose="a", token=token, now=1000)
    for key, purpose in [("k" * 32, "b"), ("x" * 32, "a")]:
        with pytest.raises(InvalidSignedToken):
            verify_token(key, purpose=purpose, token=token, now=0)
