"""Canteen fixtures: 明珠花苑's 幸福食堂 with the published prices, elders of every kind, and tomorrow's lunch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from api.canteen import service as canteen
from api.canteen.models import Canteen, CanteenMeal, MealKind
from api.core.clock import local_today, utc_now
from api.core.viewer import Role, Viewer
from api.graphql.context import Services
from api.registry.models import Resident, ResidentTag
from tests.factories import Estate, Login, born_years_ago, make_estate, make_household, make_login, make_resident
from tests.jobs import JobRunner
from tests.tickets.conftest import viewer_of
from tests.venues.conftest import db_id, gid

__all__ = ["db_id", "gid"]

PUBLISHED_RULES = (
    canteen.PriceRuleDraft(name="80岁以上", price_fen=600, min_age=80),
    canteen.PriceRuleDraft(name="低保", price_fen=600, tag=ResidentTag.LOW_INCOME),
    canteen.PriceRuleDraft(name="孤寡老人", price_fen=600, tag=ResidentTag.NO_FAMILY_SUPPORT),
    canteen.PriceRuleDraft(name="残疾", price_fen=700, tag=ResidentTag.DISABLED),
    canteen.PriceRuleDraft(name="60岁以上", price_fen=800, min_age=60),
)
LUNCH = ("红烧肉", "清炒时蔬", "米饭")


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


@dataclass
class Kitchen:
    """A community with a canteen, staff, and residents: a family, elders of 85 and 65, a disabled and a poor neighbour."""

    estate: Estate
    staff: Login
    staff_viewer: Viewer
    canteen: Canteen
    lunch: CanteenMeal  # tomorrow, capacity 40, base price 15 yuan
    adult: Resident  # 40, lives with grandma
    adult_login: Login
    grandma: Resident  # 85, same household as adult
    grandpa: Resident  # 65, next door, lives alone
    grandpa_login: Login
    disabled: Resident  # 50, tag disabled
    poor: Resident  # 45, tag low_income
    neighbour: Resident  # 30, another household
    neighbour_login: Login

    @property
    def cid(self) -> int:
        return self.estate.community.id

    @property
    def day(self) -> date:
        return self.lunch.served_on


def tomorrow() -> date:
    return local_today() + timedelta(days=1)


async def make_kitchen(services: Services, *, capacity: int = 40) -> Kitchen:
    estate = await make_estate(services, households=3, members=0)
    day = tomorrow()
    home, next_door, third = estate.households
    adult = await make_resident(services, home, name="李建国", born=born_years_ago(day, 40))
    grandma = await make_resident(services, home, name="王奶奶", born=born_years_ago(day, 85), male=False)
    grandpa = await make_resident(
        services, next_door, name="赵爷爷", born=born_years_ago(day, 65), tags=(ResidentTag.LIVES_ALONE,)
    )
    disabled = await make_resident(
        services, third, name="孙师傅", born=born_years_ago(day, 50), tags=(ResidentTag.DISABLED,)
    )
    poor = await make_resident(
        services, third, name="钱阿姨", born=born_years_ago(day, 45), male=False, tags=(ResidentTag.LOW_INCOME,)
    )
    other_home = await make_household(services.db, estate.buildings[1], unit=2)
    neighbour = await make_resident(services, other_home, name="周先生", born=born_years_ago(day, 30))
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    adult_login = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=adult)
    grandpa_login = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=grandpa)
    neighbour_login = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=neighbour)
    staff_viewer = await viewer_of(services, staff)
    async with services.db.unit_of_work() as uow:
        row = await canteen.create_canteen(
            uow,
            viewer=staff_viewer,
            draft=canteen.CanteenDraft(
                community_id=estate.community.id, name="幸福食堂", location="党群服务中心一楼",
                opening_days=tuple(range(7)), default_capacity=capacity,
            ),
        )  # fmt: skip
        await canteen.set_price_rules(uow, viewer=staff_viewer, canteen_id=row.id, rules=PUBLISHED_RULES)
        [lunch] = await canteen.set_menu(
            uow,
            viewer=staff_viewer,
            canteen_id=row.id,
            served_on=day,
            meals=[canteen.MealDraft(kind=MealKind.LUNCH, dishes=LUNCH, base_price_fen=1500)],
        )
    return Kitchen(
        estate, staff, staff_viewer, row, lunch, adult, adult_login, grandma, grandpa, grandpa_login, disabled, poor,
        neighbour, neighbour_login,
    )  # fmt: skip


@pytest.fixture
async def kitchen(services) -> Kitchen:
    return await make_kitchen(services)


def resident_viewer(resident: Resident, login: Login) -> Viewer:
    return Viewer(
        account_id=login.account.id,
        resident_id=resident.id,
        roles={resident.community_id: frozenset({Role.RESIDENT})},
    )


async def reserve_as(services: Services, viewer: Viewer, meal_id: int, **kwargs: Any) -> Any:
    async with services.db.unit_of_work(services.jobs) as uow:
        return await canteen.reserve(uow, viewer=viewer, meal_id=meal_id, **kwargs)


async def move_cutoff(services: Services, meal_id: int, when: datetime | None = None) -> None:
    """Put a meal's cut-off at `when` (default: a minute ago), as if time had passed."""
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(
            update(CanteenMeal)
            .where(CanteenMeal.id == meal_id)
            .values(cutoff_at=when or utc_now() - timedelta(minutes=1))
        )
