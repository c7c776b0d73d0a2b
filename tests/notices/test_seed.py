"""The demo seed: published notices delivered once, a draft and a scheduled notice."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from api.core.viewer import Role
from api.notices.models import Notice, NoticeDelivery
from api.notices.seed import seed_demo
from tests.factories import make_estate, make_login


async def test_the_demo_seed_publishes_notices_to_the_community(services):
    # given: 明珠花苑 with two residents who log in
    estate = await make_estate(services, households=1, members=2, code="mingzhu")
    for resident in estate.residents:
        await make_login(services, role=Role.RESIDENT, community=estate.community, resident=resident)
    # when: seeded twice
    await seed_demo(services.db)
    await seed_demo(services.db)
    # then
    async with services.db.read_session() as session:
        statuses = Counter((await session.scalars(select(Notice.status))).all())
        deliveries = await session.scalar(select(func.count()).select_from(NoticeDelivery))
    assert statuses == Counter({"published": 3, "draft": 1, "scheduled": 1})
    assert deliveries == 4  # the two community-wide notices, to two accounts; nobody lives alone
