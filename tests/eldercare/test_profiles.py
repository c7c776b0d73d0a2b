"""Elder profiles, health data under consent, assessments, tiers, pairs and oversight through GraphQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from api.core.clock import local_today
from api.eldercare import abilities, rules
from api.eldercare.models import Visit
from api.registry.models import PersonalDataAccess
from tests.eldercare.conftest import FULL_SCORES, Care, consent, count, gid, make_care, next_month
from tests.factories import born_years_ago, make_resident

SAVE = """
mutation S($input: SaveElderInput!) {
  saveElder(input: $input) {
    __typename
    ... on ElderSuccess { elder { id name level emergencyContacts { name relation phoneMasked } } }
    ... on UserError { code field }
  }
}
"""
ASSESS = """
mutation A($input: RecordAssessmentInput!) {
  recordAbilityAssessment(input: $input) {
    __typename
    ... on AssessmentSuccess { assessment { totalScore preliminaryLevel finalLevel levelName nextDueOn }
                               elder { level levelName reassessmentDueOn } }
    ... on UserError { code field message }
  }
}
"""
HEALTH = """
mutation H($input: ViewElderHealthInput!) {
  viewElderHealth(input: $input) {
    __typename
    ... on ElderHealth { conditions assessments { raisedBy riskEvents items { code score maxScore } } }
    ... on UserError { code }
  }
}
"""
CONDITIONS = """
mutation C($input: RecordElderConditionsInput!) {
  recordElderConditions(input: $input) { __typename ... on UserError { code } }
}
"""
TIERS = """
mutation T($input: SetCareTiersInput!) {
  setCareTiers(input: $input) { __typename ... on CareTiersSuccess { table { version rows { name } } } ... on UserError { code field } }
}
"""
PAIR = """
mutation P($input: PairVolunteerInput!) {
  pairVolunteer(input: $input) {
    __typename ... on PairSuccess { pair { id reasons volunteer { name youngerElder } } } ... on UserError { code }
  }
}
"""


def scores_input(**overrides: int) -> list[dict[str, Any]]:
    return [{"code": c, "score": overrides.get(c, s)} for c, s in FULL_SCORES.items()]


async def test_registering_an_elder_checks_the_age_and_masks_contacts(gql, care: Care):
    too_young = await gql(SAVE, {"input": {"residentId": gid("Resident", care.young.id), "livingSituation": "WITH_FAMILY"}},
                          token=care.staff.token)  # fmt: skip
    assert too_young["saveElder"] == {"__typename": "NotAnElderError", "code": "NOT_AN_ELDER", "field": "residentId"}
    saved = await gql(SAVE, {"input": {"residentId": gid("Resident", care.grandpa.id), "livingSituation": "WITH_FAMILY",
                                       "emergencyContacts": [{"name": "李女士", "relation": "女儿", "phone": "13912345678"}]}},
                      token=care.staff.token)  # fmt: skip
    elder = saved["saveElder"]["elder"]
    assert elder["name"] == "李爷爷"
    assert elder["emergencyContacts"] == [{"name": "李女士", "relation": "女儿", "phoneMasked": "139****5678"}]
    bad_phone = await gql(SAVE, {"input": {"residentId": gid("Resident", care.grandpa.id), "livingSituation": "ALONE",
                                           "emergencyContacts": [{"name": "x", "phone": "12"}]}}, token=care.staff.token)  # fmt: skip
    assert bad_phone["saveElder"]["__typename"] == "ValidationError"


async def test_health_data_needs_consent_and_the_right_and_every_read_is_logged(services, gql, gql_raw, care: Care):
    elder = gid("Elder", care.elder_ids[care.grandma.id])
    today = local_today().isoformat()
    assess = {"input": {"elderId": elder, "assessedOn": today, "scores": scores_input(eating=2, walking=1)}}
    # without consent: nothing stored, typed errors
    refused = await gql(ASSESS, assess, token=care.staff.token)
    assert refused["recordAbilityAssessment"]["code"] == "HEALTH_CONSENT_REQUIRED"
    refused = await gql(CONDITIONS, {"input": {"elderId": elder, "conditions": ["高血压"]}}, token=care.staff.token)
    assert refused["recordElderConditions"] == {
        "__typename": "HealthConsentRequiredError",
        "code": "HEALTH_CONSENT_REQUIRED",
    }
    # with consent: an out-of-range score is a typed error
    await consent(services, care.staff_viewer, care.grandma)
    wrong = await gql(ASSESS, {"input": {**assess["input"], "scores": scores_input(stairs=7)}}, token=care.staff.token)
    assert (wrong["recordAbilityAssessment"]["__typename"], wrong["recordAbilityAssessment"]["field"]) == (
        "ScoreOutOfRangeError",
        "scores.stairs",
    )
    # a total of 85 is level 1; two falls this month raise it to 2
    falls = [{"kind": "FALL", "occurredOn": today}, {"kind": "FALL", "occurredOn": today}]
    done = await gql(ASSESS, {"input": {**assess["input"], "riskEvents": falls}}, token=care.staff.token)
    result = done["recordAbilityAssessment"]
    assert (
        result["assessment"]["totalScore"],
        result["assessment"]["preliminaryLevel"],
        result["assessment"]["finalLevel"],
    ) == (85, 1, 2)
    assert result["elder"]["levelName"] == "能力中度受损"
    assert result["elder"]["reassessmentDueOn"] == abilities.reassessment_due(local_today()).isoformat()
    await gql(CONDITIONS, {"input": {"elderId": elder, "conditions": ["高血压", "糖尿病"]}}, token=care.staff.token)
    # staff manage elder care but may not read health data
    staff_read = await gql_raw(HEALTH, {"input": {"elderId": elder, "purpose": "制定探访计划"}}, token=care.staff.token)
    assert staff_read["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # the community admin may, and the read is logged
    read = (await gql(HEALTH, {"input": {"elderId": elder, "purpose": "制定探访计划"}}, token=care.admin.token))[
        "viewElderHealth"
    ]
    assert read["conditions"] == ["高血压", "糖尿病"]
    assert read["assessments"][0]["raisedBy"] == ["risk_events"]
    assert {i["code"]: i["score"] for i in read["assessments"][0]["items"]}["eating"] == 2
    async with services.db.read_session() as session:
        logged = (await session.scalars(select(PersonalDataAccess.field))).all()
    assert sorted(logged) == ["health_assessments", "health_conditions"]
    # nothing health-related is stored in the clear
    async with services.db.read_session() as session:
        from api.eldercare.models import AbilityAssessment, ElderProfile

        row = await session.scalar(select(AbilityAssessment))
        profile = await session.get(ElderProfile, care.elder_ids[care.grandma.id])
    assert row is not None
    assert "eating" not in row.details_encrypted
    assert profile is not None
    assert "高血压" not in (profile.conditions_encrypted or "")
    # consent withdrawn: the data is no longer shown
    await consent(services, care.staff_viewer, care.grandma, granted=False)
    gone = (await gql(HEALTH, {"input": {"elderId": elder, "purpose": "复核"}}, token=care.admin.token))[
        "viewElderHealth"
    ]
    assert gone == {"__typename": "HealthConsentRequiredError", "code": "HEALTH_CONSENT_REQUIRED"}


async def test_another_communitys_elders_do_not_exist(services, gql, care: Care):
    other = await make_care(services)
    node = await gql("query N($id: ID!) { node(id: $id) { id } }", {"id": gid("Elder", other.elder_ids[other.grandma.id])},
                     token=care.admin.token)  # fmt: skip
    assert node["node"] is None
    listed = await gql("query E($c: ID!) { elders(communityId: $c) { totalCount } }", {"c": gid("Community", other.cid)},
                       token=care.admin.token)  # fmt: skip
    assert listed["elders"]["totalCount"] == 0
    paired = await gql(
        PAIR, {"input": {"elderId": gid("Elder", other.elder_ids[other.grandma.id])}}, token=care.staff.token
    )
    assert paired["pairVolunteer"]["__typename"] == "NotFoundError"


async def test_tiers_are_versioned_and_plans_keep_their_version(services, gql, care: Care, runner):
    from tests.eldercare.test_planning import plan

    period = next_month()
    await plan(services, runner, care, period)
    rows = [
        {
            "name": "全部每周",
            "minLevel": 0,
            "maxLevel": 4,
            "visitsPerMonth": 4,
            "visitTypes": ["SAFETY_CHECK", "COMPANIONSHIP"],
        }
    ]
    saved = await gql(TIERS, {"input": {"communityId": gid("Community", care.cid), "rows": rows, "note": "加密探访"}},
                      token=care.staff.token)  # fmt: skip
    assert saved["setCareTiers"]["table"] == {"version": 2, "rows": [{"name": "全部每周"}]}
    gap = [{"name": "只管重度", "minLevel": 3, "maxLevel": 4, "visitsPerMonth": 4, "visitTypes": ["SAFETY_CHECK"]}]
    refused = await gql(
        TIERS, {"input": {"communityId": gid("Community", care.cid), "rows": gap}}, token=care.staff.token
    )
    assert refused["setCareTiers"] == {"__typename": "ValidationError", "code": "INVALID", "field": "rows"}
    # the month already planned keeps version 1; the next one uses version 2 (4 visits for each of 3 elders)
    later = rules.next_period(period)
    await plan(services, runner, care, later)
    tables = await gql("query T($c: ID!) { v1: careTiers(communityId: $c, version: 1) { version rows { name } } latest: careTiers(communityId: $c) { version } }",
                       {"c": gid("Community", care.cid)}, token=care.staff.token)  # fmt: skip
    assert tables["v1"]["version"] == 1
    assert len(tables["v1"]["rows"]) == len(rules.DEFAULT_TIERS)
    assert tables["latest"]["version"] == 2
    assert await count(services, Visit, Visit.plan_period == period) == 4
    assert await count(services, Visit, Visit.plan_period == later) == 12


async def test_pairing_prefers_the_same_unit_and_respects_preferences(services, gql, care: Care):
    # grandma lives in building 3 unit 1, as does the near volunteer (65: 低龄)
    paired = await gql(
        PAIR, {"input": {"elderId": gid("Elder", care.elder_ids[care.grandma.id])}}, token=care.staff.token
    )
    pair = paired["pairVolunteer"]["pair"]
    assert pair["volunteer"] == {"name": "陈阿姨", "youngerElder": True}
    assert "lives in the same unit" in pair["reasons"]
    # uncle prefers a male volunteer: the far one, though he lives in another building
    await gql(SAVE, {"input": {"residentId": gid("Resident", care.uncle.id), "livingSituation": "ALONE",
                               "preferredVolunteerGender": "male"}}, token=care.staff.token)  # fmt: skip
    paired = await gql(
        PAIR, {"input": {"elderId": gid("Elder", care.elder_ids[care.uncle.id])}}, token=care.staff.token
    )
    assert paired["pairVolunteer"]["pair"]["volunteer"]["name"] == "刘师傅"
    # pairing grandma again with the other volunteer ends the first pair; the history keeps both
    again = await gql(PAIR, {"input": {"elderId": gid("Elder", care.elder_ids[care.grandma.id]),
                                       "volunteerId": gid("Volunteer", care.far.volunteer_id)}}, token=care.staff.token)  # fmt: skip
    assert again["pairVolunteer"]["__typename"] == "PairSuccess"
    history = await gql("query N($id: ID!) { node(id: $id) { ... on Elder { pairs { endedAt endReason volunteer { name } } currentPair { volunteer { name } } } } }",
                        {"id": gid("Elder", care.elder_ids[care.grandma.id])}, token=care.staff.token)  # fmt: skip
    node = history["node"]
    assert [p["volunteer"]["name"] for p in node["pairs"]] == ["刘师傅", "陈阿姨"]
    assert node["pairs"][1]["endReason"] == "replaced"
    assert node["currentPair"]["volunteer"]["name"] == "刘师傅"
    # the 低龄 rule is data: narrow it and the near volunteer no longer counts
    rule = await gql("mutation R($input: SetYoungerElderRuleInput!) { setYoungerElderRule(input: $input) { __typename } }",
                     {"input": {"communityId": gid("Community", care.cid), "minAge": 66, "maxAge": 72}}, token=care.staff.token)  # fmt: skip
    assert rule["setYoungerElderRule"]["__typename"] == "YoungerElderRule"
    vols = await gql("query V($c: ID!) { elderCareVolunteers(communityId: $c) { totalCount edges { node { name youngerElder elders } } } }",
                     {"c": gid("Community", care.cid)}, token=care.staff.token)  # fmt: skip
    assert {
        e["node"]["name"]: (e["node"]["youngerElder"], e["node"]["elders"])
        for e in vols["elderCareVolunteers"]["edges"]
    } == {"陈阿姨": (False, 0), "刘师傅": (True, 2)}


async def test_oversight_counts_elders_by_level_and_tier_coverage_and_load_per_building_and_unit(
    services, gql, care: Care, runner
):
    from datetime import timedelta

    from api.core.clock import utc_now
    from api.eldercare import service as visits

    # given: one visit due and done on time, one due and missed, this month
    today_month = rules.period_of(local_today())
    async with services.db.unit_of_work(services.jobs) as uow:
        ids = [
            await visits.request_visit(uow, community_id=care.cid, resident_id=r.id, visit_type="companionship",
                                       starts_at=utc_now() + timedelta(hours=1), ends_at=utc_now() + timedelta(hours=2),
                                       source_key=f"o:{r.id}")
            for r in (care.grandma, care.uncle)
        ]  # fmt: skip
    async with services.db.unit_of_work() as uow:
        for i, visit_id in enumerate(ids):
            row = await uow.session.get(Visit, visit_id)
            row.starts_at, row.ends_at = utc_now() - timedelta(hours=3), utc_now() - timedelta(hours=2)
            if i == 0:
                row.state, row.checked_in_at, row.checked_out_at = "done", row.starts_at, row.ends_at
    data = await gql("""query O($c: ID!, $p: String) { elderCareOversight(communityId: $c, period: $p) {
        period survey { total { aged60Plus } } total { elders byLevel unassessed eldersDue eldersVisitedOnTime coverage visitsOverdue }
        buildings { buildingName elders eldersDue coverage } units { buildingName unit elders }
        volunteers { name elders visitsBooked } } }""", {"c": gid("Community", care.cid), "p": today_month}, token=care.staff.token)  # fmt: skip
    o = data["elderCareOversight"]
    assert o["survey"]["total"]["aged60Plus"] == 5
    assert o["total"] == {"elders": 3, "byLevel": [0, 0, 0, 0, 0], "unassessed": 3, "eldersDue": 2,
                          "eldersVisitedOnTime": 1, "coverage": 0.5, "visitsOverdue": 1}  # fmt: skip
    assert [(b["buildingName"], b["elders"], b["eldersDue"], b["coverage"]) for b in o["buildings"]] == [
        ("3号楼", 2, 1, 1.0),
        ("5号楼", 1, 1, 0.0),
    ]
    assert [(u["buildingName"], u["unit"], u["elders"]) for u in o["units"]] == [
        ("3号楼", 1, 1),
        ("3号楼", 2, 1),
        ("5号楼", 1, 1),
    ]
    assert {v["name"] for v in o["volunteers"]} == {"陈阿姨", "刘师傅"}
    _ = (born_years_ago, make_resident)
