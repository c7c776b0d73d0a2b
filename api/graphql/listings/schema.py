"""Queries and mutations of the listings domain: posting, moderation, search, reports, messages and photos."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.file_uploads import Upload

from api.core.errors import DomainError, Forbidden, NotFound, Unauthenticated
from api.core.images import prepare_photos
from api.core.pagination import count_of
from api.graphql.context import Info
from api.graphql.errors import NotFoundError, UserError, ValidationError, auth_error, to_user_error
from api.graphql.listings.types import (
    JobDetails,
    Listing,
    ListingConversation,
    ListingMessage,
    ListingPhoto,
    NeedDetails,
    RentalDetails,
    RentalWantedDetails,
    SaleDetails,
)
from api.graphql.pagination import Connection, connection, decode_id, page_args, paged
from api.graphql.tickets.photos import PhotoError, close_uploads, photo_limits, photo_result_error, read_uploads
from api.listings import models
from api.listings import service as listings_service

InputArg = strawberry.argument(description="The mutation's input.")
FirstArg = Annotated[int | None, strawberry.argument(description="Page size, 1 to 100 (default 20).")]
AfterArg = Annotated[str | None, strawberry.argument(description="The endCursor of the page before.")]


# -- errors -----------------------------------------------------------------------------------------------


@strawberry.type(description="Only residents of the community (and its staff) can post listings there.")
class NotCommunityResidentError(UserError):
    pass


@strawberry.type(description="The kind-specific details are missing, of another kind, or invalid (see field).")
class InvalidListingDetailsError(UserError):
    pass


@strawberry.type(description="The listing's status does not allow this (e.g. moderating one that is not pending).")
class ListingStatusError(UserError):
    status: models.ListingStatus = strawberry.field(description="The listing's status now.")


@strawberry.type(description="You have reported this listing already.")
class AlreadyReportedError(UserError):
    pass


@strawberry.type(description="You cannot report or message your own listing.")
class OwnListingError(UserError):
    pass


@strawberry.type(description="You have sent today's messages about this listing; try again tomorrow.")
class MessageLimitReachedError(UserError):
    limit: int = strawberry.field(description="Messages allowed per listing and day.")


@strawberry.type(description="A published listing can be renewed only in its last days.")
class RenewalNotDueError(UserError):
    renewable_from: dt.datetime = strawberry.field(description="Renewal opens at this time.")


_TYPED: dict[type[DomainError], type[UserError]] = {
    listings_service.NotCommunityResident: NotCommunityResidentError,
    listings_service.InvalidListingDetails: InvalidListingDetailsError,
    listings_service.AlreadyReported: AlreadyReportedError,
    listings_service.OwnListing: OwnListingError,
}

ERROR_TYPES: list[type[UserError]] = [
    *_TYPED.values(),
    ListingStatusError,
    MessageLimitReachedError,
    RenewalNotDueError,
]


def _error(exc: DomainError, allowed: list[type[UserError]]) -> Any:
    if isinstance(exc, listings_service.WrongListingStatus) and ListingStatusError in allowed:
        return ListingStatusError(
            message=exc.message, field=exc.field, code=exc.code, status=models.ListingStatus(exc.status)
        )
    if isinstance(exc, listings_service.MessageLimitReached) and MessageLimitReachedError in allowed:
        return MessageLimitReachedError(message=exc.message, field=exc.field, code=exc.code, limit=exc.limit)
    if isinstance(exc, listings_service.RenewalNotDue) and RenewalNotDueError in allowed:
        return RenewalNotDueError(
            message=exc.message, field=exc.field, code=exc.code, renewable_from=exc.renewable_from
        )
    gql_type = _TYPED.get(type(exc))
    if gql_type is not None and gql_type in allowed:
        return gql_type(message=exc.message, field=exc.field, code=exc.code)
    return to_user_error(exc, allowed)


def _policy(info: Info) -> listings_service.ListingPolicy:
    return listings_service.ListingPolicy.from_settings(info.context.services.settings)


# -- inputs -----------------------------------------------------------------------------------------------


@strawberry.input(description="房屋出租: the home to let.")
class RentalDetailsInput:
    room_type: str = strawberry.field(description="Layout, e.g. 两室一厅 (at most 50 characters).")
    area_m2: float = strawberry.field(description="Floor area in square metres (above 0, at most 10,000).")
    monthly_rent_cents: int = strawberry.field(description="Rent per month in fen.")
    floor: int = strawberry.field(description="Floor, -5 to 200 (negative below ground, not 0).")
    total_floors: int | None = strawberry.field(default=None, description="Floors of the building.")
    furnished: bool = strawberry.field(default=False, description="Let with furniture.")
    available_from: dt.date | None = strawberry.field(default=None, description="Free to move in from.")


@strawberry.input(description="闲置出售: the item for sale.")
class SaleDetailsInput:
    price_cents: int = strawberry.field(description="Asking price in fen (0 gives it away).")
    condition: models.ItemCondition = strawberry.field(description="The item's state.")


@strawberry.input(description="招聘: the job offered.")
class JobDetailsInput:
    employer: str = strawberry.field(description="Who hires (at most 50 characters).")
    salary_min_cents: int | None = strawberry.field(default=None, description="Lowest monthly salary in fen.")
    salary_max_cents: int | None = strawberry.field(default=None, description="Highest monthly salary in fen.")
    hours: str = strawberry.field(default="", description="Working hours (at most 50 characters).")
    openings: int = strawberry.field(default=1, description="How many people are wanted (1 to 1000).")


@strawberry.input(description="求租: the home wanted.")
class RentalWantedDetailsInput:
    max_rent_cents: int | None = strawberry.field(default=None, description="Highest monthly rent in fen.")
    min_area_m2: float | None = strawberry.field(default=None, description="Smallest floor area wanted.")
    room_type: str = strawberry.field(default="", description="Layout wanted.")
    move_in_by: dt.date | None = strawberry.field(default=None, description="Wanted from.")


@strawberry.input(description="需求发布: what is needed.")
class NeedDetailsInput:
    budget_cents: int | None = strawberry.field(default=None, description="Budget or reward in fen.")
    needed_by: dt.date | None = strawberry.field(default=None, description="Needed by.")


def _details(
    rental: RentalDetailsInput | None,
    sale: SaleDetailsInput | None,
    job: JobDetailsInput | None,
    rental_wanted: RentalWantedDetailsInput | None,
    need: NeedDetailsInput | None,
) -> listings_service.Details | None:
    given: list[listings_service.Details] = []
    if rental is not None:
        given.append(
            listings_service.RentalDetails(
                room_type=rental.room_type, area_m2=rental.area_m2, monthly_rent_cents=rental.monthly_rent_cents,
                floor=rental.floor, total_floors=rental.total_floors, furnished=rental.furnished,
                available_from=rental.available_from,
            )
        )  # fmt: skip
    if sale is not None:
        given.append(listings_service.SaleDetails(price_cents=sale.price_cents, condition=sale.condition))
    if job is not None:
        given.append(
            listings_service.JobDetails(
                employer=job.employer, salary_min_cents=job.salary_min_cents, salary_max_cents=job.salary_max_cents,
                hours=job.hours, openings=job.openings,
            )
        )  # fmt: skip
    if rental_wanted is not None:
        given.append(
            listings_service.RentalWantedDetails(
                max_rent_cents=rental_wanted.max_rent_cents, min_area_m2=rental_wanted.min_area_m2,
                room_type=rental_wanted.room_type, move_in_by=rental_wanted.move_in_by,
            )
        )  # fmt: skip
    if need is not None:
        given.append(listings_service.NeedDetails(budget_cents=need.budget_cents, needed_by=need.needed_by))
    if len(given) > 1:
        raise listings_service.InvalidListingDetails("Give the details of one kind only.", field="details")
    return given[0] if given else None


@strawberry.input(description="A new listing: the common fields and the details of exactly its kind.")
class CreateListingInput:
    community_id: relay.GlobalID = strawberry.field(description="The community (you must live there, or be staff).")
    kind: models.ListingKind = strawberry.field(description="What sort of listing.")
    title: str = strawberry.field(description="Title (1 to 100 characters).")
    description: str = strawberry.field(default="", description="Free text (at most 4000 characters).")
    compound_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The compound (default: the one you live in)."
    )
    rental: RentalDetailsInput | None = strawberry.field(default=None, description="Details of a rental.")
    sale: SaleDetailsInput | None = strawberry.field(default=None, description="Details of a sale.")
    job: JobDetailsInput | None = strawberry.field(default=None, description="Details of a job ad.")
    rental_wanted: RentalWantedDetailsInput | None = strawberry.field(
        default=None, description="Details of a rental-wanted ad."
    )
    need: NeedDetailsInput | None = strawberry.field(default=None, description="Details of a need.")
    submit: bool = strawberry.field(
        default=False, description="Submit for moderation at once (staff posts are published at once)."
    )


@strawberry.input(description="Rewrite a draft, pending or rejected listing (its kind stays).")
class UpdateListingInput:
    listing_id: relay.GlobalID = strawberry.field(description="The listing.")
    title: str = strawberry.field(description="Title (1 to 100 characters).")
    description: str = strawberry.field(default="", description="Free text (at most 4000 characters).")
    compound_id: relay.GlobalID | None = strawberry.field(default=None, description="Move it to this compound.")
    rental: RentalDetailsInput | None = strawberry.field(default=None, description="Details of a rental.")
    sale: SaleDetailsInput | None = strawberry.field(default=None, description="Details of a sale.")
    job: JobDetailsInput | None = strawberry.field(default=None, description="Details of a job ad.")
    rental_wanted: RentalWantedDetailsInput | None = strawberry.field(
        default=None, description="Details of a rental-wanted ad."
    )
    need: NeedDetailsInput | None = strawberry.field(default=None, description="Details of a need.")


@strawberry.input(description="Submit a draft (or a corrected rejected listing) for moderation.")
class SubmitListingInput:
    listing_id: relay.GlobalID = strawberry.field(description="The listing.")


@strawberry.input(description="Publish or reject a pending listing (moderators).")
class ModerateListingInput:
    listing_id: relay.GlobalID = strawberry.field(description="The pending listing.")
    approve: bool = strawberry.field(description="True publishes it, false rejects it.")
    reason: str = strawberry.field(default="", description="Why it is rejected (required when rejecting).")


@strawberry.input(description="Renew an expired listing, or a published one in its last days.")
class RenewListingInput:
    listing_id: relay.GlobalID = strawberry.field(description="The listing.")


@strawberry.input(description="Take your listing down for good.")
class WithdrawListingInput:
    listing_id: relay.GlobalID = strawberry.field(description="The listing.")


@strawberry.input(description="Report an abusive listing (once per person).")
class ReportListingInput:
    listing_id: relay.GlobalID = strawberry.field(description="The listing.")
    reason: models.ReportReason = strawberry.field(description="Why.")
    note: str = strawberry.field(default="", description="More detail for the moderators (at most 500 characters).")


@strawberry.input(description="Decide on a listing hidden by reports (moderators): show it again or remove it.")
class ReviewReportedListingInput:
    listing_id: relay.GlobalID = strawberry.field(description="The hidden listing.")
    keep: bool = strawberry.field(description="True shows it again; false removes it.")
    note: str = strawberry.field(default="", description="Told to the poster; required when removing.")


@strawberry.input(description="Ask a listing's poster something; it goes to their inbox, no phone number is shared.")
class SendListingMessageInput:
    listing_id: relay.GlobalID = strawberry.field(description="The published listing.")
    body: str = strawberry.field(description="The message (1 to 1000 characters).")


@strawberry.input(description="Write in a listing conversation you are part of (the poster replies here).")
class ReplyToListingConversationInput:
    conversation_id: relay.GlobalID = strawberry.field(description="The conversation.")
    body: str = strawberry.field(description="The message (1 to 1000 characters).")


@strawberry.input(description="Photos for your listing, sent as a multipart request (GraphQL multipart request spec).")
class AddListingPhotosInput:
    listing_id: relay.GlobalID = strawberry.field(description="A draft, pending or rejected listing of yours.")
    photos: list[Upload] = strawberry.field(description="JPEG, PNG or WebP files (see photoUploadLimits).")


@strawberry.input(description="Filters of the listing search; all are optional and combine with AND.")
class ListingFilterInput:
    keyword: str | None = strawberry.field(
        default=None,
        description="Words in the title or description (at most 50 characters). 1–2 characters search only the "
        "newest listings (see searchMode).",
    )
    kinds: list[models.ListingKind] | None = strawberry.field(default=None, description="Only these kinds.")
    min_price_cents: int | None = strawberry.field(default=None, description="priceCents at least this.")
    max_price_cents: int | None = strawberry.field(default=None, description="priceCents at most this.")
    min_area_m2: float | None = strawberry.field(default=None, description="areaM2 at least this.")
    max_area_m2: float | None = strawberry.field(default=None, description="areaM2 at most this.")
    compound_id: relay.GlobalID | None = strawberry.field(default=None, description="Only in this compound.")


# -- results -----------------------------------------------------------------------------------------------


@strawberry.type(description="The listing.")
class ListingSuccess:
    listing: Listing = strawberry.field(description="The listing.")


@strawberry.type(description="The report was recorded.")
class ReportListingSuccess:
    listing_id: relay.GlobalID = strawberry.field(description="The listing reported.")
    hidden_now: bool = strawberry.field(description="True when this report hid the listing pending review.")


@strawberry.type(description="The message was sent; the other side finds it in their inbox.")
class ListingMessageSuccess:
    listing_message: ListingMessage = strawberry.field(description="The message.")
    conversation: ListingConversation = strawberry.field(description="The conversation it belongs to.")


@strawberry.type(description="The photos were added.")
class AddListingPhotosSuccess:
    listing: Listing = strawberry.field(description="The listing, with all its photos.")
    photos: list[ListingPhoto] = strawberry.field(description="The photos just added.")


CREATE_ERRORS: list[type[UserError]] = [
    NotCommunityResidentError, InvalidListingDetailsError, ValidationError, NotFoundError,
]  # fmt: skip
CreateListingResult = Annotated[
    ListingSuccess | NotCommunityResidentError | InvalidListingDetailsError | ValidationError | NotFoundError,
    strawberry.union("CreateListingResult", description="The listing, or why it was refused."),
]
UPDATE_ERRORS: list[type[UserError]] = [
    InvalidListingDetailsError, ListingStatusError, ValidationError, NotFoundError,
]  # fmt: skip
UpdateListingResult = Annotated[
    ListingSuccess | InvalidListingDetailsError | ListingStatusError | ValidationError | NotFoundError,
    strawberry.union("UpdateListingResult", description="The listing, or why the change was refused."),
]
CHANGE_ERRORS: list[type[UserError]] = [ListingStatusError, NotCommunityResidentError, ValidationError, NotFoundError]
ListingChangeResult = Annotated[
    ListingSuccess | ListingStatusError | NotCommunityResidentError | ValidationError | NotFoundError,
    strawberry.union("ListingChangeResult", description="The listing, or why the change was refused."),
]
RENEW_ERRORS: list[type[UserError]] = [
    RenewalNotDueError, ListingStatusError, NotCommunityResidentError, ValidationError, NotFoundError,
]  # fmt: skip
RenewListingResult = Annotated[
    ListingSuccess | RenewalNotDueError | ListingStatusError | NotCommunityResidentError | ValidationError
    | NotFoundError,
    strawberry.union("RenewListingResult", description="The renewed listing, or why it cannot be renewed."),
]  # fmt: skip
REPORT_ERRORS: list[type[UserError]] = [AlreadyReportedError, OwnListingError, ValidationError, NotFoundError]
ReportListingResult = Annotated[
    ReportListingSuccess | AlreadyReportedError | OwnListingError | ValidationError | NotFoundError,
    strawberry.union("ReportListingResult", description="The report, or why it was refused."),
]
MESSAGE_ERRORS: list[type[UserError]] = [
    MessageLimitReachedError, OwnListingError, ListingStatusError, ValidationError, NotFoundError,
]  # fmt: skip
ListingMessageResult = Annotated[
    ListingMessageSuccess | MessageLimitReachedError | OwnListingError | ListingStatusError | ValidationError
    | NotFoundError,
    strawberry.union("ListingMessageResult", description="The message, or why it was not sent."),
]  # fmt: skip
AddListingPhotosResult = Annotated[
    AddListingPhotosSuccess | ListingStatusError | NotFoundError | ValidationError | PhotoError,
    strawberry.union("AddListingPhotosResult", description="The photos, or why they were refused."),
]


@strawberry.type(description="A page of listings, newest first, with how the keyword was matched.")
class ListingSearchConnection(Connection[Listing]):
    @strawberry.field(
        description=f"How many listings match, counted up to {listings_service.COUNT_LIMIT:,} so that a search "
        "costs the same however many listings there are (see totalCountIsExact)."
    )
    async def total_count(self) -> int:
        return min(await self._count(), listings_service.COUNT_LIMIT)

    @strawberry.field(
        description=f"False when more than {listings_service.COUNT_LIMIT:,} listings match (totalCount then "
        f"says {listings_service.COUNT_LIMIT:,})."
    )
    async def total_count_is_exact(self) -> bool:
        return await self._count() <= listings_service.COUNT_LIMIT

    search_mode: listings_service.SearchMode = strawberry.field(description="How the keyword was matched.")
    scan_limit: int | None = strawberry.field(
        description="With bounded_scan: how many of the newest listings were searched; null otherwise."
    )


# -- queries ------------------------------------------------------------------------------------------------


def _bad_input(exc: DomainError) -> GraphQLError:
    return GraphQLError(exc.message, extensions={"code": "BAD_USER_INPUT", "field": exc.field})


def _filter(raw: ListingFilterInput | None) -> listings_service.ListingFilter:
    if raw is None:
        return listings_service.ListingFilter()
    return listings_service.ListingFilter(
        keyword=raw.keyword, kinds=tuple(raw.kinds or ()), min_price_cents=raw.min_price_cents,
        max_price_cents=raw.max_price_cents, min_area_m2=raw.min_area_m2, max_area_m2=raw.max_area_m2,
        compound_id=decode_id(raw.compound_id, "Compound") if raw.compound_id is not None else None,
    )  # fmt: skip


@strawberry.type
class ListingsQuery:
    @strawberry.field(
        description="Search the community's published listings (not expired, not hidden), newest first. "
        "Keywords of 3+ characters use the trigram index; 1–2 characters search only the newest listings."
    )
    async def listings(
        self,
        info: Info,
        community_id: Annotated[relay.GlobalID, strawberry.argument(description="The community.")],
        filter: Annotated[
            ListingFilterInput | None, strawberry.argument(description="Keyword, kinds, price, area, compound.")
        ] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> ListingSearchConnection:
        args = page_args(first, after)
        db = info.context.db
        try:
            search = listings_service.search_listings(
                info.context.viewer, community_id=decode_id(community_id, "Community"), filter=_filter(filter),
                dialect="sqlite" if db.is_sqlite else "postgresql", policy=_policy(info),
            )  # fmt: skip
        except DomainError as exc:
            raise _bad_input(exc) from exc
        async with db.read_session() as session:
            page = await listings_service.fetch_newest_page(session, search.statement, args)

        counted: list[int] = []

        async def count() -> int:  # asked for by totalCount and totalCountIsExact: counted once
            if not counted:
                async with db.read_session() as session:
                    counted.append(await listings_service.count_capped(session, search.statement))
            return counted[0]

        base = connection(page, Listing.from_model, count)
        return ListingSearchConnection(
            edges=base.edges, page_info=base.page_info, _count=count, search_mode=search.mode,
            scan_limit=search.scan_limit,
        )  # fmt: skip

    @strawberry.field(description="Your own listings, newest first (withdrawn and removed ones only when asked).")
    async def my_listings(
        self,
        info: Info,
        include_closed: Annotated[bool, strawberry.argument(description="Also withdrawn and removed ones.")] = False,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Listing]:
        args = page_args(first, after)
        db = info.context.db
        stmt = listings_service.my_listings(info.context.viewer, include_closed=include_closed)
        async with db.read_session() as session:
            page = await listings_service.fetch_newest_page(session, stmt, args)

        async def count() -> int:
            async with db.read_session() as session:
                return await count_of(session, stmt)

        return connection(page, Listing.from_model, count)

    @strawberry.field(
        description="What waits for moderators of the community: pending listings and listings hidden by "
        "reports, oldest first (empty for others)."
    )
    async def listing_moderation_queue(
        self,
        info: Info,
        community_id: Annotated[relay.GlobalID, strawberry.argument(description="The community.")],
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Listing]:
        stmt = listings_service.moderation_queue(info.context.viewer, community_id=decode_id(community_id, "Community"))
        return await paged(info.context.db, stmt, models.Listing.id, page_args(first, after), Listing.from_model)

    @strawberry.field(description="Your listing conversations (as poster or as the one who asked), oldest first.")
    async def listing_conversations(
        self, info: Info, first: FirstArg = None, after: AfterArg = None
    ) -> Connection[ListingConversation]:
        stmt = listings_service.visible_conversations(info.context.viewer)
        return await paged(
            info.context.db,
            stmt,
            models.ListingConversation.id,
            page_args(first, after),
            ListingConversation.from_model,
        )


# -- mutations ------------------------------------------------------------------------------------------------


@strawberry.type
class ListingsMutation:
    @strawberry.mutation(
        description="Write a listing (residents of the community, or staff), as a draft or submitted at once."
    )
    async def create_listing(self, info: Info, input: Annotated[CreateListingInput, InputArg]) -> CreateListingResult:
        try:
            details = _details(input.rental, input.sale, input.job, input.rental_wanted, input.need)
            draft = listings_service.ListingDraft(
                community_id=decode_id(input.community_id, "Community"), kind=input.kind, title=input.title,
                details=details,
                description=input.description,
                compound_id=decode_id(input.compound_id, "Compound") if input.compound_id else None,
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await listings_service.create_listing(
                    uow, viewer=info.context.viewer, draft=draft, submit=input.submit, policy=_policy(info)
                )
        except DomainError as exc:
            return _error(exc, CREATE_ERRORS)
        return ListingSuccess(listing=Listing.from_model(row))

    @strawberry.mutation(description="Rewrite your draft, pending or rejected listing.")
    async def update_listing(self, info: Info, input: Annotated[UpdateListingInput, InputArg]) -> UpdateListingResult:
        try:
            details = _details(input.rental, input.sale, input.job, input.rental_wanted, input.need)
            if details is None:
                raise listings_service.InvalidListingDetails("Give the details of the listing's kind.", field="details")
            listing_id = decode_id(input.listing_id, "Listing")
            draft = listings_service.ListingDraft(
                community_id=0, kind=listings_service.DETAIL_KINDS[type(details)], title=input.title,
                details=details, description=input.description,
                compound_id=decode_id(input.compound_id, "Compound") if input.compound_id else None,
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await listings_service.update_listing(
                    uow, viewer=info.context.viewer, listing_id=listing_id, draft=draft
                )
        except DomainError as exc:
            return _error(exc, UPDATE_ERRORS)
        return ListingSuccess(listing=Listing.from_model(row))

    @strawberry.mutation(description="Submit your draft (or corrected rejected) listing for moderation.")
    async def submit_listing(self, info: Info, input: Annotated[SubmitListingInput, InputArg]) -> ListingChangeResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await listings_service.submit_listing(
                    uow, viewer=info.context.viewer, listing_id=decode_id(input.listing_id, "Listing"),
                    policy=_policy(info),
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, CHANGE_ERRORS)
        return ListingSuccess(listing=Listing.from_model(row))

    @strawberry.mutation(description="Publish or reject a pending listing (moderators); the poster is told.")
    async def moderate_listing(
        self, info: Info, input: Annotated[ModerateListingInput, InputArg]
    ) -> ListingChangeResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await listings_service.moderate_listing(
                    uow, viewer=info.context.viewer, listing_id=decode_id(input.listing_id, "Listing"),
                    approve=input.approve, reason=input.reason, policy=_policy(info),
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, CHANGE_ERRORS)
        return ListingSuccess(listing=Listing.from_model(row))

    @strawberry.mutation(description="Renew your expired listing, or your published one in its last days.")
    async def renew_listing(self, info: Info, input: Annotated[RenewListingInput, InputArg]) -> RenewListingResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await listings_service.renew_listing(
                    uow, viewer=info.context.viewer, listing_id=decode_id(input.listing_id, "Listing"),
                    policy=_policy(info),
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, RENEW_ERRORS)
        return ListingSuccess(listing=Listing.from_model(row))

    @strawberry.mutation(description="Take your listing down for good.")
    async def withdraw_listing(
        self, info: Info, input: Annotated[WithdrawListingInput, InputArg]
    ) -> ListingChangeResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await listings_service.withdraw_listing(
                    uow, viewer=info.context.viewer, listing_id=decode_id(input.listing_id, "Listing")
                )
        except DomainError as exc:
            return _error(exc, CHANGE_ERRORS)
        return ListingSuccess(listing=Listing.from_model(row))

    @strawberry.mutation(
        description="Report an abusive listing; enough reports (or one by staff) hide it pending review."
    )
    async def report_listing(self, info: Info, input: Annotated[ReportListingInput, InputArg]) -> ReportListingResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                outcome = await listings_service.report_listing(
                    uow, viewer=info.context.viewer, listing_id=decode_id(input.listing_id, "Listing"),
                    reason=input.reason, note=input.note, policy=_policy(info),
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, REPORT_ERRORS)
        return ReportListingSuccess(listing_id=input.listing_id, hidden_now=outcome.hid_it)

    @strawberry.mutation(description="Show a listing hidden by reports again, or remove it (moderators).")
    async def review_reported_listing(
        self, info: Info, input: Annotated[ReviewReportedListingInput, InputArg]
    ) -> ListingChangeResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await listings_service.review_reported_listing(
                    uow, viewer=info.context.viewer, listing_id=decode_id(input.listing_id, "Listing"),
                    keep=input.keep, note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, CHANGE_ERRORS)
        return ListingSuccess(listing=Listing.from_model(row))

    @strawberry.mutation(
        description="Ask a listing's poster something; it reaches their inbox and no phone number is shared. "
        "Messages per listing and day are limited."
    )
    async def send_listing_message(
        self, info: Info, input: Annotated[SendListingMessageInput, InputArg]
    ) -> ListingMessageResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                message = await listings_service.send_message(
                    uow, viewer=info.context.viewer, listing_id=decode_id(input.listing_id, "Listing"),
                    body=input.body, policy=_policy(info),
                )  # fmt: skip
                conversation = await uow.session.get(models.ListingConversation, message.conversation_id)
        except DomainError as exc:
            return _error(exc, MESSAGE_ERRORS)
        assert conversation is not None
        return ListingMessageSuccess(
            listing_message=ListingMessage.from_model(message),
            conversation=ListingConversation.from_model(conversation),
        )

    @strawberry.mutation(description="Write in a listing conversation you are part of; the other side is told.")
    async def reply_to_listing_conversation(
        self, info: Info, input: Annotated[ReplyToListingConversationInput, InputArg]
    ) -> ListingMessageResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                message = await listings_service.reply(
                    uow, viewer=info.context.viewer,
                    conversation_id=decode_id(input.conversation_id, "ListingConversation"), body=input.body,
                    policy=_policy(info),
                )  # fmt: skip
                conversation = await uow.session.get(models.ListingConversation, message.conversation_id)
        except DomainError as exc:
            return _error(exc, MESSAGE_ERRORS)
        assert conversation is not None
        return ListingMessageSuccess(
            listing_message=ListingMessage.from_model(message),
            conversation=ListingConversation.from_model(conversation),
        )

    @strawberry.mutation(description="Add photos to your draft, pending or rejected listing.")
    async def add_listing_photos(
        self, info: Info, input: Annotated[AddListingPhotosInput, InputArg]
    ) -> AddListingPhotosResult:
        services, viewer = info.context.services, info.context.viewer
        limits = photo_limits(services.settings)
        try:
            try:  # a listing the viewer may not change costs one query, not the decoding of its photos
                listing_id = decode_id(input.listing_id, "Listing")
                viewer.require_authenticated()
                async with info.context.db.read_session() as session:
                    row = await session.scalar(
                        listings_service.visible_listings(viewer).where(models.Listing.id == listing_id)
                    )
                    if row is None:
                        raise NotFound("No such listing.", field="listingId")
                    if row.poster_account_id != viewer.account_id:
                        raise Forbidden("Only the poster can do this.")
            except DomainError:
                await close_uploads(input.photos)
                raise
            # Read and decode before the transaction: decoding is slow and must not hold a connection.
            prepared = await prepare_photos(
                await read_uploads(input.photos, limits, viewer), limits=limits, owner="listing"
            )
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                rows = await listings_service.add_listing_photos(
                    uow, viewer=viewer, store=services.photos, listing_id=listing_id, photos=prepared, limits=limits
                )
                listing = await uow.session.get(models.Listing, listing_id)
        except (Forbidden, Unauthenticated) as exc:
            raise auth_error(exc) from exc
        except DomainError as exc:
            if isinstance(exc, listings_service.WrongListingStatus):
                return _error(exc, [ListingStatusError])
            return photo_result_error(exc, [NotFoundError, ValidationError])
        assert listing is not None
        return AddListingPhotosSuccess(
            listing=Listing.from_model(listing), photos=[ListingPhoto.from_model(r) for r in rows]
        )


TYPES: list[Any] = [
    Listing,
    ListingPhoto,
    ListingConversation,
    ListingMessage,
    RentalDetails,
    SaleDetails,
    JobDetails,
    RentalWantedDetails,
    NeedDetails,
]
