"""Library lending through GraphQL: the reader's and the desk's flows, and every refusal as a typed error."""

from __future__ import annotations

from typing import Any

from api.graphql.context import Services
from api.library import service as library
from tests.library.conftest import Network, add_copies, at, checkout, enrol, gid

BECOME = """
mutation Become($input: BecomeReaderInput!) {
  becomeReader(input: $input) {
    __typename
    ... on BecomeReaderSuccess { reader { id category maskedName suspended } }
    ... on UserError { message field code }
  }
}
"""
ADD_BOOK = """
mutation AddBook($input: AddBookInput!) {
  addBook(input: $input) {
    __typename ... on AddBookSuccess { book { id isbn isbn10 title } } ... on UserError { message field code }
  }
}
"""
ADD_COPIES = """
mutation AddCopies($input: AddCopiesInput!) {
  addCopies(input: $input) {
    __typename ... on AddCopiesSuccess { copies { id barcode status homeBranch { code } } }
    ... on UserError { message field code }
  }
}
"""
CHECK_OUT = """
mutation CheckOut($input: CheckOutInput!) {
  checkOut(input: $input) {
    __typename
    ... on CheckOutSuccess { loan { id dueAt overdue book { title } branch { name } copy { status } } }
    ... on LoanLimitReachedError { limit }
    ... on ReaderSuspendedError { until }
    ... on CopyNotAvailableError { status }
    ... on UserError { message field code }
  }
}
"""
RETURN = """
mutation Return($input: ReturnCopyInput!) {
  returnCopy(input: $input) {
    __typename
    ... on ReturnCopySuccess { action daysOverdue suspendedUntil destination { name } copy { status }
                               loan { returnedAt returnBranch { name } } }
    ... on UserError { message field code }
  }
}
"""
RENEW = """
mutation Renew($input: RenewLoanInput!) {
  renewLoan(input: $input) {
    __typename ... on RenewLoanSuccess { loan { renewals dueAt } } ... on RenewalRefusedError { reason }
    ... on UserError { message field code }
  }
}
"""
HOLD = """
mutation Hold($input: PlaceHoldInput!) {
  placeHold(input: $input) {
    __typename ... on PlaceHoldSuccess { hold { id status position ready pickupBranch { name } book { title } } }
    ... on HoldRefusedError { reason } ... on UserError { message field code }
  }
}
"""
CANCEL = """
mutation Cancel($input: CancelHoldInput!) {
  cancelHold(input: $input) { __typename ... on CancelHoldSuccess { hold { status } } ... on UserError { code } }
}
"""
MY_LOANS = """
query Mine($past: Boolean!) {
  myReader { category }
  myLoans(includePast: $past) { id returnedAt renewals book { title } returnBranch { name } }
  myHolds { status position book { title } }
}
"""
SEARCH = """
query Search($q: String!) {
  searchCatalogue(query: $q, first: 10) {
    totalCount
    edges { node { title isbn availableCopies availability { copies available branch { name } } } }
  }
}
"""


def typename(data: dict[str, Any], field: str) -> str:
    return str(data[field]["__typename"])


