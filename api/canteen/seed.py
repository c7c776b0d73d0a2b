"""Demo data of the canteen domain (runs after the registry seed): 明珠花苑's 幸福食堂 and its published prices.

Elders eat for 6 to 8 yuan: 6 yuan at 80 and over, for low-income residents and lone elders
without family (孤寡), 7 yuan for the disabled, 8 yuan from 60; everyone else pays the base price
(12 to 15 yuan). A week of lunches and dinners from today, and tomorrow's lunch reserved by some
of the community's elders (those 80 and over have it delivered).
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from api.canteen.models import (
    Canteen,
    CanteenMeal,
    CanteenPriceRule,
    CanteenReservation,
    MealKind,
    ReservationStatus,
)
from api.canteen.service import SERVING, at_minute, best_price, cutoff_minute, housebound, tags_of
from api.core.clock import age_on, local_today, utc_now, years_before
from api.core.database import Database, UnitOfWork
from api.registry.models import Community, Resident, ResidentTag

COMMUNITY_CODE = "mingzhu"
RULES = (
    # name, price in fen, minimum age, tag
    ("80岁以上", 600, 80, None),
    ("低保", 600, None, ResidentTag.LOW_INCOME),
    ("孤寡老人", 600, None, ResidentTag.NO_FAMILY_SUPPORT),
    ("残疾", 700, None, ResidentTag.DISABLED),
    ("60岁以上", 800, 60, None),
)
MENUS = (
    # lunch dishes, dinner dishes
    (("红烧肉", "清炒油麦菜", "西红柿鸡蛋汤", "米饭"), ("小米粥", "素包子", "凉拌黄瓜")),
    (("土豆炖牛肉", "醋溜白菜", "紫菜蛋花汤", "米饭"), ("疙瘩汤", "葱油饼", "拍黄瓜")),
    (("清蒸鲈鱼", "蒜蓉西兰花", "冬瓜汤", "米饭"), ("玉米粥", "花卷", "炒豆芽")),
    (("宫保鸡丁", "麻婆豆腐", "白菜豆腐汤", "米饭"), ("南瓜粥", "馒头", "炒土豆丝")),
    (("猪肉白菜饺子", "拌三丝"), ("绿豆粥", "烧饼", "炒青菜")),
    (("鱼香肉丝", "炒菜花", "蛋花汤", "米饭"), ("八宝粥", "豆沙包", "凉拌木耳")),
    (("排骨炖豆角", "炒茄子", "丝瓜汤", "米饭"), ("小米粥", "肉包子", "炒菠菜")),
)
LUNCH_PRICE, DINNER_PRICE = 1500, 1200
RESERVED_ELDERS = 24


async def seed_demo(db: Database, *, today: date | None = None) -> None:
    """Create the demo data; safe to call on a database that already has it."""
    async with db.unit_of_work() as uow:
        community = await uow.session.scalar(select(Community).where(Community.code == COMMUNITY_CODE))
        if community is None:
            return
        if await uow.session.scalar(select(Canteen.id).where(Canteen.community_id == community.id).limit(1)):
            return
        await _seed(uow, community.id, today or local_today())


async def _seed(uow: UnitOfWork, community_id: int, today: date) -> None:
    canteen = Canteen(
        community_id=community_id, name="幸福食堂", location="明珠花苑社区党群服务中心一楼", opening_days=list(range(7)),
        default_capacity=80, breakfast_cutoff_minute=-240, lunch_cutoff_minute=9 * 60 + 30,
        dinner_cutoff_minute=15 * 60, active=True,
    )  # fmt: skip
    uow.session.add(canteen)
    await uow.session.flush()
    rules = [
        CanteenPriceRule(
            community_id=community_id,
            canteen_id=canteen.id,
            name=name,
            price_fen=price,
            min_age=min_age,
            tag=tag.value if tag else None,
            meal_kind=None,
        )
        for name, price, min_age, tag in RULES
    ]
    uow.session.add_all(rules)
    now = utc_now()
    meals: dict[tuple[date, MealKind], CanteenMeal] = {}
    for offset, (lunch_dishes, dinner_dishes) in enumerate(MENUS):
        day = today + timedelta(days=offset)
        for kind, dishes, base in (
            (MealKind.LUNCH, lunch_dishes, LUNCH_PRICE),
            (MealKind.DINNER, dinner_dishes, DINNER_PRICE),
        ):
            opens, closes = SERVING[kind]
            meal = CanteenMeal(
                community_id=community_id, canteen_id=canteen.id, served_on=day, kind=kind.value, dishes=list(dishes),
                base_price_fen=base, capacity=canteen.default_capacity, reserved=0,
                serves_from=at_minute(day, opens), serves_until=at_minute(day, closes),
                cutoff_at=at_minute(day, cutoff_minute(canteen, kind)), created_at=now, updated_at=now,
            )  # fmt: skip
            uow.session.add(meal)
            meals[(day, kind)] = meal
    await uow.session.flush()
    lunch = meals[(today + timedelta(days=1), MealKind.LUNCH)]
    elders = (
        await uow.session.scalars(
            select(Resident)
            .where(
                Resident.community_id == community_id,
                Resident.household_id.is_not(None),
                Resident.birth_date <= years_before(lunch.served_on, 60),
            )
            .order_by(Resident.id)
            .limit(RESERVED_ELDERS)
        )
    ).all()
    tags = await tags_of(uow.session, [e.id for e in elders])
    for elder in elders:
        age = age_on(elder.birth_date, lunch.served_on)
        mine = tags.get(elder.id, set())
        price = best_price(base_price_fen=lunch.base_price_fen, kind=MealKind.LUNCH, age=age, tags=mine, rules=rules)
        uow.session.add(
            CanteenReservation(
                community_id=community_id, meal_id=lunch.id, resident_id=elder.id, reserved_by_account_id=None,
                status=ReservationStatus.ACTIVE.value, price_fen=price.price_fen, price_rule_id=price.rule_id,
                price_rule_name=price.rule_name, delivery=housebound(age=age, tags=mine), delivery_override=False,
                note="", created_at=now,
            )
        )  # fmt: skip
    lunch.reserved = len(elders)
    await uow.session.flush()
