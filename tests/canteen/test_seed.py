"""The demo seed: 明珠花苑's 幸福食堂 with the published 6–8 yuan prices, a week of menus, reservations."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from api.canteen.models import Canteen, CanteenMeal, CanteenPriceRule, CanteenReservation
from api.canteen.seed import seed_demo
from api.core.clock import local_today
from api.registry.models import ResidentTag
from tests.factories import born_years_ago, make_estate, make_resident


async def test_the_demo_seed_opens_mingzhus_canteen_with_its_published_prices(services):
    # given: 明珠花苑 with an 85-year-old, a 70-year-old on low income, a 65-year-old and a 40-year-old
    estate = await make_estate(services, households=1, members=0, code="mingzhu")
    home = estate.households[0]
    day = local_today() + timedelta(days=1)
    await make_resident(services, home, name="老王", born=born_years_ago(day, 85))
    await make_resident(services, home, name="老李", born=born_years_ago(day, 70), tags=(ResidentTag.LOW_INCOME,))
    await make_resident(services, home, name="老赵", born=born_years_ago(day, 65))
    await make_resident(services, home, name="小张", born=born_years_ago(day, 40))
    # when: seeded twice
    await seed_demo(services.db)
    await seed_demo(services.db)
    # then: one canteen, the published rules, lunch and dinner for a week
    async with services.db.read_session() as session:
        canteens = (await session.scalars(select(Canteen))).all()
        rules = (await session.execute(select(CanteenPriceRule.name, CanteenPriceRule.price_fen))).all()
        meals = await session.scalar(select(func.count()).select_from(CanteenMeal))
        reservations = (
            await session.execute(
                select(CanteenReservation.price_fen, CanteenReservation.price_rule_name, CanteenReservation.delivery)
                .order_by(CanteenReservation.price_fen)
            )
        ).all()  # fmt: skip
        lunch = await session.scalar(select(CanteenMeal).where(CanteenMeal.reserved > 0))
    assert [c.name for c in canteens] == ["幸福食堂"]
    assert {price for _, price in rules} == {600, 700, 800}
    assert meals == 14
    # the elders' lunch tomorrow: 6 yuan at 85 (delivered), 6 yuan on low income, 8 yuan at 65
    assert [tuple(r) for r in reservations] == [(600, "80岁以上", True), (600, "低保", False), (800, "60岁以上", False)]
    assert lunch is not None
    assert (lunch.served_on, lunch.reserved, lunch.base_price_fen) == (day, 3, 1500)
