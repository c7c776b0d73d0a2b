"""Library services: the network, catalogue, readers, checkout and return anywhere, renewals and holds.

The loan limit is kept by the database, not by counting in Python: each active loan takes a
slot number 1..max_loans, and a partial unique index on (reader, slot) among active loans makes a
second loan in the same slot fail. Checkout tries the free slots in a savepoint each; when every
slot is taken it refuses with LoanLimitReached. Concurrent checkouts by one reader therefore end
with at most max_loans loans whatever the interleaving, and one active loan per copy is a second
partial unique index.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, case, delete, exists, func, insert, literal_column, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import CHINA_TZ, age_on, utc_now
from api.core.crypto import ExpiredSignedToken, InvalidSignedToken, PersonalDataCipher, sign_token, verify_token
from api.core.database import UnitOfWork
from api.core.db import is_unique_violation
from api.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from api.core.viewer import Permission, Role, Viewer
from api.library import jobs
from api.library.isbn import InvalidIsbn, looks_like_isbn, normalise_isbn
from api.library.models import (
    Book,
    Branch,
    BranchKind,
    ClosedDay,
    Copy,
    CopyStatus,
    FloatPolicy,
    Hold,
    HoldStatus,
    Loan,
    LoanRule,
    Reader,
    ReaderCategory,
)
from api.registry.models import Community, Resident
from api.registry.service import GUARDIAN_REQUIRED_BELOW_AGE, GuardianRequired
from api.registry.validation import parse_national_id

__all__ = ["GuardianRequired", "InvalidIsbn"]

ELDER_AGE = 60
MAX_IMPORT_ROWS = 5000
MAX_IMPORT_CHARS = 2_000_000
MAX_COPIES_PER_CALL = 500
OPEN_HOLD_STATUSES = (HoldStatus.WAITING.value, HoldStatus.TRAPPED.value)
_BARCODE = re.compile(r"^[0-9A-Za-z._\-]{1,50}$", re.ASCII)


# -- errors -------------------------------------------------------------------------------------


class UnknownReader(NotFound):
    """No reader (or registered resident) for this ID number or reader id."""

    code = "UNKNOWN_READER"


class LoanLimitReached(Conflict):
    code = "LOAN_LIMIT_REACHED"

    def __init__(self, message: str, *, limit: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.limit = limit


class ReaderSuspended(Conflict):
    """Borrowing is suspended: until a date after an overdue return, or while books are overdue."""

    code = "READER_SUSPENDED"

    def __init__(self, message: str, *, until: datetime | None, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.until = until


class CopyNotAvailable(Conflict):
    code = "COPY_NOT_AVAILABLE"

    def __init__(self, message: str, *, status: str, field: str | None = "barcode") -> None:
        super().__init__(message, field=field)
        self.status = status


class RenewalRefusedReason(StrEnum):
    ON_HOLD = "on_hold"  # another reader is waiting for the title
    NO_RENEWALS_LEFT = "no_renewals_left"
    OVERDUE = "overdue"
    RETURNED = "returned"


class RenewalRefused(Conflict):
    code = "RENEWAL_REFUSED"

    def __init__(self, message: str, *, reason: RenewalRefusedReason, field: str | None = "loanId") -> None:
        super().__init__(message, field=field)
        self.reason = reason


class HoldRefusedReason(StrEnum):
    NOT_ALLOWED = "not_allowed"
    LIMIT = "limit"
    ALREADY_ON_LOAN = "already_on_loan"
    DUPLICATE = "duplicate"


class HoldRefused(Conflict):
    code = "HOLD_REFUSED"

    def __init__(self, message: str, *, reason: HoldRefusedReason, field: str | None = "bookId") -> None:
        super().__init__(message, field=field)
        self.reason = reason


class NotOnLoan(Conflict):
    """A returned copy that is neither on loan nor in transit."""

    code = "NOT_ON_LOAN"


class DuplicateBarcode(Conflict):
    code = "DUPLICATE_BARCODE"


class InvalidReaderCard(ValidationFailed):
    code = "INVALID_READER_CARD"

    def __init__(self, message: str, *, expired: bool) -> None:
        super().__init__(message, field="readerQr")
        self.expired = expired


class DuplicateIsbn(Conflict):
    code = "DUPLICATE_ISBN"


# -- rules --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleValues:
    max_loans: int = 3
    loan_days: int = 30
    renewals: int = 1
    renewal_days: int = 30
    holds_allowed: int = 3
    hold_pickup_days: int = 7
    suspension_days_per_overdue_day: int = 1
    max_suspension_days: int = 90

    @classmethod
    def of(cls, rule: LoanRule) -> RuleValues:
        return cls(
            max_loans=rule.max_loans, loan_days=rule.loan_days, renewals=rule.renewals,
            renewal_days=rule.renewal_days, holds_allowed=rule.holds_allowed,
            hold_pickup_days=rule.hold_pickup_days,
            suspension_days_per_overdue_day=rule.suspension_days_per_overdue_day,
            max_suspension_days=rule.max_suspension_days,
        )  # fmt: skip


DEFAULT_RULE = RuleValues()  # 3 books for 30 days, when the network has no rule at all


async def rules_at(session: AsyncSession, *, branch_id: int) -> list[LoanRule]:
    """The rules that can apply at a branch: its own and the network's."""
    stmt = select(LoanRule).where(or_(LoanRule.branch_id == branch_id, LoanRule.branch_id.is_(None)))
    return list((await session.scalars(stmt)).all())


def pick_rule(rules: Sequence[LoanRule], *, category: str, item_type: str | None) -> RuleValues:
    """The most specific matching rule: branch beats reader category beats item type (null matches any)."""
    matching = [
        r for r in rules if r.reader_category in (None, category) and (r.item_type is None or r.item_type == item_type)
    ]
    if not matching:
        return DEFAULT_RULE
    best = min(matching, key=lambda r: (r.branch_id is None, r.reader_category is None, r.item_type is None, r.id))
    return RuleValues.of(best)


async def rule_for(session: AsyncSession, *, branch_id: int, category: str, item_type: str | None) -> RuleValues:
    """The rule for branch × reader category × item type (see pick_rule)."""
    return pick_rule(await rules_at(session, branch_id=branch_id), category=category, item_type=item_type)


def category_for(birth_date: date, today: date) -> ReaderCategory:
    age = age_on(birth_date, today)
    if age < GUARDIAN_REQUIRED_BELOW_AGE:
        return ReaderCategory.CHILD
    return ReaderCategory.ELDER if age >= ELDER_AGE else ReaderCategory.ADULT


def local_day(moment: datetime) -> date:
    return moment.astimezone(CHINA_TZ).date()


def end_of_day(day: date) -> datetime:
    """23:59:59 China time on `day`, in UTC: a loan due that day may come back until closing."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=CHINA_TZ).astimezone(UTC)


async def due_after(session: AsyncSession, *, branch_id: int, start: date, days: int) -> datetime:
    """The end of the day `days` after `start`, pushed past the branch's closed days."""
    day = start + timedelta(days=days)
    closed = set(
        (
            await session.scalars(
                select(ClosedDay.day).where(
                    ClosedDay.branch_id == branch_id, ClosedDay.day >= day, ClosedDay.day <= day + timedelta(days=366)
                )
            )
        ).all()
    )
    while day in closed:
        day += timedelta(days=1)
    return end_of_day(day)


def days_overdue(due_at: datetime, at: datetime) -> int:
    """Whole days late by the calendar in China (returning on the due day is on time)."""
    return max(0, (local_day(at) - local_day(due_at)).days)


# -- rights -------------------------------------------------------------------------------------