async def test_a_reader_borrows_renews_and_returns_anywhere_through_graphql(
    services: Services, net: Network, gql
) -> None:
    # given: the resident becomes a reader with their ID card; staff catalogue a book and a copy
    became = await gql(BECOME, {"input": {"nationalId": net.adult.national_id}}, token=net.adult.login.token)  # type: ignore[union-attr]
    added = await gql(
        ADD_BOOK, {"input": {"isbn": "0-306-40615-2", "title": "Measurement", "author": "W. Pleh"}},
        token=net.staff.token,
    )  # fmt: skip
    book_id = added["addBook"]["book"]["id"]
    copies = await gql(
        ADD_COPIES, {"input": {"bookId": book_id, "branchId": gid("Branch", net.house.id), "barcodes": ["ZH-1"]}},
        token=net.staff.token,
    )  # fmt: skip
    # when: borrowed at the book house by ID card, renewed by the reader, returned at the city library
    lent = await gql(
        CHECK_OUT,
        {"input": {"branchId": gid("Branch", net.house.id), "barcode": "ZH-1", "nationalId": net.adult.national_id}},
        token=net.staff.token,
    )
    loan = lent["checkOut"]["loan"]
    renewed = await gql(RENEW, {"input": {"loanId": loan["id"]}}, token=net.adult.login.token)  # type: ignore[union-attr]
    mine_now = await gql(MY_LOANS, {"past": False}, token=net.adult.login.token)  # type: ignore[union-attr]
    returned = await gql(
        RETURN, {"input": {"branchId": gid("Branch", net.city.id), "barcode": "ZH-1"}}, token=net.admin.token
    )
    mine_all = await gql(MY_LOANS, {"past": True}, token=net.adult.login.token)  # type: ignore[union-attr]
    # then
    assert became["becomeReader"]["reader"] == {
        "id": became["becomeReader"]["reader"]["id"], "category": "ADULT", "maskedName": "王*", "suspended": False,
    }  # fmt: skip
    assert added["addBook"]["book"]["isbn"] == "9780306406157"
    assert added["addBook"]["book"]["isbn10"] == "0306406152"
    assert copies["addCopies"]["copies"][0]["homeBranch"] == {"code": "house"}
    assert lent["checkOut"]["__typename"] == "CheckOutSuccess"
    assert loan["book"] == {"title": "Measurement"}
    assert loan["copy"] == {"status": "ON_LOAN"}
    assert loan["overdue"] is False
    assert renewed["renewLoan"]["loan"]["renewals"] == 1
    assert [(m["book"]["title"], m["returnedAt"]) for m in mine_now["myLoans"]] == [("Measurement", None)]
    assert returned["returnCopy"]["action"] == "TRANSIT_HOME"
    assert returned["returnCopy"]["destination"] == {"name": "智汇城书屋"}
    assert returned["returnCopy"]["copy"] == {"status": "IN_TRANSIT"}
    assert returned["returnCopy"]["loan"]["returnBranch"] == {"name": "石家庄市图书馆"}
    assert mine_all["myReader"] == {"category": "ADULT"}
    assert mine_all["myLoans"][0]["returnedAt"] is not None


