"""The number of SQL statements one request runs does not grow with the page size or the data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from sqlalchemy import event

from api.core.viewer import Role
from api.registry.models import Community, ResidentTag
from tests.factories import make_building, make_community, make_compound, make_household, make_login, make_resident


@contextmanager
def counting(services) -> Iterator[list[str]]:
    """Collect every SQL statement sent on the database's engine while the block runs."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def seed(services, community: Community, *, compounds: int, buildings: int, households: int, members: int) -> int:
    """Compounds × buildings × households × members residents, some tagged; returns how many."""
    n = 0
    tags = (ResidentTag.LIVES_ALONE, ResidentTag.DISABLED)
    for c in range(compounds):
        compound = await make_compound(services.db, community, name=f"小区{c}")
        for b in range(buildings):
            building = await make_building(services.db, compound, name=f"{b + 1}号楼", units=2)
            for h in range(households):
                household = await make_household(services.db, building, unit=1 + h % 2, room=f"{h + 1}01")
                for m in range(members):
                    await make_resident(
                        services,
                        household,
                        name=f"居民{c}-{b}-{h}-{m}",
                        born=date(1940 + n % 60, 1 + n % 12, 1 + n % 28),
                        tags=tags[: n % 3],
                    )
                    n += 1
    return n


RESIDENTS = """
query ($first: Int) {
  residents(first: $first) {
    totalCount
    edges { node { name tags household { room building { name compound { name } } } } }
  }
}
"""

NESTED = """
{
  communities(first: 2) { edges { node {
    compounds(first: 5) { edges { node {
      buildings(first: 5) { edges { node {
        households(first: 10) { edges { node {
          members(first: 10) { edges { node { name } } }
        } } }
      } } }
    } } }
  } } }
}
"""


async def test_a_page_of_residents_takes_the_same_few_statements_for_10_and_50(services, gql) -> None:
    # given
    community = await make_community(services.db)
    total = await seed(services, community, compounds=3, buildings=2, households=3, members=3)
    staff = await make_login(services, role=Role.STAFF, community=community)
    # when
    counts = {}
    for size in (10, 50):
        with counting(services) as statements:
            data = await gql(RESIDENTS, {"first": size}, token=staff.token)
        counts[size] = len(statements)
        # then: the page is complete, with every relation resolved
        edges = data["residents"]["edges"]
        assert data["residents"]["totalCount"] == total == 54
        assert len(edges) == size
        assert all(e["node"]["household"]["building"]["compound"]["name"].startswith("小区") for e in edges)
        assert sum(len(e["node"]["tags"]) for e in edges) == sum(i % 3 for i in range(size))
    # the session lookup, the viewer's roles (direct and by district in one), the page, the count,
    # and one batch each for tags, households, buildings and compounds
    assert counts == {10: 8, 50: 8}


async def test_the_nested_page_takes_one_statement_per_level_for_1_or_3_compounds(services, gql) -> None:
    # given
    small = await make_community(services.db, name="小社区")
    large = await make_community(services.db, name="大社区")
    await seed(services, small, compounds=1, buildings=2, households=2, members=2)
    await seed(services, large, compounds=3, buildings=2, households=2, members=2)
    small_staff = await make_login(services, role=Role.STAFF, community=small)
    large_staff = await make_login(services, role=Role.STAFF, community=large)
    counts = {}
    members = {}
    # when
    for name, login in (("small", small_staff), ("large", large_staff)):
        with counting(services) as statements:
            data = await gql(NESTED, token=login.token)
        counts[name] = len(statements)
        members[name] = [
            m["node"]["name"]
            for c in data["communities"]["edges"]
            for cp in c["node"]["compounds"]["edges"]
            for b in cp["node"]["buildings"]["edges"]
            for h in b["node"]["households"]["edges"]
            for m in h["node"]["members"]["edges"]
        ]
    # then
    assert len(members["small"]) == 8
    assert len(members["large"]) == 24
    assert members["large"][:3] == ["居民0-0-0-0", "居民0-0-0-1", "居民0-0-1-0"]
    # the session lookup, the viewer's roles (direct and by district in one), then one statement
    # for each of communities, compounds, buildings, households and members
    assert counts == {"small": 7, "large": 7}
