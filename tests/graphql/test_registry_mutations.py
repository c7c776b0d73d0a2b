"""Staff mutations of the registry: typed errors, and nothing written when one is returned."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from strawberry.relay import to_base64

from api.accounts import service as accounts_service
from api.core.clock import age_on, local_today
from api.core.viewer import Role
from api.registry.models import Household, HouseholdMove, Resident, ResidentTag, ResidentTagLink
from api.registry.validation import check_char
from tests.factories import (
    Login,
    born_years_ago,
    make_building,
    make_community,
    make_compound,
    make_household,
    make_login,
    make_resident,
    national_id,
)

TABLES = ("resident", "household", "resident_tag", "household_move", "consent_record")


def gid(type_name: str, id_: int) -> str:
    return to_base64(type_name, id_)


async def row_counts(services) -> dict[str, int]:
    async with services.db.read_session() as session:
        return {t: int((await session.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()) for t in TABLES}


async def also_grant(services, login: Login, role: Role, community) -> None:
    async with services.db.unit_of_work() as uow:
        await accounts_service.grant_role(uow, account_id=login.account.id, role=role, community_id=community.id)


def error(typename: str, field: str | None, code: str) -> dict[str, Any]:
    return {"__typename": typename, "field": field, "code": code}


ERROR_FIELDS = "... on UserError { field code message }"

REGISTER = f"""
mutation ($input: RegisterResidentInput!) {{
  registerResident(input: $input) {{
    __typename
    ... on RegisterResidentSuccess {{
      resident {{
        id name gender birthDate age isMinor relationToHead phone nationalId tags
        household {{ address }} guardian {{ name }}
      }}
    }}
    {ERROR_FIELDS}
  }}
}}
"""

UPDATE = f"""
mutation ($input: UpdateResidentInput!) {{
  updateResident(input: $input) {{
    __typename
    ... on UpdateResidentSuccess {{ resident {{ name phone tags relationToHead household {{ address }} }} }}
    {ERROR_FIELDS}
  }}
}}
"""

CREATE_HOUSEHOLD = f"""
mutation ($input: CreateHouseholdInput!) {{
  createHousehold(input: $input) {{
    __typename
    ... on CreateHouseholdSuccess {{ household {{ unit room address building {{ name }} members {{ totalCount }} }} }}
    {ERROR_FIELDS}
  }}
}}
"""

MOVE_HOUSEHOLD = f"""
mutation ($input: MoveHouseholdInput!) {{
  moveHousehold(input: $input) {{
    __typename
    ... on MoveHouseholdSuccess {{ household {{ id unit room address }} }}
    {ERROR_FIELDS}
  }}
}}
"""

RECORD_CONSENT = f"""
mutation ($input: RecordConsentInput!) {{
  recordConsent(input: $input) {{
    __typename
    ... on RecordConsentSuccess {{ consent {{ purpose granted note givenByGuardian }} resident {{ name }} }}
    {ERROR_FIELDS}
  }}
}}
"""


def result_of(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The mutation's payload without the message (asserted separately where it matters)."""
    payload: dict[str, Any] = data[name]
    return {k: v for k, v in payload.items() if k != "message"}


@pytest.fixture
async def place(services) -> dict[str, Any]:
    db = services.db
    community = await make_community(db, name="明珠花苑社区")
    compound = await make_compound(db, community, name="南区")
    building = await make_building(db, compound, name="3号楼", units=2)
    household = await make_household(db, building, unit=2, room="502")
    staff = await make_login(services, role=Role.STAFF, community=community)
    return {"community": community, "compound": compound, "building": building, "household": household, "staff": staff}


# -- registerResident -------------------------------------------------------------------------


