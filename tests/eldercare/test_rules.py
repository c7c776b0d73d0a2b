"""Pure rules: GB/T 42195 levels and raising rules, tier matching, visit slots, volunteer ranking, credits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from api.core.clock import CHINA_TZ
from api.core.errors import ValidationFailed
from api.eldercare import abilities, rules
from api.eldercare.abilities import AssessmentInput, Level, RiskEvent, RiskEventKind
from api.eldercare.common import ScoreOutOfRange

DAY = date(2026, 12, 10)


def scores(total: int) -> dict[str, int]:
    """Item scores adding up to `total` (filled item by item), consciousness kept awake (2) when possible."""
    out = dict.fromkeys((i.code for i in abilities.ITEMS), 0)
    out["consciousness"] = min(2, total)
    left = total - out["consciousness"]
    for item in abilities.ITEMS:
        if item.code == "consciousness":
            continue
        out[item.code] = min(item.max_score, left)
        left -= out[item.code]
    assert left == 0
    return out


def test_the_items_cover_four_areas_and_add_up_to_90():
    assert abilities.MAX_TOTAL == 90
    assert len(abilities.ITEMS) == 26
    assert {i.area for i in abilities.ITEMS} == set(abilities.Area)


@pytest.mark.parametrize(
    ("total", "level"),
    [(90, 0), (89, 1), (66, 1), (65, 2), (46, 2), (45, 3), (30, 3), (29, 4), (2, 4)],
)
def test_total_to_level_cut_offs(total: int, level: int):
    assert abilities.level_for_total(total) == level
    assert abilities.assess(AssessmentInput(scores(total)), assessed_on=DAY).final_level == level


def test_coma_is_level_4_whatever_the_total():
    s = scores(88)
    s["consciousness"], s["eating"] = 0, 2  # still 86 in all, but 昏迷
    outcome = abilities.assess(AssessmentInput(s), assessed_on=DAY)
    assert (outcome.preliminary_level, outcome.final_level, outcome.raised_by) == (
        Level.MILD,
        Level.TOTAL_LOSS,
        ("coma",),
    )


def test_dementia_or_mental_disorder_raise_one_level_and_not_more():
    both = abilities.assess(
        AssessmentInput(scores(70), diagnosed_dementia=True, diagnosed_mental_disorder=True), assessed_on=DAY
    )
    assert (both.preliminary_level, both.final_level) == (Level.MILD, Level.MODERATE)
    assert both.raised_by == ("dementia", "mental_disorder")


def test_two_risk_events_in_30_days_raise_one_level():
    recent = [
        RiskEvent(RiskEventKind.FALL, DAY - timedelta(days=3)),
        RiskEvent(RiskEventKind.WANDERING, DAY - timedelta(days=29)),
    ]
    old = [
        RiskEvent(RiskEventKind.FALL, DAY - timedelta(days=3)),
        RiskEvent(RiskEventKind.FALL, DAY - timedelta(days=30)),
    ]
    assert (
        abilities.assess(AssessmentInput(scores(50), risk_events=recent), assessed_on=DAY).final_level == Level.SEVERE
    )
    assert abilities.assess(AssessmentInput(scores(50), risk_events=old), assessed_on=DAY).final_level == Level.MODERATE
    assert (
        abilities.assess(
            AssessmentInput(scores(20), risk_events=recent, diagnosed_dementia=True), assessed_on=DAY
        ).final_level
        == Level.TOTAL_LOSS
    )


def test_scores_out_of_range_missing_or_unknown_are_refused():
    s = scores(90)
    s["eating"] = 5
    with pytest.raises(ScoreOutOfRange) as refused:
        abilities.assess(AssessmentInput(s), assessed_on=DAY)
    assert refused.value.field == "scores.eating"
    s["eating"] = -1
    with pytest.raises(ScoreOutOfRange):
        abilities.assess(AssessmentInput(s), assessed_on=DAY)
    missing = scores(90)
    del missing["stairs"]
    with pytest.raises(ValidationFailed, match="stairs"):
        abilities.assess(AssessmentInput(missing), assessed_on=DAY)
    with pytest.raises(ValidationFailed, match="Unknown"):
        abilities.assess(AssessmentInput({**scores(90), "karaoke": 1}), assessed_on=DAY)
    future = [RiskEvent(RiskEventKind.FALL, DAY + timedelta(days=1))]
    with pytest.raises(ValidationFailed):
        abilities.assess(AssessmentInput(scores(90), risk_events=future), assessed_on=DAY)


def test_reassessment_is_due_six_months_later():
    assert abilities.reassessment_due(date(2026, 1, 10)) == date(2026, 7, 11)


def test_the_default_tiers_match_every_elder_and_favour_the_weak_and_lonely():
    table = rules.DEFAULT_TIERS

    def match(level: int, alone: bool, *flags: str) -> rules.TierRow:
        index = rules.match_tier(table, rules.ElderFacts(level, alone, frozenset(flags)))
        assert index is not None
        return table[index]

    assert match(4, False).visits_per_month == 4
    assert match(2, True).visits_per_month == 2
    assert match(0, True).name == "独居关注"
    assert match(0, False, "no_family_support").name == "孤寡关注"
    assert match(1, False).visits_per_month == 1
    assert match(0, False).visits_per_month == 0


def test_visit_slots_spread_over_the_month_in_daytime():
    slots = rules.visit_slots("2027-03", 4, spread_key=7, minutes=60)
    assert len(slots) == 4
    days = [s.astimezone(CHINA_TZ).date() for s, _ in slots]
    assert all(d.month == 3 and d.year == 2027 for d in days)
    assert days == sorted(days)
    assert len(set(days)) == 4
    assert all(8 <= s.astimezone(CHINA_TZ).hour <= 17 for s, _ in slots)
    assert all(e - s == timedelta(minutes=60) for s, e in slots)
    late = rules.visit_slots("2027-03", 2, spread_key=1, minutes=60, not_before=datetime(2027, 3, 20, tzinfo=UTC))
    assert all(s.astimezone(CHINA_TZ).date() > date(2027, 3, 20) for s, _ in late)
    assert rules.next_period("2026-12") == "2027-01"
    with pytest.raises(ValueError, match="month"):
        rules.parse_period("2026-13")


def test_volunteers_rank_by_place_then_skills_then_younger_elders_then_load():
    needs = rules.ElderNeeds(
        resident_id=1, building_id=10, unit=1, compound_id=100, skills_wanted=frozenset({"electrical"})
    )

    def v(id_: int, **kw: Any) -> rules.VolunteerCandidate:
        base: dict[str, Any] = {
            "resident_id": 100 + id_,
            "gender": "female",
            "age": 66,
            "skills": frozenset(),
            "active_pairs": 0,
            "max_elders": 3,
            "building_id": 20,
            "unit": 1,
            "compound_id": 200,
        }
        base.update(kw)
        return rules.VolunteerCandidate(volunteer_id=id_, **base)

    ranked, rejected = rules.rank_volunteers(needs, [
        v(1, compound_id=100),
        v(2, building_id=10, unit=2),
        v(3, building_id=10, unit=1, active_pairs=3),  # full
        v(4, building_id=10, unit=1, age=80),
        v(5, building_id=10, unit=1, age=66),
        v(6, resident_id=1),  # the elder
        v(7, building_id=10, unit=2, skills=frozenset({"electrical"})),
    ])  # fmt: skip
    assert [r.volunteer_id for r in ranked] == [5, 4, 7, 2, 1]
    assert dict(rejected).keys() == {3, 6}
    prefers_men = rules.ElderNeeds(resident_id=1, building_id=10, unit=1, compound_id=100, preferred_gender="male")
    ranked, rejected = rules.rank_volunteers(prefers_men, [v(1), v(2, gender="male")])
    assert [r.volunteer_id for r in ranked] == [2]


def test_credit_is_actual_minutes_capped_by_type():
    start = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert rules.credit_minutes("safety_check", start, start + timedelta(minutes=50)) == 50
    assert rules.credit_minutes("safety_check", start, start + timedelta(hours=5)) == 90
    assert rules.credit_minutes("haircut", start, start + timedelta(seconds=20)) == 1
