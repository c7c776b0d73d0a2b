"""Browsing the registry as a flexible client would: nested pages, filters, cursors, nodes, masking."""

from __future__ import annotations

import base64
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from strawberry.relay import to_base64

from api.core.clock import local_today, years_before
from api.core.viewer import Role
from api.registry.models import PersonalDataAccess, ResidentTag
from tests.factories import (
    born_years_ago,
    make_building,
    make_community,
    make_compound,
    make_household,
    make_login,
    make_resident,
)


def gid(type_name: str, id_: int) -> str:
    return to_base64(type_name, id_)


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


# -- the whole hierarchy in one query ---------------------------------------------------------

HIERARCHY = """
{
  communities(first: 5) {
    totalCount
    edges { node {
      name code district
      compounds(first: 5) { totalCount edges { node {
        name
        buildings(first: 5) { totalCount edges { node {
          name floors units
          households(first: 10) { totalCount edges { node {
            unit room address
            members(first: 10) { totalCount edges { node { name } } }
          } } }
        } } }
      } } }
    } }
  }
}
"""


class TestHierarchy:
    async def test_communities_down_to_members_in_one_query(self, services, gql) -> None:
        # given
        db = services.db
        community = await make_community(db, code="mzhy", name="明珠花苑社区")
        south = await make_compound(db, community, name="明珠花苑南区")
        north = await make_compound(db, community, name="明珠花苑北区")
        b3 = await make_building(db, south, name="3号楼", units=2)
        b5 = await make_building(db, south, name="5号楼", units=1)
        await make_building(db, north, name="1号楼", units=3)
        h101 = await make_household(db, b3, unit=1, room="101")
        h502 = await make_household(db, b3, unit=2, room="502")
        h201 = await make_household(db, b5, unit=1, room="201")
        await make_resident(services, h101, name="张三")
        await make_resident(services, h101, name="李四")
        await make_resident(services, h502, name="王五")
        await make_resident(services, h201, name="赵六")
        other = await make_community(db, code="other", name="别的社区")
        await make_household(db, await make_building(db, await make_compound(db, other)))
        staff = await make_login(services, role=Role.STAFF, community=community)
        # when
        data = await gql(HIERARCHY, token=staff.token)

        # then
        def members(*names: str) -> dict[str, Any]:
            return {"totalCount": len(names), "edges": [{"node": {"name": n}} for n in names]}

        assert data["communities"] == {
            "totalCount": 1,
            "edges": [
                {
                    "node": {
                        "name": "明珠花苑社区",
                        "code": "mzhy",
                        "district": "新华区",
                        "compounds": {
                            "totalCount": 2,
                            "edges": [
                                {
                                    "node": {
                                        "name": "明珠花苑南区",
                                        "buildings": {
                                            "totalCount": 2,
                                            "edges": [
                                                {
                                                    "node": {
                                                        "name": "3号楼",
                                                        "floors": 6,
                                                        "units": 2,
                                                        "households": {
                                                            "totalCount": 2,
                                                            "edges": [
                                                                {
                                                                    "node": {
                                                                        "unit": 1,
                                                                        "room": "101",
                                                                        "address": "3号楼1单元101",
                                                                        "members": members("张三", "李四"),
                                                                    }
                                                                },
                                                                {
                                                                    "node": {
                                                                        "unit": 2,
                                                                        "room": "502",
                                                                        "address": "3号楼2单元502",
                                                                        "members": members("王五"),
                                                                    }
                                                                },
                                                            ],
                                                        },
                                                    }
                                                },
                                                {
                                                    "node": {
                                                        "name": "5号楼",
                                                        "floors": 6,
                                                        "units": 1,
                                                        "households": {
                                                            "totalCount": 1,
                                                            "edges": [
                                                                {
                                                                    "node": {
                                                                        "unit": 1,
                                                                        "room": "201",
                                                                        "address": "5号楼1单元201",
                                                                        "members": members("赵六"),
                                                                    }
                                                                }
                                                            ],
                                                        },
                                                    }
                                                },
                                            ],
                                        },
                                    }
                                },
                                {
                                    "node": {
                                        "name": "明珠花苑北区",
                                        "buildings": {
                                            "totalCount": 1,
                                            "edges": [
                                                {
                                                    "node": {
                                                        "name": "1号楼",
                                                        "floors": 6,
                                                        "units": 3,
                                                        "households": {"totalCount": 0, "edges": []},
                                                    }
                                                }
                                            ],
                                        },
                                    }
                                },
                            ],
                        },
                    }
                }
            ],
        }