class TestRegisterResident:
    async def test_registers_with_birth_date_and_gender_from_the_id(self, services, gql, place) -> None:
        # given
        nid = national_id(date(1985, 3, 9), male=False)
        before = await row_counts(services)
        # when
        data = await gql(
            REGISTER,
            {
                "input": {
                    "householdId": gid("Household", place["household"].id),
                    "name": "  李   梅 ",
                    "nationalId": nid.lower(),
                    "phone": "+86 138-0013-8000",
                    "tags": ["LOW_INCOME", "LIVES_ALONE", "LOW_INCOME"],
                    "relationToHead": "配偶",
                }
            },
            token=place["staff"].token,
        )
        # then
        resident = data["registerResident"]["resident"]
        assert data["registerResident"]["__typename"] == "RegisterResidentSuccess"
        assert {k: v for k, v in resident.items() if k != "id"} == {
            "name": "李 梅",
            "gender": "FEMALE",
            "birthDate": "1985-03-09",
            "age": age_on(date(1985, 3, 9), local_today()),
            "isMinor": False,
            "relationToHead": "配偶",
            "phone": "138****8000",
            "nationalId": f"{nid[:4]}**********{nid[-4:]}",
            "tags": ["LIVES_ALONE", "LOW_INCOME"],
            "household": {"address": "3号楼2单元502"},
            "guardian": None,
        }
        async with services.db.read_session() as session:
            row = (await session.scalars(select(Resident))).one()
            tags = (await session.scalars(select(ResidentTagLink.tag).order_by(ResidentTagLink.tag))).all()
        assert services.cipher.decrypt(row.phone_encrypted) == "13800138000"
        assert services.cipher.decrypt(row.national_id_encrypted) == nid
        assert row.community_id == place["community"].id
        assert row.household_id == place["household"].id
        assert tags == ["lives_alone", "low_income"]
        after = await row_counts(services)
        assert after == {**before, "resident": before["resident"] + 1, "resident_tag": before["resident_tag"] + 2}

    async def test_a_male_id_gives_a_male_resident(self, gql, place) -> None:
        nid = national_id(date(1970, 12, 31), male=True)
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "王强", "nationalId": nid,
                       "birthDate": "1970-12-31"}},
            token=place["staff"].token,
        )  # fmt: skip
        resident = data["registerResident"]["resident"]
        assert (resident["gender"], resident["birthDate"], resident["phone"], resident["tags"]) == (
            "MALE",
            "1970-12-31",
            None,
            [],
        )

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            pytest.param(
                {"nationalId": "wrong-check"},
                error("InvalidNationalIdError", "nationalId", "INVALID_NATIONAL_ID"),
                id="wrong-check-digit",
            ),
            pytest.param(
                {"nationalId": "month-13"},
                error("InvalidNationalIdError", "nationalId", "INVALID_NATIONAL_ID"),
                id="month-13",
            ),
            pytest.param(
                {"nationalId": "feb-30"},
                error("InvalidNationalIdError", "nationalId", "INVALID_NATIONAL_ID"),
                id="february-30",
            ),
            pytest.param(
                {"nationalId": "too-short"},
                error("InvalidNationalIdError", "nationalId", "INVALID_NATIONAL_ID"),
                id="17-characters",
            ),
            pytest.param(
                {"birthDate": "1985-03-10"},
                error("InvalidBirthDateError", "birthDate", "INVALID_BIRTH_DATE"),
                id="birth-date-differs",
            ),
            pytest.param(
                {"birthDate": "future"},
                error("InvalidBirthDateError", "birthDate", "INVALID_BIRTH_DATE"),
                id="birth-date-in-future",
            ),
            pytest.param(
                {"phone": "0311-8888888"}, error("InvalidPhoneError", "phone", "INVALID_PHONE"), id="landline"
            ),
            pytest.param({"phone": "1380013800"}, error("InvalidPhoneError", "phone", "INVALID_PHONE"), id="short"),
            pytest.param(
                {"phone": "12800138000"}, error("InvalidPhoneError", "phone", "INVALID_PHONE"), id="not-mobile"
            ),
            pytest.param({"name": "   "}, error("ValidationError", "name", "INVALID"), id="blank-name"),
            pytest.param({"name": "张" * 51}, error("ValidationError", "name", "INVALID"), id="long-name"),
            pytest.param(
                {"householdId": "building"}, error("NotFoundError", "householdId", "NOT_FOUND"), id="not-a-household"
            ),
            pytest.param(
                {"householdId": "missing"}, error("NotFoundError", "householdId", "NOT_FOUND"), id="missing-household"
            ),
        ],
    )
    async def test_invalid_input_is_a_typed_error_and_writes_nothing(
        self, services, gql, place, changes, expected
    ) -> None:
        # given
        nid = national_id(date(1985, 3, 9), male=False)
        month_13 = f"130105198513{nid[12:17]}"
        feb_30 = f"130105198502{30}{nid[14:17]}"
        special = {
            "wrong-check": nid[:17] + ("0" if nid[17] != "0" else "1"),
            "month-13": month_13 + check_char(month_13),
            "feb-30": feb_30 + check_char(feb_30),
            "too-short": nid[:17],
            "future": (local_today() + timedelta(days=1)).isoformat(),
            "building": gid("Building", place["building"].id),
            "missing": gid("Household", 987654),
        }
        fields = {"householdId": gid("Household", place["household"].id), "name": "李梅", "nationalId": nid}
        fields.update({k: special.get(v, v) for k, v in changes.items()})
        before = await row_counts(services)
        # when
        data = await gql(REGISTER, {"input": fields}, token=place["staff"].token)
        # then
        assert result_of(data, "registerResident") == expected
        assert await row_counts(services) == before

    async def test_an_impossible_birth_date_in_the_id_is_explained(self, gql, place) -> None:
        month_13 = "13010519851309123"
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "李梅",
                       "nationalId": month_13 + check_char(month_13)}},
            token=place["staff"].token,
        )  # fmt: skip
        assert data["registerResident"]["message"] == "The ID number holds an impossible birth date."

    async def test_the_same_id_twice_in_a_community_is_a_duplicate(self, services, gql, place) -> None:
        # given
        nid = national_id(date(1960, 1, 1))
        first = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "甲", "nationalId": nid}},
            token=place["staff"].token,
        )
        other_household = await make_household(services.db, place["building"], unit=1, room="101")
        before = await row_counts(services)
        # when
        again = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", other_household.id), "name": "乙", "nationalId": nid,
                       "tags": ["DISABLED"]}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert first["registerResident"]["__typename"] == "RegisterResidentSuccess"
        assert result_of(again, "registerResident") == error(
            "DuplicateNationalIdError", "nationalId", "DUPLICATE_NATIONAL_ID"
        )
        assert await row_counts(services) == before

    async def test_the_same_id_may_be_registered_in_another_community(self, services, gql, place) -> None:
        # given
        nid = national_id(date(1960, 1, 1))
        other = await make_community(services.db, name="别的社区")
        elsewhere = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, other))
        )
        other_staff = await make_login(services, role=Role.STAFF, community=other)
        # when
        here = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "甲", "nationalId": nid}},
            token=place["staff"].token,
        )
        there = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", elsewhere.id), "name": "甲", "nationalId": nid}},
            token=other_staff.token,
        )
        # then
        assert here["registerResident"]["__typename"] == "RegisterResidentSuccess"
        assert there["registerResident"]["__typename"] == "RegisterResidentSuccess"
        assert (await row_counts(services))["resident"] == 2

    async def test_staff_cannot_register_into_another_communitys_household(self, services, gql, place) -> None:
        other = await make_community(services.db, name="别的社区")
        elsewhere = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, other))
        )
        before = await row_counts(services)
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", elsewhere.id), "name": "甲",
                       "nationalId": national_id(date(1960, 1, 1))}},
            token=place["staff"].token,
        )  # fmt: skip
        assert result_of(data, "registerResident") == error("NotFoundError", "householdId", "NOT_FOUND")
        assert await row_counts(services) == before

    async def test_a_child_under_14_needs_a_guardian(self, services, gql, place) -> None:
        # given
        today = local_today()
        nid = national_id(born_years_ago(today, 13, days=1))
        before = await row_counts(services)
        # when
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "小明", "nationalId": nid}},
            token=place["staff"].token,
        )
        # then
        assert result_of(data, "registerResident") == error("GuardianRequiredError", "guardianId", "GUARDIAN_REQUIRED")
        assert await row_counts(services) == before

    async def test_a_child_is_registered_with_an_adult_guardian(self, services, gql, place) -> None:
        today = local_today()
        mother = await make_resident(services, place["household"], name="妈妈", born=born_years_ago(today, 35))
        nid = national_id(born_years_ago(today, 6))
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "小明", "nationalId": nid,
                       "guardianId": gid("Resident", mother.id)}},
            token=place["staff"].token,
        )  # fmt: skip
        resident = data["registerResident"]["resident"]
        assert (resident["age"], resident["isMinor"], resident["guardian"]) == (6, True, {"name": "妈妈"})

    async def test_a_14_year_old_needs_no_guardian(self, gql, place) -> None:
        nid = national_id(born_years_ago(local_today(), 14, days=0))
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "小红", "nationalId": nid}},
            token=place["staff"].token,
        )
        resident = data["registerResident"]["resident"]
        assert (resident["age"], resident["isMinor"], resident["guardian"]) == (14, True, None)

    async def test_a_minor_cannot_be_a_guardian(self, services, gql, place) -> None:
        # given
        today = local_today()
        sister = await make_resident(services, place["household"], name="姐姐", born=born_years_ago(today, 17))
        nid = national_id(born_years_ago(today, 6))
        before = await row_counts(services)
        # when
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "小明", "nationalId": nid,
                       "guardianId": gid("Resident", sister.id)}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert data["registerResident"] == {
            "__typename": "ValidationError",
            "field": "guardianId",
            "code": "INVALID",
            "message": "A guardian must be an adult.",
        }
        assert await row_counts(services) == before

    async def test_a_guardian_from_another_community_is_the_wrong_community(self, services, gql, place) -> None:
        # given
        today = local_today()
        other = await make_community(services.db, name="别的社区")
        elsewhere = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, other))
        )
        uncle = await make_resident(services, elsewhere, name="舅舅", born=born_years_ago(today, 40))
        await also_grant(services, place["staff"], Role.STAFF, other)
        before = await row_counts(services)
        # when
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "小明",
                       "nationalId": national_id(born_years_ago(today, 6)), "guardianId": gid("Resident", uncle.id)}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert result_of(data, "registerResident") == error("WrongCommunityError", "guardianId", "WRONG_COMMUNITY")
        assert await row_counts(services) == before

    @pytest.mark.parametrize("guardian", ["stranger", "missing"])
    async def test_an_adults_guardian_must_exist_for_the_staff_member(self, services, gql, place, guardian) -> None:
        # given: a resident of a community the staff member has no role in, or no resident at all
        other = await make_community(services.db, name="别的社区")
        elsewhere = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, other))
        )
        stranger = await make_resident(services, elsewhere, name="外人", born=date(1960, 1, 1))
        guardian_id = stranger.id if guardian == "stranger" else 987654
        before = await row_counts(services)
        # when
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "甲",
                       "nationalId": national_id(date(1990, 1, 1)), "guardianId": gid("Resident", guardian_id)}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert result_of(data, "registerResident") == error("NotFoundError", "guardianId", "NOT_FOUND")
        assert await row_counts(services) == before

    async def test_a_teenagers_guardian_must_be_an_adult(self, services, gql, place) -> None:
        today = local_today()
        sister = await make_resident(services, place["household"], name="姐姐", born=born_years_ago(today, 17))
        before = await row_counts(services)
        data = await gql(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "弟弟",
                       "nationalId": national_id(born_years_ago(today, 15)), "guardianId": gid("Resident", sister.id)}},
            token=place["staff"].token,
        )  # fmt: skip
        assert result_of(data, "registerResident") == error("ValidationError", "guardianId", "INVALID")
        assert await row_counts(services) == before

    async def test_a_resident_is_forbidden_and_nothing_is_written(self, services, gql_raw, place) -> None:
        # given
        me = await make_resident(services, place["household"], name="居民")
        login = await make_login(services, role=Role.RESIDENT, community=place["community"], resident=me)
        before = await row_counts(services)
        # when
        body = await gql_raw(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "甲",
                       "nationalId": national_id(date(1960, 1, 1))}},
            token=login.token,
        )  # fmt: skip
        # then
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
        assert await row_counts(services) == before

    async def test_an_anonymous_caller_is_unauthenticated(self, services, gql_raw, place) -> None:
        before = await row_counts(services)
        body = await gql_raw(
            REGISTER,
            {"input": {"householdId": gid("Household", place["household"].id), "name": "甲",
                       "nationalId": national_id(date(1960, 1, 1))}},
        )  # fmt: skip
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
        assert await row_counts(services) == before

    async def test_concurrent_registrations_of_one_id_register_it_once(self, services, gql, place) -> None:
        # given
        nid = national_id(date(1975, 6, 1))
        variables = {"input": {"householdId": gid("Household", place["household"].id), "name": "甲", "nationalId": nid,
                               "tags": ["DISABLED"]}}  # fmt: skip
        # when
        results = await asyncio.gather(*(gql(REGISTER, variables, token=place["staff"].token) for _ in range(20)))
        # then
        kinds = sorted(r["registerResident"]["__typename"] for r in results)
        assert kinds == ["DuplicateNationalIdError"] * 19 + ["RegisterResidentSuccess"]
        assert (await row_counts(services))["resident"] == 1
        assert (await row_counts(services))["resident_tag"] == 1


