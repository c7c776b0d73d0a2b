"""Library queries and mutations: the catalogue, the network, readers, checkout, return, renewals, holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from strawberry import relay

from api.core.database import UnitOfWork
from api.core.errors import DomainError
from api.graphql.context import Info
from api.graphql.errors import (
    ConflictError,
    GuardianRequiredError,
    InvalidNationalIdError,
    NotFoundError,
    UserError,
    ValidationError,
    bad_input,
    to_user_error,
)
from api.graphql.library.types import Book, Branch, Copy, Hold, Loan, Reader, load_branch
from api.graphql.pagination import Connection, decode_id, page_args, paged
from api.graphql.registry.types import AfterArg, FirstArg
from api.library import figures as library_figures
from api.library import models
from api.library import service as library
from api.library.isbn import InvalidIsbn
from api.registry.service import GuardianRequired
from api.registry.validation import InvalidNationalId

InputArg = strawberry.argument(description="The mutation's input.")
T = TypeVar("T")


# -- errors -------------------------------------------------------------------------------------


@strawberry.type(description="The reader has as many books out as the loan rule allows.")
class LoanLimitReachedError(UserError):
    limit: int = strawberry.field(description="How many books the rule allows at a time.")


@strawberry.type(description="The reader may not borrow now: suspended after an overdue return, or books are overdue.")
class ReaderSuspendedError(UserError):
    until: dt.datetime | None = strawberry.field(
        description="Suspended until then; null when overdue books must come back first."
    )


@strawberry.type(description="The copy cannot be lent now.")
class CopyNotAvailableError(UserError):
    status: models.CopyStatus = strawberry.field(description="Where the copy is.")


@strawberry.type(description="The loan cannot be renewed.")
class RenewalRefusedError(UserError):
    reason: library.RenewalRefusedReason = strawberry.field(description="Why.")


@strawberry.type(description="No reader (or registered resident) matches this ID number or reader id.")
class UnknownReaderError(UserError):
    pass


@strawberry.type(description="The ISBN is not a valid ISBN-10 or ISBN-13.")
class InvalidIsbnError(UserError):
    pass


@strawberry.type(description="The hold cannot be placed.")
class HoldRefusedError(UserError):
    reason: library.HoldRefusedReason = strawberry.field(description="Why.")


@strawberry.type(description="The copy is neither on loan nor in transit: there is nothing to check in.")
class NotOnLoanError(UserError):
    pass


@strawberry.type(description="A barcode is already in use (or given twice).")
class DuplicateBarcodeError(UserError):
    pass


@strawberry.type(description="This ISBN is in the catalogue already.")
class DuplicateIsbnError(UserError):
    pass


@strawberry.type(description="The reader QR code is forged, altered or expired.")
class InvalidReaderQrError(UserError):
    expired: bool = strawberry.field(description="Genuine but expired: the reader should show a fresh code.")


ERROR_TYPES: list[type[UserError]] = [
    InvalidReaderQrError, LoanLimitReachedError, ReaderSuspendedError, CopyNotAvailableError, RenewalRefusedError, UnknownReaderError,
    InvalidIsbnError, HoldRefusedError, NotOnLoanError, DuplicateBarcodeError, DuplicateIsbnError,
]  # fmt: skip
_COMMON: list[type[UserError]] = [
    NotFoundError, ValidationError, ConflictError, InvalidNationalIdError, GuardianRequiredError,
]  # fmt: skip


def library_error(exc: DomainError) -> Any:
    """The GraphQL error for a library DomainError (authorization failures raise)."""
    common: dict[str, Any] = {"message": exc.message, "field": exc.field, "code": exc.code}
    if isinstance(exc, library.LoanLimitReached):
        return LoanLimitReachedError(**common, limit=exc.limit)
    if isinstance(exc, library.ReaderSuspended):
        return ReaderSuspendedError(**common, until=exc.until)
    if isinstance(exc, library.CopyNotAvailable):
        return CopyNotAvailableError(**common, status=models.CopyStatus(exc.status))
    if isinstance(exc, library.RenewalRefused):
        return RenewalRefusedError(**common, reason=exc.reason)
    if isinstance(exc, library.InvalidReaderCard):
        return InvalidReaderQrError(**common, expired=exc.expired)
    if isinstance(exc, library.HoldRefused):
        return HoldRefusedError(**common, reason=exc.reason)
    simple: list[tuple[type[DomainError], type[UserError]]] = [
        (library.UnknownReader, UnknownReaderError),
        (InvalidIsbn, InvalidIsbnError),
        (library.NotOnLoan, NotOnLoanError),
        (library.DuplicateBarcode, DuplicateBarcodeError),
        (library.DuplicateIsbn, DuplicateIsbnError),
        (InvalidNationalId, InvalidNationalIdError),
        (GuardianRequired, GuardianRequiredError),
    ]
    for domain, gql in simple:
        if isinstance(exc, domain):
            return gql(**common)
    return to_user_error(exc, _COMMON)


async def _write(info: Info, op: Callable[[UnitOfWork], Awaitable[T]], done: Callable[[T], Any]) -> Any:
    """Run `op` in a unit of work; the success payload, or the typed error (nothing written)."""
    try:
        async with info.context.db.unit_of_work(info.context.jobs) as uow:
            result = await op(uow)
    except DomainError as exc:
        return library_error(exc)
    return done(result)


def _id(gid: relay.GlobalID | None, type_name: str) -> int | None:
    return decode_id(gid, type_name) if gid is not None else None


# -- inputs and payloads ------------------------------------------------------------------------


@strawberry.input(description="Become a reader with the national ID card (the card is the reader card).")
class BecomeReaderInput:
    national_id: str = strawberry.field(description="The 18-character ID number (looked up by its keyed hash).")
    guardian_national_id: str | None = strawberry.field(
        default=None, description="Staff: the guardian's ID number, for a child under 14 whose guardian is present."
    )
    branch_id: relay.GlobalID | None = strawberry.field(default=None, description="Where the reader registers.")


@strawberry.type(description="The reader (new, or the existing one).")
class BecomeReaderSuccess:
    reader: Reader = strawberry.field(description="The reader.")


BecomeReaderResult = Annotated[
    BecomeReaderSuccess | UnknownReaderError | InvalidNationalIdError | GuardianRequiredError | NotFoundError
    | ValidationError,
    strawberry.union("BecomeReaderResult", description="The reader, or why not."),
]  # fmt: skip


@strawberry.input(description="Catalogue a title by its ISBN (library staff).")
class AddBookInput:
    isbn: str = strawberry.field(description="ISBN-10 or ISBN-13, with or without hyphens.")
    title: str = strawberry.field(description="Title (at most 300 characters).")
    author: str = strawberry.field(description="Author(s) (at most 200 characters).")
    publisher: str | None = strawberry.field(default=None, description="Publisher.")
    year: int | None = strawberry.field(default=None, description="Year of publication.")
    subjects: list[str] | None = strawberry.field(default=None, description="Subjects (at most 20).")


@strawberry.type(description="The title was catalogued.")
class AddBookSuccess:
    book: Book = strawberry.field(description="The new book.")


AddBookResult = Annotated[
    AddBookSuccess | InvalidIsbnError | DuplicateIsbnError | ValidationError,
    strawberry.union("AddBookResult", description="The book, or why it was not added."),
]


@strawberry.input(description="Add copies of a book to a branch (its staff).")
class AddCopiesInput:
    book_id: relay.GlobalID = strawberry.field(description="The book.")
    branch_id: relay.GlobalID = strawberry.field(description="Their home branch.")
    barcodes: list[str] = strawberry.field(description="One barcode per copy (1 to 500).")
    item_type: str = strawberry.field(default="book", description="Item type for loan rules.")


@strawberry.type(description="The copies were added.")
class AddCopiesSuccess:
    copies: list[Copy] = strawberry.field(description="The new copies.")


AddCopiesResult = Annotated[
    AddCopiesSuccess | DuplicateBarcodeError | NotFoundError | ValidationError,
    strawberry.union("AddCopiesResult", description="The copies, or why none was added."),
]


@strawberry.input(description="Import a branch's books from CSV text (its staff).")
class ImportCatalogueInput:
    branch_id: relay.GlobalID = strawberry.field(description="The branch the copies belong to.")
    csv: str = strawberry.field(
        description="CSV with a header: title, author, isbn, barcode; optional publisher, year, subjects "
        "(separated by ;), item_type. At most 5,000 rows and 2,000,000 characters."
    )


@strawberry.type(description="A CSV row that was not imported.")
class ImportRowError:
    line: int = strawberry.field(description="Line number in the CSV (1 is the header).")
    field: str = strawberry.field(description="The column at fault.")
    message: str = strawberry.field(description="What is wrong.")


@strawberry.type(description="What the import did; bad rows are listed and nothing of them was written.")
class ImportCatalogueSuccess:
    rows: int = strawberry.field(description="Data rows read.")
    books_created: int = strawberry.field(description="New titles catalogued.")
    copies_created: int = strawberry.field(description="Copies added.")
    errors: list[ImportRowError] = strawberry.field(description="Rows not imported, with why.")


ImportCatalogueResult = Annotated[
    ImportCatalogueSuccess | DuplicateBarcodeError | NotFoundError | ValidationError,
    strawberry.union("ImportCatalogueResult", description="The import report, or why nothing was imported."),
]


@strawberry.input(
    description="Lend a copy: staff give the reader's ID number or reader id; readers lend to themselves."
)
class CheckOutInput:
    branch_id: relay.GlobalID = strawberry.field(description="Where the copy is lent.")
    barcode: str = strawberry.field(description="The copy's barcode.")
    national_id: str | None = strawberry.field(default=None, description="The reader's ID number (the reader card).")
    reader_id: relay.GlobalID | None = strawberry.field(default=None, description="The reader (staff lookup).")
    reader_qr: str | None = strawberry.field(
        default=None, description="The payload of the reader's QR code (Reader.readerCard), instead of the ID number."
    )


@strawberry.type(description="The copy is lent.")
class CheckOutSuccess:
    loan: Loan = strawberry.field(description="The new loan, with its due date.")


CheckOutResult = Annotated[
    CheckOutSuccess | LoanLimitReachedError | ReaderSuspendedError | CopyNotAvailableError | UnknownReaderError
    | InvalidNationalIdError | InvalidReaderQrError | NotFoundError | ValidationError,
    strawberry.union("CheckOutResult", description="The loan, or why the copy was not lent."),
]  # fmt: skip


@strawberry.input(description="Check a copy in at any branch of the network.")
class ReturnCopyInput:
    branch_id: relay.GlobalID = strawberry.field(description="Where it is checked in.")
    barcode: str = strawberry.field(description="The copy's barcode.")


@strawberry.type(description="The copy is checked in; `action` says where it goes now.")
class ReturnCopySuccess:
    copy: Copy = strawberry.field(description="The copy after check-in.")
    loan: Loan | None = strawberry.field(description="The loan it closed; null when a copy in transit arrived.")
    action: library.ReturnAction = strawberry.field(description="Shelve it, send it home, or to a hold's pickup.")
    days_overdue: int = strawberry.field(description="Whole days late.")
    suspended_until: dt.datetime | None = strawberry.field(
        description="The reader's borrowing is suspended until then, for a late return."
    )
    destination_id: strawberry.Private[int]

    @strawberry.field(description="The branch the copy goes to (here, when shelved here).")
    async def destination(self, info: Info) -> Branch | None:
        return await load_branch(info, self.destination_id)


ReturnCopyResult = Annotated[
    ReturnCopySuccess | NotOnLoanError | NotFoundError | ValidationError,
    strawberry.union("ReturnCopyResult", description="Where the copy goes, or why it was not checked in."),
]


@strawberry.input(description="Renew a loan.")
class RenewLoanInput:
    loan_id: relay.GlobalID = strawberry.field(description="The loan.")


@strawberry.type(description="The loan is renewed.")
class RenewLoanSuccess:
    loan: Loan = strawberry.field(description="The loan with its new due date.")


RenewLoanResult = Annotated[
    RenewLoanSuccess | RenewalRefusedError | ReaderSuspendedError | NotFoundError,
    strawberry.union("RenewLoanResult", description="The renewed loan, or why not."),
]


@strawberry.input(description="Hold a title for pickup at a branch.")
class PlaceHoldInput:
    book_id: relay.GlobalID = strawberry.field(description="The book.")
    pickup_branch_id: relay.GlobalID = strawberry.field(description="Where to collect it.")
    reader_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Staff or a guardian: for this reader (default: yourself)."
    )


@strawberry.type(description="The hold is placed.")
class PlaceHoldSuccess:
    hold: Hold = strawberry.field(description="The hold (trapped at once when a copy is on the pickup shelf).")


PlaceHoldResult = Annotated[
    PlaceHoldSuccess | HoldRefusedError | ReaderSuspendedError | UnknownReaderError | NotFoundError,
    strawberry.union("PlaceHoldResult", description="The hold, or why not."),
]


@strawberry.input(description="Cancel a hold.")
class CancelHoldInput:
    hold_id: relay.GlobalID = strawberry.field(description="The hold.")


@strawberry.type(description="The hold is cancelled; a copy set aside for it moves on.")
class CancelHoldSuccess:
    hold: Hold = strawberry.field(description="The cancelled hold.")


CancelHoldResult = Annotated[
    CancelHoldSuccess | NotFoundError | ConflictError,
    strawberry.union("CancelHoldResult", description="The hold, or why it could not be cancelled."),
]


@strawberry.input(
    description="Add a branch: district admins for city and district libraries, community staff "
    "for their community's book house."
)
class CreateBranchInput:
    code: str = strawberry.field(description="Unique code: 2–50 lowercase letters, digits, - or _.")
    name: str = strawberry.field(description="Name (at most 100 characters).")
    kind: models.BranchKind = strawberry.field(description="City library, district library or book house.")
    community_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The community a book house belongs to (required for book houses)."
    )
    district: str | None = strawberry.field(default=None, description="The district (区) a district library serves.")
    float_policy: models.FloatPolicy = strawberry.field(
        default=models.FloatPolicy.FLOAT, description="Copies returned elsewhere float or go home."
    )
    address: str | None = strawberry.field(default=None, description="Where it is.")


@strawberry.type(description="The branch was added.")
class CreateBranchSuccess:
    branch: Branch = strawberry.field(description="The new branch.")


CreateBranchResult = Annotated[
    CreateBranchSuccess | ConflictError | ValidationError,
    strawberry.union("CreateBranchResult", description="The branch, or why it was not added."),
]


@strawberry.input(description="Set whether a branch's copies float or return home (its staff).")
class SetBranchPolicyInput:
    branch_id: relay.GlobalID = strawberry.field(description="The branch.")
    float_policy: models.FloatPolicy = strawberry.field(description="Float, or return home.")


@strawberry.type(description="The policy is set.")
class SetBranchPolicySuccess:
    branch: Branch = strawberry.field(description="The branch with its policy.")


SetBranchPolicyResult = Annotated[
    SetBranchPolicySuccess | NotFoundError,
    strawberry.union("SetBranchPolicyResult", description="The branch, or why not."),
]


@strawberry.input(description="Create or update the loan rule for a branch × reader category × item type (its staff).")
class SetLoanRuleInput:
    branch_id: relay.GlobalID = strawberry.field(description="The branch.")
    reader_category: models.ReaderCategory | None = strawberry.field(
        default=None, description="For this reader category; null for any."
    )
    item_type: str | None = strawberry.field(default=None, description="For this item type, e.g. book; null for any.")
    max_loans: int = strawberry.field(description="Books out at a time, 1–20.")
    loan_days: int = strawberry.field(description="Loan period in days, 1–365.")
    renewals: int = strawberry.field(default=1, description="Renewals allowed, 0–20.")
    renewal_days: int = strawberry.field(default=30, description="Days each renewal adds, 1–365.")
    holds_allowed: int = strawberry.field(default=3, description="Open holds a reader may have, 0–20 (0: no holds).")
    suspension_days_per_overdue_day: int = strawberry.field(
        default=1, description="Days of suspension per day a return is late, 0–30."
    )


@strawberry.type(description="A loan rule (the most specific matching rule applies).")
class LoanRule:
    reader_category: models.ReaderCategory | None = strawberry.field(description="Reader category; null for any.")
    item_type: str | None = strawberry.field(description="Item type; null for any.")
    max_loans: int = strawberry.field(description="Books out at a time.")
    loan_days: int = strawberry.field(description="Loan period in days.")
    renewals: int = strawberry.field(description="Renewals allowed.")
    renewal_days: int = strawberry.field(description="Days each renewal adds.")
    holds_allowed: int = strawberry.field(description="Open holds a reader may have.")
    suspension_days_per_overdue_day: int = strawberry.field(description="Suspension days per overdue day.")
    branch_id: strawberry.Private[int | None]

    @strawberry.field(description="The branch; null for a network-wide rule.")
    async def branch(self, info: Info) -> Branch | None:
        return await load_branch(info, self.branch_id) if self.branch_id is not None else None

    @classmethod
    def from_model(cls, m: models.LoanRule) -> LoanRule:
        return cls(
            reader_category=models.ReaderCategory(m.reader_category) if m.reader_category else None,
            item_type=m.item_type, max_loans=m.max_loans, loan_days=m.loan_days, renewals=m.renewals,
            renewal_days=m.renewal_days, holds_allowed=m.holds_allowed,
            suspension_days_per_overdue_day=m.suspension_days_per_overdue_day, branch_id=m.branch_id,
        )  # fmt: skip


@strawberry.type(description="The rule is saved.")
class SetLoanRuleSuccess:
    rule: LoanRule = strawberry.field(description="The rule as stored.")


SetLoanRuleResult = Annotated[
    SetLoanRuleSuccess | NotFoundError | ValidationError,
    strawberry.union("SetLoanRuleResult", description="The rule, or why it was not saved."),
]


@strawberry.input(description="Mark days a branch is closed; a loan due then is due the next open day (its staff).")
class AddClosedDaysInput:
    branch_id: relay.GlobalID = strawberry.field(description="The branch.")
    days: list[dt.date] = strawberry.field(description="The closed days (1 to 366; days marked already are skipped).")
    note: str | None = strawberry.field(default=None, description="Why, e.g. 国庆节 (at most 100 characters).")


@strawberry.type(description="The days are marked closed.")
class AddClosedDaysSuccess:
    added: int = strawberry.field(description="Days newly marked (not counting those marked before).")


AddClosedDaysResult = Annotated[
    AddClosedDaysSuccess | NotFoundError | ValidationError,
    strawberry.union("AddClosedDaysResult", description="How many days were added, or why none."),
]


@strawberry.input(description="Record a copy as lost (staff of the branch it is at now).")
class MarkCopyLostInput:
    barcode: str = strawberry.field(description="The copy's barcode.")


@strawberry.type(description="The copy is recorded as lost.")
class MarkCopyLostSuccess:
    copy: Copy = strawberry.field(description="The copy, now lost.")
    loan: Loan | None = strawberry.field(description="The active loan it closed (the copy never came back); or null.")
    hold: Hold | None = strawberry.field(
        description="The hold it was set aside for: back in the queue, or set aside again from a copy on the "
        "pickup branch's shelf; or null."
    )


MarkCopyLostResult = Annotated[
    MarkCopyLostSuccess | NotFoundError | ConflictError | ValidationError,
    strawberry.union("MarkCopyLostResult", description="The lost copy, or why not."),
]


# -- figures ------------------------------------------------------------------------------------


@strawberry.type(description="Loans made at one branch in one month (China time).")
class MonthLoans:
    month: str = strawberry.field(description="YYYY-MM.")
    loans: int = strawberry.field(description="Loans made.")
    branch_name: str = strawberry.field(description="The branch's name.")
    branch_id: strawberry.Private[int]

    @strawberry.field(description="The branch.")
    async def branch(self, info: Info) -> Branch | None:
        return await load_branch(info, self.branch_id)


@strawberry.type(description="A title and how often it was borrowed.")
class TitleLoans:
    title: str = strawberry.field(description="Title.")
    author: str = strawberry.field(description="Author.")
    loans: int = strawberry.field(description="Loans in the period.")
    book_id: strawberry.Private[int]

    @strawberry.field(description="The book.")
    async def book(self, info: Info) -> Book | None:
        nodes = await Book.resolve_nodes(info=info, node_ids=[str(self.book_id)])
        node: Book | None = nodes[0]
        return node


@strawberry.type(description="Circulation figures for a period, at one branch or in the whole network.")
class LibraryFigures:
    since: dt.datetime = strawberry.field(description="Start of the period.")
    until: dt.datetime = strawberry.field(description="End of the period (exclusive).")
    loans: int = strawberry.field(description="Loans made in the period (anonymised ones included).")
    overdue_loans: int = strawberry.field(description="Of those, returned late or out past due now.")
    overdue_rate: float | None = strawberry.field(description="overdueLoans / loans.")
    per_branch_month: list[MonthLoans] = strawberry.field(description="Loans per branch and month.")
    top_titles: list[TitleLoans] = strawberry.field(description="The most borrowed titles (at most 10).")
    copies: int = strawberry.field(description="Copies (not lost) of the branch, or of the network.")
    copies_away_from_home: int = strawberry.field(description="Of those, copies at another branch now (floated).")
    copies_from_elsewhere: int = strawberry.field(description="Copies at the branch now whose home is elsewhere.")


# -- queries and mutations ----------------------------------------------------------------------


@strawberry.type
class LibraryQuery:
    @strawberry.field(description="Every branch of the 通借通还 network: borrow at any, return at any.")
    async def branches(self, info: Info) -> list[Branch]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.Branch).where(models.Branch.active.is_(True)).order_by(models.Branch.id)
                )
            ).all()
        return [Branch.from_model(r) for r in rows]

    @strawberry.field(description="Search the catalogue by title, author or ISBN; each book shows its availability.")
    async def search_catalogue(
        self,
        info: Info,
        query: Annotated[str, strawberry.argument(description="Words of the title or author, or an ISBN.")],
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Book]:
        if len(query) > 200:
            raise bad_input("At most 200 characters.")
        return await paged(info.context.db, library.catalogue_query(query), models.Book.id, page_args(first, after),
                           Book.from_model)  # fmt: skip

    @strawberry.field(description="The viewer's reader record; null when they are not a reader.")
    async def my_reader(self, info: Info) -> Reader | None:
        async with info.context.db.read_session() as session:
            reader = await library.reader_of(session, info.context.viewer)
        return Reader.from_model(reader) if reader else None

    @strawberry.field(description="The viewer's loans: current first (by due date), then past ones if asked.")
    async def my_loans(
        self,
        info: Info,
        include_past: Annotated[
            bool, strawberry.argument(description="Also returned loans (newest first, at most 100).")
        ] = False,
    ) -> list[Loan]:
        viewer = info.context.viewer
        if not viewer.is_authenticated:
            raise GraphQLError("Log in first.", extensions={"code": "UNAUTHENTICATED"})
        async with info.context.db.read_session() as session:
            reader = await library.reader_of(session, viewer)
            if reader is None:
                return []
            rows = await library.loans_of(session, reader_id=reader.id, include_past=include_past)
        return [Loan.from_model(r) for r in rows]

    @strawberry.field(description="The viewer's open holds (waiting or set aside), oldest first.")
    async def my_holds(self, info: Info) -> list[Hold]:
        viewer = info.context.viewer
        if not viewer.is_authenticated:
            raise GraphQLError("Log in first.", extensions={"code": "UNAUTHENTICATED"})
        async with info.context.db.read_session() as session:
            reader = await library.reader_of(session, viewer)
            if reader is None:
                return []
            rows = (
                await session.scalars(
                    select(models.Hold)
                    .where(models.Hold.reader_id == reader.id, models.Hold.status.in_(library.OPEN_HOLD_STATUSES))
                    .order_by(models.Hold.id)
                )
            ).all()
        return [Hold.from_model(r) for r in rows]

    @strawberry.field(description="Circulation figures for a branch (its staff) or the network (library staff).")
    async def library_figures(
        self,
        info: Info,
        from_: Annotated[dt.datetime, strawberry.argument(name="from", description="Start (with a time zone).")],
        to: Annotated[dt.datetime, strawberry.argument(description="End, exclusive (with a time zone).")],
        branch_id: Annotated[
            relay.GlobalID | None, strawberry.argument(description="One branch; the whole network when null.")
        ] = None,
    ) -> LibraryFigures:
        try:
            async with info.context.db.read_session() as session:
                f = await library_figures.figures(
                    session, viewer=info.context.viewer, branch_id=_id(branch_id, "Branch"), since=from_, until=to
                )
        except DomainError as exc:
            raise GraphQLError(exc.message, extensions={"code": exc.code}) from exc
        return LibraryFigures(
            since=f.since, until=f.until, loans=f.loans, overdue_loans=f.overdue_loans, overdue_rate=f.overdue_rate,
            per_branch_month=[MonthLoans(month=m.month, loans=m.loans, branch_name=m.branch_name,
                                         branch_id=m.branch_id) for m in f.per_branch_month],
            top_titles=[TitleLoans(title=t.title, author=t.author, loans=t.loans, book_id=t.book_id)
                        for t in f.top_titles],
            copies=f.copies, copies_away_from_home=f.copies_away_from_home,
            copies_from_elsewhere=f.copies_from_elsewhere,
        )  # fmt: skip


@strawberry.type
class LibraryMutation:
    @strawberry.mutation(description="Become a reader with the national ID card (children with their guardian).")
    async def become_reader(self, info: Info, input: Annotated[BecomeReaderInput, InputArg]) -> BecomeReaderResult:
        return await _write(
            info,
            lambda uow: library.become_reader(
                uow, viewer=info.context.viewer, cipher=info.context.cipher, national_id=input.national_id,
                guardian_national_id=input.guardian_national_id, branch_id=_id(input.branch_id, "Branch"),
            ),
            lambda reader: BecomeReaderSuccess(reader=Reader.from_model(reader)),
        )  # fmt: skip

    @strawberry.mutation(description="Catalogue a title by ISBN (library staff).")
    async def add_book(self, info: Info, input: Annotated[AddBookInput, InputArg]) -> AddBookResult:
        draft = library.BookDraft(isbn=input.isbn, title=input.title, author=input.author, publisher=input.publisher,
                                  year=input.year, subjects=tuple(input.subjects or ()))  # fmt: skip
        return await _write(
            info,
            lambda uow: library.add_book(uow, viewer=info.context.viewer, draft=draft, today=info.context.today),
            lambda book: AddBookSuccess(book=Book.from_model(book)),
        )

    @strawberry.mutation(description="Add copies of a book to a branch by barcode (its staff).")
    async def add_copies(self, info: Info, input: Annotated[AddCopiesInput, InputArg]) -> AddCopiesResult:
        if len(input.barcodes) > library.MAX_COPIES_PER_CALL:
            raise bad_input(f"At most {library.MAX_COPIES_PER_CALL} barcodes.")
        return await _write(
            info,
            lambda uow: library.add_copies(
                uow, viewer=info.context.viewer, book_id=decode_id(input.book_id, "Book"),
                branch_id=decode_id(input.branch_id, "Branch"), barcodes=input.barcodes, item_type=input.item_type,
            ),
            lambda copies: AddCopiesSuccess(copies=[Copy.from_model(c) for c in copies]),
        )  # fmt: skip

    @strawberry.mutation(description="Import a branch's books and copies from CSV (its staff); bad rows are listed.")
    async def import_catalogue(
        self, info: Info, input: Annotated[ImportCatalogueInput, InputArg]
    ) -> ImportCatalogueResult:
        if len(input.csv) > library.MAX_IMPORT_CHARS:
            raise bad_input(f"At most {library.MAX_IMPORT_CHARS:,} characters of CSV.")
        return await _write(
            info,
            lambda uow: library.import_catalogue(
                uow, viewer=info.context.viewer, branch_id=decode_id(input.branch_id, "Branch"), csv_text=input.csv
            ),
            lambda r: ImportCatalogueSuccess(
                rows=r.rows, books_created=r.books_created, copies_created=r.copies_created,
                errors=[ImportRowError(line=e.line, field=e.field, message=e.message) for e in r.errors],
            ),
        )  # fmt: skip

    @strawberry.mutation(description="Lend a copy at a branch (通借通还: borrow here, return anywhere).")
    async def check_out(self, info: Info, input: Annotated[CheckOutInput, InputArg]) -> CheckOutResult:
        return await _write(
            info,
            lambda uow: library.check_out(
                uow, viewer=info.context.viewer, cipher=info.context.cipher,
                branch_id=decode_id(input.branch_id, "Branch"), barcode=input.barcode,
                reader_id=_id(input.reader_id, "Reader"), national_id=input.national_id, reader_qr=input.reader_qr,
                card_key=info.context.services.settings.secret_key.get_secret_value(),
            ),
            lambda loan: CheckOutSuccess(loan=Loan.from_model(loan)),
        )  # fmt: skip

    @strawberry.mutation(description="Check a copy in at any branch; it floats, goes home, or to a hold's pickup.")
    async def return_copy(self, info: Info, input: Annotated[ReturnCopyInput, InputArg]) -> ReturnCopyResult:
        return await _write(
            info,
            lambda uow: library.return_copy(
                uow, viewer=info.context.viewer, branch_id=decode_id(input.branch_id, "Branch"), barcode=input.barcode
            ),
            lambda out: ReturnCopySuccess(
                copy=Copy.from_model(out.copy), loan=Loan.from_model(out.loan) if out.loan else None,
                action=out.placement.action, days_overdue=out.days_overdue, suspended_until=out.suspended_until,
                destination_id=out.placement.destination_branch_id,
            ),
        )  # fmt: skip

    @strawberry.mutation(description="Renew a loan (not when someone else holds the title).")
    async def renew_loan(self, info: Info, input: Annotated[RenewLoanInput, InputArg]) -> RenewLoanResult:
        return await _write(
            info,
            lambda uow: library.renew(uow, viewer=info.context.viewer, loan_id=decode_id(input.loan_id, "Loan")),
            lambda loan: RenewLoanSuccess(loan=Loan.from_model(loan)),
        )

    @strawberry.mutation(description="Hold a title for pickup at a branch; the first copy returned is set aside.")
    async def place_hold(self, info: Info, input: Annotated[PlaceHoldInput, InputArg]) -> PlaceHoldResult:
        return await _write(
            info,
            lambda uow: library.place_hold(
                uow, viewer=info.context.viewer, book_id=decode_id(input.book_id, "Book"),
                pickup_branch_id=decode_id(input.pickup_branch_id, "Branch"),
                reader_id=_id(input.reader_id, "Reader"),
            ),
            lambda hold: PlaceHoldSuccess(hold=Hold.from_model(hold)),
        )  # fmt: skip

    @strawberry.mutation(description="Add a library branch to the network.")
    async def create_branch(self, info: Info, input: Annotated[CreateBranchInput, InputArg]) -> CreateBranchResult:
        draft = library.BranchDraft(
            code=input.code, name=input.name, kind=input.kind, community_id=_id(input.community_id, "Community"),
            district=input.district.strip() or None if input.district else None, float_policy=input.float_policy,
            address=input.address.strip() or None if input.address else None,
        )  # fmt: skip
        return await _write(
            info,
            lambda uow: library.create_branch(uow, viewer=info.context.viewer, draft=draft),
            lambda branch: CreateBranchSuccess(branch=Branch.from_model(branch)),
        )

    @strawberry.mutation(description="Set whether a branch's copies float or return home.")
    async def set_branch_policy(
        self, info: Info, input: Annotated[SetBranchPolicyInput, InputArg]
    ) -> SetBranchPolicyResult:
        return await _write(
            info,
            lambda uow: library.set_branch_policy(
                uow, viewer=info.context.viewer, branch_id=decode_id(input.branch_id, "Branch"),
                policy=input.float_policy,
            ),
            lambda branch: SetBranchPolicySuccess(branch=Branch.from_model(branch)),
        )  # fmt: skip

    @strawberry.mutation(description="Create or update a branch's loan rule; the most specific matching rule wins.")
    async def set_loan_rule(self, info: Info, input: Annotated[SetLoanRuleInput, InputArg]) -> SetLoanRuleResult:
        values = library.RuleValues(
            max_loans=input.max_loans, loan_days=input.loan_days, renewals=input.renewals,
            renewal_days=input.renewal_days, holds_allowed=input.holds_allowed,
            suspension_days_per_overdue_day=input.suspension_days_per_overdue_day,
        )  # fmt: skip
        return await _write(
            info,
            lambda uow: library.set_loan_rule(
                uow, viewer=info.context.viewer, branch_id=decode_id(input.branch_id, "Branch"),
                reader_category=input.reader_category, item_type=input.item_type, values=values,
            ),
            lambda rule: SetLoanRuleSuccess(rule=LoanRule.from_model(rule)),
        )  # fmt: skip

    @strawberry.mutation(
        description="Mark days a branch is closed; due dates falling on them move to the next open day."
    )
    async def add_closed_days(self, info: Info, input: Annotated[AddClosedDaysInput, InputArg]) -> AddClosedDaysResult:
        if len(input.days) > library.MAX_CLOSED_DAYS_PER_CALL:
            raise bad_input(f"At most {library.MAX_CLOSED_DAYS_PER_CALL} days.")
        return await _write(
            info,
            lambda uow: library.add_closed_days(
                uow, viewer=info.context.viewer, branch_id=decode_id(input.branch_id, "Branch"), days=input.days,
                note=input.note,
            ),
            lambda added: AddClosedDaysSuccess(added=added),
        )  # fmt: skip

    @strawberry.mutation(description="Record a copy as lost; its active loan is closed and its hold requeued.")
    async def mark_copy_lost(self, info: Info, input: Annotated[MarkCopyLostInput, InputArg]) -> MarkCopyLostResult:
        return await _write(
            info,
            lambda uow: library.mark_copy_lost(uow, viewer=info.context.viewer, barcode=input.barcode),
            lambda out: MarkCopyLostSuccess(
                copy=Copy.from_model(out.copy), loan=Loan.from_model(out.loan) if out.loan else None,
                hold=Hold.from_model(out.hold) if out.hold else None,
            ),
        )  # fmt: skip

    @strawberry.mutation(description="Cancel a hold.")
    async def cancel_hold(self, info: Info, input: Annotated[CancelHoldInput, InputArg]) -> CancelHoldResult:
        return await _write(
            info,
            lambda uow: library.cancel_hold(uow, viewer=info.context.viewer, hold_id=decode_id(input.hold_id, "Hold")),
            lambda hold: CancelHoldSuccess(hold=Hold.from_model(hold)),
        )


TYPES = [Branch, Book, Copy, Reader, Loan, Hold]