# -- filters ----------------------------------------------------------------------------------

TOP_LEVEL = """
query ($filter: ResidentFilterInput) {
  residents(filter: $filter, first: 100) { totalCount edges { node { name age } } }
}
"""

IN_COMMUNITY = """
query ($id: ID!, $filter: ResidentFilterInput) {
  node(id: $id) { ... on Community { residents(filter: $filter, first: 100) { totalCount edges { node { name } } } } }
}
"""


class TestFilters:
    """Each filter through `residents` and `Community.residents`, which must agree."""

    @pytest.fixture
    async def town(self, services) -> dict[str, Any]:
        db = services.db
        today = local_today()
        community = await make_community(db, name="幸福里社区")
        east = await make_compound(db, community, name="东区")
        west = await make_compound(db, community, name="西区")
        e1 = await make_building(db, east, name="1号楼", units=2)
        e2 = await make_building(db, east, name="2号楼", units=2)
        w1 = await make_building(db, west, name="1号楼", units=2)
        e1u1 = await make_household(db, e1, unit=1, room="101")
        e1u2 = await make_household(db, e1, unit=2, room="201")
        e2u1 = await make_household(db, e2, unit=1, room="102")
        w1u2 = await make_household(db, w1, unit=2, room="202")
        alone, disabled, low = ResidentTag.LIVES_ALONE, ResidentTag.DISABLED, ResidentTag.LOW_INCOME
        people = [
            # (household, name, birth date, tags)
            (e1u1, "李建国", years_before(today, 60), (alone,)),  # 60 today
            (e1u1, "李小明", years_before(today, 60) + timedelta(days=1), ()),  # 60 tomorrow: still 59
            (e1u2, "王秀英", born_years_ago(today, 80), (alone, disabled)),
            (e2u1, "张_三", born_years_ago(today, 35), (disabled,)),
            (e2u1, "张三丰", born_years_ago(today, 72), (alone, disabled, low)),
            (w1u2, "百分之100%", born_years_ago(today, 18), ()),
            (w1u2, "赵大妈", years_before(today, 61), (low,)),  # 61 today
        ]
        for household, name, born, tags in people:
            await make_resident(services, household, name=name, born=born, tags=tags)
        # Someone who would match most filters, in a community the staff member has no role in.
        elsewhere = await make_community(db, name="别处社区")
        far = await make_household(db, await make_building(db, await make_compound(db, elsewhere), units=2), unit=1)
        await make_resident(services, far, name="张三远", born=born_years_ago(today, 80), tags=(alone, disabled))
        staff = await make_login(services, role=Role.STAFF, community=community)
        ids = {"e1": e1.id, "e2": e2.id, "w1": w1.id, "east": east.id, "west": west.id}
        return {"token": staff.token, "community": community, "ids": ids}

    async def _names(self, gql, town: dict[str, Any], flt: dict[str, Any]) -> list[str]:
        top = (await gql(TOP_LEVEL, {"filter": flt}, token=town["token"]))["residents"]
        nested = (await gql(IN_COMMUNITY, {"id": gid("Community", town["community"].id), "filter": flt},
                            token=town["token"]))["node"]["residents"]  # fmt: skip
        names = [e["node"]["name"] for e in top["edges"]]
        assert top["totalCount"] == len(names)
        assert nested["totalCount"] == len(names)
        assert [e["node"]["name"] for e in nested["edges"]] == names
        return names

    async def test_no_filter_lists_only_the_viewers_community(self, gql, town) -> None:
        names = await self._names(gql, town, {})
        assert names == ["李建国", "李小明", "王秀英", "张_三", "张三丰", "百分之100%", "赵大妈"]

    async def test_min_age_counts_someone_turning_60_today(self, gql, town) -> None:
        assert await self._names(gql, town, {"minAge": 60}) == ["李建国", "王秀英", "张三丰", "赵大妈"]

    async def test_max_age_keeps_someone_turning_60_tomorrow(self, gql, town) -> None:
        assert await self._names(gql, town, {"maxAge": 59}) == ["李小明", "张_三", "百分之100%"]

    async def test_min_and_max_age_of_60_is_exactly_60(self, gql, town) -> None:
        assert await self._names(gql, town, {"minAge": 60, "maxAge": 60}) == ["李建国"]

    async def test_max_age_includes_the_whole_year(self, gql, town) -> None:
        # 赵大妈 turned 61 today; maxAge 60 excludes her, maxAge 61 includes her.
        assert await self._names(gql, town, {"minAge": 61, "maxAge": 61}) == ["赵大妈"]
        assert await self._names(gql, town, {"minAge": 36, "maxAge": 60}) == ["李建国", "李小明"]

    async def test_ages_are_whole_years_today(self, gql, town) -> None:
        data = await gql(TOP_LEVEL, {"filter": {}}, token=town["token"])
        ages = {e["node"]["name"]: e["node"]["age"] for e in data["residents"]["edges"]}
        assert ages == {
            "李建国": 60,
            "李小明": 59,
            "王秀英": 80,
            "张_三": 35,
            "张三丰": 72,
            "百分之100%": 18,
            "赵大妈": 61,
        }

    async def test_tags_must_all_be_present(self, gql, town) -> None:
        assert await self._names(gql, town, {"tags": ["LIVES_ALONE"]}) == ["李建国", "王秀英", "张三丰"]
        assert await self._names(gql, town, {"tags": ["LIVES_ALONE", "DISABLED"]}) == ["王秀英", "张三丰"]
        assert await self._names(gql, town, {"tags": ["DISABLED", "LOW_INCOME", "LIVES_ALONE"]}) == ["张三丰"]
        assert await self._names(gql, town, {"tags": ["NO_FAMILY_SUPPORT"]}) == []

    async def test_building_compound_and_unit(self, gql, town) -> None:
        ids = town["ids"]
        assert await self._names(gql, town, {"buildingId": gid("Building", ids["e1"])}) == [
            "李建国",
            "李小明",
            "王秀英",
        ]
        assert await self._names(gql, town, {"compoundId": gid("Compound", ids["west"])}) == ["百分之100%", "赵大妈"]
        assert await self._names(gql, town, {"compoundId": gid("Compound", ids["east"])}) == [
            "李建国",
            "李小明",
            "王秀英",
            "张_三",
            "张三丰",
        ]
        # A unit number matches in every building.
        assert await self._names(gql, town, {"unit": 2}) == ["王秀英", "百分之100%", "赵大妈"]

    async def test_an_id_of_another_type_matches_nothing(self, gql, town) -> None:
        assert await self._names(gql, town, {"buildingId": gid("Compound", town["ids"]["east"])}) == []

    async def test_name_is_a_substring(self, gql, town) -> None:
        assert await self._names(gql, town, {"name": "张三"}) == ["张三丰"]
        assert await self._names(gql, town, {"name": "李"}) == ["李建国", "李小明"]

    async def test_percent_and_underscore_in_a_name_are_literal(self, gql, town) -> None:
        assert await self._names(gql, town, {"name": "%"}) == ["百分之100%"]
        assert await self._names(gql, town, {"name": "_"}) == ["张_三"]
        assert await self._names(gql, town, {"name": "张_"}) == ["张_三"]
        assert await self._names(gql, town, {"name": "李%"}) == []

    async def test_filters_combine(self, gql, town) -> None:
        ids = town["ids"]
        assert await self._names(gql, town, {"minAge": 60, "tags": ["DISABLED"]}) == ["王秀英", "张三丰"]
        assert await self._names(gql, town, {"compoundId": gid("Compound", ids["east"]), "unit": 1, "minAge": 60}) == [
            "李建国",
            "张三丰",
        ]
        assert await self._names(
            gql, town, {"buildingId": gid("Building", ids["e2"]), "name": "张", "tags": ["LOW_INCOME"]}
        ) == ["张三丰"]
        assert await self._names(gql, town, {"unit": 2, "tags": ["LOW_INCOME"], "maxAge": 70}) == ["赵大妈"]