# -- updateResident ---------------------------------------------------------------------------


class TestUpdateResident:
    async def test_changes_name_phone_tags_and_relation(self, services, gql, place) -> None:
        # given
        resident = await make_resident(
            services, place["household"], name="张三", phone="13911112222", tags=(ResidentTag.LIVES_ALONE,)
        )
        # when
        data = await gql(
            UPDATE,
            {"input": {"residentId": gid("Resident", resident.id), "name": " 张 三丰 ", "phone": "139-2222-3333",
                       "tags": ["DISABLED", "NO_FAMILY_SUPPORT"], "relationToHead": "户主"}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert data["updateResident"] == {
            "__typename": "UpdateResidentSuccess",
            "resident": {
                "name": "张 三丰",
                "phone": "139****3333",
                "tags": ["DISABLED", "NO_FAMILY_SUPPORT"],
                "relationToHead": "户主",
                "household": {"address": "3号楼2单元502"},
            },
        }
        async with services.db.read_session() as session:
            row = await session.get(Resident, resident.id)
            tags = (await session.scalars(select(ResidentTagLink.tag).order_by(ResidentTagLink.tag))).all()
        assert row is not None
        assert services.cipher.decrypt(row.phone_encrypted or "") == "13922223333"
        assert row.phone_hash == services.cipher.lookup_hash("13922223333")
        assert tags == ["disabled", "no_family_support"]

    async def test_fields_left_out_stay_as_they_are(self, services, gql, place) -> None:
        resident = await make_resident(
            services, place["household"], name="张三", phone="13911112222", tags=(ResidentTag.LIVES_ALONE,)
        )
        data = await gql(
            UPDATE, {"input": {"residentId": gid("Resident", resident.id), "name": "张四"}}, token=place["staff"].token
        )
        assert data["updateResident"]["resident"] == {
            "name": "张四",
            "phone": "139****2222",
            "tags": ["LIVES_ALONE"],
            "relationToHead": None,
            "household": {"address": "3号楼2单元502"},
        }

    async def test_an_empty_phone_removes_it_and_empty_tags_clear_them(self, services, gql, place) -> None:
        resident = await make_resident(
            services, place["household"], name="张三", phone="13911112222", tags=(ResidentTag.LIVES_ALONE,)
        )
        data = await gql(
            UPDATE,
            {"input": {"residentId": gid("Resident", resident.id), "phone": "", "tags": []}},
            token=place["staff"].token,
        )
        assert data["updateResident"]["resident"]["phone"] is None
        assert data["updateResident"]["resident"]["tags"] == []
        async with services.db.read_session() as session:
            row = await session.get(Resident, resident.id)
        assert row is not None
        assert (row.phone_encrypted, row.phone_hash, row.phone_masked) == (None, None, None)
        assert (await row_counts(services))["resident_tag"] == 0

    async def test_moves_to_another_household_of_the_community(self, services, gql, place) -> None:
        resident = await make_resident(services, place["household"], name="张三")
        target = await make_household(services.db, place["building"], unit=1, room="101")
        data = await gql(
            UPDATE,
            {"input": {"residentId": gid("Resident", resident.id), "householdId": gid("Household", target.id)}},
            token=place["staff"].token,
        )
        assert data["updateResident"]["resident"]["household"] == {"address": "3号楼1单元101"}

    async def test_an_invalid_phone_changes_nothing(self, services, gql, place) -> None:
        # given
        resident = await make_resident(
            services, place["household"], name="张三", phone="13911112222", tags=(ResidentTag.LIVES_ALONE,)
        )
        # when
        data = await gql(
            UPDATE,
            {"input": {"residentId": gid("Resident", resident.id), "name": "李四", "tags": ["DISABLED"],
                       "phone": "0311-8888888"}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert result_of(data, "updateResident") == error("InvalidPhoneError", "phone", "INVALID_PHONE")
        async with services.db.read_session() as session:
            row = await session.get(Resident, resident.id)
            tags = (await session.scalars(select(ResidentTagLink.tag))).all()
        assert row is not None
        assert (row.name, row.phone_masked) == ("张三", "139****2222")
        assert tags == ["lives_alone"]

    async def test_a_household_of_another_community_is_the_wrong_community(self, services, gql, place) -> None:
        # given: staff in both communities
        resident = await make_resident(services, place["household"], name="张三", tags=(ResidentTag.LIVES_ALONE,))
        other = await make_community(services.db, name="别的社区")
        elsewhere = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, other))
        )
        await also_grant(services, place["staff"], Role.STAFF, other)
        before = await row_counts(services)
        # when
        data = await gql(
            UPDATE,
            {"input": {"residentId": gid("Resident", resident.id), "householdId": gid("Household", elsewhere.id),
                       "name": "改名", "tags": []}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert result_of(data, "updateResident") == error("WrongCommunityError", "householdId", "WRONG_COMMUNITY")
        await self._unchanged(services, resident, place, before)

    async def test_a_household_of_a_community_without_a_role_is_not_found(self, services, gql, place) -> None:
        # given: staff only in the resident's community
        resident = await make_resident(services, place["household"], name="张三", tags=(ResidentTag.LIVES_ALONE,))
        other = await make_community(services.db, name="别的社区")
        elsewhere = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, other))
        )
        before = await row_counts(services)
        # when
        data = await gql(
            UPDATE,
            {"input": {"residentId": gid("Resident", resident.id), "householdId": gid("Household", elsewhere.id),
                       "name": "改名", "tags": []}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert result_of(data, "updateResident") == error("NotFoundError", "householdId", "NOT_FOUND")
        await self._unchanged(services, resident, place, before)

    async def test_another_communitys_resident_is_not_found(self, services, gql, place) -> None:
        other = await make_community(services.db, name="别的社区")
        elsewhere = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, other))
        )
        stranger = await make_resident(services, elsewhere, name="外人")
        data = await gql(
            UPDATE, {"input": {"residentId": gid("Resident", stranger.id), "name": "改名"}}, token=place["staff"].token
        )
        assert result_of(data, "updateResident") == error("NotFoundError", "residentId", "NOT_FOUND")

    async def test_a_missing_guardian_is_not_found(self, services, gql, place) -> None:
        resident = await make_resident(services, place["household"], name="张三")
        data = await gql(
            UPDATE,
            {"input": {"residentId": gid("Resident", resident.id), "guardianId": gid("Resident", 987654),
                       "name": "改名"}},
            token=place["staff"].token,
        )  # fmt: skip
        assert result_of(data, "updateResident") == error("NotFoundError", "guardianId", "NOT_FOUND")
        async with services.db.read_session() as session:
            row = await session.get(Resident, resident.id)
        assert row is not None
        assert (row.name, row.guardian_id) == ("张三", None)

    async def test_a_resident_cannot_be_their_own_guardian(self, services, gql, place) -> None:
        resident = await make_resident(services, place["household"], name="张三")
        data = await gql(
            UPDATE,
            {"input": {"residentId": gid("Resident", resident.id), "guardianId": gid("Resident", resident.id)}},
            token=place["staff"].token,
        )
        assert result_of(data, "updateResident") == error("ValidationError", "guardianId", "INVALID")

    async def test_sets_an_adult_guardian(self, services, gql, place) -> None:
        today = local_today()
        child = await make_resident(services, place["household"], name="小明", born=born_years_ago(today, 15))
        father = await make_resident(services, place["household"], name="爸爸", born=born_years_ago(today, 45))
        await gql(
            UPDATE,
            {"input": {"residentId": gid("Resident", child.id), "guardianId": gid("Resident", father.id)}},
            token=place["staff"].token,
        )
        async with services.db.read_session() as session:
            row = await session.get(Resident, child.id)
        assert row is not None
        assert row.guardian_id == father.id

    async def _unchanged(self, services, resident: Resident, place: dict[str, Any], before: dict[str, int]) -> None:
        async with services.db.read_session() as session:
            row = await session.get(Resident, resident.id)
        assert row is not None
        assert (row.name, row.household_id) == ("张三", place["household"].id)
        assert await row_counts(services) == before


