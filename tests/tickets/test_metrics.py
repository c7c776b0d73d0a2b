"""Answer metrics (件件有回声) from tickets with known timestamps, on PostgreSQL and on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from api.core.clock import CHINA_TZ
from api.core.database import Database
from api.core.migrations import upgrade
from api.core.viewer import Role
from api.registry.models import Community
from api.tickets.categories import default_categories
from api.tickets.metrics import AnswerMetrics, answer_metrics
from api.tickets.models import Ticket, TicketCategory
from tests.factories import make_community, make_estate, make_login
from tests.tickets.conftest import gid

SINCE = datetime(2024, 3, 1, tzinfo=CHINA_TZ)
UNTIL = datetime(2024, 4, 1, tzinfo=CHINA_TZ)
T = datetime(2024, 3, 4, 9, 0, tzinfo=CHINA_TZ)


def minutes(m: float) -> timedelta:
    return timedelta(minutes=m)


@pytest.fixture(params=["postgresql", "sqlite"])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test PostgreSQL database, or a SQLite file migrated like the embedded default."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('metrics') / 'linli.db'}"
    upgrade(url)
    return url


@pytest.fixture
async def metrics_db(backend_url: str) -> AsyncIterator[Database]:
    database = Database(backend_url, pool_size=2)
    try:
        yield database
    finally:
        async with database.unit_of_work() as uow:
            for table in ("ticket", "ticket_category", "community"):
                await uow.session.execute(Ticket.metadata.tables[table].delete())
        await database.dispose()


async def seed(db: Database) -> tuple[Community, dict[str, TicketCategory]]:
    """Ten tickets: seven inside the period in two categories, the rest outside it or elsewhere."""
    community = await make_community(db)
    other = await make_community(db)
    async with db.unit_of_work() as uow:
        cats = default_categories(community.id) + default_categories(other.id)
        uow.session.add_all(cats)
        await uow.session.flush()
        by_code = {c.code: c for c in cats if c.community_id == community.id}
        leak, light, lift = by_code["leak"], by_code["street_light"], by_code["lift"]
        other_light = next(c for c in cats if c.community_id == other.id and c.code == "street_light")

        def ticket(category: TicketCategory, created: datetime, **kw: Any) -> Ticket:
            return Ticket(
                community_id=category.community_id, category_id=category.id, kind=category.kind,
                status=kw.pop("status", "submitted"), channel="app", description="测试", created_at=created,
                updated_at=created, callback_due_at=created + minutes(kw.pop("due", 30)), **kw,
            )  # fmt: skip

        uow.session.add_all(
            [
                # leak: contact 10.5 (on time), 40 (late), 20 (on time, reopened), none
                ticket(leak, T, acknowledged_at=T + minutes(10.5), resolved_at=T + minutes(125), rating=5),
                ticket(leak, T, acknowledged_at=T + minutes(40), resolved_at=T + minutes(300), rating=2),
                ticket(leak, T, acknowledged_at=T + minutes(20), cycle=2, status="reopened"),
                ticket(leak, T + timedelta(days=3)),
                # street light: contact 5 and 15 (on time, due in 60), and one created at the very start
                ticket(light, T, due=60, acknowledged_at=T + minutes(5), resolved_at=T + minutes(60), rating=4),
                ticket(light, T, due=60, acknowledged_at=T + minutes(15)),
                ticket(light, SINCE),
                # outside the period or the community
                ticket(lift, UNTIL, acknowledged_at=UNTIL + minutes(1)),
                ticket(lift, SINCE - timedelta(seconds=1), acknowledged_at=SINCE + minutes(1)),
                ticket(other_light, T, acknowledged_at=T + minutes(1), rating=1),
            ]
        )
    return community, {"leak": leak, "street_light": light}


def as_tuple(m: AnswerMetrics) -> tuple[Any, ...]:
    return (
        m.category_name, m.tickets, m.answered, m.answered_on_time, m.resolved, m.reopened, m.rated,
        m.average_rating, m.median_minutes_to_first_contact, m.median_minutes_to_resolution,
    )  # fmt: skip


async def test_answer_metrics_are_exact(metrics_db: Database):
    # given
    community, cats = await seed(metrics_db)
    # when
    async with metrics_db.read_session() as session:
        total, per = await answer_metrics(session, community_id=community.id, since=SINCE, until=UNTIL)
    # then: (name, tickets, answered, on time, resolved, reopened, rated, avg rating, median contact, resolution)
    assert as_tuple(total) == (None, 7, 5, 4, 4, 1, 3, 3.67, 15.0, 125.0)
    assert total.answered_on_time_rate == pytest.approx(4 / 7)
    assert total.reopen_rate == pytest.approx(1 / 4)
    assert [m.category_id for m in per] == [cats["street_light"].id, cats["leak"].id]  # by category id
    assert [as_tuple(m) for m in per] == [
        ("路灯不亮", 3, 2, 2, 1, 0, 1, 4.0, 10.0, 60.0),  # even and odd medians
        ("漏水", 4, 3, 2, 3, 1, 2, 3.5, 20.0, 212.5),  # odd and even medians
    ]


async def test_an_empty_period_has_no_rates(metrics_db: Database):
    community, _ = await seed(metrics_db)
    async with metrics_db.read_session() as session:
        total, per = await answer_metrics(
            session, community_id=community.id, since=UNTIL + timedelta(days=1), until=UNTIL + timedelta(days=2)
        )
    assert as_tuple(total) == (None, 0, 0, 0, 0, 0, 0, None, None, None)
    assert total.answered_on_time_rate is None
    assert total.reopen_rate is None
    assert per == []


METRICS = """
query Metrics($community: ID!, $since: DateTime, $until: DateTime) {
  answerMetrics(communityId: $community, since: $since, until: $until) {
    since until
    total { category tickets answered answeredOnTime answeredOnTimeRate resolved reopened reopenRate rated
            averageRating medianMinutesToFirstContact medianMinutesToResolution }
    categories { category tickets answeredOnTimeRate medianMinutesToResolution }
  }
}
"""


async def test_answer_metrics_through_graphql_for_staff_only(services, gql, gql_raw):
    # given
    community, _ = await seed(services.db)
    staff = await make_login(services, role=Role.STAFF, community=community)
    resident = await make_login(services, role=Role.RESIDENT, community=community)
    elsewhere = await make_estate(services, households=1, members=1)
    outsider = await make_login(services, role=Role.STAFF, community=elsewhere.community)
    variables = {"community": gid("Community", community.id), "since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    # when
    data = await gql(METRICS, variables, token=staff.token)
    forbidden = await gql_raw(METRICS, variables, token=resident.token)
    hidden = await gql_raw(METRICS, variables, token=outsider.token)
    # then
    assert data["answerMetrics"]["total"] == {
        "category": None,
        "tickets": 7,
        "answered": 5,
        "answeredOnTime": 4,
        "answeredOnTimeRate": 0.5714,
        "resolved": 4,
        "reopened": 1,
        "reopenRate": 0.25,
        "rated": 3,
        "averageRating": 3.67,
        "medianMinutesToFirstContact": 15.0,
        "medianMinutesToResolution": 125.0,
    }
    assert data["answerMetrics"]["categories"] == [
        {"category": "路灯不亮", "tickets": 3, "answeredOnTimeRate": 0.6667, "medianMinutesToResolution": 60.0},
        {"category": "漏水", "tickets": 4, "answeredOnTimeRate": 0.5, "medianMinutesToResolution": 212.5},
    ]
    assert forbidden["data"] is None
    assert [e["extensions"]["code"] for e in forbidden["errors"]] == ["FORBIDDEN"]
    assert hidden["data"] is None
    assert [e["extensions"]["code"] for e in hidden["errors"]] == ["NOT_FOUND"]


async def test_answer_metrics_refuse_times_without_a_zone(services, gql_raw):
    community, _ = await seed(services.db)
    staff = await make_login(services, role=Role.STAFF, community=community)
    body = await gql_raw(
        METRICS,
        {"community": gid("Community", community.id), "since": "2024-03-01T00:00:00", "until": "2024-04-01T00:00:00"},
        token=staff.token,
    )
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
