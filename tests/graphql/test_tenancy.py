"""A staff member of one community cannot read or write any object of another community.

Two estates, A and B, share a database; the viewer holds a role in A only. Every read path
(list, connection, node, nodes, filter, survey, reveal) and every registry mutation aimed at
B behaves as if B's objects did not exist, and B's rows stay exactly as they were. Each
refusal has a control: the same request aimed at A works, so the refusal is about tenancy,
not about a malformed request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select
from strawberry import relay

from api.core.viewer import Role
from api.models import metadata
from api.registry.models import Household, PersonalDataAccess, Resident
from tests.factories import (
    Estate,
    Login,
    make_building,
    make_community,
    make_compound,
    make_estate,
    make_household,
    make_login,
    make_resident,
    national_id,
)


def gid(type_name: str, id_: int) -> str:
    return str(relay.GlobalID(type_name, str(id_)))


@dataclass
class World:
    a: Estate
    b: Estate
    staff: Login


@pytest.fixture
async def world(services) -> World:
    a = await make_estate(services, code="tenant-a")
    b = await make_estate(services, code="tenant-b")
    staff = await make_login(services, role=Role.STAFF, community=a.community)
    return World(a=a, b=b, staff=staff)


# Each Node type with a function picking one object of that type from an estate.
NODE_TYPES: list[tuple[str, Callable[[Estate], int]]] = [
    ("Community", lambda e: e.community.id),
    ("Compound", lambda e: e.compound.id),
    ("Building", lambda e: e.buildings[0].id),
    ("Household", lambda e: e.households[0].id),
    ("Resident", lambda e: e.residents[0].id),
]

NODE = "query ($id: ID!) { node(id: $id) { __typename id } }"


# -- reads ------------------------------------------------------------------------------------


async def test_communities_lists_only_the_viewers_community(world, gql) -> None:
    # when
    data = await gql("{ communities { totalCount edges { node { code } } } }", token=world.staff.token)
    # then
    assert data["communities"] == {"totalCount": 1, "edges": [{"node": {"code": "tenant-a"}}]}


@pytest.mark.parametrize(("type_name", "pick"), NODE_TYPES, ids=[t for t, _ in NODE_TYPES])
async def test_node_of_another_community_is_null(world, gql, type_name, pick) -> None:
    # given
    own, other = gid(type_name, pick(world.a)), gid(type_name, pick(world.b))
    # when
    seen = await gql(NODE, {"id": own}, token=world.staff.token)
    hidden = await gql(NODE, {"id": other}, token=world.staff.token)
    # then
    assert seen["node"] == {"__typename": type_name, "id": own}
    assert hidden["node"] is None


async def test_nodes_gives_null_for_each_id_of_another_community(world, gql) -> None:
    # given: A's and B's ids interleaved, one of each type
    ids = [gid(t, pick(estate)) for t, pick in NODE_TYPES for estate in (world.a, world.b)]
    # when
    data = await gql(
        "query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }", {"ids": ids}, token=world.staff.token
    )
    # then
    expected = [
        {"__typename": t, "id": gid(t, pick(world.a))} if estate is world.a else None
        for t, pick in NODE_TYPES
        for estate in (world.a, world.b)
    ]
    assert data["nodes"] == expected


RESIDENTS = """
query ($communityId: ID, $filter: ResidentFilterInput) {
  residents(communityId: $communityId, filter: $filter, first: 100) { totalCount edges { node { id } } }
}
"""


async def test_residents_of_another_community_are_none(world, gql) -> None:
    # when
    own = await gql(RESIDENTS, {"communityId": gid("Community", world.a.community.id)}, token=world.staff.token)
    other = await gql(RESIDENTS, {"communityId": gid("Community", world.b.community.id)}, token=world.staff.token)
    # then
    assert own["residents"]["totalCount"] == 8
    assert other["residents"] == {"totalCount": 0, "edges": []}


@pytest.mark.parametrize(
    ("field", "pick"),
    [
        ("compoundId", lambda e: gid("Compound", e.compound.id)),
        ("buildingId", lambda e: gid("Building", e.buildings[0].id)),
    ],
    ids=["compound", "building"],
)
async def test_filtering_residents_by_a_place_of_another_community_finds_none(world, gql, field, pick) -> None:
    # when
    own = await gql(RESIDENTS, {"filter": {field: pick(world.a)}}, token=world.staff.token)
    other = await gql(RESIDENTS, {"filter": {field: pick(world.b)}}, token=world.staff.token)
    # then
    assert own["residents"]["totalCount"] > 0
    assert other["residents"] == {"totalCount": 0, "edges": []}


async def test_all_residents_are_exactly_the_viewers_communitys(world, gql) -> None:
    # when
    data = await gql(RESIDENTS, token=world.staff.token)
    # then
    ids = {edge["node"]["id"] for edge in data["residents"]["edges"]}
    assert data["residents"]["totalCount"] == len(world.a.residents)
    assert ids == {gid("Resident", r.id) for r in world.a.residents}
    assert ids.isdisjoint({gid("Resident", r.id) for r in world.b.residents})


SURVEY = "query ($id: ID!) { ageingSurvey(communityId: $id) { total { residents } } }"


async def test_ageing_survey_of_another_community_is_not_found(world, gql, gql_raw) -> None:
    # when
    own = await gql(SURVEY, {"id": gid("Community", world.a.community.id)}, token=world.staff.token)
    other = await gql_raw(SURVEY, {"id": gid("Community", world.b.community.id)}, token=world.staff.token)
    # then
    assert own["ageingSurvey"]["total"]["residents"] == 8
    assert other["data"] is None
    assert [(e["message"], e["extensions"]["code"], e["path"]) for e in other["errors"]] == [
        ("No such community.", "NOT_FOUND", ["ageingSurvey"])
    ]


REVEAL = """
query ($id: ID!) {
  node(id: $id) { ... on Resident { nationalId(reveal: true, purpose: "家访核对") } }
}
"""


async def test_another_communitys_resident_cannot_be_revealed(services, world, gql) -> None:
    # given: an admin of A, who may reveal A's residents
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=world.a.community)
    own, other = world.a.residents[0], world.b.residents[0]
    # when
    seen = await gql(REVEAL, {"id": gid("Resident", own.id)}, token=admin.token)
    hidden = await gql(REVEAL, {"id": gid("Resident", other.id)}, token=admin.token)
    # then
    assert seen["node"] == {"nationalId": services.cipher.decrypt(own.national_id_encrypted)}
    assert hidden["node"] is None
    async with services.db.read_session() as session:
        logged = (await session.scalars(select(PersonalDataAccess.subject_resident_id))).all()
    assert logged == [own.id]


# -- writes -----------------------------------------------------------------------------------

CREATE_HOUSEHOLD = """
mutation ($input: CreateHouseholdInput!) {
  createHousehold(input: $input) { __typename ... on UserError { message field code } }
}
"""
MOVE_HOUSEHOLD = """
mutation ($input: MoveHouseholdInput!) {
  moveHousehold(input: $input) { __typename ... on UserError { message field code } }
}
"""
REGISTER_RESIDENT = """
mutation ($input: RegisterResidentInput!) {
  registerResident(input: $input) { __typename ... on UserError { message field code } }
}
"""
UPDATE_RESIDENT = """
mutation ($input: UpdateResidentInput!) {
  updateResident(input: $input) { __typename ... on UserError { message field code } }
}
"""
RECORD_CONSENT = """
mutation ($input: RecordConsentInput!) {
  recordConsent(input: $input) { __typename ... on UserError { message field code } }
}
"""


@dataclass(frozen=True)
class Attack:
    """A mutation whose target objects come from `target`; the viewer's own estate is `own`."""

    document: str
    field: str
    variables: Callable[[Estate, Estate], dict[str, Any]]
    success: str
    message: str
    error_field: str


