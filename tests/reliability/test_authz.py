"""The authorisation matrix: every role of one community against every object of the others.

For every GraphQL type that is a Node and maps to a table with a community, every object that
belongs to another community is asked for, by global id, through `node` and `nodes`, by each
role of an outsider community (and by the admin of another district). Pass: 0 objects returned.
The mutation side is covered per operation in tests/graphql/test_tenancy.py.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from graphql import GraphQLObjectType
from sqlalchemy import select

import api.models
from api.core.db import Base
from api.core.viewer import Role
from api.graphql.schema import schema as graphql_schema
from api.registry.models import Community
from tests.canteen.conftest import make_kitchen
from tests.eldercare.conftest import make_care
from tests.factories import make_community, make_estate, make_login
from tests.hall.conftest import make_desk as make_hall_desk
from tests.jobs import JobRunner
from tests.listings.conftest import make_board as make_listings_board
from tests.notices.conftest import make_board as make_notices_board
from tests.reliability.conftest import record
from tests.tickets.conftest import make_desk, new_ticket
from tests.venues.conftest import make_activity, make_hall

pytestmark = pytest.mark.reliability

# GraphQL types whose table is named otherwise.
ALIASES = {"Elder": "ElderProfile", "MealReservation": "CanteenReservation"}
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"


def node_tables() -> tuple[dict[str, Any], list[str]]:
    """GraphQL Node type name → model with a community_id; and the Node types that have none."""
    models = {m.class_.__name__: m.class_ for m in api.models.Base.registry.mappers}
    assert api.models.Base is Base
    mapped: dict[str, Any] = {}
    unscoped: list[str] = []
    for t in graphql_schema._schema.type_map.values():
        if not (isinstance(t, GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces)):
            continue
        name = ALIASES.get(t.name, t.name)
        model = models.get(name) or next(iter(m for k, m in models.items() if k.endswith(name)), None)
        if model is Community or (model is not None and "community_id" in model.__table__.c):
            mapped[t.name] = model
        else:
            unscoped.append(t.name)
    return mapped, sorted(unscoped)


def gid(type_name: str, id_: int) -> str:
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


async def test_no_role_of_another_community_reads_any_object(services, settings, jobs, gql_raw) -> None:
    # given: objects of many kinds in several communities
    desk = await make_desk(services)
    await new_ticket(services, desk, "leak")
    runner = JobRunner(settings, jobs)
    try:
        await runner.drain(skip={"dispatch.expire_offer"})
    finally:
        await runner.close()
    hall = await make_hall(services)
    await make_activity(services, hall)
    await make_estate(services, households=2, members=2)
    # and the other domains' own fixtures: elders and volunteers, the service hall, listings, a
    # canteen with meals, notices
    await make_care(services)
    await make_hall_desk(services)
    await make_listings_board(services)
    await make_kitchen(services)
    await make_notices_board(services)
    # and: an outsider community in another district, with one login per role
    outsider = await make_community(services.db, district="长安区")
    logins = [
        (role.value, await make_login(services, role=role, community=outsider))
        for role in Role
        if role is not Role.DISTRICT_ADMIN
    ]
    logins.append(("district_admin", await make_login(services, role=Role.DISTRICT_ADMIN, district="长安区")))

    mapped, unscoped = node_tables()
    foreign: list[str] = []
    covered: list[str] = []
    async with services.db.read_session() as session:
        for type_name, model in mapped.items():
            column = model.id if model is Community else model.community_id
            ids = (await session.scalars(select(model.id).where(column != outsider.id).limit(20))).all()
            if ids:
                covered.append(type_name)
            foreign.extend(gid(type_name, i) for i in ids)

    # when: every role asks for every foreign object
    leaks: list[str] = []
    asked = 0
    for role, login in logins:
        for start in range(0, len(foreign), 100):
            batch = foreign[start : start + 100]
            body = await gql_raw(NODES, {"ids": batch}, token=login.token)
            asked += len(batch)
            leaks.extend(f"{role}: {n['__typename']}" for n in (body.get("data") or {}).get("nodes") or [] if n)
        for one in foreign[:: max(1, len(foreign) // 10)]:
            body = await gql_raw(NODE, {"id": one}, token=login.token)
            asked += 1
            if (body.get("data") or {}).get("node"):
                leaks.append(f"{role}: node {one}")

    record(
        "authorisation matrix (node/nodes across communities)",
        {"roles": len(logins), "types_covered": len(covered), "reads": asked, "cross_community_reads": len(leaks)},
        "0 cross-community reads",
        not leaks,
        covered=sorted(covered),
        not_community_scoped=unscoped,
    )
    assert not leaks, leaks[:10]
    assert len(covered) >= 10