# -- cursors ----------------------------------------------------------------------------------

PAGE = """
query ($first: Int, $after: String) {
  residents(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { name } }
  }
}
"""

COMMUNITY_PAGE = """
query ($id: ID!, $first: Int, $after: String) {
  node(id: $id) { ... on Community { residents(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { node { name } }
  } } }
}
"""


class TestPagination:
    @pytest.fixture
    async def five(self, services) -> dict[str, Any]:
        community = await make_community(services.db)
        household = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, community))
        )
        for i in range(5):
            await make_resident(services, household, name=f"居民{i}")
        staff = await make_login(services, role=Role.STAFF, community=community)
        return {"token": staff.token, "community_id": community.id}

    async def test_first_two_pages_through_five(self, gql, five) -> None:
        # given
        seen: list[str] = []
        infos: list[tuple[bool, bool]] = []
        after: str | None = None
        # when
        for _ in range(3):
            page = (await gql(PAGE, {"first": 2, "after": after}, token=five["token"]))["residents"]
            assert page["totalCount"] == 5
            assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
            assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
            seen += [e["node"]["name"] for e in page["edges"]]
            infos.append((page["pageInfo"]["hasNextPage"], page["pageInfo"]["hasPreviousPage"]))
            after = page["pageInfo"]["endCursor"]
        # then
        assert seen == ["居民0", "居民1", "居民2", "居民3", "居民4"]
        assert infos == [(True, False), (True, True), (False, True)]

    async def test_a_page_after_the_last_item_is_empty(self, gql, five) -> None:
        last = (await gql(PAGE, {"first": 5}, token=five["token"]))["residents"]
        after = (await gql(PAGE, {"first": 2, "after": last["pageInfo"]["endCursor"]}, token=five["token"]))[
            "residents"
        ]
        assert last["pageInfo"]["hasNextPage"] is False
        assert after["edges"] == []
        assert after["pageInfo"] == {
            "hasNextPage": False,
            "hasPreviousPage": True,
            "startCursor": None,
            "endCursor": None,
        }

    async def test_community_residents_page_the_same_way(self, gql, five) -> None:
        seen: list[str] = []
        infos: list[tuple[bool, bool]] = []
        after: str | None = None
        for _ in range(3):
            variables = {"id": gid("Community", five["community_id"]), "first": 2, "after": after}
            page = (await gql(COMMUNITY_PAGE, variables, token=five["token"]))["node"]["residents"]
            assert page["totalCount"] == 5
            seen += [e["node"]["name"] for e in page["edges"]]
            infos.append((page["pageInfo"]["hasNextPage"], page["pageInfo"]["hasPreviousPage"]))
            after = page["pageInfo"]["endCursor"]
        assert seen == ["居民0", "居民1", "居民2", "居民3", "居民4"]
        assert infos == [(True, False), (True, True), (False, True)]

    async def test_first_100_is_allowed(self, gql, five) -> None:
        page = (await gql(PAGE, {"first": 100}, token=five["token"]))["residents"]
        assert len(page["edges"]) == 5
        assert page["pageInfo"]["hasNextPage"] is False

    @pytest.mark.parametrize("first", [0, -1, 101])
    async def test_page_size_out_of_range_is_bad_input(self, gql_raw, five, first) -> None:
        body = await gql_raw(PAGE, {"first": first}, token=five["token"])
        nested = await gql_raw(COMMUNITY_PAGE, {"id": gid("Community", five["community_id"]), "first": first},
                               token=five["token"])  # fmt: skip
        assert error_codes(body) == ["BAD_USER_INPUT"]
        assert body["data"] is None
        assert error_codes(nested) == ["BAD_USER_INPUT"]

    @pytest.mark.parametrize(
        "after",
        [
            "garbage",
            "!!!",
            base64.urlsafe_b64encode(b"cursor:abc").decode(),
            base64.urlsafe_b64encode(b"offset:3").decode(),
            base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        ],
    )
    async def test_a_garbage_cursor_is_bad_input(self, gql_raw, five, after) -> None:
        body = await gql_raw(PAGE, {"first": 2, "after": after}, token=five["token"])
        assert error_codes(body) == ["BAD_USER_INPUT"]