async def test_every_refusal_is_a_typed_error(services: Services, net: Network, gql, gql_raw) -> None:
    # given: the adult has three books out, the elder one overdue; the child is not a reader
    house = gid("Branch", net.house.id)
    copies = await add_copies(services, net, net.house, 6)
    adult, elder = await enrol(services, net, net.adult), await enrol(services, net, net.elder)
    for copy in copies[:3]:
        await checkout(services, net, net.house, copy.barcode, reader_id=adult.id)
    await checkout(services, net, net.house, copies[3].barcode, reader_id=elder.id, now=at(-31))
    [held_copy] = await add_copies(services, net, net.house, 1, book=net.other_book)
    other_loan = await checkout(services, net, net.house, held_copy.barcode, reader_id=elder.id,
                                now=at(-1))  # fmt: skip
    staff = net.staff.token

    async def out(variables: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = (await gql(CHECK_OUT, {"input": {"branchId": house, **variables}}, token=staff))[
            "checkOut"
        ]
        return result

    # when / then: checkout
    limit = await out({"barcode": copies[4].barcode, "nationalId": net.adult.national_id})
    assert (limit["__typename"], limit["limit"], limit["code"]) == ("LoanLimitReachedError", 3, "LOAN_LIMIT_REACHED")
    suspended = await out({"barcode": copies[4].barcode, "readerId": gid("Reader", elder.id)})
    assert (suspended["__typename"], suspended["until"]) == ("ReaderSuspendedError", None)
    taken = await out({"barcode": copies[0].barcode, "nationalId": net.child.national_id})
    assert (taken["__typename"], taken["status"]) == ("CopyNotAvailableError", "ON_LOAN")
    unknown = await out({"barcode": copies[4].barcode, "nationalId": net.child.national_id})
    assert (unknown["__typename"], unknown["field"]) == ("UnknownReaderError", "nationalId")
    invalid = await out({"barcode": copies[4].barcode, "nationalId": "130105199001011234"})
    assert invalid["__typename"] == "InvalidNationalIdError"
    missing = await out({"barcode": "NO-SUCH-COPY", "readerId": gid("Reader", adult.id)})
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "barcode")

    # renewals, holds, returns, cataloguing
    await gql(HOLD, {"input": {"bookId": gid("Book", net.other_book.id), "pickupBranchId": house}},
              token=net.adult.login.token)  # type: ignore[union-attr]  # fmt: skip
    refused = await gql(RENEW, {"input": {"loanId": gid("Loan", other_loan.id)}}, token=staff)
    assert (refused["renewLoan"]["__typename"], refused["renewLoan"]["reason"]) == ("RenewalRefusedError", "ON_HOLD")
    duplicate = await gql(HOLD, {"input": {"bookId": gid("Book", net.other_book.id), "pickupBranchId": house}},
                          token=net.adult.login.token)  # type: ignore[union-attr]  # fmt: skip
    assert (duplicate["placeHold"]["__typename"], duplicate["placeHold"]["reason"]) == ("HoldRefusedError", "DUPLICATE")
    not_out = await gql(RETURN, {"input": {"branchId": house, "barcode": copies[5].barcode}}, token=staff)
    assert not_out["returnCopy"]["__typename"] == "NotOnLoanError"
    bad_isbn = await gql(ADD_BOOK, {"input": {"isbn": "978-7-02-000220-8", "title": "书", "author": "人"}}, token=staff)
    assert (bad_isbn["addBook"]["__typename"], bad_isbn["addBook"]["code"]) == ("InvalidIsbnError", "INVALID_ISBN")
    dup_isbn = await gql(ADD_BOOK, {"input": {"isbn": net.book.isbn, "title": "书", "author": "人"}}, token=staff)
    assert dup_isbn["addBook"]["__typename"] == "DuplicateIsbnError"
    dup_barcode = await gql(
        ADD_COPIES, {"input": {"bookId": gid("Book", net.book.id), "branchId": house, "barcodes": [copies[0].barcode]}},
        token=staff,
    )  # fmt: skip
    assert dup_barcode["addCopies"]["__typename"] == "DuplicateBarcodeError"
    child = await gql(BECOME, {"input": {"nationalId": net.child.national_id}}, token=staff)
    assert (child["becomeReader"]["__typename"], child["becomeReader"]["field"]) == (
        "GuardianRequiredError", "guardianNationalId",
    )  # fmt: skip

    # not allowed at all: an authorization error, not a payload
    forbidden = await gql_raw(
        ADD_COPIES, {"input": {"bookId": gid("Book", net.book.id), "branchId": house, "barcodes": ["Z-9"]}},
        token=net.adult.login.token,  # type: ignore[union-attr]
    )  # fmt: skip
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert forbidden["data"] is None


async def test_the_catalogue_is_public_and_shows_where_copies_are(services: Services, net: Network, gql) -> None:
    house = await add_copies(services, net, net.house, 2)
    await add_copies(services, net, net.city, 1)
    await checkout(services, net, net.house, house[0].barcode, person=net.adult)
    # when: nobody logged in
    found = await gql(SEARCH, {"q": "曹雪芹"})
    branches = await gql("{ branches { code kind floatPolicy } }")
    # then
    [edge] = found["searchCatalogue"]["edges"]
    assert found["searchCatalogue"]["totalCount"] == 1
    assert edge["node"]["title"] == "红楼梦"
    assert edge["node"]["availableCopies"] == 2
    assert edge["node"]["availability"] == [
        {"copies": 1, "available": 1, "branch": {"name": "石家庄市图书馆"}},
        {"copies": 2, "available": 1, "branch": {"name": "智汇城书屋"}},
    ]
    assert branches["branches"] == [
        {"code": "sjz-city", "kind": "CITY", "floatPolicy": "FLOAT"},
        {"code": "xinhua", "kind": "DISTRICT", "floatPolicy": "RETURN_HOME"},
        {"code": "house", "kind": "BOOK_HOUSE", "floatPolicy": "RETURN_HOME"},
    ]


