"""The ageing survey (老龄化调查), through the service and through GraphQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from strawberry.relay import to_base64

from api.core.clock import local_today, years_before
from api.core.viewer import Role
from api.registry import survey
from api.registry.models import Resident, ResidentTag
from tests.factories import (
    born_years_ago,
    make_building,
    make_community,
    make_compound,
    make_household,
    make_login,
    make_resident,
)

ALONE = ResidentTag.LIVES_ALONE
DISABLED = ResidentTag.DISABLED
LOW = ResidentTag.LOW_INCOME
NO_FAMILY = ResidentTag.NO_FAMILY_SUPPORT


async def build_estate(services, today: date) -> dict[str, Any]:
    """Two buildings with two units each, people of known ages and circumstances on `today`."""
    db = services.db
    community = await make_community(db, name="夕阳红社区")
    compound = await make_compound(db, community, name="南区")
    b1 = await make_building(db, compound, name="1号楼", units=2)
    b2 = await make_building(db, compound, name="2号楼", units=2)
    b1u1a = await make_household(db, b1, unit=1, room="101")
    b1u1b = await make_household(db, b1, unit=1, room="102")
    b1u2 = await make_household(db, b1, unit=2, room="201")
    b2u1 = await make_household(db, b2, unit=1, room="101")
    b2u2 = await make_household(db, b2, unit=2, room="202")
    people = [
        # 1号楼 1单元
        (b1u1a, "甲", years_before(today, 60), (ALONE,)),  # 60 today: an elder living alone
        (b1u1b, "乙", years_before(today, 60) + timedelta(days=1), (ALONE, LOW)),  # 60 tomorrow: not yet
        # 1号楼 2单元
        (b1u2, "丙", years_before(today, 80), (NO_FAMILY, DISABLED)),  # 80 today
        (b1u2, "丁", years_before(today, 80) + timedelta(days=1), ()),  # 79
        # 2号楼 1单元
        (b2u1, "戊", born_years_ago(today, 85), (ALONE, NO_FAMILY, LOW)),
        (b2u1, "己", born_years_ago(today, 30), (DISABLED,)),
        # 2号楼 2单元
        (b2u2, "庚", born_years_ago(today, 10), ()),
        (b2u2, "辛", born_years_ago(today, 40), (NO_FAMILY, ALONE)),  # not an elder: counted in neither
        (b2u2, "壬", born_years_ago(today, 25), ()),
    ]
    for household, name, born, tags in people:
        await make_resident(services, household, name=name, born=born, tags=tags)
    # Someone with no household is left out of every count.
    homeless = await make_resident(services, b1u1a, name="无户", born=born_years_ago(today, 90), tags=(ALONE, LOW))
    async with db.unit_of_work() as uow:
        await uow.session.execute(update(Resident).where(Resident.id == homeless.id).values(household_id=None))
    # Another community's elders are not counted here.
    other = await make_community(db, name="别的社区")
    far = await make_household(db, await make_building(db, await make_compound(db, other, name="南区"), name="1号楼"))
    await make_resident(services, far, name="远方", born=born_years_ago(today, 82), tags=(ALONE,))
    return {"community": community, "other": other}


def counts(
    residents: int, aged60: int, aged80: int, alone: int, no_family: int, disabled: int, low: int
) -> dict[str, int]:
    return {
        "residents": residents,
        "aged_60_plus": aged60,
        "aged_80_plus": aged80,
        "elders_living_alone": alone,
        "elders_without_family_support": no_family,
        "disabled": disabled,
        "low_income": low,
    }


TOTAL = counts(9, 4, 2, 2, 2, 2, 2)
BUILDINGS = [
    ("1号楼", counts(4, 3, 1, 1, 1, 1, 1)),
    ("2号楼", counts(5, 1, 1, 1, 1, 1, 1)),
]
UNITS = [
    ("1号楼", 1, counts(2, 1, 0, 1, 0, 0, 1)),
    ("1号楼", 2, counts(2, 2, 1, 0, 1, 1, 0)),
    ("2号楼", 1, counts(2, 1, 1, 1, 1, 1, 1)),
    ("2号楼", 2, counts(3, 0, 0, 0, 0, 0, 0)),
]


def as_dict(row: survey.SurveyRow) -> dict[str, Any]:
    return {
        "compound_name": row.compound_name,
        "building_name": row.building_name,
        "unit": row.unit,
        "residents": row.residents,
        "aged_60_plus": row.aged_60_plus,
        "aged_80_plus": row.aged_80_plus,
        "elders_living_alone": row.elders_living_alone,
        "elders_without_family_support": row.elders_without_family_support,
        "disabled": row.disabled,
        "low_income": row.low_income,
    }


class TestService:
    async def test_counts_in_total_per_building_and_per_unit(self, services) -> None:
        # given
        today = date(2025, 6, 15)
        estate = await build_estate(services, today)
        # when
        async with services.db.read_session() as session:
            result = await survey.ageing_survey(session, community_id=estate["community"].id, today=today)
        # then
        assert result.as_of == today
        assert as_dict(result.total) == {"compound_name": None, "building_name": None, "unit": None, **TOTAL}
        assert [as_dict(r) for r in result.buildings] == [
            {"compound_name": "南区", "building_name": name, "unit": None, **c} for name, c in BUILDINGS
        ]
        assert [as_dict(r) for r in result.units] == [
            {"compound_name": "南区", "building_name": name, "unit": unit, **c} for name, unit, c in UNITS
        ]
        assert result.total.ageing_rate == 4 / 9
        assert [r.ageing_rate for r in result.buildings] == [0.75, 0.2]
        assert [r.ageing_rate for r in result.units] == [0.5, 1.0, 0.5, 0.0]

    async def test_the_same_people_a_day_earlier(self, services) -> None:
        # given: on the day before, 甲 is 59 and 丙 is 79
        today = date(2025, 6, 15)
        estate = await build_estate(services, today)
        # when
        async with services.db.read_session() as session:
            result = await survey.ageing_survey(
                session, community_id=estate["community"].id, today=today - timedelta(days=1)
            )
        # then
        assert as_dict(result.total) == {
            "compound_name": None,
            "building_name": None,
            "unit": None,
            **counts(9, 3, 1, 1, 2, 2, 2),
        }

    async def test_a_community_without_residents_has_zero_counts(self, services) -> None:
        community = await make_community(services.db)
        async with services.db.read_session() as session:
            result = await survey.ageing_survey(session, community_id=community.id, today=date(2025, 6, 15))
        assert as_dict(result.total) == {
            "compound_name": None,
            "building_name": None,
            "unit": None,
            **counts(0, 0, 0, 0, 0, 0, 0),
        }
        assert result.total.ageing_rate == 0.0
        assert (result.buildings, result.units) == ([], [])

    @pytest.mark.parametrize(
        ("today", "aged_60"),
        [(date(2024, 2, 28), 0), (date(2024, 2, 29), 1), (date(2025, 2, 28), 1)],
    )
    async def test_someone_born_on_29_february(self, services, today, aged_60) -> None:
        # given: born 29 Feb 1964: 59 on 28 Feb 2024, 60 on 29 Feb 2024, 60 (not 61) on 28 Feb 2025
        community = await make_community(services.db)
        household = await make_household(
            services.db, await make_building(services.db, await make_compound(services.db, community))
        )
        await make_resident(services, household, born=date(1964, 2, 29))
        # when
        async with services.db.read_session() as session:
            result = await survey.ageing_survey(session, community_id=community.id, today=today)
        # then
        assert (result.total.residents, result.total.aged_60_plus) == (1, aged_60)


SURVEY = """
query ($id: ID!) {
  ageingSurvey(communityId: $id) {
    asOf
    total { ...counts }
    buildings { ...counts }
    units { ...counts }
  }
}
fragment counts on SurveyCounts {
  compoundName buildingName unit residents aged60Plus aged80Plus eldersLivingAlone eldersWithoutFamilySupport
  disabled lowIncome ageingRate
}
"""


def gql_counts(
    compound: str | None, building: str | None, unit: int | None, c: dict[str, int], rate: float
) -> dict[str, Any]:
    return {
        "compoundName": compound,
        "buildingName": building,
        "unit": unit,
        "residents": c["residents"],
        "aged60Plus": c["aged_60_plus"],
        "aged80Plus": c["aged_80_plus"],
        "eldersLivingAlone": c["elders_living_alone"],
        "eldersWithoutFamilySupport": c["elders_without_family_support"],
        "disabled": c["disabled"],
        "lowIncome": c["low_income"],
        "ageingRate": rate,
    }


class TestGraphQL:
    async def test_staff_see_the_survey_for_today(self, services, gql) -> None:
        # given
        today = local_today()
        estate = await build_estate(services, today)
        staff = await make_login(services, role=Role.STAFF, community=estate["community"])
        # when
        data = await gql(SURVEY, {"id": to_base64("Community", estate["community"].id)}, token=staff.token)
        # then
        assert data["ageingSurvey"] == {
            "asOf": today.isoformat(),
            "total": gql_counts(None, None, None, TOTAL, 0.4444),
            "buildings": [
                gql_counts("南区", name, None, c, rate) for (name, c), rate in zip(BUILDINGS, [0.75, 0.2], strict=True)
            ],
            "units": [
                gql_counts("南区", name, unit, c, rate)
                for (name, unit, c), rate in zip(UNITS, [0.5, 1.0, 0.5, 0.0], strict=True)
            ],
        }

    async def test_staff_of_another_community_get_not_found(self, services, gql_raw) -> None:
        estate = await build_estate(services, local_today())
        outsider = await make_login(services, role=Role.STAFF, community=estate["other"])
        body = await gql_raw(SURVEY, {"id": to_base64("Community", estate["community"].id)}, token=outsider.token)
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]

    async def test_an_unknown_community_is_not_found(self, services, gql_raw) -> None:
        staff = await make_login(services, role=Role.STAFF, community=await make_community(services.db))
        body = await gql_raw(SURVEY, {"id": to_base64("Community", 987654)}, token=staff.token)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]

    async def test_a_resident_is_forbidden(self, services, gql_raw) -> None:
        estate = await build_estate(services, local_today())
        resident = await make_login(services, role=Role.RESIDENT, community=estate["community"])
        body = await gql_raw(SURVEY, {"id": to_base64("Community", estate["community"].id)}, token=resident.token)
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