# -- nodes ------------------------------------------------------------------------------------

NODE = """
query ($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Community { name }
    ... on Compound { name community { name } }
    ... on Building { name compound { name } }
    ... on Household { address building { name } }
    ... on Resident { name household { address } }
  }
}
"""

NODES = """
query ($ids: [ID!]!) {
  nodes(ids: $ids) { __typename id ... on Resident { name } ... on Building { name } ... on Community { name } }
}
"""


class TestNodes:
    @pytest.fixture
    async def estate(self, services) -> dict[str, Any]:
        db = services.db
        community = await make_community(db, name="明珠花苑社区")
        compound = await make_compound(db, community, name="南区")
        building = await make_building(db, compound, name="3号楼")
        household = await make_household(db, building, unit=2, room="502")
        resident = await make_resident(services, household, name="张三")
        other = await make_community(db, name="别的社区")
        other_household = await make_household(db, await make_building(db, await make_compound(db, other)))
        stranger = await make_resident(services, other_household, name="外人")
        staff = await make_login(services, role=Role.STAFF, community=community)
        return {
            "token": staff.token,
            "community": community,
            "compound": compound,
            "building": building,
            "household": household,
            "resident": resident,
            "stranger": stranger,
            "other": other,
        }

    async def test_node_resolves_every_type(self, gql, estate) -> None:
        expected: dict[str, dict[str, Any]] = {
            "Community": {"name": "明珠花苑社区"},
            "Compound": {"name": "南区", "community": {"name": "明珠花苑社区"}},
            "Building": {"name": "3号楼", "compound": {"name": "南区"}},
            "Household": {"address": "3号楼2单元502", "building": {"name": "3号楼"}},
            "Resident": {"name": "张三", "household": {"address": "3号楼2单元502"}},
        }
        rows = {
            "Community": estate["community"],
            "Compound": estate["compound"],
            "Building": estate["building"],
            "Household": estate["household"],
            "Resident": estate["resident"],
        }
        for type_name, fields in expected.items():
            node_id = gid(type_name, rows[type_name].id)
            data = await gql(NODE, {"id": node_id}, token=estate["token"])
            assert data["node"] == {"__typename": type_name, "id": node_id, **fields}

    async def test_nodes_mix_types_and_give_null_for_what_does_not_exist(self, gql, estate) -> None:
        ids = [
            gid("Resident", estate["resident"].id),
            gid("Building", estate["building"].id),
            gid("Resident", 987654),  # no such resident
            gid("Community", estate["community"].id),
            gid("Resident", estate["stranger"].id),  # exists, but not for this viewer
            gid("Community", estate["other"].id),  # no role there
            gid("Nonsense", 1),  # no such type
            gid("PageInfo", 1),  # a type that is not a node
        ]
        data = await gql(NODES, {"ids": ids}, token=estate["token"])
        assert data["nodes"] == [
            {"__typename": "Resident", "id": ids[0], "name": "张三"},
            {"__typename": "Building", "id": ids[1], "name": "3号楼"},
            None,
            {"__typename": "Community", "id": ids[3], "name": "明珠花苑社区"},
            None,
            None,
            None,
            None,
        ]

    async def test_more_than_100_ids_is_bad_input(self, gql_raw, estate) -> None:
        body = await gql_raw(NODES, {"ids": [gid("Resident", i) for i in range(101)]}, token=estate["token"])
        assert error_codes(body) == ["BAD_USER_INPUT"]


