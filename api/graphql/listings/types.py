"""Listing types: listings with their kind-specific details, photos, conversations and messages (Relay nodes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated, Any, Self

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.dataloader import DataLoader

from api.core.clock import utc_now
from api.graphql.context import Info
from api.graphql.loaders import request_loader as _loader
from api.graphql.pagination import Connection, page_args, paged
from api.graphql.registry.types import Compound
from api.listings import models
from api.listings import service as listings_service

ListingKindEnum = strawberry.enum(
    models.ListingKind,
    name="ListingKind",
    description="rental (房屋出租), sale (闲置出售), job (招聘), rental_wanted (求租) or need (需求发布).",
)
ListingStatusEnum = strawberry.enum(
    models.ListingStatus,
    name="ListingStatus",
    description="draft, pending (waits for moderation), published, rejected (with a reason), expired, "
    "withdrawn (by the poster) or removed (by staff after reports).",
)
ItemConditionEnum = strawberry.enum(
    models.ItemCondition, name="ItemCondition", description="The state of a second-hand item."
)
ReportReasonEnum = strawberry.enum(models.ReportReason, name="ListingReportReason", description="Why it is reported.")
SearchModeEnum = strawberry.enum(
    listings_service.SearchMode,
    name="ListingSearchMode",
    description="How the keyword was matched: all (no keyword), trigram (3+ characters, indexed), "
    "bounded_scan (1–2 characters: only the newest listings are searched, see scanLimit) or like (embedded "
    "database).",
)
LISTING_PHOTO_PREFIX = "/media/listing-photos/"


def _int(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else -1


def _yuan(cents: int | None) -> str | None:
    return None if cents is None else f"{cents // 100}.{cents % 100:02d}"


def listings_loader(info: Info) -> DataLoader[int, models.Listing | None]:
    """Listings by id, as far as the viewer may see them."""

    async def load(ids: list[int]) -> list[models.Listing | None]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    listings_service.visible_listings(info.context.viewer).where(models.Listing.id.in_(ids))
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "listings.listing", load)


def _photos_loader(info: Info) -> DataLoader[int, list[models.ListingPhoto]]:
    async def load(ids: list[int]) -> list[list[models.ListingPhoto]]:
        async with info.context.db.read_session() as session:
            photos = await listings_service.listing_photos(session, listing_ids=ids)
        return [photos.get(i, []) for i in ids]

    return _loader(info, "listings.photos", load)


# -- details ---------------------------------------------------------------------------------------------


@strawberry.type(description="房屋出租: the home to let.")
class RentalDetails:
    room_type: str = strawberry.field(description="Layout, e.g. 两室一厅.")
    area_m2: float = strawberry.field(description="Floor area in square metres.")
    monthly_rent_cents: int = strawberry.field(description="Rent per month in fen.")
    floor: int = strawberry.field(description="Floor (negative below ground).")
    total_floors: int | None = strawberry.field(description="Floors of the building, if given.")
    furnished: bool = strawberry.field(description="Let with furniture.")
    available_from: dt.date | None = strawberry.field(description="Free to move in from, if given.")


@strawberry.type(description="闲置出售: the item for sale (a price of 0 gives it away).")
class SaleDetails:
    price_cents: int = strawberry.field(description="Asking price in fen.")
    condition: models.ItemCondition = strawberry.field(description="The item's state.")


@strawberry.type(description="招聘: the job offered.")
class JobDetails:
    employer: str = strawberry.field(description="Who hires, e.g. 小区便利店.")
    salary_min_cents: int | None = strawberry.field(description="Lowest monthly salary in fen, if given.")
    salary_max_cents: int | None = strawberry.field(description="Highest monthly salary in fen, if given.")
    hours: str = strawberry.field(description="Working hours, e.g. 早8点至下午4点.")
    openings: int = strawberry.field(description="How many people are wanted.")


@strawberry.type(description="求租: the home wanted.")
class RentalWantedDetails:
    max_rent_cents: int | None = strawberry.field(description="Highest monthly rent in fen, if given.")
    min_area_m2: float | None = strawberry.field(description="Smallest floor area wanted, if given.")
    room_type: str = strawberry.field(description="Layout wanted, if any.")
    move_in_by: dt.date | None = strawberry.field(description="Wanted from, if given.")


@strawberry.type(description="需求发布: what is needed.")
class NeedDetails:
    budget_cents: int | None = strawberry.field(description="Budget or reward in fen, if given.")
    needed_by: dt.date | None = strawberry.field(description="Needed by, if given.")


ListingDetails = Annotated[
    RentalDetails | SaleDetails | JobDetails | RentalWantedDetails | NeedDetails,
    strawberry.union("ListingDetails", description="The part of a listing that depends on its kind."),
]


def details_type(row: models.Listing) -> Any:
    d = listings_service.details_of(row)
    if isinstance(d, listings_service.RentalDetails):
        return RentalDetails(
            room_type=d.room_type, area_m2=d.area_m2, monthly_rent_cents=d.monthly_rent_cents, floor=d.floor,
            total_floors=d.total_floors, furnished=d.furnished, available_from=d.available_from,
        )  # fmt: skip
    if isinstance(d, listings_service.SaleDetails):
        return SaleDetails(price_cents=d.price_cents, condition=d.condition)
    if isinstance(d, listings_service.JobDetails):
        return JobDetails(
            employer=d.employer, salary_min_cents=d.salary_min_cents, salary_max_cents=d.salary_max_cents,
            hours=d.hours, openings=d.openings,
        )  # fmt: skip
    if isinstance(d, listings_service.RentalWantedDetails):
        return RentalWantedDetails(
            max_rent_cents=d.max_rent_cents, min_area_m2=d.min_area_m2, room_type=d.room_type, move_in_by=d.move_in_by
        )
    return NeedDetails(budget_cents=d.budget_cents, needed_by=d.needed_by)


# -- listings ---------------------------------------------------------------------------------------------


@strawberry.type(description="A photo of a listing; metadata (EXIF, GPS, XMP) was removed on upload.")
class ListingPhoto(relay.Node):
    db_id: relay.NodeID[int]
    content_type: str = strawberry.field(description="image/jpeg, image/png or image/webp.")
    width: int = strawberry.field(description="Width in pixels, upright.")
    height: int = strawberry.field(description="Height in pixels, upright.")
    created_at: dt.datetime = strawberry.field(description="When it was added.")

    @classmethod
    def from_model(cls, m: models.ListingPhoto) -> Self:
        return cls(db_id=m.id, content_type=m.content_type, width=m.width, height=m.height, created_at=m.created_at)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        visible = listings_service.visible_listings(info.context.viewer).with_only_columns(models.Listing.id)
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.ListingPhoto).where(
                        models.ListingPhoto.id.in_(ids), models.ListingPhoto.listing_id.in_(visible)
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="Where to GET the bytes, sending the same bearer token (relative to the API).")
    def url(self) -> str:
        return f"{LISTING_PHOTO_PREFIX}{relay.GlobalID('ListingPhoto', str(self.db_id))}"


@strawberry.type(
    description="A listing of the community: a home to let, an item for sale, a job, a home wanted or a need. "
    "The poster's name and phone are never shown; people reach them through sendListingMessage."
)
class Listing(relay.Node):
    db_id: relay.NodeID[int]
    kind: models.ListingKind = strawberry.field(description="What sort of listing.")
    status: models.ListingStatus = strawberry.field(description="Where it stands.")
    title: str = strawberry.field(description="Title (at most 100 characters).")
    description: str = strawberry.field(description="Free text (at most 4000 characters).")
    price_cents: int | None = strawberry.field(
        description="The amount searched by price, in fen: the price (sale), monthly rent (rental), highest rent "
        "(rental wanted), lowest salary (job) or budget (need)."
    )
    area_m2: float | None = strawberry.field(description="Floor area (rental) or smallest area wanted (rental wanted).")
    submitted_at: dt.datetime | None = strawberry.field(description="When it was last submitted for moderation.")
    published_at: dt.datetime | None = strawberry.field(description="When it was last published.")
    expires_at: dt.datetime | None = strawberry.field(description="When a published listing expires.")
    renewals: int = strawberry.field(description="How often it has been renewed.")
    created_at: dt.datetime = strawberry.field(description="When it was written.")
    row: strawberry.Private[models.Listing]

    @classmethod
    def from_model(cls, m: models.Listing) -> Self:
        return cls(
            db_id=m.id, kind=models.ListingKind(m.kind), status=models.ListingStatus(m.status), title=m.title,
            description=m.description, price_cents=m.price_cents, area_m2=m.area_m2, submitted_at=m.submitted_at,
            published_at=m.published_at, expires_at=m.expires_at, renewals=m.renewals, created_at=m.created_at, row=m,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await listings_loader(info).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    def _sees_moderation(self, info: Info) -> bool:
        viewer = info.context.viewer
        return viewer.account_id == self.row.poster_account_id or listings_service.can_moderate(
            viewer, self.row.community_id
        )

    @strawberry.field(description="The amount of priceCents in yuan as a decimal string, e.g. 1500.00.")
    def price(self) -> str | None:
        return _yuan(self.price_cents)

    @strawberry.field(description="The fields of its kind.")
    def details(self) -> ListingDetails:
        result: ListingDetails = details_type(self.row)
        return result

    @strawberry.field(description="The compound (小区) it is in, if known.")
    async def compound(self, info: Info) -> Compound | None:
        if self.row.compound_id is None:
            return None
        row = await info.context.loaders.compound.load(self.row.compound_id)
        return Compound.from_model(row) if row else None

    @strawberry.field(description="Photos, oldest first.")
    async def photos(self, info: Info) -> list[ListingPhoto]:
        return [ListingPhoto.from_model(p) for p in await _photos_loader(info).load(self.db_id)]

    @strawberry.field(description="True when you posted it.")
    def posted_by_you(self, info: Info) -> bool:
        return info.context.viewer.account_id == self.row.poster_account_id

    @strawberry.field(description="True when community staff posted it (as opposed to a resident).")
    def posted_by_staff(self) -> bool:
        return self.row.poster_resident_id is None

    @strawberry.field(description="Why moderation rejected it (the poster and moderators only).")
    def reject_reason(self, info: Info) -> str | None:
        return self.row.reject_reason if self._sees_moderation(info) else None

    @strawberry.field(description="True while it is hidden pending review of reports (the poster and moderators only).")
    def hidden(self, info: Info) -> bool:
        return self.row.hidden_at is not None and self._sees_moderation(info)

    @strawberry.field(description="Distinct reporters since its last review (moderators only; 0 for others).")
    def report_count(self, info: Info) -> int:
        return self.row.report_count if listings_service.can_moderate(info.context.viewer, self.row.community_id) else 0

    @strawberry.field(description="When a published listing can be renewed (its last days); null otherwise.")
    def renewable_from(self, info: Info) -> dt.datetime | None:
        if self.row.status != models.ListingStatus.PUBLISHED.value or not self._sees_moderation(info):
            return None
        return listings_service.renewable_from(
            self.row, listings_service.ListingPolicy.from_settings(info.context.services.settings)
        )

    @strawberry.field(description="True when it is published, unexpired and not hidden: residents can see it.")
    def visible_to_residents(self) -> bool:
        now = utc_now()
        return (
            self.row.status == models.ListingStatus.PUBLISHED.value
            and self.row.hidden_at is None
            and self.row.expires_at is not None
            and self.row.expires_at > now
        )


# -- conversations ---------------------------------------------------------------------------------------


@strawberry.type(description="A message in a listing conversation.")
class ListingMessage(relay.Node):
    db_id: relay.NodeID[int]
    body: str = strawberry.field(description="The text.")
    created_at: dt.datetime = strawberry.field(description="When it was sent.")
    row: strawberry.Private[models.ListingMessage]

    @classmethod
    def from_model(cls, m: models.ListingMessage) -> Self:
        return cls(db_id=m.id, body=m.body, created_at=m.created_at, row=m)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        mine = listings_service.visible_conversations(info.context.viewer).with_only_columns(
            models.ListingConversation.id
        )
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.ListingMessage).where(
                        models.ListingMessage.id.in_(ids), models.ListingMessage.conversation_id.in_(mine)
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="True when you wrote it.")
    def sent_by_you(self, info: Info) -> bool:
        return info.context.viewer.account_id == self.row.sender_account_id


@strawberry.type(
    description="The private channel between a listing's poster and one person who asked about it. "
    "Neither side sees the other's name or phone number."
)
class ListingConversation(relay.Node):
    db_id: relay.NodeID[int]
    last_message_at: dt.datetime = strawberry.field(description="When the latest message was sent.")
    created_at: dt.datetime = strawberry.field(description="When the first message was sent.")
    row: strawberry.Private[models.ListingConversation]

    @classmethod
    def from_model(cls, m: models.ListingConversation) -> Self:
        return cls(db_id=m.id, last_message_at=m.last_message_at, created_at=m.created_at, row=m)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    listings_service.visible_conversations(info.context.viewer).where(
                        models.ListingConversation.id.in_(ids)
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="True when you are the listing's poster (the other side asked about it).")
    def you_are_the_poster(self, info: Info) -> bool:
        return info.context.viewer.account_id == self.row.poster_account_id

    @strawberry.field(description="The listing, while you can still see it.")
    async def listing(self, info: Info) -> Listing | None:
        row = await listings_loader(info).load(self.row.listing_id)
        return Listing.from_model(row) if row else None

    @strawberry.field(description="The messages, oldest first.")
    async def messages(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size, 1 to 100 (default 20).")] = None,
        after: Annotated[str | None, strawberry.argument(description="The endCursor of the page before.")] = None,
    ) -> Connection[ListingMessage]:
        stmt = select(models.ListingMessage).where(models.ListingMessage.conversation_id == self.db_id)
        return await paged(
            info.context.db, stmt, models.ListingMessage.id, page_args(first, after), ListingMessage.from_model
        )
