"""Library types: branches, books with availability, copies, readers, loans and holds (Relay nodes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self, TypeVar

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.dataloader import DataLoader

from api.core.clock import utc_now
from api.core.db import Base
from api.graphql.context import Info
from api.library import models
from api.library import service as library
from api.library.isbn import isbn13_to_10
from api.registry.models import Resident

M = TypeVar("M", bound=Base)

BranchKindEnum = strawberry.enum(
    models.BranchKind, name="LibraryBranchKind", description="City library, district library or community book house."
)
FloatPolicyEnum = strawberry.enum(
    models.FloatPolicy,
    name="LibraryFloatPolicy",
    description="What happens to a branch's copy returned elsewhere: it floats (stays) or goes home.",
)
CopyStatusEnum = strawberry.enum(models.CopyStatus, name="CopyStatus", description="Where a copy is in circulation.")
ReaderCategoryEnum = strawberry.enum(
    models.ReaderCategory, name="ReaderCategory", description="Reader category for loan rules (child: under 14)."
)
HoldStatusEnum = strawberry.enum(models.HoldStatus, name="HoldStatus", description="Where a hold is.")
ReturnActionEnum = strawberry.enum(
    library.ReturnAction, name="ReturnAction", description="Where a checked-in copy goes next."
)
RenewalRefusedReasonEnum = strawberry.enum(
    library.RenewalRefusedReason, name="RenewalRefusedReason", description="Why a loan cannot be renewed."
)
HoldRefusedReasonEnum = strawberry.enum(
    library.HoldRefusedReason, name="HoldRefusedReason", description="Why a hold cannot be placed."
)


# -- loaders (per request, in the context's `extra`) ------------------------------------------------


def _loader(info: Info, key: str, load: Callable[[list[int]], Any]) -> DataLoader[int, Any]:
    loaders = info.context.extra
    if key not in loaders:
        loaders[key] = DataLoader(load)
    loader: DataLoader[int, Any] = loaders[key]
    return loader


def _rows(info: Info, model: type[M]) -> DataLoader[int, M | None]:
    async def load(ids: list[int]) -> list[M | None]:
        async with info.context.db.read_session() as session:
            rows = (await session.scalars(select(model).where(model.id.in_(ids)))).all()  # type: ignore[attr-defined]
        by_id = {r.id: r for r in rows}  # type: ignore[attr-defined]
        return [by_id.get(i) for i in ids]

    return _loader(info, f"library.{model.__tablename__}", load)


def _availability(info: Info) -> DataLoader[int, list[library.BranchAvailability]]:
    async def load(ids: list[int]) -> list[list[library.BranchAvailability]]:
        async with info.context.db.read_session() as session:
            found = await library.availability(session, book_ids=ids)
        return [found.get(i, []) for i in ids]

    return _loader(info, "library.availability", load)


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1


async def load_branch(info: Info, branch_id: int | None) -> Branch | None:
    if branch_id is None:
        return None
    row = await _rows(info, models.Branch).load(branch_id)
    return Branch.from_model(row) if row else None


async def _own(info: Info, reader_ids: Sequence[int | None]) -> set[int]:
    """Of these readers, those the viewer speaks for (themselves, or a child they are guardian of)."""
    viewer = info.context.viewer
    ids = {i for i in reader_ids if i is not None}
    if viewer.resident_id is None or not ids:
        return set()
    readers = [r for r in await _rows(info, models.Reader).load_many(sorted(ids)) if r is not None]
    return {r.id for r in readers if viewer.resident_id in (r.resident_id, r.guardian_resident_id)}


# -- types --------------------------------------------------------------------------------------


@strawberry.type(description="A service point of the city-wide 通借通还 network: borrow anywhere, return anywhere.")
class Branch(relay.Node):
    db_id: relay.NodeID[int]
    code: str = strawberry.field(description="Short unique code.")
    name: str = strawberry.field(description="Name, e.g. 智汇城书屋.")
    kind: models.BranchKind = strawberry.field(description="City library, district library or book house.")
    float_policy: models.FloatPolicy = strawberry.field(
        description="Its copies returned elsewhere float (stay there) or go home in transit."
    )
    district: str | None = strawberry.field(description="The district (区) a district library serves.")
    address: str | None = strawberry.field(description="Where it is.")

    @classmethod
    def from_model(cls, m: models.Branch) -> Self:
        return cls(db_id=m.id, code=m.code, name=m.name, kind=models.BranchKind(m.kind),
                   float_policy=models.FloatPolicy(m.float_policy), district=m.district, address=m.address)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _rows(info, models.Branch).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type(description="Copies of a book at one branch now, and how many are on the shelf.")
class BranchAvailability:
    copies: int = strawberry.field(description="Copies at the branch (not lost), whatever their status.")
    available: int = strawberry.field(description="Copies on the shelf, ready to borrow.")
    branch_id: strawberry.Private[int]

    @strawberry.field(description="The branch.")
    async def branch(self, info: Info) -> Branch | None:
        return await load_branch(info, self.branch_id)


@strawberry.type(description="A title in the network's catalogue.")
class Book(relay.Node):
    db_id: relay.NodeID[int]
    isbn: str = strawberry.field(description="ISBN-13, normalised (digits only).")
    isbn10: str | None = strawberry.field(description="The ISBN-10 form, for 978 ISBNs.")
    title: str = strawberry.field(description="Title.")
    author: str = strawberry.field(description="Author(s).")
    publisher: str | None = strawberry.field(description="Publisher.")
    year: int | None = strawberry.field(description="Year of publication.")
    subjects: list[str] = strawberry.field(description="Subjects.")

    @classmethod
    def from_model(cls, m: models.Book) -> Self:
        return cls(db_id=m.id, isbn=m.isbn, isbn10=isbn13_to_10(m.isbn), title=m.title, author=m.author,
                   publisher=m.publisher, year=m.year, subjects=list(m.subjects or []))  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _rows(info, models.Book).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="Copies and copies on the shelf per branch where copies are now.")
    async def availability(self, info: Info) -> list[BranchAvailability]:
        rows = await _availability(info).load(self.db_id)
        return [BranchAvailability(copies=r.copies, available=r.available, branch_id=r.branch_id) for r in rows]

    @strawberry.field(description="Copies on a shelf, ready to borrow, across the network.")
    async def available_copies(self, info: Info) -> int:
        return sum(r.available for r in await _availability(info).load(self.db_id))


@strawberry.type(description="One physical copy of a book.")
class Copy(relay.Node):
    db_id: relay.NodeID[int]
    barcode: str = strawberry.field(description="The barcode on the copy.")
    status: models.CopyStatus = strawberry.field(description="Available, on loan, in transit, on a hold shelf, lost.")
    item_type: str = strawberry.field(description="Item type for loan rules, e.g. book.")
    row: strawberry.Private[models.Copy]

    @classmethod
    def from_model(cls, m: models.Copy) -> Self:
        return cls(db_id=m.id, barcode=m.barcode, status=models.CopyStatus(m.status), item_type=m.item_type, row=m)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _rows(info, models.Copy).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="The book it is a copy of.")
    async def book(self, info: Info) -> Book | None:
        row = await _rows(info, models.Book).load(self.row.book_id)
        return Book.from_model(row) if row else None

    @strawberry.field(description="The branch it belongs to.")
    async def home_branch(self, info: Info) -> Branch | None:
        return await load_branch(info, self.row.home_branch_id)

    @strawberry.field(description="The branch it is at (or last passed through, in transit).")
    async def current_branch(self, info: Info) -> Branch | None:
        return await load_branch(info, self.row.current_branch_id)

    @strawberry.field(description="Where a copy in transit is going.")
    async def transit_to(self, info: Info) -> Branch | None:
        return await load_branch(info, self.row.transit_to_branch_id)


@strawberry.type(description="A resident who borrows; the national ID card is the reader card.")
class Reader(relay.Node):
    db_id: relay.NodeID[int]
    category: models.ReaderCategory = strawberry.field(description="Adult, child (under 14) or elder (60+).")
    suspended_until: dt.datetime | None = strawberry.field(
        description="Borrowing is suspended until then (after an overdue return)."
    )
    created_at: dt.datetime = strawberry.field(description="Became a reader at.")
    row: strawberry.Private[models.Reader]

    @classmethod
    def from_model(cls, m: models.Reader) -> Self:
        return cls(db_id=m.id, category=models.ReaderCategory(m.category), suspended_until=m.suspended_until,
                   created_at=m.created_at, row=m)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _rows(info, models.Reader).load_many([_int(i) for i in node_ids])
        own = await _own(info, [r.id if r else None for r in rows])
        return [cls.from_model(r) if r and r.id in own else None for r in rows]

    @strawberry.field(description="The reader's name with all but the first character masked, e.g. 张*.")
    async def masked_name(self, info: Info) -> str:
        async with info.context.db.read_session() as session:
            name = await session.scalar(select(Resident.name).where(Resident.id == self.row.resident_id))
        return (name[:1] + "*" * max(1, len(name) - 1)) if name else "*"

    @strawberry.field(description="Suspended now (and cannot borrow).")
    def suspended(self) -> bool:
        return self.suspended_until is not None and self.suspended_until > utc_now()

    @strawberry.field(
        description="The reader's own QR code for checkout: an opaque signed payload that expires in minutes. "
        "Null unless the viewer is this reader."
    )
    def reader_card(self, info: Info) -> ReaderCard | None:
        viewer = info.context.viewer
        if viewer.resident_id is None or viewer.resident_id != self.row.resident_id:
            return None
        card = library.reader_card(info.context.services.settings.secret_key.get_secret_value(), self.row)
        return ReaderCard(payload=card.payload, expires_at=card.expires_at)


@strawberry.type(description="A reader QR code: show it at the desk instead of the ID card.")
class ReaderCard:
    payload: str = strawberry.field(description="The text to encode in the QR code (opaque, signed).")
    expires_at: dt.datetime = strawberry.field(description="It is refused after this moment.")


@strawberry.type(description="A checkout: borrowed at one branch, returnable at any.")
class Loan(relay.Node):
    db_id: relay.NodeID[int]
    loaned_at: dt.datetime = strawberry.field(description="Borrowed at.")
    due_at: dt.datetime = strawberry.field(description="Due by (end of the day in China time, past closed days).")
    returned_at: dt.datetime | None = strawberry.field(description="Returned at; null while out.")
    renewals: int = strawberry.field(description="Times renewed.")
    row: strawberry.Private[models.Loan]

    @classmethod
    def from_model(cls, m: models.Loan) -> Self:
        return cls(db_id=m.id, loaned_at=m.loaned_at, due_at=m.due_at, returned_at=m.returned_at,
                   renewals=m.renewals, row=m)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _rows(info, models.Loan).load_many([_int(i) for i in node_ids])
        own = await _own(info, [r.reader_id if r else None for r in rows])
        return [cls.from_model(r) if r and r.reader_id in own else None for r in rows]

    @strawberry.field(description="Out and past its due time.")
    def overdue(self) -> bool:
        return self.returned_at is None and self.due_at < utc_now()

    @strawberry.field(description="Whole days late (China calendar): so far, or when it came back.")
    def days_overdue(self) -> int:
        return library.days_overdue(self.due_at, self.returned_at or utc_now())

    @strawberry.field(description="The copy.")
    async def copy(self, info: Info) -> Copy | None:
        row = await _rows(info, models.Copy).load(self.row.copy_id)
        return Copy.from_model(row) if row else None

    @strawberry.field(description="The book.")
    async def book(self, info: Info) -> Book | None:
        row = await _rows(info, models.Book).load(self.row.book_id)
        return Book.from_model(row) if row else None

    @strawberry.field(description="Where it was borrowed.")
    async def branch(self, info: Info) -> Branch | None:
        return await load_branch(info, self.row.branch_id)

    @strawberry.field(description="Where it was returned.")
    async def return_branch(self, info: Info) -> Branch | None:
        return await load_branch(info, self.row.return_branch_id)


@strawberry.type(description="A reader's request for a title, collected at a pickup branch.")
class Hold(relay.Node):
    db_id: relay.NodeID[int]
    status: models.HoldStatus = strawberry.field(description="Waiting, trapped (set aside), collected, ...")
    created_at: dt.datetime = strawberry.field(description="Placed at.")
    expires_at: dt.datetime | None = strawberry.field(
        description="Collect by then (set once the copy is on the pickup branch's hold shelf)."
    )
    row: strawberry.Private[models.Hold]

    @classmethod
    def from_model(cls, m: models.Hold) -> Self:
        return cls(db_id=m.id, status=models.HoldStatus(m.status), created_at=m.created_at, expires_at=m.expires_at,
                   row=m)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _rows(info, models.Hold).load_many([_int(i) for i in node_ids])
        own = await _own(info, [r.reader_id if r else None for r in rows])
        return [cls.from_model(r) if r and r.reader_id in own else None for r in rows]

    @strawberry.field(description="Place in the queue for the title (1 is next); null unless waiting.")
    async def position(self, info: Info) -> int | None:
        async with info.context.db.read_session() as session:
            return await library.hold_position(session, self.row)

    @strawberry.field(description="The ready copy is on the pickup branch's hold shelf.")
    def ready(self) -> bool:
        return self.status is models.HoldStatus.TRAPPED and self.expires_at is not None

    @strawberry.field(description="The book held.")
    async def book(self, info: Info) -> Book | None:
        row = await _rows(info, models.Book).load(self.row.book_id)
        return Book.from_model(row) if row else None

    @strawberry.field(description="Where to collect it.")
    async def pickup_branch(self, info: Info) -> Branch | None:
        return await load_branch(info, self.row.pickup_branch_id)
