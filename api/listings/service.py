"""Listings: posting and moderation, expiry and renewal, search, abuse reports and private messages.

The life of a listing: draft → pending (submitted) → published | rejected (with a reason) →
expired (after `publish_days`) → renewed (published again, or pending when renewals need review)
→ withdrawn by the poster at any point; staff may remove one after reviewing reports. Only
residents of the community (and its staff) may post; staff posts skip moderation.

Concurrency: a change to one listing locks its row (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite
every writer holds the one write lock from BEGIN), then checks the status, so two moderators cannot
both decide a listing and a withdrawal cannot slip between a check and a write. Reports rely on the
unique ``(listing_id, reporter_account_id)`` and a single conditional ``UPDATE … RETURNING`` that
counts the reporter and hides the listing at the threshold; messages lock their conversation before
counting the sender's messages of the day. The expiry scan is one conditional UPDATE per step.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    any_,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import CHINA_TZ, utc_now
from api.core.database import UnitOfWork
from api.core.db import is_unique_violation
from api.core.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from api.core.images import (
    PhotoLimits,
    PhotoStore,
    PreparedPhoto,
    check_count,
    ensure_prepared,
    store_unless_rolled_back,
)
from api.core.pagination import Page, PageArgs
from api.core.viewer import Permission, Viewer
from api.listings import jobs
from api.listings.models import (
    EDITABLE_STATUSES,
    OPEN_STATUSES,
    ItemCondition,
    Listing,
    ListingConversation,
    ListingKind,
    ListingMessage,
    ListingPhoto,
    ListingReport,
    ListingStatus,
    ReportReason,
)
from api.notifications import service as notifications
from api.registry.models import Building, Compound, Household, Resident

if TYPE_CHECKING:
    from api.settings import Settings

T = TypeVar("T")

MAX_TITLE = 100
MAX_DESCRIPTION = 4000
MAX_SHORT = 50
MAX_NOTE = 500
MAX_MESSAGE = 1000
MAX_KEYWORD = 50
MAX_PRICE_CENTS = 1_000_000_000  # ten million yuan
MAX_AREA_M2 = 10_000.0
MAX_FLOOR = 200
TRIGRAM_MIN = 3  # pg_trgm extracts no trigram from a shorter keyword


# -- policy and errors -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListingPolicy:
    """The configurable rules (LINLI_LISTINGS_* settings)."""

    publish_days: int = 30
    expiry_warning_days: int = 3
    report_threshold: int = 3
    messages_per_day: int = 10
    renewal_needs_review: bool = False
    short_keyword_scan: int = 5000

    @classmethod
    def from_settings(cls, settings: Settings) -> ListingPolicy:
        return cls(
            publish_days=settings.listings_publish_days,
            expiry_warning_days=settings.listings_expiry_warning_days,
            report_threshold=settings.listings_report_threshold,
            messages_per_day=settings.listings_messages_per_day,
            renewal_needs_review=settings.listings_renewal_needs_review,
            short_keyword_scan=settings.listings_short_keyword_scan,
        )


DEFAULT_POLICY = ListingPolicy()


class NotCommunityResident(DomainError):
    """Only residents of the community (and its staff) may post there."""

    code = "NOT_COMMUNITY_RESIDENT"


class InvalidListingDetails(ValidationFailed):
    """The kind-specific part is missing, of another kind, or invalid."""

    code = "INVALID_LISTING_DETAILS"


class WrongListingStatus(Conflict):
    """The listing is not in a status that allows this."""

    code = "WRONG_LISTING_STATUS"

    def __init__(self, message: str, *, status: str, field: str | None = "listingId") -> None:
        super().__init__(message, field=field)
        self.status = status


class AlreadyReported(Conflict):
    code = "ALREADY_REPORTED"


class OwnListing(Conflict):
    """People cannot report or message their own listing."""

    code = "OWN_LISTING"


class MessageLimitReached(Conflict):
    code = "MESSAGE_LIMIT_REACHED"

    def __init__(self, message: str, *, limit: int, field: str | None = "body") -> None:
        super().__init__(message, field=field)
        self.limit = limit


class RenewalNotDue(Conflict):
    code = "RENEWAL_NOT_DUE"

    def __init__(self, message: str, *, renewable_from: datetime, field: str | None = "listingId") -> None:
        super().__init__(message, field=field)
        self.renewable_from = renewable_from


# -- kind-specific details ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RentalDetails:
    """房屋出租."""

    room_type: str  # e.g. 两室一厅
    area_m2: float
    monthly_rent_cents: int
    floor: int
    total_floors: int | None = None
    furnished: bool = False
    available_from: date | None = None


@dataclass(frozen=True, slots=True)
class SaleDetails:
    """闲置出售 (a price of 0 gives the item away)."""

    price_cents: int
    condition: ItemCondition


@dataclass(frozen=True, slots=True)
class JobDetails:
    """招聘."""

    employer: str
    salary_min_cents: int | None = None  # per month
    salary_max_cents: int | None = None
    hours: str = ""
    openings: int = 1


@dataclass(frozen=True, slots=True)
class RentalWantedDetails:
    """求租."""

    max_rent_cents: int | None = None
    min_area_m2: float | None = None
    room_type: str = ""
    move_in_by: date | None = None


@dataclass(frozen=True, slots=True)
class NeedDetails:
    """需求发布."""

    budget_cents: int | None = None
    needed_by: date | None = None


Details = RentalDetails | SaleDetails | JobDetails | RentalWantedDetails | NeedDetails
DETAIL_KINDS: dict[type[Any], ListingKind] = {
    RentalDetails: ListingKind.RENTAL,
    SaleDetails: ListingKind.SALE,
    JobDetails: ListingKind.JOB,
    RentalWantedDetails: ListingKind.RENTAL_WANTED,
    NeedDetails: ListingKind.NEED,
}
DETAIL_FIELDS = {
    ListingKind.RENTAL: "rental",
    ListingKind.SALE: "sale",
    ListingKind.JOB: "job",
    ListingKind.RENTAL_WANTED: "rentalWanted",
    ListingKind.NEED: "need",
}


@dataclass(frozen=True, slots=True)
class Validated:
    price_cents: int | None
    area_m2: float | None
    doc: dict[str, Any]


def _money(value: int | None, field: str, *, required: bool = False) -> int | None:
    if value is None:
        if required:
            raise InvalidListingDetails("Please give the amount.", field=field)
        return None
    if not 0 <= value <= MAX_PRICE_CENTS:
        raise InvalidListingDetails("Give an amount in fen from 0 to 1,000,000,000.", field=field)
    return value


def _area(value: float | None, field: str, *, required: bool = False) -> float | None:
    if value is None:
        if required:
            raise InvalidListingDetails("Please give the area in square metres.", field=field)
        return None
    if not 0 < value <= MAX_AREA_M2:
        raise InvalidListingDetails("Give an area above 0 and at most 10,000 m².", field=field)
    return round(float(value), 1)


def _short(value: str, field: str, *, required: bool) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise InvalidListingDetails("Please fill this in.", field=field)
    if len(cleaned) > MAX_SHORT:
        raise InvalidListingDetails(f"At most {MAX_SHORT} characters.", field=field)
    return cleaned


def validate_details(kind: ListingKind, details: Details | None) -> Validated:
    """Check the kind-specific part and split it into search columns and the document. Raises InvalidListingDetails."""
    name = DETAIL_FIELDS[kind]
    if details is None or DETAIL_KINDS[type(details)] is not kind:
        raise InvalidListingDetails(f"A {kind.value} listing needs its `{name}` details (and no other).", field=name)
    if isinstance(details, RentalDetails):
        if not 1 <= details.floor <= MAX_FLOOR and not -5 <= details.floor <= -1:
            raise InvalidListingDetails("Give the floor (-5 to 200).", field="rental.floor")
        if details.total_floors is not None and not (1 <= details.total_floors <= MAX_FLOOR):
            raise InvalidListingDetails("The building has 1 to 200 floors.", field="rental.totalFloors")
        if details.total_floors is not None and details.floor > details.total_floors:
            raise InvalidListingDetails("The floor is above the top floor.", field="rental.floor")
        return Validated(
            _money(details.monthly_rent_cents, "rental.monthlyRentCents", required=True),
            _area(details.area_m2, "rental.areaM2", required=True),
            {
                "room_type": _short(details.room_type, "rental.roomType", required=True),
                "floor": details.floor,
                "total_floors": details.total_floors,
                "furnished": details.furnished,
                "available_from": details.available_from.isoformat() if details.available_from else None,
            },
        )
    if isinstance(details, SaleDetails):
        return Validated(
            _money(details.price_cents, "sale.priceCents", required=True),
            None,
            {"condition": ItemCondition(details.condition).value},
        )
    if isinstance(details, JobDetails):
        low = _money(details.salary_min_cents, "job.salaryMinCents")
        high = _money(details.salary_max_cents, "job.salaryMaxCents")
        if low is not None and high is not None and high < low:
            raise InvalidListingDetails("The highest salary is below the lowest.", field="job.salaryMaxCents")
        if not 1 <= details.openings <= 1000:
            raise InvalidListingDetails("1 to 1000 openings.", field="job.openings")
        return Validated(
            low if low is not None else high,
            None,
            {
                "employer": _short(details.employer, "job.employer", required=True),
                "salary_min_cents": low,
                "salary_max_cents": high,
                "hours": _short(details.hours, "job.hours", required=False),
                "openings": details.openings,
            },
        )
    if isinstance(details, RentalWantedDetails):
        return Validated(
            _money(details.max_rent_cents, "rentalWanted.maxRentCents"),
            _area(details.min_area_m2, "rentalWanted.minAreaM2"),
            {
                "room_type": _short(details.room_type, "rentalWanted.roomType", required=False),
                "move_in_by": details.move_in_by.isoformat() if details.move_in_by else None,
            },
        )
    return Validated(
        _money(details.budget_cents, "need.budgetCents"),
        None,
        {"needed_by": details.needed_by.isoformat() if details.needed_by else None},
    )


def _iso(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def details_of(row: Listing) -> Details:
    """The kind-specific part of a stored listing."""
    doc = row.details or {}
    kind = ListingKind(row.kind)
    if kind is ListingKind.RENTAL:
        return RentalDetails(
            room_type=str(doc.get("room_type", "")), area_m2=float(row.area_m2 or 0),
            monthly_rent_cents=int(row.price_cents or 0), floor=int(doc.get("floor", 1)),
            total_floors=doc.get("total_floors"), furnished=bool(doc.get("furnished", False)),
            available_from=_iso(doc.get("available_from")),
        )  # fmt: skip
    if kind is ListingKind.SALE:
        return SaleDetails(price_cents=int(row.price_cents or 0), condition=ItemCondition(doc.get("condition", "good")))
    if kind is ListingKind.JOB:
        return JobDetails(
            employer=str(doc.get("employer", "")), salary_min_cents=doc.get("salary_min_cents"),
            salary_max_cents=doc.get("salary_max_cents"), hours=str(doc.get("hours", "")),
            openings=int(doc.get("openings", 1)),
        )  # fmt: skip
    if kind is ListingKind.RENTAL_WANTED:
        return RentalWantedDetails(
            max_rent_cents=row.price_cents, min_area_m2=row.area_m2, room_type=str(doc.get("room_type", "")),
            move_in_by=_iso(doc.get("move_in_by")),
        )  # fmt: skip
    return NeedDetails(budget_cents=row.price_cents, needed_by=_iso(doc.get("needed_by")))


# -- helpers ---------------------------------------------------------------------------------------


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _for_update(session: AsyncSession, stmt: Select[T]) -> Select[T]:
    return stmt.with_for_update() if _postgres(session) else stmt


def _text(value: str, *, field: str, limit: int, what: str, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise ValidationFailed(f"Please give the {what}.", field=field)
    if len(cleaned) > limit:
        raise ValidationFailed(f"At most {limit} characters.", field=field)
    return cleaned


def china_day(at: datetime) -> date:
    return at.astimezone(CHINA_TZ).date()


def can_moderate(viewer: Viewer, community_id: int) -> bool:
    return viewer.can(Permission.MODERATE_LISTINGS, community_id)


def public_conditions(now: datetime) -> list[ColumnElement[bool]]:
    """What residents see: published, not expired, not hidden pending review."""
    return [
        Listing.status == ListingStatus.PUBLISHED.value,
        Listing.hidden_at.is_(None),
        Listing.expires_at > now,
    ]


def visible_listings(viewer: Viewer, now: datetime | None = None) -> Select[Listing]:
    """Listings that exist for the viewer.

    The public ones of their communities, their own, and every submitted one of the communities they moderate.
    """
    now = now or utc_now()
    conds: list[ColumnElement[bool]] = [and_(Listing.community_id.in_(viewer.community_ids), *public_conditions(now))]
    moderated = viewer.communities_where(Permission.MODERATE_LISTINGS)
    if moderated:
        conds.append(and_(Listing.community_id.in_(moderated), Listing.status != ListingStatus.DRAFT.value))
    if viewer.account_id is not None:
        conds.append(Listing.poster_account_id == viewer.account_id)
    return select(Listing).where(or_(*conds))


async def _locked(uow: UnitOfWork, viewer: Viewer, listing_id: int) -> Listing:
    """The listing, locked for this transaction; NotFound unless the viewer can see it."""
    viewer.require_authenticated()
    row = await uow.session.scalar(_for_update(uow.session, visible_listings(viewer).where(Listing.id == listing_id)))
    if row is None:
        raise NotFound("No such listing.", field="listingId")
    return row


def _require_poster(viewer: Viewer, listing: Listing) -> None:
    if viewer.account_id != listing.poster_account_id:
        raise Forbidden("Only the poster can do this.")


def _require_moderator(viewer: Viewer, community_id: int) -> None:
    viewer.require(Permission.MODERATE_LISTINGS, community_id)


def _wrong(listing: Listing, what: str) -> WrongListingStatus:
    return WrongListingStatus(f"This listing is {listing.status}; {what}.", status=listing.status)


def notice_key(listing: Listing) -> str:
    """Distinguishes one submission and renewal of a listing from the next, for once-only notices."""
    return f"{listing.revision}.{listing.renewals}"


def _publish(listing: Listing, now: datetime, policy: ListingPolicy) -> None:
    listing.status = ListingStatus.PUBLISHED.value
    listing.published_at = now
    listing.sort_at = now
    listing.expires_at = now + timedelta(days=policy.publish_days)
    listing.expiry_warned_at = None
    listing.expired_at = None
    listing.reject_reason = None


def _submit(listing: Listing, now: datetime) -> None:
    listing.status = ListingStatus.PENDING.value
    listing.submitted_at = now
    listing.revision += 1
    listing.reject_reason = None


# -- posting --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListingDraft:
    community_id: int
    kind: ListingKind
    title: str
    details: Details | None  # None is refused (InvalidListingDetails)
    description: str = ""
    compound_id: int | None = None


async def _poster_resident(session: AsyncSession, viewer: Viewer, community_id: int) -> Resident | None:
    if viewer.resident_id is None:
        return None
    resident = await session.get(Resident, viewer.resident_id)
    if resident is None or resident.community_id != community_id:
        return None
    return resident


async def _compound_of(session: AsyncSession, resident: Resident | None) -> int | None:
    if resident is None or resident.household_id is None:
        return None
    return await session.scalar(
        select(Building.compound_id)
        .join(Household, Household.building_id == Building.id)
        .where(Household.id == resident.household_id)
    )


async def _check_compound(session: AsyncSession, community_id: int, compound_id: int | None) -> None:
    if compound_id is None:
        return
    found = await session.scalar(
        select(Compound.id).where(Compound.id == compound_id, Compound.community_id == community_id)
    )
    if found is None:
        raise NotFound("No such compound in this community.", field="compoundId")


def _fill(listing: Listing, draft: ListingDraft, checked: Validated) -> None:
    listing.kind = ListingKind(draft.kind).value
    listing.title = _text(draft.title, field="title", limit=MAX_TITLE, what="title")
    listing.description = _text(
        draft.description, field="description", limit=MAX_DESCRIPTION, what="description", required=False
    )
    listing.price_cents = checked.price_cents
    listing.area_m2 = checked.area_m2
    listing.details = checked.doc


async def create_listing(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    draft: ListingDraft,
    submit: bool = False,
    policy: ListingPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> Listing:
    """A resident of the community (or its staff) writes a listing, as a draft or submitted at once.

    Staff posts are published without moderation. Raises Unauthenticated, NotCommunityResident,
    ValidationFailed, InvalidListingDetails, NotFound (compound).
    """
    viewer.require_authenticated()
    now = now or utc_now()
    resident = await _poster_resident(uow.session, viewer, draft.community_id)
    staff = can_moderate(viewer, draft.community_id)
    if resident is None and not staff:
        raise NotCommunityResident("Only residents of this community can post here.", field="communityId")
    kind = ListingKind(draft.kind)
    checked = validate_details(kind, draft.details)
    compound_id = draft.compound_id
    await _check_compound(uow.session, draft.community_id, compound_id)
    if compound_id is None:
        compound_id = await _compound_of(uow.session, resident)
    listing = Listing(
        community_id=draft.community_id,
        compound_id=compound_id,
        poster_account_id=viewer.account_id,
        poster_resident_id=resident.id if resident else None,
        status=ListingStatus.DRAFT.value,
        revision=0,
        renewals=0,
        report_count=0,
        sort_at=now,
        created_at=now,
        updated_at=now,
    )
    _fill(listing, draft, checked)
    if submit:
        _submit(listing, now)
        if staff:
            _publish(listing, now, policy)
    uow.session.add(listing)
    await uow.session.flush()
    if submit and staff:
        uow.enqueue(jobs.notify_poster(listing.id, "published", notice_key(listing)))
    return listing


async def update_listing(
    uow: UnitOfWork, *, viewer: Viewer, listing_id: int, draft: ListingDraft, now: datetime | None = None
) -> Listing:
    """The poster rewrites a draft, pending or rejected listing (a published one must be withdrawn first).

    Raises NotFound, Forbidden, WrongListingStatus, ValidationFailed, InvalidListingDetails.
    """
    listing = await _locked(uow, viewer, listing_id)
    _require_poster(viewer, listing)
    if listing.status not in EDITABLE_STATUSES:
        raise _wrong(listing, "only a draft, pending or rejected listing can be changed")
    if ListingKind(draft.kind).value != listing.kind:
        raise InvalidListingDetails("The kind of a listing cannot change; post a new one.", field="kind")
    checked = validate_details(ListingKind(draft.kind), draft.details)
    await _check_compound(uow.session, listing.community_id, draft.compound_id)
    _fill(listing, draft, checked)
    if draft.compound_id is not None:
        listing.compound_id = draft.compound_id
    listing.updated_at = now or utc_now()
    await uow.session.flush()
    return listing


async def submit_listing(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    listing_id: int,
    policy: ListingPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> Listing:
    """The poster submits a draft (or a corrected rejected listing) for moderation.

    Raises NotFound, Forbidden, WrongListingStatus, NotCommunityResident (moved away meanwhile).
    """
    now = now or utc_now()
    listing = await _locked(uow, viewer, listing_id)
    _require_poster(viewer, listing)
    if listing.status not in (ListingStatus.DRAFT.value, ListingStatus.REJECTED.value):
        raise _wrong(listing, "only a draft or a rejected listing can be submitted")
    staff = can_moderate(viewer, listing.community_id)
    if not staff and await _poster_resident(uow.session, viewer, listing.community_id) is None:
        raise NotCommunityResident("Only residents of this community can post here.", field="listingId")
    _submit(listing, now)
    if staff:
        _publish(listing, now, policy)
        uow.enqueue(jobs.notify_poster(listing.id, "published", notice_key(listing)))
    listing.updated_at = now
    await uow.session.flush()
    return listing


async def moderate_listing(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    listing_id: int,
    approve: bool,
    reason: str = "",
    policy: ListingPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> Listing:
    """A moderator publishes or rejects (with a reason) a pending listing; the poster is told.

    Raises NotFound, Forbidden, WrongListingStatus, ValidationFailed (no reason).
    """
    now = now or utc_now()
    listing = await _locked(uow, viewer, listing_id)
    _require_moderator(viewer, listing.community_id)
    if listing.status != ListingStatus.PENDING.value:
        raise _wrong(listing, "only a pending listing can be moderated")
    if approve:
        _publish(listing, now, policy)
    else:
        listing.status = ListingStatus.REJECTED.value
        listing.reject_reason = _text(reason, field="reason", limit=MAX_NOTE, what="reason for the rejection")
    listing.moderated_by_account_id = viewer.account_id
    listing.moderated_at = now
    listing.updated_at = now
    await uow.session.flush()
    uow.enqueue(jobs.notify_poster(listing.id, "published" if approve else "rejected", notice_key(listing)))
    return listing


def renewable_from(listing: Listing, policy: ListingPolicy) -> datetime | None:
    """When a published listing may be renewed (the warning period before it expires)."""
    if listing.expires_at is None:
        return None
    return listing.expires_at - timedelta(days=policy.expiry_warning_days)


async def renew_listing(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    listing_id: int,
    policy: ListingPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> Listing:
    """The poster renews an expired listing, or a published one in its last days.

    It is published again for `publish_days` (or goes back to moderation when the policy says so).
    Raises NotFound, Forbidden, WrongListingStatus, RenewalNotDue, NotCommunityResident.
    """
    now = now or utc_now()
    listing = await _locked(uow, viewer, listing_id)
    _require_poster(viewer, listing)
    if listing.status == ListingStatus.PUBLISHED.value:
        start = renewable_from(listing, policy)
        if start is not None and now < start:
            raise RenewalNotDue(
                f"It can be renewed from {start.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}, in its last "
                f"{policy.expiry_warning_days} days.",
                renewable_from=start,
            )
    elif listing.status != ListingStatus.EXPIRED.value:
        raise _wrong(listing, "only a published or expired listing can be renewed")
    staff = can_moderate(viewer, listing.community_id)
    if not staff and await _poster_resident(uow.session, viewer, listing.community_id) is None:
        raise NotCommunityResident("Only residents of this community can post here.", field="listingId")
    listing.renewals += 1
    if policy.renewal_needs_review and not staff:
        _submit(listing, now)
        listing.expires_at = None
    else:
        _publish(listing, now, policy)
    listing.updated_at = now
    await uow.session.flush()
    return listing


async def withdraw_listing(uow: UnitOfWork, *, viewer: Viewer, listing_id: int, now: datetime | None = None) -> Listing:
    """The poster takes a listing down for good. Raises NotFound, Forbidden, WrongListingStatus."""
    now = now or utc_now()
    listing = await _locked(uow, viewer, listing_id)
    _require_poster(viewer, listing)
    if listing.status not in OPEN_STATUSES:
        raise _wrong(listing, "it cannot be withdrawn")
    listing.status = ListingStatus.WITHDRAWN.value
    listing.withdrawn_at = now
    listing.updated_at = now
    await uow.session.flush()
    return listing


# -- reports -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    report: ListingReport
    listing: Listing
    hid_it: bool  # this report hid the listing


async def report_listing(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    listing_id: int,
    reason: ReportReason,
    note: str = "",
    policy: ListingPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> ReportOutcome:
    """Report an abusive listing, once per person.

    At `report_threshold` distinct reporters, or at once when a moderator reports, the listing is
    hidden pending review and the poster is told.

    Raises Unauthenticated, NotFound, OwnListing, AlreadyReported, ValidationFailed.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    listing = await uow.session.scalar(visible_listings(viewer, now).where(Listing.id == listing_id))
    if listing is None or listing.status != ListingStatus.PUBLISHED.value:
        raise NotFound("No such listing.", field="listingId")
    if listing.poster_account_id == viewer.account_id:
        raise OwnListing("You cannot report your own listing.", field="listingId")
    staff = can_moderate(viewer, listing.community_id)
    report = ListingReport(
        community_id=listing.community_id,
        listing_id=listing.id,
        reporter_account_id=viewer.account_id,
        reason=ReportReason(reason).value,
        note=_text(note, field="note", limit=MAX_NOTE, what="note", required=False),
        by_staff=staff,
        created_at=now,
    )
    try:
        async with uow.session.begin_nested():
            uow.session.add(report)
            await uow.session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise AlreadyReported("You have reported this listing already.", field="listingId") from exc
        raise
    # One statement counts the reporter and hides at the threshold: the right-hand sides all see the
    # row as it was, and concurrent reports queue on the row lock, so exactly one of them hides it.
    hide = and_(Listing.hidden_at.is_(None), or_(literal(staff), Listing.report_count + 1 >= policy.report_threshold))
    result = await uow.session.execute(
        update(Listing)
        .where(Listing.id == listing.id)
        .values(
            report_count=Listing.report_count + 1,
            hidden_at=case((hide, now), else_=Listing.hidden_at),
            hidden_reason=case((hide, "staff_report" if staff else "reports"), else_=Listing.hidden_reason),
        )
        .returning(Listing.hidden_at)
        .execution_options(synchronize_session=False)
    )
    hidden_at = result.scalar_one()
    hid_it = hidden_at is not None and hidden_at == now
    await uow.session.refresh(listing)
    if hid_it:
        uow.enqueue(jobs.notify_poster(listing.id, "hidden", f"{notice_key(listing)}.{int(now.timestamp())}"))
    return ReportOutcome(report, listing, hid_it)