# -- a resident viewer ------------------------------------------------------------------------


async def test_a_resident_sees_themselves_but_cannot_list_or_look_up_others(services, gql, gql_raw) -> None:
    # given
    db = services.db
    community = await make_community(db)
    building = await make_building(db, await make_compound(db, community), name="7号楼")
    mine = await make_household(db, building, unit=1, room="301")
    theirs = await make_household(db, building, unit=2, room="402")
    me = await make_resident(services, mine, name="刘阿姨")
    spouse = await make_resident(services, mine, name="刘叔叔")
    neighbour = await make_resident(services, theirs, name="邻居")
    login = await make_login(services, role=Role.RESIDENT, community=community, resident=me)
    # when
    viewer = await gql("{ viewer { resident { name household { address } } } }", token=login.token)
    listing = await gql_raw("{ residents { totalCount edges { node { name } } } }", token=login.token)
    listing_in_community = await gql_raw(
        "query ($id: ID!) { node(id: $id) { ... on Community { residents { totalCount } } } }",
        {"id": gid("Community", community.id)},
        token=login.token,
    )
    own = await gql(NODE, {"id": gid("Resident", me.id)}, token=login.token)
    others = await gql(
        NODES,
        {"ids": [gid("Resident", neighbour.id), gid("Resident", spouse.id), gid("Household", theirs.id)]},
        token=login.token,
    )
    # then
    assert viewer == {"viewer": {"resident": {"name": "刘阿姨", "household": {"address": "7号楼1单元301"}}}}
    assert error_codes(listing) == ["FORBIDDEN"]
    assert listing["data"] is None
    assert error_codes(listing_in_community) == ["FORBIDDEN"]
    assert own["node"]["name"] == "刘阿姨"
    assert others["nodes"] == [None, None, None]


# -- masking and unmasked reads ---------------------------------------------------------------

MASKED = """
{ residents { edges { node { name nationalId phone } } } }
"""