ATTACKS: dict[str, Attack] = {
    "createHousehold on the building": Attack(
        CREATE_HOUSEHOLD,
        "createHousehold",
        lambda own, target: {"buildingId": gid("Building", target.buildings[0].id), "unit": 1, "room": "901"},
        "CreateHouseholdSuccess",
        "No such building.",
        "buildingId",
    ),
    "moveHousehold of the household": Attack(
        MOVE_HOUSEHOLD,
        "moveHousehold",
        lambda own, target: {
            "householdId": gid("Household", target.households[0].id),
            "buildingId": gid("Building", target.buildings[1].id),
            "unit": 2,
            "room": "902",
        },
        "MoveHouseholdSuccess",
        "No such household.",
        "householdId",
    ),
    "moveHousehold of an own household into the building": Attack(
        MOVE_HOUSEHOLD,
        "moveHousehold",
        lambda own, target: {
            "householdId": gid("Household", own.households[0].id),
            "buildingId": gid("Building", target.buildings[1].id),
            "unit": 2,
            "room": "903",
        },
        "MoveHouseholdSuccess",
        "No such building.",
        "buildingId",
    ),
    "registerResident into the household": Attack(
        REGISTER_RESIDENT,
        "registerResident",
        lambda own, target: {
            "householdId": gid("Household", target.households[0].id),
            "name": "李四",
            "nationalId": national_id(date(1985, 3, 4), seq=77),
        },
        "RegisterResidentSuccess",
        "No such household.",
        "householdId",
    ),
    "updateResident of the resident": Attack(
        UPDATE_RESIDENT,
        "updateResident",
        lambda own, target: {
            "residentId": gid("Resident", target.residents[0].id),
            "name": "改名",
            "tags": ["DISABLED"],
        },
        "UpdateResidentSuccess",
        "No such resident.",
        "residentId",
    ),
    "recordConsent for the resident": Attack(
        RECORD_CONSENT,
        "recordConsent",
        lambda own, target: {
            "residentId": gid("Resident", target.residents[0].id),
            "purpose": "PERSONAL_DATA",
            "granted": True,
        },
        "RecordConsentSuccess",
        "No such resident.",
        "residentId",
    ),
}