async def review_reported_listing(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    listing_id: int,
    keep: bool,
    note: str = "",
    now: datetime | None = None,
) -> Listing:
    """A moderator reviews a hidden listing: shows it again (the reports are resolved) or removes it.

    Raises NotFound, Forbidden, WrongListingStatus, ValidationFailed (no note when removing).
    """
    now = now or utc_now()
    listing = await _locked(uow, viewer, listing_id)
    _require_moderator(viewer, listing.community_id)
    if listing.hidden_at is None or listing.status != ListingStatus.PUBLISHED.value:
        raise _wrong(listing, "only a published listing hidden by reports is reviewed")
    clean = _text(note, field="note", limit=MAX_NOTE, what="reason for the removal", required=not keep)
    await uow.session.execute(
        update(ListingReport)
        .where(ListingReport.listing_id == listing.id, ListingReport.resolved_at.is_(None))
        .values(resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    listing.reviewed_at = now
    listing.review_note = clean or None
    listing.moderated_by_account_id = viewer.account_id
    if keep:
        listing.hidden_at = None
        listing.hidden_reason = None
        listing.report_count = 0
    else:
        listing.status = ListingStatus.REMOVED.value
    listing.updated_at = now
    await uow.session.flush()
    uow.enqueue(
        jobs.notify_poster(
            listing.id, "restored" if keep else "removed", f"{notice_key(listing)}.{int(now.timestamp())}"
        )
    )
    return listing


# -- messages --------------------------------------------------------------------------------------------


async def _conversation_for(uow: UnitOfWork, listing: Listing, inquirer_account_id: int, now: datetime) -> int:
    """The id of the (listing, inquirer) conversation, made on first contact (concurrent firsts make one)."""
    values = {
        "community_id": listing.community_id,
        "listing_id": listing.id,
        "inquirer_account_id": inquirer_account_id,
        "poster_account_id": listing.poster_account_id,
        "last_message_at": now,
        "created_at": now,
    }
    insert = postgresql.insert if _postgres(uow.session) else sqlite.insert
    await uow.session.execute(
        insert(ListingConversation)
        .values(values)
        .on_conflict_do_nothing(index_elements=["listing_id", "inquirer_account_id"])
    )
    conversation_id = await uow.session.scalar(
        select(ListingConversation.id).where(
            ListingConversation.listing_id == listing.id,
            ListingConversation.inquirer_account_id == inquirer_account_id,
        )
    )
    assert conversation_id is not None
    return int(conversation_id)


async def _post_message(
    uow: UnitOfWork,
    *,
    conversation: ListingConversation,
    sender_account_id: int,
    body: str,
    policy: ListingPolicy,
    now: datetime,
) -> ListingMessage:
    """Append a message under the daily limit; the conversation row is locked, so the count holds."""
    text = _text(body, field="body", limit=MAX_MESSAGE, what="message")
    today = china_day(now)
    sent_today = await uow.session.scalar(
        select(func.count()).where(
            ListingMessage.conversation_id == conversation.id,
            ListingMessage.sender_account_id == sender_account_id,
            ListingMessage.sent_on == today,
        )
    )
    if int(sent_today or 0) >= policy.messages_per_day:
        raise MessageLimitReached(
            f"You can send {policy.messages_per_day} messages a day about one listing; try again tomorrow.",
            limit=policy.messages_per_day,
        )
    recipient = (
        conversation.poster_account_id
        if sender_account_id == conversation.inquirer_account_id
        else conversation.inquirer_account_id
    )
    message = ListingMessage(
        community_id=conversation.community_id,
        conversation_id=conversation.id,
        listing_id=conversation.listing_id,
        sender_account_id=sender_account_id,
        recipient_account_id=recipient,
        body=text,
        sent_on=today,
        created_at=now,
    )
    uow.session.add(message)
    conversation.last_message_at = now
    await uow.session.flush()
    uow.enqueue(jobs.deliver_message(message.id))
    return message


async def send_message(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    listing_id: int,
    body: str,
    policy: ListingPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> ListingMessage:
    """Contact a listing's poster through the platform (their inbox); no phone number changes hands.

    Raises Unauthenticated, NotFound, OwnListing, MessageLimitReached, ValidationFailed.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    listing = await uow.session.scalar(
        select(Listing).where(
            Listing.id == listing_id, Listing.community_id.in_(viewer.community_ids), *public_conditions(now)
        )
    )
    if listing is None:
        raise NotFound("No such listing.", field="listingId")
    assert viewer.account_id is not None
    if listing.poster_account_id == viewer.account_id:
        raise OwnListing("This is your own listing.", field="listingId")
    conversation_id = await _conversation_for(uow, listing, viewer.account_id, now)
    conversation = await uow.session.scalar(
        _for_update(uow.session, select(ListingConversation).where(ListingConversation.id == conversation_id))
    )
    assert conversation is not None
    return await _post_message(
        uow, conversation=conversation, sender_account_id=viewer.account_id, body=body, policy=policy, now=now
    )


def visible_conversations(viewer: Viewer) -> Select[ListingConversation]:
    """A conversation exists only for its two parties."""
    if viewer.account_id is None:
        return select(ListingConversation).where(false())
    return select(ListingConversation).where(
        or_(
            ListingConversation.inquirer_account_id == viewer.account_id,
            ListingConversation.poster_account_id == viewer.account_id,
        )
    )


async def reply(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    conversation_id: int,
    body: str,
    policy: ListingPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> ListingMessage:
    """Either party writes in an existing conversation (the poster answers here).

    Raises Unauthenticated, NotFound, WrongListingStatus (withdrawn or removed), MessageLimitReached,
    ValidationFailed.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    conversation = await uow.session.scalar(
        _for_update(uow.session, visible_conversations(viewer).where(ListingConversation.id == conversation_id))
    )
    if conversation is None:
        raise NotFound("No such conversation.", field="conversationId")
    listing = await uow.session.get(Listing, conversation.listing_id)
    assert listing is not None
    assert viewer.account_id is not None
    if listing.status in (ListingStatus.WITHDRAWN.value, ListingStatus.REMOVED.value):
        raise _wrong(listing, "its conversations are closed")
    return await _post_message(
        uow, conversation=conversation, sender_account_id=viewer.account_id, body=body, policy=policy, now=now
    )


# -- photos --------------------------------------------------------------------------------------------


def listing_photo_key(community_id: int, listing_id: int, extension: str) -> str:
    return f"listings/{community_id}/{listing_id}/{uuid.uuid4().hex}.{extension}"


async def add_listing_photos(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    store: PhotoStore,
    listing_id: int,
    photos: Sequence[bytes | PreparedPhoto],
    limits: PhotoLimits | None = None,
) -> list[ListingPhoto]:
    """The poster adds photos to a draft, pending or rejected listing (moderators see them before publishing).

    Files are written first and removed again if the transaction does not commit. Raises
    Unauthenticated, NotFound, Forbidden, WrongListingStatus, ValidationFailed, TooManyPhotos,
    PhotoTooLarge, NotAnImage, UnsupportedImageType.
    """
    limits = limits or PhotoLimits()
    listing = await _locked(uow, viewer, listing_id)  # the lock keeps two uploads from both passing the count
    _require_poster(viewer, listing)
    if listing.status not in EDITABLE_STATUSES:
        raise _wrong(listing, "photos can be added to a draft, pending or rejected listing")
    if not photos:
        raise ValidationFailed("Attach at least one photo.", field="photos")
    existing = await uow.session.scalar(
        select(func.count()).select_from(ListingPhoto).where(ListingPhoto.listing_id == listing.id)
    )
    check_count(len(photos), limits, existing=existing or 0, owner="listing")
    prepared = await ensure_prepared(photos, limits)
    keys = await store_unless_rolled_back(
        uow.session,
        store,
        prepared,
        lambda photo: listing_photo_key(listing.community_id, listing.id, photo.extension),
    )
    now = utc_now()
    rows = [
        ListingPhoto(
            community_id=listing.community_id, listing_id=listing.id, storage_key=key,
            content_type=photo.content_type, size_bytes=len(photo.content), width=photo.width,
            height=photo.height, created_at=now,
        )
        for key, photo in zip(keys, prepared, strict=True)
    ]  # fmt: skip
    uow.session.add_all(rows)
    await uow.session.flush()
    return rows


async def listing_photos(session: AsyncSession, *, listing_ids: Sequence[int]) -> dict[int, list[ListingPhoto]]:
    """The photos of each listing, oldest first."""
    rows = await session.scalars(
        select(ListingPhoto).where(ListingPhoto.listing_id.in_(listing_ids)).order_by(ListingPhoto.id)
    )
    out: dict[int, list[ListingPhoto]] = defaultdict(list)
    for row in rows:
        out[row.listing_id].append(row)
    return out


# -- search ----------------------------------------------------------------------------------------------


class SearchMode(StrEnum):
    ALL = "all"  # no keyword
    TRIGRAM = "trigram"  # PostgreSQL, 3+ characters: ILIKE over the pg_trgm GIN indexes
    BOUNDED_SCAN = "bounded_scan"  # PostgreSQL, 1–2 characters: ILIKE over the newest `short_keyword_scan`
    LIKE = "like"  # SQLite: a plain LIKE


@dataclass(frozen=True, slots=True)
class ListingFilter:
    keyword: str | None = None
    kinds: tuple[ListingKind, ...] = ()
    min_price_cents: int | None = None
    max_price_cents: int | None = None
    min_area_m2: float | None = None
    max_area_m2: float | None = None
    compound_id: int | None = None


@dataclass(frozen=True, slots=True)
class Search:
    statement: Select[Listing]
    mode: SearchMode
    scan_limit: int | None = None
    notes: list[str] = field(default_factory=list)


def search_text() -> ColumnElement[str]:
    """What a keyword is matched against: the expression the trigram index is built on (see the models)."""
    return Listing.title + literal_column("' '") + Listing.description


def _like_pattern(keyword: str) -> str:
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_listings(
    viewer: Viewer,
    *,
    community_id: int,
    filter: ListingFilter,
    dialect: str,
    policy: ListingPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> Search:
    """The resident feed of a community: published, unexpired, not hidden, filtered. Raises ValidationFailed."""
    now = now or utc_now()
    if community_id not in viewer.community_ids:
        return Search(select(Listing).where(false()), SearchMode.ALL)
    conds: list[ColumnElement[bool]] = [Listing.community_id == community_id, *public_conditions(now)]
    if filter.kinds:
        conds.append(Listing.kind.in_([ListingKind(k).value for k in filter.kinds]))
    if (
        filter.min_price_cents is not None
        and filter.max_price_cents is not None
        and filter.max_price_cents < filter.min_price_cents
    ):
        raise ValidationFailed("The highest price is below the lowest.", field="maxPriceCents")
    if filter.min_price_cents is not None:
        conds.append(Listing.price_cents >= filter.min_price_cents)
    if filter.max_price_cents is not None:
        conds.append(Listing.price_cents <= filter.max_price_cents)
    if filter.min_area_m2 is not None and filter.max_area_m2 is not None and filter.max_area_m2 < filter.min_area_m2:
        raise ValidationFailed("The largest area is below the smallest.", field="maxAreaM2")
    if filter.min_area_m2 is not None:
        conds.append(Listing.area_m2 >= filter.min_area_m2)
    if filter.max_area_m2 is not None:
        conds.append(Listing.area_m2 <= filter.max_area_m2)
    if filter.compound_id is not None:
        conds.append(Listing.compound_id == filter.compound_id)
    keyword = (filter.keyword or "").strip()
    if len(keyword) > MAX_KEYWORD:
        raise ValidationFailed(f"Search with at most {MAX_KEYWORD} characters.", field="keyword")
    if not keyword:
        return Search(select(Listing).where(*conds), SearchMode.ALL)
    pattern = _like_pattern(keyword)
    if dialect != "postgresql":
        match = search_text().like(pattern, escape="\\")  # SQLite's LIKE ignores ASCII case
        return Search(select(Listing).where(*conds, match), SearchMode.LIKE)
    # A keyword without cased letters (Chinese, digits) matches the same with LIKE as with ILIKE, and
    # LIKE skips case-folding every row; the trigram index serves both.
    caseless = keyword.lower() == keyword.upper()
    text = search_text()
    match = text.like(pattern, escape="\\") if caseless else text.ilike(pattern, escape="\\")
    if len(keyword) >= TRIGRAM_MIN:
        return Search(select(Listing).where(*conds, match), SearchMode.TRIGRAM)
    # Too short for trigrams: the GIN index would read every entry. Look at the newest listings only,
    # fetched by id from an array, so the planner cannot match the keyword against the whole table first.
    newest = (
        select(Listing.id)
        .where(*conds)
        .order_by(Listing.sort_at.desc(), Listing.id.desc())
        .limit(policy.short_keyword_scan)
        .scalar_subquery()
    )
    return Search(
        select(Listing).where(Listing.id == any_(func.array(newest)), match),
        SearchMode.BOUNDED_SCAN,
        policy.short_keyword_scan,
        [f"Keywords of 1–2 characters search only the newest {policy.short_keyword_scan} listings."],
    )


async def fetch_newest_page(session: AsyncSession, stmt: Select[Listing], args: PageArgs) -> Page[Listing]:
    """A keyset page of `stmt`, newest first (by `sort_at`, then id); `after` is the last listing's id."""
    if args.after is not None:
        anchor = select(Listing.sort_at).where(Listing.id == args.after).scalar_subquery()
        stmt = stmt.where(or_(Listing.sort_at < anchor, and_(Listing.sort_at == anchor, Listing.id < args.after)))
    rows = list(
        (await session.scalars(stmt.order_by(Listing.sort_at.desc(), Listing.id.desc()).limit(args.first + 1))).all()
    )
    return Page(rows[: args.first], len(rows) > args.first, args.after is not None)


COUNT_LIMIT = 10_000


async def count_capped(session: AsyncSession, stmt: Select[Listing], *, limit: int = COUNT_LIMIT) -> int:
    """How many rows `stmt` has, counting no further than `limit` + 1 (a search count stays bounded)."""
    sub = stmt.with_only_columns(Listing.id).order_by(None).limit(limit + 1).subquery()
    return int(await session.scalar(select(func.count()).select_from(sub)) or 0)


def my_listings(viewer: Viewer, *, include_closed: bool = False) -> Select[Listing]:
    """The viewer's own listings, every status (withdrawn and removed ones only when asked)."""
    if viewer.account_id is None:
        return select(Listing).where(false())
    stmt = select(Listing).where(Listing.poster_account_id == viewer.account_id)
    if not include_closed:
        stmt = stmt.where(Listing.status.in_(OPEN_STATUSES))
    return stmt


def moderation_queue(viewer: Viewer, *, community_id: int) -> Select[Listing]:
    """What waits for a moderator: pending listings and listings hidden by reports (oldest first by id)."""
    if not can_moderate(viewer, community_id):
        return select(Listing).where(false())
    return select(Listing).where(
        Listing.community_id == community_id,
        or_(
            Listing.status == ListingStatus.PENDING.value,
            and_(Listing.status == ListingStatus.PUBLISHED.value, Listing.hidden_at.is_not(None)),
        ),
    )


# -- notices and the periodic scan -------------------------------------------------------------------------

NOTICE_TITLES = {
    "published": "信息已发布：{title}",
    "rejected": "信息未通过审核：{title}",
    "hidden": "信息因举报暂时隐藏：{title}",
    "restored": "信息已恢复显示：{title}",
    "removed": "信息已下架：{title}",
    "expiring": "信息即将到期：{title}",
    "expired": "信息已到期：{title}",
}


def _notice_body(listing: Listing, event: str) -> str:
    if event == "rejected":
        return f"原因：{listing.reject_reason or ''}。修改后可重新提交。"
    if event == "published" and listing.expires_at is not None:
        return f"有效期至 {listing.expires_at.astimezone(CHINA_TZ):%Y-%m-%d}。"
    if event == "hidden":
        return "多位居民举报了这条信息，工作人员复核前暂不显示。"
    if event == "removed":
        return f"工作人员复核后下架了这条信息：{listing.review_note or ''}"
    if event == "restored":
        return "工作人员复核后恢复了这条信息。"
    if event == "expiring" and listing.expires_at is not None:
        return f"将于 {listing.expires_at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M} 到期，可在到期前续期。"
    if event == "expired":
        return "信息已不再显示，可以续期重新发布。"
    return ""


async def tell_poster(uow: UnitOfWork, *, listing: Listing, event: str, key: str) -> int:
    """One inbox notice per (listing, event, key) to the poster; a repeat adds nothing."""
    return await notifications.notify(
        uow,
        recipients=[listing.poster_account_id],
        message=notifications.Message(
            community_id=listing.community_id,
            event_key=f"listing:{listing.id}:{key}:{event}",
            subject_kind="listing",
            subject_id=listing.id,
            title=NOTICE_TITLES[event].format(title=listing.title),
            body=_notice_body(listing, event),
        ),
    )


async def notify_poster(uow: UnitOfWork, *, listing_id: int, event: str, key: str) -> int:
    """The notice for a moderation decision or a review. Idempotent: keyed by listing, key and event."""
    listing = await uow.session.get(Listing, listing_id)
    if listing is None or event not in NOTICE_TITLES:
        return 0
    return await tell_poster(uow, listing=listing, event=event, key=key)


async def deliver_message(uow: UnitOfWork, *, message_id: int) -> int:
    """Put a listing message in its recipient's inbox. Idempotent: one notice per message."""
    message = await uow.session.get(ListingMessage, message_id)
    if message is None:
        return 0
    listing = await uow.session.get(Listing, message.listing_id)
    conversation = await uow.session.get(ListingConversation, message.conversation_id)
    if listing is None or conversation is None:
        return 0
    from_poster = message.sender_account_id == conversation.poster_account_id
    title = f"{'发布者回复' if from_poster else '有人咨询'}：{listing.title}"
    return await notifications.notify(
        uow,
        recipients=[message.recipient_account_id],
        message=notifications.Message(
            community_id=message.community_id,
            event_key=f"listing-message:{message.id}",
            subject_kind="listing_conversation",
            subject_id=conversation.id,
            title=title,
            body=message.body[:200],
        ),
    )


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    warned: list[int]
    expired: list[int]


async def scan(uow: UnitOfWork, *, policy: ListingPolicy = DEFAULT_POLICY, now: datetime | None = None) -> ScanOutcome:
    """Warn posters whose listings expire soon, and expire what is due, telling each poster once.

    Idempotent: each step is a conditional UPDATE (a listing is warned once per publication and
    expires once), and each notice is unique per (listing, publication, event).
    """
    now = now or utc_now()
    warn_until = now + timedelta(days=policy.expiry_warning_days)
    expired = list(
        (
            await uow.session.scalars(
                update(Listing)
                .where(Listing.status == ListingStatus.PUBLISHED.value, Listing.expires_at <= now)
                .values(status=ListingStatus.EXPIRED.value, expired_at=now, updated_at=now)
                .returning(Listing.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    )
    warned: list[int] = []
    if policy.expiry_warning_days > 0:
        warned = list(
            (
                await uow.session.scalars(
                    update(Listing)
                    .where(
                        Listing.status == ListingStatus.PUBLISHED.value,
                        Listing.expiry_warned_at.is_(None),
                        Listing.expires_at > now,
                        Listing.expires_at <= warn_until,
                    )
                    .values(expiry_warned_at=now)
                    .returning(Listing.id)
                    .execution_options(synchronize_session=False)
                )
            ).all()
        )
    for ids, event in ((expired, "expired"), (warned, "expiring")):
        if not ids:
            continue
        rows = await uow.session.scalars(
            select(Listing).where(Listing.id.in_(ids)).execution_options(populate_existing=True)
        )
        for listing in rows.all():
            await tell_poster(uow, listing=listing, event=event, key=notice_key(listing))
    return ScanOutcome(warned=warned, expired=expired)