REVEAL = """
query ($purpose: String) {
  residents {
    edges { node { name nationalId(reveal: true, purpose: $purpose) phone(reveal: true, purpose: $purpose) } }
  }
}
"""


class TestPersonalData:
    @pytest.fixture
    async def people(self, services) -> dict[str, Any]:
        community = await make_community(services.db)
        household = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, community))
        )
        with_phone = await make_resident(services, household, name="有电话", phone="13812341234")
        without_phone = await make_resident(services, household, name="没电话", born=date(1990, 2, 3), male=False)
        return {
            "community": community,
            "with_phone": with_phone,
            "without_phone": without_phone,
            "nid_1": services.cipher.decrypt(with_phone.national_id_encrypted),
            "nid_2": services.cipher.decrypt(without_phone.national_id_encrypted),
        }

    async def _log(self, services) -> list[tuple[Any, ...]]:
        async with services.db.read_session() as session:
            rows = await session.execute(
                select(
                    PersonalDataAccess.community_id,
                    PersonalDataAccess.actor_account_id,
                    PersonalDataAccess.subject_resident_id,
                    PersonalDataAccess.field,
                    PersonalDataAccess.purpose,
                ).order_by(PersonalDataAccess.subject_resident_id, PersonalDataAccess.field)
            )
            return [tuple(r) for r in rows.all()]

    async def test_masked_by_default_for_everyone(self, services, gql, people) -> None:
        # given
        admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=people["community"])
        staff = await make_login(services, role=Role.STAFF, community=people["community"])
        nid_1, nid_2 = people["nid_1"], people["nid_2"]
        # when
        as_admin = await gql(MASKED, token=admin.token)
        as_staff = await gql(MASKED, token=staff.token)
        # then
        expected = [
            {"node": {"name": "有电话", "nationalId": f"{nid_1[:4]}**********{nid_1[-4:]}", "phone": "138****1234"}},
            {"node": {"name": "没电话", "nationalId": f"{nid_2[:4]}**********{nid_2[-4:]}", "phone": None}},
        ]
        assert as_admin["residents"]["edges"] == expected
        assert as_staff["residents"]["edges"] == expected
        assert await self._log(services) == []

    async def test_an_admin_sees_full_values_and_each_is_logged_once(self, services, gql, people) -> None:
        # given
        admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=people["community"])
        # when
        data = await gql(REVEAL, {"purpose": " 核对身份 "}, token=admin.token)
        # then
        assert data["residents"]["edges"] == [
            {"node": {"name": "有电话", "nationalId": people["nid_1"], "phone": "13812341234"}},
            {"node": {"name": "没电话", "nationalId": people["nid_2"], "phone": None}},
        ]
        cid, actor = people["community"].id, admin.account.id
        with_phone, without_phone = people["with_phone"].id, people["without_phone"].id
        assert await self._log(services) == [
            (cid, actor, with_phone, "national_id", "核对身份"),
            (cid, actor, with_phone, "phone", "核对身份"),
            (cid, actor, without_phone, "national_id", "核对身份"),
        ]

    async def test_a_district_admin_may_reveal_too(self, services, gql, people) -> None:
        admin = await make_login(services, role=Role.DISTRICT_ADMIN, district="新华区")
        data = await gql(
            'query ($id: ID!) { node(id: $id) { ... on Resident { nationalId(reveal: true, purpose: "核对身份") } } }',
            {"id": gid("Resident", people["without_phone"].id)},
            token=admin.token,
        )
        assert data["node"] == {"nationalId": people["nid_2"]}
        assert len(await self._log(services)) == 1

    async def test_staff_may_not_reveal_and_nothing_is_logged(self, services, gql_raw, people) -> None:
        staff = await make_login(services, role=Role.STAFF, community=people["community"])
        body = await gql_raw(REVEAL, {"purpose": "核对身份"}, token=staff.token)
        assert set(error_codes(body)) == {"FORBIDDEN"}
        assert await self._log(services) == []

    @pytest.mark.parametrize("purpose", [None, "", "  ", "x"])
    async def test_reveal_needs_a_purpose_and_writes_nothing_without_one(
        self, services, gql_raw, people, purpose
    ) -> None:
        admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=people["community"])
        body = await gql_raw(REVEAL, {"purpose": purpose}, token=admin.token)
        assert body["errors"]
        assert set(error_codes(body)) == {"BAD_USER_INPUT"}
        async with services.db.read_session() as session:
            assert await session.scalar(select(func.count()).select_from(PersonalDataAccess)) == 0