# -- households -------------------------------------------------------------------------------


class TestCreateHousehold:
    async def test_creates_a_household(self, services, gql, place) -> None:
        before = await row_counts(services)
        data = await gql(
            CREATE_HOUSEHOLD,
            {"input": {"buildingId": gid("Building", place["building"].id), "unit": 1, "room": " 302 "}},
            token=place["staff"].token,
        )
        assert data["createHousehold"] == {
            "__typename": "CreateHouseholdSuccess",
            "household": {
                "unit": 1,
                "room": "302",
                "address": "3号楼1单元302",
                "building": {"name": "3号楼"},
                "members": {"totalCount": 0},
            },
        }
        assert await row_counts(services) == {**before, "household": before["household"] + 1}

    @pytest.mark.parametrize(
        ("unit", "room", "expected"),
        [
            (3, "301", error("ValidationError", "unit", "INVALID")),
            (0, "301", error("ValidationError", "unit", "INVALID")),
            (-1, "301", error("ValidationError", "unit", "INVALID")),
            (1, "  ", error("ValidationError", "room", "INVALID")),
            (1, "1" * 21, error("ValidationError", "room", "INVALID")),
            (2, "502", error("DuplicateHouseholdError", "room", "DUPLICATE_HOUSEHOLD")),
            (2, " 502 ", error("DuplicateHouseholdError", "room", "DUPLICATE_HOUSEHOLD")),
        ],
    )
    async def test_invalid_or_taken_addresses_are_typed_errors(
        self, services, gql, place, unit, room, expected
    ) -> None:
        before = await row_counts(services)
        data = await gql(
            CREATE_HOUSEHOLD,
            {"input": {"buildingId": gid("Building", place["building"].id), "unit": unit, "room": room}},
            token=place["staff"].token,
        )
        assert result_of(data, "createHousehold") == expected
        assert await row_counts(services) == before

    async def test_the_unit_error_names_the_buildings_units(self, gql, place) -> None:
        data = await gql(
            CREATE_HOUSEHOLD,
            {"input": {"buildingId": gid("Building", place["building"].id), "unit": 3, "room": "301"}},
            token=place["staff"].token,
        )
        assert data["createHousehold"]["message"] == "Building 3号楼 has units 1 to 2."

    async def test_a_building_of_another_community_is_not_found(self, services, gql, place) -> None:
        other = await make_community(services.db, name="别的社区")
        building = await make_building(services.db, await make_compound(services.db, other))
        data = await gql(
            CREATE_HOUSEHOLD,
            {"input": {"buildingId": gid("Building", building.id), "unit": 1, "room": "101"}},
            token=place["staff"].token,
        )
        assert result_of(data, "createHousehold") == error("NotFoundError", "buildingId", "NOT_FOUND")