async def can_manage_branch(session: AsyncSession, viewer: Viewer, branch: Branch) -> bool:
    """Book houses: staff of their community. City and district libraries: district admins.

    A district library that names its district is run by that district's admins; the city
    library by any district admin of the network.
    """
    if not viewer.is_authenticated:
        return False
    if branch.community_id is not None and viewer.can(Permission.MANAGE_LIBRARY, branch.community_id):
        return True
    if branch.kind == BranchKind.BOOK_HOUSE.value:
        return False
    admin_of = [cid for cid, roles in viewer.roles.items() if Role.DISTRICT_ADMIN in roles]
    if not admin_of:
        return False
    if branch.kind == BranchKind.CITY.value or branch.district is None:
        return True
    found = await session.scalar(
        select(Community.id).where(Community.id.in_(admin_of), Community.district == branch.district).limit(1)
    )
    return found is not None


def is_library_staff(viewer: Viewer) -> bool:
    """Staff of some branch's community, or a district admin: may catalogue and register readers."""
    return bool(viewer.communities_where(Permission.MANAGE_LIBRARY))


async def get_branch(session: AsyncSession, branch_id: int, *, field: str = "branchId") -> Branch:
    branch = await session.get(Branch, branch_id)
    if branch is None or not branch.active:
        raise NotFound("No such library branch.", field=field)
    return branch


async def _staff_branch(session: AsyncSession, viewer: Viewer, branch_id: int) -> Branch:
    viewer.require_authenticated()
    branch = await get_branch(session, branch_id)
    if not await can_manage_branch(session, viewer, branch):
        raise Forbidden("Only the staff of this branch can do that.")
    return branch


def _speaks_for(viewer: Viewer, resident_id: int | None, guardian_id: int | None) -> bool:
    """The viewer is the reader, or the reader's guardian."""
    return viewer.resident_id is not None and viewer.resident_id in (resident_id, guardian_id)


