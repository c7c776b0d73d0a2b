"""Demo data of the listings domain (runs after the registry seed): a board of listings per demo community."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from api.accounts.models import Account, RoleGrant
from api.core.clock import utc_now
from api.core.database import Database, UnitOfWork
from api.core.viewer import Role
from api.listings.models import ItemCondition, Listing, ListingKind, ListingStatus
from api.registry.models import Building, Community, Household, Resident

COMMUNITY_CODES = ("mingzhu", "zhihuicheng")
PUBLISH_DAYS = 30

# kind, title, description, price (fen), area (m²), details, status, days since published (None: not published)
DEMO: tuple[tuple[ListingKind, str, str, int | None, float | None, dict[str, Any], ListingStatus, int | None], ...] = (
    (ListingKind.RENTAL, "南区两室一厅出租，拎包入住", "三楼朝南，家电齐全，近公交站，押一付三。", 150_000, 78.0,
     {"room_type": "两室一厅", "floor": 3, "total_floors": 6, "furnished": True, "available_from": None},
     ListingStatus.PUBLISHED, 2),
    (ListingKind.RENTAL, "一室户出租，适合上班族", "一楼带小院，可短租，租金含物业费。", 90_000, 42.5,
     {"room_type": "一室一厅", "floor": 1, "total_floors": 6, "furnished": False, "available_from": None},
     ListingStatus.PUBLISHED, 5),
    (ListingKind.SALE, "九成新儿童自行车", "孩子长大了用不上，16寸，送辅助轮。", 12_000, None,
     {"condition": ItemCondition.LIKE_NEW.value}, ListingStatus.PUBLISHED, 1),
    (ListingKind.SALE, "免费送旧书一箱", "小学课外读物三十余本，自提。", 0, None,
     {"condition": ItemCondition.FAIR.value}, ListingStatus.PUBLISHED, 3),
    (ListingKind.JOB, "社区便利店招聘理货员", "早班或晚班，就近上班，有意者站内留言。", 350_000, None,
     {"employer": "邻里便利店", "salary_min_cents": 350_000, "salary_max_cents": 420_000, "hours": "早8点至下午4点",
      "openings": 2}, ListingStatus.PUBLISHED, 4),
    (ListingKind.RENTAL_WANTED, "求租两室，带电梯", "家有老人，希望三楼以下或有电梯，预算两千以内。", 200_000, 60.0,
     {"room_type": "两室", "move_in_by": None}, ListingStatus.PUBLISHED, 6),
    (ListingKind.NEED, "找人帮忙接送孩子放学", "每周一到周五下午四点半，学校离小区一公里。", 80_000, None,
     {"needed_by": None}, ListingStatus.PUBLISHED, 2),
    (ListingKind.SALE, "八成新电动车", "电池去年换过，手续齐全。", 80_000, None,
     {"condition": ItemCondition.GOOD.value}, ListingStatus.PENDING, None),
    (ListingKind.NEED, "求推荐靠谱的家电维修师傅", "冰箱不制冷。", None, None, {"needed_by": None},
     ListingStatus.DRAFT, None),
)  # fmt: skip


async def seed_demo(db: Database) -> None:
    """Create the demo data; safe to call on a database that already has it."""
    async with db.unit_of_work() as uow:
        for code in COMMUNITY_CODES:
            community_id = await uow.session.scalar(select(Community.id).where(Community.code == code))
            if community_id is None:
                continue
            if await uow.session.scalar(select(Listing.id).where(Listing.community_id == community_id).limit(1)):
                continue
            await _seed(uow, community_id, utc_now())


async def _poster(uow: UnitOfWork, community_id: int) -> tuple[int, int, int | None] | None:
    """The demo resident's (account, resident, compound)."""
    row = (
        await uow.session.execute(
            select(Account.id, Account.resident_id, Building.compound_id)
            .join(RoleGrant, RoleGrant.account_id == Account.id)
            .join(Resident, Resident.id == Account.resident_id)
            .outerjoin(Household, Household.id == Resident.household_id)
            .outerjoin(Building, Building.id == Household.building_id)
            .where(
                RoleGrant.community_id == community_id,
                RoleGrant.role == Role.RESIDENT.value,
                Account.resident_id.is_not(None),
            )
            .order_by(Account.id)
            .limit(1)
        )
    ).first()
    if row is None or row[1] is None:
        return None
    return int(row[0]), int(row[1]), row[2]


async def _seed(uow: UnitOfWork, community_id: int, now: datetime) -> None:
    poster = await _poster(uow, community_id)
    if poster is None:
        return
    account_id, resident_id, compound_id = poster
    for kind, title, description, price, area, details, status, days_ago in DEMO:
        published_at = now - timedelta(days=days_ago) if days_ago is not None else None
        listing = Listing(
            community_id=community_id, compound_id=compound_id, poster_account_id=account_id,
            poster_resident_id=resident_id, kind=kind.value, status=status.value, title=title,
            description=description, price_cents=price, area_m2=area, details=details,
            revision=0 if status is ListingStatus.DRAFT else 1, renewals=0,
            submitted_at=published_at or (now if status is ListingStatus.PENDING else None),
            published_at=published_at, sort_at=published_at or now,
            expires_at=published_at + timedelta(days=PUBLISH_DAYS) if published_at else None,
            moderated_at=published_at, report_count=0, created_at=published_at or now, updated_at=published_at or now,
        )  # fmt: skip
        uow.session.add(listing)
    await uow.session.flush()