class TestMoveHousehold:
    async def test_moves_and_keeps_the_history(self, services, gql, place) -> None:
        # given
        east = await make_building(services.db, place["compound"], name="5号楼", units=3)
        household = place["household"]
        # when
        data = await gql(
            MOVE_HOUSEHOLD,
            {"input": {"householdId": gid("Household", household.id), "buildingId": gid("Building", east.id),
                       "unit": 3, "room": "601"}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert data["moveHousehold"] == {
            "__typename": "MoveHouseholdSuccess",
            "household": {"id": gid("Household", household.id), "unit": 3, "room": "601", "address": "5号楼3单元601"},
        }
        async with services.db.read_session() as session:
            moves = (await session.scalars(select(HouseholdMove))).all()
        assert [
            (m.household_id, m.from_building_id, m.from_unit, m.from_room, m.to_building_id, m.to_unit, m.to_room,
             m.moved_by_account_id, m.community_id)
            for m in moves
        ] == [(household.id, place["building"].id, 2, "502", east.id, 3, "601", place["staff"].account.id,
               place["community"].id)]  # fmt: skip

    async def test_a_building_of_another_community_is_the_wrong_community(self, services, gql, place) -> None:
        # given
        other = await make_community(services.db, name="别的社区")
        building = await make_building(services.db, await make_compound(services.db, other))
        await also_grant(services, place["staff"], Role.STAFF, other)
        before = await row_counts(services)
        # when
        data = await gql(
            MOVE_HOUSEHOLD,
            {"input": {"householdId": gid("Household", place["household"].id),
                       "buildingId": gid("Building", building.id), "unit": 1, "room": "101"}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert result_of(data, "moveHousehold") == error("WrongCommunityError", "buildingId", "WRONG_COMMUNITY")
        await self._unchanged(services, place, before)

    async def test_a_taken_address_is_a_duplicate_and_changes_nothing(self, services, gql, place) -> None:
        # given
        await make_household(services.db, place["building"], unit=1, room="101")
        before = await row_counts(services)
        # when
        data = await gql(
            MOVE_HOUSEHOLD,
            {"input": {"householdId": gid("Household", place["household"].id),
                       "buildingId": gid("Building", place["building"].id), "unit": 1, "room": "101"}},
            token=place["staff"].token,
        )  # fmt: skip
        # then
        assert result_of(data, "moveHousehold") == error("DuplicateHouseholdError", "room", "DUPLICATE_HOUSEHOLD")
        await self._unchanged(services, place, before)

    async def test_a_unit_outside_the_building_is_invalid(self, services, gql, place) -> None:
        before = await row_counts(services)
        data = await gql(
            MOVE_HOUSEHOLD,
            {"input": {"householdId": gid("Household", place["household"].id),
                       "buildingId": gid("Building", place["building"].id), "unit": 9, "room": "101"}},
            token=place["staff"].token,
        )  # fmt: skip
        assert result_of(data, "moveHousehold") == error("ValidationError", "unit", "INVALID")
        await self._unchanged(services, place, before)

    async def _unchanged(self, services, place: dict[str, Any], before: dict[str, int]) -> None:
        async with services.db.read_session() as session:
            row = await session.get(Household, place["household"].id)
        assert row is not None
        assert (row.building_id, row.unit, row.room) == (place["building"].id, 2, "502")
        assert await row_counts(services) == before


# -- recordConsent ----------------------------------------------------------------------------

CONSENTS = """
query ($id: ID!) { node(id: $id) { ... on Resident { consents { purpose granted note givenByGuardian } } } }
"""


class TestRecordConsent:
    @pytest.fixture
    async def family(self, services, place) -> dict[str, Any]:
        today = local_today()
        mother = await make_resident(services, place["household"], name="妈妈", born=born_years_ago(today, 36))
        child = await make_resident(
            services, place["household"], name="小明", born=born_years_ago(today, 8), guardian=mother
        )
        orphan = await make_resident(services, place["household"], name="小红", born=born_years_ago(today, 9))
        return {"mother": mother, "child": child, "orphan": orphan}

    async def test_an_adult_gives_their_own_consent(self, services, gql, place, family) -> None:
        before = await row_counts(services)
        data = await gql(
            RECORD_CONSENT,
            {"input": {"residentId": gid("Resident", family["mother"].id), "purpose": "PERSONAL_DATA",
                       "granted": True, "note": " 签字表格 "}},
            token=place["staff"].token,
        )  # fmt: skip
        assert data["recordConsent"] == {
            "__typename": "RecordConsentSuccess",
            "consent": {"purpose": "PERSONAL_DATA", "granted": True, "note": "签字表格", "givenByGuardian": False},
            "resident": {"name": "妈妈"},
        }
        assert await row_counts(services) == {**before, "consent_record": 1}

    async def test_a_guardian_gives_a_childs_consent(self, services, gql, place, family) -> None:
        data = await gql(
            RECORD_CONSENT,
            {"input": {"residentId": gid("Resident", family["child"].id), "purpose": "PHOTOS", "granted": True,
                       "givenById": gid("Resident", family["mother"].id)}},
            token=place["staff"].token,
        )  # fmt: skip
        assert data["recordConsent"] == {
            "__typename": "RecordConsentSuccess",
            "consent": {"purpose": "PHOTOS", "granted": True, "note": None, "givenByGuardian": True},
            "resident": {"name": "小明"},
        }

    async def test_a_childs_own_consent_needs_the_guardian(self, services, gql, place, family) -> None:
        before = await row_counts(services)
        data = await gql(
            RECORD_CONSENT,
            {"input": {"residentId": gid("Resident", family["child"].id), "purpose": "PHOTOS", "granted": True}},
            token=place["staff"].token,
        )
        assert result_of(data, "recordConsent") == error("GuardianRequiredError", "givenById", "GUARDIAN_REQUIRED")
        assert await row_counts(services) == before

    async def test_a_child_without_a_registered_guardian_cannot_consent(self, services, gql, place, family) -> None:
        before = await row_counts(services)
        data = await gql(
            RECORD_CONSENT,
            {"input": {"residentId": gid("Resident", family["orphan"].id), "purpose": "PHOTOS", "granted": True,
                       "givenById": gid("Resident", family["mother"].id)}},
            token=place["staff"].token,
        )  # fmt: skip
        assert result_of(data, "recordConsent") == error("GuardianRequiredError", "residentId", "GUARDIAN_REQUIRED")
        assert await row_counts(services) == before

    async def test_someone_else_cannot_consent_for_an_adult(self, services, gql, place, family) -> None:
        neighbour = await make_resident(services, place["household"], name="邻居")
        before = await row_counts(services)
        data = await gql(
            RECORD_CONSENT,
            {"input": {"residentId": gid("Resident", family["mother"].id), "purpose": "CONTACT", "granted": True,
                       "givenById": gid("Resident", neighbour.id)}},
            token=place["staff"].token,
        )  # fmt: skip
        assert result_of(data, "recordConsent") == error("ValidationError", "givenById", "INVALID")
        assert await row_counts(services) == before

    async def test_consents_are_listed_newest_first(self, gql, place, family) -> None:
        # given
        token, mother = place["staff"].token, gid("Resident", family["mother"].id)
        for purpose, granted, note in [
            ("PERSONAL_DATA", True, "一"),
            ("PHOTOS", True, "二"),
            ("PERSONAL_DATA", False, "三"),
        ]:
            await gql(
                RECORD_CONSENT,
                {"input": {"residentId": mother, "purpose": purpose, "granted": granted, "note": note}},
                token=token,
            )
        # when
        data = await gql(CONSENTS, {"id": mother}, token=token)
        # then
        assert data["node"]["consents"] == [
            {"purpose": "PERSONAL_DATA", "granted": False, "note": "三", "givenByGuardian": False},
            {"purpose": "PHOTOS", "granted": True, "note": "二", "givenByGuardian": False},
            {"purpose": "PERSONAL_DATA", "granted": True, "note": "一", "givenByGuardian": False},
        ]