async def test_loans_and_holds_are_visible_only_to_their_reader(services: Services, net: Network, gql) -> None:
    [copy] = await add_copies(services, net, net.house, 1)
    loan = await checkout(services, net, net.house, copy.barcode, person=net.adult)
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename ... on Loan { renewals } ... on Book { title } } }"
    ids = [gid("Loan", loan.id), gid("Book", net.book.id)]
    mine = await gql(query, {"ids": ids}, token=net.adult.login.token)  # type: ignore[union-attr]
    theirs = await gql(query, {"ids": ids}, token=net.elder.login.token)  # type: ignore[union-attr]
    assert mine["nodes"] == [{"__typename": "Loan", "renewals": 0}, {"__typename": "Book", "title": "红楼梦"}]
    assert theirs["nodes"] == [None, {"__typename": "Book", "title": "红楼梦"}]


async def test_a_hold_is_placed_and_cancelled_by_the_reader(services: Services, net: Network, gql) -> None:
    await enrol(services, net, net.adult)
    token = net.adult.login.token  # type: ignore[union-attr]
    placed = await gql(HOLD, {"input": {"bookId": gid("Book", net.book.id), "pickupBranchId": gid("Branch", net.city.id)}},
                       token=token)  # fmt: skip
    mine = await gql(MY_LOANS, {"past": False}, token=token)
    cancelled = await gql(CANCEL, {"input": {"holdId": placed["placeHold"]["hold"]["id"]}}, token=token)
    again = await gql(CANCEL, {"input": {"holdId": placed["placeHold"]["hold"]["id"]}}, token=token)
    assert placed["placeHold"]["hold"] == {
        "id": placed["placeHold"]["hold"]["id"], "status": "WAITING", "position": 1, "ready": False,
        "pickupBranch": {"name": "石家庄市图书馆"}, "book": {"title": "红楼梦"},
    }  # fmt: skip
    assert mine["myHolds"] == [{"status": "WAITING", "position": 1, "book": {"title": "红楼梦"}}]
    assert cancelled["cancelHold"] == {"__typename": "CancelHoldSuccess", "hold": {"status": "CANCELLED"}}
    assert again["cancelHold"] == {"__typename": "ConflictError", "code": "CONFLICT"}


async def test_import_and_figures_through_graphql(services: Services, net: Network, gql, gql_raw) -> None:
    csv_text = "title,author,isbn,barcode\n边城,沈从文,9780306406157,BC-1\n坏,人,123,BC-2\n"
    imported = await gql(
        "mutation($input: ImportCatalogueInput!) { importCatalogue(input: $input) { __typename "
        "... on ImportCatalogueSuccess { rows booksCreated copiesCreated errors { line field message } } } }",
        {"input": {"branchId": gid("Branch", net.house.id), "csv": csv_text}},
        token=net.staff.token,
    )
    await checkout(services, net, net.house, "BC-1", person=net.adult)
    query = (
        'query($b: ID) { libraryFigures(branchId: $b, from: "2020-01-01T00:00:00+08:00", '
        'to: "2100-01-01T00:00:00+08:00") { loans overdueRate copies topTitles { title loans } '
        "perBranchMonth { loans branch { code } } } }"
    )
    here = await gql(query, {"b": gid("Branch", net.house.id)}, token=net.staff.token)
    denied = await gql_raw(query, {"b": gid("Branch", net.city.id)}, token=net.staff.token)
    assert imported["importCatalogue"] == {
        "__typename": "ImportCatalogueSuccess", "rows": 2, "booksCreated": 1, "copiesCreated": 1,
        "errors": [{"line": 3, "field": "isbn", "message": "An ISBN has 10 or 13 digits."}],
    }  # fmt: skip
    assert here["libraryFigures"]["loans"] == 1
    assert here["libraryFigures"]["overdueRate"] == 0.0
    assert here["libraryFigures"]["topTitles"] == [{"title": "边城", "loans": 1}]
    assert here["libraryFigures"]["perBranchMonth"][0]["branch"] == {"code": "house"}
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert library.MAX_IMPORT_ROWS == 5000
