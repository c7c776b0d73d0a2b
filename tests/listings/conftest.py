"""Listing fixtures: a community with staff, a poster and neighbours, an outsider, and listing helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from api.core.clock import utc_now
from api.core.viewer import Role, Viewer
from api.graphql.context import Services
from api.listings import service as listings
from api.listings.models import ItemCondition, Listing, ListingKind
from api.notifications.models import Notification
from api.registry.models import Resident
from tests.factories import Estate, Login, make_estate, make_login
from tests.jobs import JobRunner
from tests.tickets.conftest import viewer_of
from tests.venues.conftest import Member, crowd, db_id, gid

__all__ = ["Board", "Member", "crowd", "db_id", "gid"]


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


@dataclass
class Board:
    """A community's notice board: staff, a poster, a neighbour, and an outsider from another community."""

    estate: Estate
    staff: Login
    staff_viewer: Viewer
    poster: Login
    poster_viewer: Viewer
    poster_resident: Resident
    neighbour: Login
    neighbour_viewer: Viewer
    outsider: Login  # a resident of another community
    outsider_viewer: Viewer
    other: Estate

    @property
    def cid(self) -> int:
        return self.estate.community.id

    @property
    def community_gid(self) -> str:
        return gid("Community", self.cid)


async def make_board(services: Services) -> Board:
    estate = await make_estate(services, households=2, members=1)
    other = await make_estate(services, households=1, members=1)
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    poster = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=estate.residents[0])
    neighbour = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=estate.residents[1])
    outsider = await make_login(services, role=Role.RESIDENT, community=other.community, resident=other.residents[0])
    return Board(
        estate, staff, await viewer_of(services, staff), poster, await viewer_of(services, poster),
        estate.residents[0], neighbour, await viewer_of(services, neighbour), outsider,
        await viewer_of(services, outsider), other,
    )  # fmt: skip


@pytest.fixture
async def board(services) -> Board:
    return await make_board(services)


def rental(**overrides: Any) -> listings.RentalDetails:
    values: dict[str, Any] = {"room_type": "两室一厅", "area_m2": 68.5, "monthly_rent_cents": 150_000, "floor": 3}
    values.update(overrides)
    return listings.RentalDetails(**values)


def sale(price_cents: int = 5_000) -> listings.SaleDetails:
    return listings.SaleDetails(price_cents=price_cents, condition=ItemCondition.GOOD)


async def post(
    services: Services,
    board: Board,
    *,
    viewer: Viewer | None = None,
    title: str = "闲置婴儿车",
    description: str = "九成新，可面交",
    details: listings.Details | None = None,
    submit: bool = True,
    now: datetime | None = None,
) -> Listing:
    """A listing by the poster (submitted for moderation unless `submit=False`)."""
    d = details or sale()
    async with services.db.unit_of_work(services.jobs) as uow:
        return await listings.create_listing(
            uow,
            viewer=viewer or board.poster_viewer,
            draft=listings.ListingDraft(
                community_id=board.cid, kind=listings.DETAIL_KINDS[type(d)], title=title, details=d,
                description=description,
            ),
            submit=submit,
            now=now,
        )  # fmt: skip


async def published(services: Services, board: Board, **kwargs: Any) -> Listing:
    """A listing by the poster, submitted and approved by staff."""
    row = await post(services, board, **kwargs)
    async with services.db.unit_of_work(services.jobs) as uow:
        return await listings.moderate_listing(uow, viewer=board.staff_viewer, listing_id=row.id, approve=True)


async def expire_in(services: Services, listing_id: int, delta: timedelta) -> None:
    """Move a listing's expiry to now + delta (negative: in the past)."""
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(update(Listing).where(Listing.id == listing_id).values(expires_at=utc_now() + delta))


async def reload(services: Services, listing_id: int) -> Listing:
    async with services.db.read_session() as session:
        row = await session.get(Listing, listing_id)
    assert row is not None
    return row


async def inbox_titles(services: Services, account_id: int) -> list[str]:
    async with services.db.read_session() as session:
        rows = await session.scalars(
            select(Notification.title).where(Notification.recipient_account_id == account_id).order_by(Notification.id)
        )
        return list(rows.all())


KIND = ListingKind