TENANT_TABLES = [t for t in metadata.sorted_tables if "community_id" in t.c]


async def snapshot(services, community_id: int) -> dict[str, Any]:
    """Row counts of every tenant table for one community, and its households and residents as they are."""
    async with services.db.read_session() as session:
        counts = {
            t.name: await session.scalar(select(func.count()).select_from(t).where(t.c.community_id == community_id))
            for t in TENANT_TABLES
        }
        households = (
            await session.execute(
                select(Household.id, Household.building_id, Household.unit, Household.room)
                .where(Household.community_id == community_id)
                .order_by(Household.id)
            )
        ).all()
        residents = (
            await session.execute(
                select(Resident.id, Resident.name, Resident.household_id, Resident.updated_at)
                .where(Resident.community_id == community_id)
                .order_by(Resident.id)
            )
        ).all()
    return {"counts": counts, "households": households, "residents": residents}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
async def test_a_mutation_aimed_at_another_community_is_not_found_and_writes_nothing(
    services, world, gql, attack
) -> None:
    # given
    before_b = await snapshot(services, world.b.community.id)
    before_a = await snapshot(services, world.a.community.id)
    # when
    data = await gql(attack.document, {"input": attack.variables(world.a, world.b)}, token=world.staff.token)
    # then
    assert data[attack.field] == {
        "__typename": "NotFoundError",
        "message": attack.message,
        "field": attack.error_field,
        "code": "NOT_FOUND",
    }
    assert await snapshot(services, world.b.community.id) == before_b
    assert await snapshot(services, world.a.community.id) == before_a


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
async def test_the_same_mutation_aimed_at_the_own_community_succeeds(world, gql, attack) -> None:
    # when
    data = await gql(attack.document, {"input": attack.variables(world.a, world.a)}, token=world.staff.token)
    # then
    assert data[attack.field] == {"__typename": attack.success}


# -- district admins --------------------------------------------------------------------------


async def test_a_district_admin_sees_the_communities_of_the_district_only(services, world, gql) -> None:
    # given: A and B are in 新华区; C, with a resident, is in 裕华区
    c = await make_community(services.db, code="tenant-c", district="裕华区")
    c_building = await make_building(services.db, await make_compound(services.db, c))
    c_resident = await make_resident(services, await make_household(services.db, c_building))
    admin = await make_login(services, role=Role.DISTRICT_ADMIN, district="新华区")
    # when
    communities = await gql("{ communities { totalCount edges { node { code } } } }", token=admin.token)
    residents = await gql(RESIDENTS, token=admin.token)
    hidden = await gql(
        "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [gid("Community", c.id), gid("Building", c_building.id), gid("Resident", c_resident.id)]},
        token=admin.token,
    )
    # then
    assert communities["communities"] == {
        "totalCount": 2,
        "edges": [{"node": {"code": "tenant-a"}}, {"node": {"code": "tenant-b"}}],
    }
    assert {e["node"]["id"] for e in residents["residents"]["edges"]} == {
        gid("Resident", r.id) for r in world.a.residents + world.b.residents
    }
    assert hidden["nodes"] == [None, None, None]