def _for_update(stmt: Select[Any], session: AsyncSession, *, skip_locked: bool = False) -> Select[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt  # SQLite: the write transaction already holds the database lock


# -- the network --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BranchDraft:
    code: str
    name: str
    kind: BranchKind
    community_id: int | None = None
    district: str | None = None
    float_policy: FloatPolicy = FloatPolicy.FLOAT
    address: str | None = None


async def create_branch(uow: UnitOfWork, *, viewer: Viewer, draft: BranchDraft) -> Branch:
    """Add a branch: book houses by their community's staff, libraries by district admins."""
    viewer.require_authenticated()
    code, name = draft.code.strip(), " ".join(draft.name.split())
    if not re.fullmatch(r"[a-z0-9_\-]{2,50}", code):
        raise ValidationFailed("A branch code is 2–50 lowercase letters, digits, - or _.", field="code")
    if not 1 <= len(name) <= 100:
        raise ValidationFailed("Give the branch a name (at most 100 characters).", field="name")
    if draft.district is not None and len(draft.district) > 50:
        raise ValidationFailed("A district name is at most 50 characters.", field="district")
    if draft.address is not None and len(draft.address) > 200:
        raise ValidationFailed("An address is at most 200 characters.", field="address")
    if draft.kind is BranchKind.BOOK_HOUSE and draft.community_id is None:
        raise ValidationFailed("A book house belongs to a community.", field="communityId")
    branch = Branch(
        code=code, name=name, kind=draft.kind.value, community_id=draft.community_id, district=draft.district,
        float_policy=draft.float_policy.value, address=draft.address, active=True,
    )  # fmt: skip
    if not await can_manage_branch(uow.session, viewer, branch):
        raise Forbidden("You may not add a branch there.")
    uow.session.add(branch)
    await _flush_unique(uow, Conflict("A branch with this code exists.", field="code"))
    return branch


async def set_loan_rule(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    branch_id: int | None,
    reader_category: ReaderCategory | None,
    item_type: str | None,
    values: RuleValues,
) -> LoanRule:
    """Create or replace the rule for branch × category × item type (None = any). Network rules: district admins."""
    viewer.require_authenticated()
    if branch_id is not None:
        await _staff_branch(uow.session, viewer, branch_id)
    elif not any(Role.DISTRICT_ADMIN in roles for roles in viewer.roles.values()):
        raise Forbidden("Only district admins set network-wide rules.")
    _check_rule_values(values)
    if item_type is not None and not re.fullmatch(r"[a-z0-9_]{1,20}", item_type):
        raise ValidationFailed("An item type is 1–20 lowercase letters, digits or _.", field="itemType")
    conditions = [
        LoanRule.branch_id.is_(None) if branch_id is None else LoanRule.branch_id == branch_id,
        LoanRule.reader_category.is_(None)
        if reader_category is None
        else LoanRule.reader_category == reader_category.value,
        LoanRule.item_type.is_(None) if item_type is None else LoanRule.item_type == item_type,
    ]
    rule = await uow.session.scalar(select(LoanRule).where(*conditions))
    if rule is None:
        rule = LoanRule(
            branch_id=branch_id, reader_category=reader_category.value if reader_category else None,
            item_type=item_type,
        )  # fmt: skip
        uow.session.add(rule)
    for name in RuleValues.__slots__:
        setattr(rule, name, getattr(values, name))
    await uow.session.flush()
    return rule


# (field, low, high, what) for each value of a loan rule
_RULE_RANGES = (
    ("max_loans", 1, 20, "Books out at a time"),
    ("loan_days", 1, 365, "Loan days"),
    ("renewals", 0, 20, "Renewals"),
    ("renewal_days", 1, 365, "Renewal days"),
    ("holds_allowed", 0, 20, "Holds at a time"),
    ("hold_pickup_days", 1, 60, "Days to collect a hold"),
    ("suspension_days_per_overdue_day", 0, 30, "Suspension days per overdue day"),
    ("max_suspension_days", 0, 365, "Longest suspension"),
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _check_rule_values(values: RuleValues) -> None:
    for name, low, high, what in _RULE_RANGES:
        if not low <= getattr(values, name) <= high:
            raise ValidationFailed(f"{what}: {low} to {high}.", field=_camel(name))


async def set_branch_policy(uow: UnitOfWork, *, viewer: Viewer, branch_id: int, policy: FloatPolicy) -> Branch:
    """Whether the branch's returned copies float (stay where returned) or go home. Its staff only."""
    branch = await _staff_branch(uow.session, viewer, branch_id)
    branch.float_policy = policy.value
    await uow.session.flush()
    return branch


MAX_CLOSED_DAYS_PER_CALL = 366


async def add_closed_days(
    uow: UnitOfWork, *, viewer: Viewer, branch_id: int, days: Sequence[date], note: str | None = None
) -> int:
    """Mark days closed (a loan due then is due the next open day). Returns days added."""
    await _staff_branch(uow.session, viewer, branch_id)
    if not 1 <= len(days) <= MAX_CLOSED_DAYS_PER_CALL:
        raise ValidationFailed(f"Give 1 to {MAX_CLOSED_DAYS_PER_CALL} days.", field="days")
    if note is not None and len(note.strip()) > 100:
        raise ValidationFailed("A note is at most 100 characters.", field="note")
    note = note.strip() if note else None
    existing = set(
        (
            await uow.session.scalars(
                select(ClosedDay.day).where(ClosedDay.branch_id == branch_id, ClosedDay.day.in_(list(days)))
            )
        ).all()
    )
    new = sorted(set(days) - existing)
    uow.session.add_all(ClosedDay(branch_id=branch_id, day=d, note=(note or "")[:100] or None) for d in new)
    await uow.session.flush()
    return len(new)


async def _flush_unique(uow: UnitOfWork, error: Conflict) -> None:
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise error from None
        raise


# -- catalogue ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookDraft:
    isbn: str
    title: str
    author: str
    publisher: str | None = None
    year: int | None = None
    subjects: tuple[str, ...] = ()


def _clean(value: str | None, *, field: str, limit: int, required: bool, label: str) -> str | None:
    cleaned = " ".join((value or "").split())
    if not cleaned:
        if required:
            raise ValidationFailed(f"Give the {label}.", field=field)
        return None
    if len(cleaned) > limit:
        raise ValidationFailed(f"The {label} has at most {limit} characters.", field=field)
    return cleaned


def _book_values(draft: BookDraft, today: date) -> dict[str, Any]:
    isbn = normalise_isbn(draft.isbn)
    title = _clean(draft.title, field="title", limit=300, required=True, label="title")
    author = _clean(draft.author, field="author", limit=200, required=True, label="author")
    publisher = _clean(draft.publisher, field="publisher", limit=200, required=False, label="publisher")
    if draft.year is not None and not 1450 <= draft.year <= today.year + 1:
        raise ValidationFailed(f"The year lies between 1450 and {today.year + 1}.", field="year")
    subjects = []
    for s in draft.subjects:
        cleaned = _clean(s, field="subjects", limit=50, required=False, label="subject")
        if cleaned and cleaned not in subjects:
            subjects.append(cleaned)
    if len(subjects) > 20:
        raise ValidationFailed("At most 20 subjects.", field="subjects")
    return {"isbn": isbn, "title": title, "author": author, "publisher": publisher, "year": draft.year,
            "subjects": subjects}  # fmt: skip


async def add_book(uow: UnitOfWork, *, viewer: Viewer, draft: BookDraft, today: date | None = None) -> Book:
    """Catalogue a title by ISBN (library staff). Raises InvalidIsbn, ValidationFailed, DuplicateIsbn."""
    viewer.require_authenticated()
    if not is_library_staff(viewer):
        raise Forbidden("Only library staff add books.")
    values = _book_values(draft, today or local_day(utc_now()))
    if await uow.session.scalar(select(Book.id).where(Book.isbn == values["isbn"])) is not None:
        raise DuplicateIsbn("This ISBN is in the catalogue already; add copies to it.", field="isbn")
    book = Book(**values)
    uow.session.add(book)
    await _flush_unique(uow, DuplicateIsbn("This ISBN is in the catalogue already.", field="isbn"))
    return book


def clean_barcode(raw: str, *, field: str = "barcode") -> str:
    value = raw.strip()
    if not _BARCODE.match(value):
        raise ValidationFailed("A barcode is 1–50 letters, digits, '.', '_' or '-'.", field=field)
    return value


async def add_copies(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    book_id: int,
    branch_id: int,
    barcodes: Sequence[str],
    item_type: str = "book",
    now: datetime | None = None,
) -> list[Copy]:
    """Add copies of a book to a branch (its staff). Raises NotFound, ValidationFailed, DuplicateBarcode."""
    branch = await _staff_branch(uow.session, viewer, branch_id)
    if not 1 <= len(barcodes) <= MAX_COPIES_PER_CALL:
        raise ValidationFailed(f"Give 1 to {MAX_COPIES_PER_CALL} barcodes.", field="barcodes")
    codes = [clean_barcode(b, field="barcodes") for b in barcodes]
    if len(set(codes)) != len(codes):
        raise DuplicateBarcode("A barcode is given twice.", field="barcodes")
    kind = _clean(item_type, field="itemType", limit=20, required=True, label="item type") or "book"
    if await uow.session.get(Book, book_id) is None:
        raise NotFound("No such book.", field="bookId")
    taken = (await uow.session.scalars(select(Copy.barcode).where(Copy.barcode.in_(codes)))).all()
    if taken:
        raise DuplicateBarcode(f"Barcode {sorted(taken)[0]} is already in use.", field="barcodes")
    now = now or utc_now()
    copies = [
        Copy(barcode=code, book_id=book_id, home_branch_id=branch.id, current_branch_id=branch.id,
             status=CopyStatus.AVAILABLE.value, item_type=kind, created_at=now, updated_at=now)
        for code in codes
    ]  # fmt: skip
    uow.session.add_all(copies)
    await _flush_unique(uow, DuplicateBarcode("A barcode is already in use.", field="barcodes"))
    return copies


@dataclass(frozen=True, slots=True)
class ImportRowError:
    line: int  # 1 is the header
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    rows: int
    books_created: int
    copies_created: int
    errors: list[ImportRowError] = field(default_factory=list)


_HEADER_ALIASES = {
    "title": "title", "书名": "title", "题名": "title",
    "author": "author", "作者": "author", "责任者": "author",
    "isbn": "isbn",
    "barcode": "barcode", "条码": "barcode", "条形码": "barcode",
    "publisher": "publisher", "出版社": "publisher",
    "year": "year", "出版年": "year",
    "subjects": "subjects", "主题": "subjects",
    "item_type": "item_type", "类型": "item_type",
}  # fmt: skip
_REQUIRED_COLUMNS = ("title", "author", "isbn", "barcode")


async def import_catalogue(
    uow: UnitOfWork, *, viewer: Viewer, branch_id: int, csv_text: str, now: datetime | None = None
) -> ImportReport:
    """Import a branch's books from CSV (title, author, isbn, barcode; publisher, year, subjects, item_type).

    Each bad row is reported with its line and field, and nothing of it is written; good rows
    are imported. A title already catalogued (same ISBN) gets the new copies. Subjects are
    separated by ';'. Raises Forbidden, NotFound, ValidationFailed (no header, too large).
    """
    branch = await _staff_branch(uow.session, viewer, branch_id)
    now = now or utc_now()
    if len(csv_text) > MAX_IMPORT_CHARS:
        raise ValidationFailed(f"At most {MAX_IMPORT_CHARS:,} characters per import.", field="csv")
    reader = csv.reader(io.StringIO(csv_text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise ValidationFailed("The CSV has no header row.", field="csv") from None
    columns = [_HEADER_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValidationFailed(f"The CSV needs the columns {', '.join(missing)}.", field="csv")
    errors: list[ImportRowError] = []
    good: list[tuple[BookDraft, str, str]] = []  # (book, barcode, item type)
    lines: list[int] = []
    rows = 0
    today = local_day(now)
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            rows += 1
            if rows > MAX_IMPORT_ROWS:
                raise ValidationFailed(f"At most {MAX_IMPORT_ROWS:,} rows per import.", field="csv")
            line = reader.line_num
            values = dict(zip(columns, (cell.strip() for cell in row), strict=False))
            try:
                year_raw = values.get("year") or ""
                if year_raw and not (year_raw.isascii() and year_raw.isdigit()):
                    raise ValidationFailed("The year is a number, e.g. 2019.", field="year")
                draft = BookDraft(
                    isbn=values.get("isbn", ""), title=values.get("title", ""), author=values.get("author", ""),
                    publisher=values.get("publisher") or None, year=int(year_raw) if year_raw else None,
                    subjects=tuple(s for s in (values.get("subjects") or "").split(";") if s.strip()),
                )  # fmt: skip
                _book_values(draft, today)
                barcode = clean_barcode(values.get("barcode", ""))
                item_type = _clean(values.get("item_type"), field="item_type", limit=20, required=False,
                                   label="item type") or "book"  # fmt: skip
            except ValidationFailed as exc:
                errors.append(ImportRowError(line=line, field=exc.field or "row", message=exc.message))
                continue
            good.append((draft, barcode, item_type))
            lines.append(line)
    except csv.Error as exc:
        raise ValidationFailed(f"The CSV cannot be read: {exc}.", field="csv") from None

    # Barcodes: unique in the file and not in use.
    seen: set[str] = set()
    taken = set(
        (await uow.session.scalars(select(Copy.barcode).where(Copy.barcode.in_([b for _, b, _ in good])))).all()
    )
    accepted: list[tuple[BookDraft, str, str, str]] = []  # + normalised isbn
    for (draft, barcode, item_type), line in zip(good, lines, strict=True):
        if barcode in taken:
            errors.append(ImportRowError(line=line, field="barcode", message=f"Barcode {barcode} is already in use."))
            continue
        if barcode in seen:
            errors.append(ImportRowError(line=line, field="barcode", message=f"Barcode {barcode} is given twice."))
            continue
        seen.add(barcode)
        accepted.append((draft, barcode, item_type, normalise_isbn(draft.isbn)))

    isbns = sorted({isbn for *_, isbn in accepted})
    found = await uow.session.execute(select(Book.isbn, Book.id).where(Book.isbn.in_(isbns)))
    book_ids: dict[str, int] = dict(found.all())
    new_books: dict[str, Book] = {}
    for draft, _, _, isbn in accepted:
        if isbn not in book_ids and isbn not in new_books:
            new_books[isbn] = Book(**_book_values(draft, today), created_at=now)
    uow.session.add_all(new_books.values())
    await uow.session.flush()
    book_ids.update({isbn: b.id for isbn, b in new_books.items()})
    copy_rows = [
        {"barcode": barcode, "book_id": book_ids[isbn], "home_branch_id": branch.id, "current_branch_id": branch.id,
         "status": CopyStatus.AVAILABLE.value, "item_type": item_type, "created_at": now, "updated_at": now}
        for _, barcode, item_type, isbn in accepted
    ]  # fmt: skip
    if copy_rows:
        try:
            async with uow.session.begin_nested():
                await uow.session.execute(insert(Copy), copy_rows)
        except IntegrityError as exc:
            if is_unique_violation(exc):  # a barcode taken meanwhile by another import
                raise DuplicateBarcode("Another import took some of these barcodes; try again.", field="csv") from None
            raise
    errors.sort(key=lambda e: e.line)
    return ImportReport(rows=rows, books_created=len(new_books), copies_created=len(copy_rows), errors=errors)


@dataclass(frozen=True, slots=True)
class BranchAvailability:
    book_id: int
    branch_id: int
    copies: int
    available: int


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def catalogue_query(query: str) -> Select[Any]:
    """Books whose ISBN is `query` (when it is one), or whose title or author contains it."""
    text = " ".join(query.split())[:100]
    if not text:
        return select(Book)
    if looks_like_isbn(text):
        return select(Book).where(Book.isbn == normalise_isbn(text))
    pattern = f"%{_escape_like(text)}%"
    return select(Book).where(or_(Book.title.ilike(pattern, escape="\\"), Book.author.ilike(pattern, escape="\\")))


async def availability(session: AsyncSession, *, book_ids: Sequence[int]) -> dict[int, list[BranchAvailability]]:
    """Copies and available copies of each book per branch where it is now, in one statement."""
    if not book_ids:
        return {}
    available = func.sum(case((Copy.status == CopyStatus.AVAILABLE.value, 1), else_=0))
    rows = await session.execute(
        select(Copy.book_id, Copy.current_branch_id, func.count(), available)
        .where(Copy.book_id.in_(list(book_ids)), Copy.status != CopyStatus.LOST.value)
        .group_by(Copy.book_id, Copy.current_branch_id)
        .order_by(Copy.book_id, Copy.current_branch_id)
    )
    out: dict[int, list[BranchAvailability]] = {i: [] for i in book_ids}
    for book_id, branch_id, copies, free in rows.all():
        out[book_id].append(BranchAvailability(book_id, branch_id, int(copies), int(free or 0)))
    return out


# -- readers ------------------------------------------------------------------------------------


async def _residents_by_id_number(
    session: AsyncSession, cipher: PersonalDataCipher, national_id: str, *, today: date, field: str
) -> tuple[str, Resident | None]:
    """(lookup hash, the first resident registered with this ID number). Raises InvalidNationalId."""
    parsed = parse_national_id(national_id, today=today, field=field)
    id_hash = cipher.lookup_hash(parsed.value)
    resident = await session.scalar(
        select(Resident).where(Resident.national_id_hash == id_hash).order_by(Resident.id).limit(1)
    )
    return id_hash, resident


async def _enrol(
    uow: UnitOfWork, *, resident: Resident, id_hash: str, category: ReaderCategory, guardian_id: int | None,
    branch_id: int | None,
) -> Reader:  # fmt: skip
    """Create the reader, or return the one a concurrent request created."""
    reader = Reader(
        resident_id=resident.id, id_hash=id_hash, category=category.value, guardian_resident_id=guardian_id,
        registered_branch_id=branch_id, created_at=utc_now(),
    )  # fmt: skip
    try:
        async with uow.session.begin_nested():
            uow.session.add(reader)
            await uow.session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        existing = await uow.session.scalar(select(Reader).where(Reader.resident_id == resident.id))
        if existing is None:
            raise
        return existing
    return reader


async def become_reader(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    cipher: PersonalDataCipher,
    national_id: str,
    guardian_national_id: str | None = None,
    branch_id: int | None = None,
    today: date | None = None,
) -> Reader:
    """Register a resident as a reader by their ID number (found by its keyed hash, never in plain text).

    The resident themselves, their guardian, or library staff may do it. Children under 14 need
    their guardian present: the guardian is the viewer, or staff give the guardian's ID number.
    Registering again returns the existing reader. Raises InvalidNationalId, UnknownReader,
    GuardianRequired.
    """
    viewer.require_authenticated()
    today = today or local_day(utc_now())
    id_hash, resident = await _residents_by_id_number(uow.session, cipher, national_id, today=today, field="nationalId")
    staff = is_library_staff(viewer)
    unknown = UnknownReader("No resident is registered with this ID number.", field="nationalId")
    if resident is None or not (staff or _speaks_for(viewer, resident.id, resident.guardian_id)):
        raise unknown  # others' ID numbers reveal nothing
    if branch_id is not None:
        await get_branch(uow.session, branch_id)
    existing = await uow.session.scalar(select(Reader).where(Reader.resident_id == resident.id))
    if existing is not None:
        return existing
    category = category_for(resident.birth_date, today)
    guardian_id: int | None = None
    if category is ReaderCategory.CHILD:
        if resident.guardian_id is None:
            raise GuardianRequired("Register the child's guardian in the registry first.", field="nationalId")
        present = viewer.resident_id == resident.guardian_id
        if not present and guardian_national_id:
            _, guardian = await _residents_by_id_number(
                uow.session, cipher, guardian_national_id, today=today, field="guardianNationalId"
            )
            present = guardian is not None and guardian.id == resident.guardian_id
        if not present:
            raise GuardianRequired(
                f"Children under {GUARDIAN_REQUIRED_BELOW_AGE} become readers with their guardian present.",
                field="guardianNationalId",
            )
        guardian_id = resident.guardian_id
    return await _enrol(
        uow, resident=resident, id_hash=id_hash, category=category, guardian_id=guardian_id, branch_id=branch_id
    )


@dataclass(frozen=True, slots=True)
class _ReaderRow:
    reader: Reader
    birth_date: date
    resident_guardian_id: int | None
    active_loans: int
    taken_slots: frozenset[int]
    earliest_due: datetime | None


def _reader_columns() -> tuple[Any, ...]:
    """The reader, their birth date and guardian, and their active loans' count, slots and earliest due time."""
    active = and_(Loan.reader_id == Reader.id, Loan.returned_at.is_(None))
    slot_mask = func.coalesce(func.sum(literal_column("1").op("<<")(Loan.slot)), 0)  # bit n set: slot n taken
    return (
        Reader,
        Resident.birth_date,
        Resident.guardian_id,
        select(func.count()).where(active).scalar_subquery(),
        select(slot_mask).where(active).scalar_subquery(),
        select(func.min(Loan.due_at)).where(active).scalar_subquery(),
    )


def _to_reader_row(values: Sequence[Any]) -> _ReaderRow | None:
    reader, birth_date, guardian_id, count, mask, earliest = values
    if reader is None:
        return None
    taken = frozenset(n for n in range(1, 64) if int(mask or 0) >> n & 1)
    return _ReaderRow(reader, birth_date, guardian_id, int(count or 0), taken, earliest)


async def _reader_row(session: AsyncSession, key: ReaderKey) -> _ReaderRow | None:
    stmt = select(*_reader_columns()).join(Resident, Resident.id == Reader.resident_id).where(key.condition)
    row = (await session.execute(stmt)).one_or_none()
    return _to_reader_row(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class ReaderKey:
    """How a reader is found: by reader id (the QR code), or by the keyed hash of the ID card's number."""

    condition: Any
    id_hash: str | None


def reader_key(cipher: PersonalDataCipher, *, reader_id: int | None, national_id: str | None, today: date) -> ReaderKey:
    """Raises ValidationFailed (neither or both given), InvalidNationalId."""
    if (reader_id is None) == (national_id is None or not national_id.strip()):
        raise ValidationFailed("Give the reader's ID number or reader id (one of them).", field="nationalId")
    if reader_id is not None:
        return ReaderKey(Reader.id == reader_id, None)
    assert national_id is not None
    id_hash = cipher.lookup_hash(parse_national_id(national_id, today=today, field="nationalId").value)
    return ReaderKey(Reader.id_hash == id_hash, id_hash)


async def resolve_reader(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    key: ReaderKey,
    found: _ReaderRow | None,
    staff: bool,
    branch_id: int | None,
    today: date,
) -> _ReaderRow:
    """The reader found by `key`; an adult resident who is not a reader yet becomes one on first use.

    The ID card is the reader card. Raises UnknownReader, Forbidden (someone else's reader, and the viewer is not staff).
    """
    if found is None:
        if key.id_hash is None:
            raise UnknownReader("No such reader.", field="readerId")
        resident = await uow.session.scalar(
            select(Resident).where(Resident.national_id_hash == key.id_hash).order_by(Resident.id).limit(1)
        )
        allowed = resident is not None and (staff or _speaks_for(viewer, resident.id, resident.guardian_id))
        if resident is None or not allowed:
            raise UnknownReader("No resident is registered with this ID number.", field="nationalId")
        category = category_for(resident.birth_date, today)
        if category is ReaderCategory.CHILD:
            raise UnknownReader(
                "A child becomes a reader with their guardian first (becomeReader).", field="nationalId"
            )
        await _enrol(uow, resident=resident, id_hash=key.id_hash, category=category, guardian_id=None,
                     branch_id=branch_id)  # fmt: skip
        found = await _reader_row(uow.session, key)
        assert found is not None
    reader = found.reader
    if not staff and not _speaks_for(
        viewer, reader.resident_id, reader.guardian_resident_id or found.resident_guardian_id
    ):
        raise Forbidden("Only staff check out for another reader.")
    return found


async def reader_of(session: AsyncSession, viewer: Viewer) -> Reader | None:
    """The viewer's own reader, if they are one."""
    if viewer.resident_id is None:
        return None
    reader: Reader | None = await session.scalar(select(Reader).where(Reader.resident_id == viewer.resident_id))
    return reader


# -- reader card (QR) -------------------------------------------------------------------------

READER_CARD_PURPOSE = "library-reader-card"
READER_CARD_TTL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ReaderCard:
    payload: str
    expires_at: datetime


def reader_card(secret_key: str, reader: Reader, *, now: datetime | None = None) -> ReaderCard:
    """A short-lived signed QR payload naming the reader; staff scan it instead of the ID card."""
    expires = (now or utc_now()) + READER_CARD_TTL
    token = sign_token(secret_key, purpose=READER_CARD_PURPOSE, payload=f"reader:{reader.id}",
                       expires_at=int(expires.timestamp()))  # fmt: skip
    return ReaderCard(payload=token, expires_at=expires.replace(microsecond=0))


def reader_id_from_card(secret_key: str, payload: str, *, now: datetime | None = None) -> int:
    """The reader a QR payload names; raises InvalidReaderCard (forged, altered or expired)."""
    try:
        text = verify_token(secret_key, purpose=READER_CARD_PURPOSE, token=payload,
                            now=int((now or utc_now()).timestamp()))  # fmt: skip
    except ExpiredSignedToken:
        raise InvalidReaderCard("This reader QR code has expired; show a fresh one.", expired=True) from None
    except InvalidSignedToken:
        raise InvalidReaderCard("This is not a valid reader QR code.", expired=False) from None
    kind, _, number = text.partition(":")
    if kind != "reader" or not number.isdigit():
        raise InvalidReaderCard("This is not a valid reader QR code.", expired=False)
    return int(number)


# -- checkout -----------------------------------------------------------------------------------


async def check_out(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    cipher: PersonalDataCipher,
    branch_id: int,
    barcode: str,
    reader_id: int | None = None,
    national_id: str | None = None,
    reader_qr: str | None = None,
    card_key: str | None = None,
    now: datetime | None = None,
) -> Loan:
    """Lend a copy at a branch, by the reader's ID card, reader QR or reader id (staff), or to oneself.

    `reader_qr` is a payload from reader_card, verified with `card_key` (the secret key).

    Raises NotFound, UnknownReader, InvalidNationalId, ReaderSuspended, LoanLimitReached,
    CopyNotAvailable, Forbidden.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    today = local_day(now)
    code = clean_barcode(barcode)
    if reader_qr is not None:
        if reader_id is not None or national_id is not None:
            raise ValidationFailed("Give the reader QR code, the ID number or the reader, not several.",
                                   field="readerQr")  # fmt: skip
        if card_key is None:
            raise ValueError("check_out needs card_key to read a reader QR code")
        reader_id = reader_id_from_card(card_key, reader_qr, now=now)
    key = reader_key(cipher, reader_id=reader_id, national_id=national_id, today=today)
    # Everything checkout decides on, in one statement: the branch, the copy, the rules that may
    # apply (one row each), and the reader with their active loans. Copy, rule and reader are
    # null when there is none.
    found = (
        await uow.session.execute(
            select(Branch, Copy, LoanRule, *_reader_columns())
            .select_from(Branch)
            .outerjoin(Copy, Copy.barcode == code)
            .outerjoin(LoanRule, or_(LoanRule.branch_id == Branch.id, LoanRule.branch_id.is_(None)))
            .outerjoin(Reader, key.condition)
            .outerjoin(Resident, Resident.id == Reader.resident_id)
            .where(Branch.id == branch_id, Branch.active)
        )
    ).all()
    if not found:
        raise NotFound("No such library branch.", field="branchId")
    branch, copy = found[0][0], found[0][1]
    rules = [row[2] for row in found if row[2] is not None]
    staff = await can_manage_branch(uow.session, viewer, branch)
    if copy is None:
        raise NotFound("No copy with this barcode.", field="barcode")
    if copy.status not in (CopyStatus.AVAILABLE.value, CopyStatus.ON_HOLD_SHELF.value):
        raise _not_available(copy)  # the conditional update below is what decides; this saves the work
    who = await resolve_reader(
        uow, viewer=viewer, key=key, found=_to_reader_row(found[0][3:]), staff=staff, branch_id=branch.id,
        today=today,
    )  # fmt: skip
    reader = who.reader
    if reader.suspended_until is not None and reader.suspended_until > now:
        raise ReaderSuspended(
            f"Borrowing is suspended until {local_day(reader.suspended_until):%Y-%m-%d}.", until=reader.suspended_until
        )
    if who.earliest_due is not None and who.earliest_due < now:
        raise ReaderSuspended("Return the overdue books first.", until=None)
    category = category_for(who.birth_date, today)
    rule = pick_rule(rules, category=category.value, item_type=copy.item_type)
    # Slots this rule allows that look free now. The count check refines a mix of rules (a reader
    # who borrowed under a larger limit elsewhere); the unique index on (reader, slot) enforces.
    free = [s for s in range(1, rule.max_loans + 1) if s not in who.taken_slots]
    if not free or who.active_loans >= rule.max_loans:
        raise LoanLimitReached(f"A reader may have {rule.max_loans} books out at a time.", limit=rule.max_loans)

    # Take the copy: available, or else waiting on the hold shelf for this reader.
    values = {"status": CopyStatus.ON_LOAN.value, "current_branch_id": branch.id, "transit_to_branch_id": None,
              "updated_at": now}  # fmt: skip
    took = await uow.session.execute(
        update(Copy)
        .where(Copy.id == copy.id, Copy.status == CopyStatus.AVAILABLE.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    collected = False
    if not getattr(took, "rowcount", 0):
        mine = select(Hold.trapped_copy_id).where(Hold.reader_id == reader.id, Hold.status == HoldStatus.TRAPPED.value)
        took = await uow.session.execute(
            update(Copy)
            .where(Copy.id == copy.id, Copy.status == CopyStatus.ON_HOLD_SHELF.value, Copy.id.in_(mine))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not getattr(took, "rowcount", 0):
            await uow.session.refresh(copy)
            raise _not_available(copy)
        collected = True
    due = await due_after(uow.session, branch_id=branch.id, start=today, days=rule.loan_days)
    loan = await _insert_loan(uow, free=free, limit=rule.max_loans, values={
        "copy_id": copy.id, "book_id": copy.book_id, "reader_id": reader.id, "reader_category": category.value,
        "branch_id": branch.id, "loaned_at": now, "due_at": due, "renewals": 0, "overdue_stage": 0,
    })  # fmt: skip
    if collected:
        await uow.session.execute(
            update(Hold)
            .where(
                Hold.trapped_copy_id == copy.id, Hold.reader_id == reader.id, Hold.status == HoldStatus.TRAPPED.value
            )
            .values(status=HoldStatus.COLLECTED.value, closed_at=now)
            .execution_options(synchronize_session=False)
        )
    if reader.category != category.value:
        reader.category = category.value  # a child grew up, an adult turned 60
    return loan


def _not_available(copy: Copy) -> CopyNotAvailable:
    words = {
        CopyStatus.ON_LOAN.value: "This copy is on loan.",
        CopyStatus.IN_TRANSIT.value: "This copy is in transit between branches.",
        CopyStatus.ON_HOLD_SHELF.value: "This copy is set aside for another reader's hold.",
        CopyStatus.LOST.value: "This copy is recorded as lost.",
    }
    return CopyNotAvailable(words.get(copy.status, "This copy cannot be lent now."), status=copy.status)


async def _insert_loan(uow: UnitOfWork, *, free: list[int], limit: int, values: dict[str, Any]) -> Loan:
    """Insert the loan in the lowest free slot; each attempt in its own savepoint.

    A unique violation on (reader, slot) means a concurrent checkout took that slot: try the
    next. One on the copy means someone else has just borrowed it.
    """
    for slot in free:
        loan = Loan(slot=slot, **values)
        try:
            async with uow.session.begin_nested():
                uow.session.add(loan)
                await uow.session.flush()
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            if "copy" in str(exc.orig):
                raise CopyNotAvailable("This copy has just been lent.", status=CopyStatus.ON_LOAN.value) from None
            continue
        return loan
    raise LoanLimitReached(f"A reader may have {limit} books out at a time.", limit=limit)


# -- return anywhere ----------------------------------------------------------------------------


class ReturnAction(StrEnum):
    SHELVED = "shelved"  # available where it was returned (its home, or a floating copy)
    TRANSIT_HOME = "transit_home"  # going back to its home branch
    HOLD_SHELF = "hold_shelf"  # set aside here for a hold
    TRANSIT_TO_HOLD = "transit_to_hold"  # going to a hold's pickup branch
    IN_TRANSIT = "in_transit"  # passing through this branch, still in transit


@dataclass(frozen=True, slots=True)
class Placement:
    action: ReturnAction
    destination_branch_id: int
    hold_id: int | None = None


@dataclass(frozen=True, slots=True)
class ReturnOutcome:
    copy: Copy
    loan: Loan | None
    placement: Placement
    days_overdue: int = 0
    suspended_until: datetime | None = None


async def _trap(uow: UnitOfWork, copy: Copy, hold: Hold, at: Branch, now: datetime) -> Placement:
    """Set the copy aside for `hold`: on the hold shelf here, or in transit to the pickup branch."""
    hold.status = HoldStatus.TRAPPED.value
    hold.trapped_copy_id = copy.id
    hold.trapped_at = now
    copy.current_branch_id = at.id
    copy.updated_at = now
    if hold.pickup_branch_id == at.id:
        return await _on_hold_shelf(uow, copy, hold, now)
    copy.status = CopyStatus.IN_TRANSIT.value
    copy.transit_to_branch_id = hold.pickup_branch_id
    hold.expires_at = None
    await uow.session.flush()
    return Placement(ReturnAction.TRANSIT_TO_HOLD, hold.pickup_branch_id, hold.id)


async def _on_hold_shelf(uow: UnitOfWork, copy: Copy, hold: Hold, now: datetime) -> Placement:
    """The copy is on the pickup branch's hold shelf: the reader is told and has N days to collect it."""
    reader = await uow.session.get(Reader, hold.reader_id)
    rule = await rule_for(uow.session, branch_id=hold.pickup_branch_id,
                          category=reader.category if reader else ReaderCategory.ADULT.value,
                          item_type=copy.item_type)  # fmt: skip
    copy.status = CopyStatus.ON_HOLD_SHELF.value
    copy.transit_to_branch_id = None
    hold.expires_at = end_of_day(local_day(now) + timedelta(days=rule.hold_pickup_days))
    await uow.session.flush()
    uow.enqueue(jobs.hold_notice(hold.id, jobs.HOLD_READY))
    return Placement(ReturnAction.HOLD_SHELF, hold.pickup_branch_id, hold.id)


async def place_copy(uow: UnitOfWork, copy: Copy, at: Branch, now: datetime) -> Placement:
    """Where a copy goes once free at branch `at`: the first waiting hold, else float or home by policy."""
    hold = await uow.session.scalar(
        _for_update(
            select(Hold)
            .where(Hold.book_id == copy.book_id, Hold.status == HoldStatus.WAITING.value)
            .order_by(Hold.id)
            .limit(1),
            uow.session,
            skip_locked=True,
        )
    )
    if hold is not None:
        return await _trap(uow, copy, hold, at, now)
    copy.current_branch_id = at.id
    copy.updated_at = now
    home = await uow.session.get(Branch, copy.home_branch_id)
    if home is None or home.id == at.id or home.float_policy == FloatPolicy.FLOAT.value:
        copy.status = CopyStatus.AVAILABLE.value
        copy.transit_to_branch_id = None
        await uow.session.flush()
        return Placement(ReturnAction.SHELVED, at.id)
    copy.status = CopyStatus.IN_TRANSIT.value
    copy.transit_to_branch_id = home.id
    await uow.session.flush()
    return Placement(ReturnAction.TRANSIT_HOME, home.id)


async def return_copy(
    uow: UnitOfWork, *, viewer: Viewer, branch_id: int, barcode: str, now: datetime | None = None
) -> ReturnOutcome:
    """Check a copy in at any branch: close its loan (suspending a late reader), then place it.

    A copy in transit checked in at its destination arrives (on the hold shelf, or on the shelf).
    Staff of the branch check in anything; a reader may return their own loan (self-service).
    Raises NotFound, NotOnLoan, Forbidden.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    branch = await get_branch(uow.session, branch_id)
    staff = await can_manage_branch(uow.session, viewer, branch)
    code = clean_barcode(barcode)
    copy = await uow.session.scalar(_for_update(select(Copy).where(Copy.barcode == code), uow.session))
    if copy is None:
        raise NotFound("No copy with this barcode.", field="barcode")
    loan = await uow.session.scalar(select(Loan).where(Loan.copy_id == copy.id, Loan.returned_at.is_(None)))
    if loan is None:
        if copy.status == CopyStatus.IN_TRANSIT.value:
            if not staff:
                raise Forbidden("Only the branch's staff receive copies in transit.")
            return ReturnOutcome(copy=copy, loan=None, placement=await _arrive(uow, copy, branch, now))
        raise NotOnLoan("This copy is not on loan.", field="barcode")
    reader = await uow.session.get(Reader, loan.reader_id) if loan.reader_id is not None else None
    if not staff and not (reader is not None and _speaks_for(viewer, reader.resident_id, reader.guardian_resident_id)):
        raise Forbidden("Only the branch's staff or the borrower can return this copy.")
    closed = await uow.session.execute(
        update(Loan)
        .where(Loan.id == loan.id, Loan.returned_at.is_(None))
        .values(returned_at=now, return_branch_id=branch.id)
        .execution_options(synchronize_session=False)
    )
    if not getattr(closed, "rowcount", 0):
        raise NotOnLoan("This copy has just been returned.", field="barcode")
    await uow.session.refresh(loan)
    late = days_overdue(loan.due_at, now)
    suspended_until = None
    if late and reader is not None:
        rule = await rule_for(uow.session, branch_id=loan.branch_id, category=loan.reader_category,
                              item_type=copy.item_type)  # fmt: skip
        days = min(late * rule.suspension_days_per_overdue_day, rule.max_suspension_days)
        if days > 0:
            until = end_of_day(local_day(now) + timedelta(days=days))
            await uow.session.execute(
                update(Reader)
                .where(Reader.id == reader.id, or_(Reader.suspended_until.is_(None), Reader.suspended_until < until))
                .values(suspended_until=until)
                .execution_options(synchronize_session=False)
            )
            await uow.session.refresh(reader)
            suspended_until = reader.suspended_until
    placement = await place_copy(uow, copy, branch, now)
    return ReturnOutcome(copy=copy, loan=loan, placement=placement, days_overdue=late, suspended_until=suspended_until)


async def _arrive(uow: UnitOfWork, copy: Copy, at: Branch, now: datetime) -> Placement:
    if copy.transit_to_branch_id not in (None, at.id):
        copy.current_branch_id = at.id  # passing through on its way
        copy.updated_at = now
        await uow.session.flush()
        return Placement(ReturnAction.IN_TRANSIT, copy.transit_to_branch_id)
    hold = await uow.session.scalar(
        select(Hold).where(Hold.trapped_copy_id == copy.id, Hold.status == HoldStatus.TRAPPED.value)
    )
    copy.current_branch_id = at.id
    copy.updated_at = now
    if hold is not None and hold.pickup_branch_id == at.id:
        return await _on_hold_shelf(uow, copy, hold, now)
    return await place_copy(uow, copy, at, now)


# -- renewals -----------------------------------------------------------------------------------


async def _visible_loan(uow: UnitOfWork, viewer: Viewer, loan_id: int, *, lock: bool = False) -> tuple[Loan, Reader]:
    stmt = select(Loan).where(Loan.id == loan_id)
    loan = await uow.session.scalar(_for_update(stmt, uow.session) if lock else stmt)
    reader = await uow.session.get(Reader, loan.reader_id) if loan is not None and loan.reader_id else None
    if loan is None or reader is None:
        raise NotFound("No such loan.", field="loanId")
    if not _speaks_for(viewer, reader.resident_id, reader.guardian_resident_id):
        branch = await uow.session.get(Branch, loan.branch_id)
        if branch is None or not await can_manage_branch(uow.session, viewer, branch):
            raise NotFound("No such loan.", field="loanId")
    return loan, reader


async def renew(uow: UnitOfWork, *, viewer: Viewer, loan_id: int, now: datetime | None = None) -> Loan:
    """Renew a loan from its due date.

    Refused when someone holds the title, when no renewals are left, when it is overdue, or when
    the reader is suspended. Raises NotFound, RenewalRefused, ReaderSuspended.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    loan, reader = await _visible_loan(uow, viewer, loan_id, lock=True)
    if loan.returned_at is not None:
        raise RenewalRefused("This book has been returned.", reason=RenewalRefusedReason.RETURNED)
    if reader.suspended_until is not None and reader.suspended_until > now:
        raise ReaderSuspended(
            f"Borrowing is suspended until {local_day(reader.suspended_until):%Y-%m-%d}.", until=reader.suspended_until
        )
    if loan.due_at < now:
        raise RenewalRefused(
            "An overdue book cannot be renewed; please return it.", reason=RenewalRefusedReason.OVERDUE
        )
    held = await uow.session.scalar(
        select(exists().where(Hold.book_id == loan.book_id, Hold.status.in_(OPEN_HOLD_STATUSES)))
    )
    if held:
        raise RenewalRefused("Another reader is waiting for this book.", reason=RenewalRefusedReason.ON_HOLD)
    item_type = await uow.session.scalar(select(Copy.item_type).where(Copy.id == loan.copy_id))
    rule = await rule_for(uow.session, branch_id=loan.branch_id, category=loan.reader_category, item_type=item_type)
    if loan.renewals >= rule.renewals:
        raise RenewalRefused(
            f"This loan has been renewed {loan.renewals} time(s), the most allowed.",
            reason=RenewalRefusedReason.NO_RENEWALS_LEFT,
        )
    due = await due_after(uow.session, branch_id=loan.branch_id, start=local_day(loan.due_at), days=rule.renewal_days)
    won = await uow.session.execute(
        update(Loan)
        .where(Loan.id == loan.id, Loan.renewals == loan.renewals, Loan.returned_at.is_(None))
        .values(due_at=due, renewals=Loan.renewals + 1)
        .execution_options(synchronize_session=False)
    )
    if not getattr(won, "rowcount", 0):
        raise RenewalRefused("The loan changed meanwhile; try again.", reason=RenewalRefusedReason.NO_RENEWALS_LEFT)
    await uow.session.refresh(loan)
    return loan


# -- holds --------------------------------------------------------------------------------------


async def place_hold(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    book_id: int,
    pickup_branch_id: int,
    reader_id: int | None = None,
    now: datetime | None = None,
) -> Hold:
    """Hold a title for pickup at a branch; a copy on that branch's shelf is set aside at once.

    The reader places their own (or a guardian for their child); staff of the pickup branch for
    anyone. Raises NotFound, UnknownReader, ReaderSuspended, HoldRefused.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    branch = await get_branch(uow.session, pickup_branch_id, field="pickupBranchId")
    if reader_id is None:
        reader = await reader_of(uow.session, viewer)
        if reader is None:
            raise UnknownReader("Become a reader first.", field="readerId")
    else:
        reader = await uow.session.get(Reader, reader_id)
        if reader is None:
            raise UnknownReader("No such reader.", field="readerId")
        if not _speaks_for(viewer, reader.resident_id, reader.guardian_resident_id) and not await can_manage_branch(
            uow.session, viewer, branch
        ):
            raise Forbidden("Only staff place holds for another reader.")
    if await uow.session.get(Book, book_id) is None:
        raise NotFound("No such book.", field="bookId")
    if reader.suspended_until is not None and reader.suspended_until > now:
        raise ReaderSuspended(
            f"Borrowing is suspended until {local_day(reader.suspended_until):%Y-%m-%d}.", until=reader.suspended_until
        )
    rule = await rule_for(uow.session, branch_id=branch.id, category=reader.category, item_type=None)
    if rule.holds_allowed == 0:
        raise HoldRefused("This branch takes no holds.", reason=HoldRefusedReason.NOT_ALLOWED, field="pickupBranchId")
    open_holds = await uow.session.scalar(
        select(func.count()).where(Hold.reader_id == reader.id, Hold.status.in_(OPEN_HOLD_STATUSES))
    )
    if (open_holds or 0) >= rule.holds_allowed:
        raise HoldRefused(f"A reader may have {rule.holds_allowed} holds at a time.", reason=HoldRefusedReason.LIMIT)
    on_loan = await uow.session.scalar(
        select(exists().where(Loan.reader_id == reader.id, Loan.book_id == book_id, Loan.returned_at.is_(None)))
    )
    if on_loan:
        raise HoldRefused("You have this book out already.", reason=HoldRefusedReason.ALREADY_ON_LOAN)
    hold = Hold(book_id=book_id, reader_id=reader.id, pickup_branch_id=branch.id, status=HoldStatus.WAITING.value,
                created_at=now)  # fmt: skip
    uow.session.add(hold)
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise HoldRefused("You hold this book already.", reason=HoldRefusedReason.DUPLICATE) from None
        raise
    # A copy on the pickup branch's shelf is set aside now, if nobody queued before.
    ahead = await uow.session.scalar(
        select(exists().where(Hold.book_id == book_id, Hold.status == HoldStatus.WAITING.value, Hold.id < hold.id))
    )
    if not ahead:
        copy = await uow.session.scalar(
            _for_update(
                select(Copy)
                .where(
                    Copy.book_id == book_id,
                    Copy.current_branch_id == branch.id,
                    Copy.status == CopyStatus.AVAILABLE.value,
                )
                .order_by(Copy.id)
                .limit(1),
                uow.session,
                skip_locked=True,
            )
        )
        if copy is not None:
            await _trap(uow, copy, hold, branch, now)
    return hold


async def _visible_hold(uow: UnitOfWork, viewer: Viewer, hold_id: int) -> Hold:
    hold: Hold | None = await uow.session.scalar(_for_update(select(Hold).where(Hold.id == hold_id), uow.session))
    reader = await uow.session.get(Reader, hold.reader_id) if hold is not None else None
    if hold is None or reader is None:
        raise NotFound("No such hold.", field="holdId")
    if not _speaks_for(viewer, reader.resident_id, reader.guardian_resident_id):
        branch = await uow.session.get(Branch, hold.pickup_branch_id)
        if branch is None or not await can_manage_branch(uow.session, viewer, branch):
            raise NotFound("No such hold.", field="holdId")
    return hold


async def cancel_hold(uow: UnitOfWork, *, viewer: Viewer, hold_id: int, now: datetime | None = None) -> Hold:
    """Cancel a waiting or trapped hold; a copy set aside for it goes to the next reader or back to the shelf.

    Raises NotFound, Conflict (no longer open).
    """
    viewer.require_authenticated()
    now = now or utc_now()
    hold = await _visible_hold(uow, viewer, hold_id)
    if hold.status not in OPEN_HOLD_STATUSES:
        raise Conflict(f"This hold is {hold.status} already.", field="holdId")
    await _close_hold(uow, hold, HoldStatus.CANCELLED, now)
    return hold


async def _close_hold(uow: UnitOfWork, hold: Hold, status: HoldStatus, now: datetime) -> Placement | None:
    """Close a hold; a copy waiting on its hold shelf is placed again (next hold, or float/home)."""
    was_trapped = hold.status == HoldStatus.TRAPPED.value
    copy_id = hold.trapped_copy_id
    hold.status = status.value
    hold.closed_at = now
    await uow.session.flush()
    if not was_trapped or copy_id is None:
        return None
    copy = await uow.session.scalar(_for_update(select(Copy).where(Copy.id == copy_id), uow.session))
    if copy is None or copy.status != CopyStatus.ON_HOLD_SHELF.value:
        return None  # in transit: placed again when it arrives
    at = await uow.session.get(Branch, copy.current_branch_id)
    assert at is not None
    return await place_copy(uow, copy, at, now)


async def expire_holds(uow: UnitOfWork, *, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Expire holds not collected in time; each copy moves on to the next reader. Returns the expired holds.

    Idempotent: rows are locked (SKIP LOCKED) and only trapped holds past their time change.
    """
    now = now or utc_now()
    holds = (
        await uow.session.scalars(
            _for_update(
                select(Hold)
                .where(Hold.status == HoldStatus.TRAPPED.value, Hold.expires_at.is_not(None), Hold.expires_at < now)
                .order_by(Hold.id)
                .limit(limit),
                uow.session,
                skip_locked=True,
            )
        )
    ).all()
    expired = []
    for hold in holds:
        await _close_hold(uow, hold, HoldStatus.EXPIRED, now)
        uow.enqueue(jobs.hold_notice(hold.id, jobs.HOLD_EXPIRED))
        expired.append(hold.id)
    return expired


async def hold_position(session: AsyncSession, hold: Hold) -> int | None:
    """1 for the next reader in the queue for the title; None once the hold is no longer waiting."""
    if hold.status != HoldStatus.WAITING.value:
        return None
    ahead = await session.scalar(
        select(func.count()).where(
            Hold.book_id == hold.book_id, Hold.status == HoldStatus.WAITING.value, Hold.id < hold.id
        )
    )
    return int(ahead or 0) + 1


# -- history and privacy ------------------------------------------------------------------------


async def loans_of(session: AsyncSession, *, reader_id: int, include_past: bool, limit: int = 100) -> list[Loan]:
    """The reader's loans: current ones first by due date, then past ones newest first."""
    current = (
        await session.scalars(
            select(Loan).where(Loan.reader_id == reader_id, Loan.returned_at.is_(None)).order_by(Loan.due_at, Loan.id)
        )
    ).all()
    if not include_past:
        return list(current)
    past = (
        await session.scalars(
            select(Loan)
            .where(Loan.reader_id == reader_id, Loan.returned_at.is_not(None))
            .order_by(Loan.returned_at.desc(), Loan.id.desc())
            .limit(limit)
        )
    ).all()
    return [*current, *past]


async def anonymise_history(uow: UnitOfWork, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Unlink loans returned longer ago than `older_than` from their reader; the rest stays for statistics.

    Holds closed that long ago are deleted. Returns loans anonymised. Idempotent.
    """
    now = now or utc_now()
    cutoff = now - older_than
    result = await uow.session.execute(
        update(Loan)
        .where(Loan.returned_at.is_not(None), Loan.returned_at < cutoff, Loan.reader_id.is_not(None))
        .values(reader_id=None, anonymised_at=now)
        .execution_options(synchronize_session=False)
    )
    await uow.session.execute(
        delete(Hold)
        .where(Hold.closed_at.is_not(None), Hold.closed_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- lost copies --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LostOutcome:
    copy: Copy
    loan: Loan | None  # the active loan closed as lost
    hold: Hold | None  # the hold the copy was set aside for, back in the queue or trapped again


async def mark_copy_lost(uow: UnitOfWork, *, viewer: Viewer, barcode: str, now: datetime | None = None) -> LostOutcome:
    """Record a copy as lost (staff of the branch it is at now).

    An active loan on it is closed (returned_at now, return branch null: it never came back; the
    loan table has no note column, so "lost" is told by the copy's status). A hold it was set aside
    for goes back to waiting, first in its queue by id, and takes an available copy on the pickup
    branch's shelf at once if there is one; otherwise the next returned copy traps it.
    Raises NotFound, Forbidden, Conflict (lost already).
    """
    viewer.require_authenticated()
    now = now or utc_now()
    code = clean_barcode(barcode)
    copy: Copy | None = await uow.session.scalar(_for_update(select(Copy).where(Copy.barcode == code), uow.session))
    if copy is None:
        raise NotFound("No copy with this barcode.", field="barcode")
    await _staff_branch(uow.session, viewer, copy.current_branch_id)
    if copy.status == CopyStatus.LOST.value:
        raise Conflict("This copy is recorded as lost already.", field="barcode")
    loan: Loan | None = await uow.session.scalar(
        _for_update(select(Loan).where(Loan.copy_id == copy.id, Loan.returned_at.is_(None)), uow.session)
    )
    if loan is not None:
        loan.returned_at = now
        loan.return_branch_id = None
    hold: Hold | None = await uow.session.scalar(
        _for_update(
            select(Hold).where(Hold.trapped_copy_id == copy.id, Hold.status == HoldStatus.TRAPPED.value), uow.session
        )
    )
    copy.status = CopyStatus.LOST.value
    copy.transit_to_branch_id = None
    copy.updated_at = now
    if hold is not None:
        hold.status = HoldStatus.WAITING.value
        hold.trapped_copy_id = None
        hold.trapped_at = None
        hold.expires_at = None
    await uow.session.flush()
    if hold is not None:
        other = await uow.session.scalar(
            _for_update(
                select(Copy)
                .where(
                    Copy.book_id == copy.book_id,
                    Copy.current_branch_id == hold.pickup_branch_id,
                    Copy.status == CopyStatus.AVAILABLE.value,
                )
                .order_by(Copy.id)
                .limit(1),
                uow.session,
                skip_locked=True,
            )
        )
        pickup = await uow.session.get(Branch, hold.pickup_branch_id)
        if other is not None and pickup is not None:
            await _trap(uow, other, hold, pickup, now)
    return LostOutcome(copy=copy, loan=loan, hold=hold)
