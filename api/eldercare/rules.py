"""Elder-care rules as data and pure functions.

The default tier table, tier matching, checklists, visit lengths and time-bank caps, visit slots in
a period, and the ranking of volunteers for a pair.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from api.core.clock import CHINA_TZ
from api.eldercare.models import VisitType

# -- care tiers ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierRow:
    """One row of a tier table (the first row that matches an elder decides)."""

    name: str
    min_level: int
    max_level: int
    visits_per_month: int
    visit_types: tuple[str, ...]
    lives_alone: bool | None = None
    required_flags: tuple[str, ...] = ()


# Sensible defaults (分层管理): the weaker and the more alone, the more often someone knocks.
DEFAULT_TIERS: tuple[TierRow, ...] = (
    TierRow("重点关护", 3, 4, 4, (VisitType.SAFETY_CHECK.value, VisitType.COMPANIONSHIP.value)),
    TierRow("中度关护", 2, 2, 2, (VisitType.SAFETY_CHECK.value, VisitType.COMPANIONSHIP.value)),
    TierRow("独居关注", 0, 1, 2, (VisitType.SAFETY_CHECK.value, VisitType.ELECTRICAL_CHECK.value), lives_alone=True),
    TierRow("孤寡关注", 0, 1, 2, (VisitType.SAFETY_CHECK.value, VisitType.COMPANIONSHIP.value),
            required_flags=("no_family_support",)),
    TierRow("轻度关护", 1, 1, 1, (VisitType.SAFETY_CHECK.value,)),
    TierRow("日常关注", 0, 0, 0, ()),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ElderFacts:
    """What tier matching looks at."""

    level: int
    lives_alone: bool
    flags: frozenset[str] = field(default_factory=frozenset)


def match_tier(rows: Sequence[TierRow], facts: ElderFacts) -> int | None:
    """The index of the first row that matches, or None."""
    for index, row in enumerate(rows):
        if not row.min_level <= facts.level <= row.max_level:
            continue
        if row.lives_alone is not None and row.lives_alone != facts.lives_alone:
            continue
        if not set(row.required_flags) <= facts.flags:
            continue
        return index
    return None


# -- visits -------------------------------------------------------------------------------------------

# What is checked on each type of visit (item code, label); answers are ok, problem or not_applicable.
CHECKLISTS: dict[str, tuple[tuple[str, str], ...]] = {
    VisitType.SAFETY_CHECK.value: (
        ("gas", "燃气阀门、软管无老化漏气"),
        ("electricity", "电线插座无破损过载"),
        ("fire_exits", "消防通道畅通"),
        ("doors", "门锁完好，能从内打开"),
        ("medicines", "药品在有效期内、按时服用"),
    ),
    VisitType.ELECTRICAL_CHECK.value: (
        ("breaker", "漏电保护器能跳闸"),
        ("sockets", "插座无松动发热"),
        ("wiring", "线路无老化裸露"),
        ("appliances", "大功率电器使用安全"),
        ("lighting", "照明正常，夜间有照明"),
    ),
    VisitType.COMPANIONSHIP.value: (("chat", "聊天陪伴"), ("wellbeing", "精神状态良好")),
    VisitType.HOSPITAL_ESCORT.value: (("arrived", "到达医院"), ("seen", "完成就诊"), ("home", "平安到家")),
    VisitType.HAIRCUT.value: (("haircut", "理发完成"),),
    VisitType.HOLIDAY_DELIVERY.value: (("delivered", "慰问品送达"), ("greeted", "当面问候")),
    VisitType.MEAL_DELIVERY.value: (("delivered", "餐食送达"), ("eaten", "老人能正常进食")),
}
CHECK_ANSWERS = frozenset({"ok", "problem", "not_applicable"})
# Checklist item → the kind of hazard a problem there is.
HAZARD_KIND_OF_ITEM = {
    "gas": "gas",
    "electricity": "electrical",
    "breaker": "electrical",
    "sockets": "electrical",
    "wiring": "electrical",
    "appliances": "electrical",
    "lighting": "electrical",
    "fire_exits": "fire",
    "doors": "door",
    "medicines": "medicine",
}
HAZARD_KINDS = frozenset({"gas", "electrical", "water", "fire", "door", "medicine", "other"})
# Hazard kind → repair ticket category code (api/tickets/categories.py); others alert staff instead.
TICKET_CATEGORY_OF_HAZARD = {"gas": "gas", "electrical": "electrical", "water": "leak"}

# Skill a volunteer needs for the type (None: anyone), planned length, and the time-bank cap.
SKILL_OF_TYPE: dict[str, str | None] = {
    VisitType.SAFETY_CHECK.value: None,
    VisitType.ELECTRICAL_CHECK.value: "electrical",
    VisitType.COMPANIONSHIP.value: None,
    VisitType.HOSPITAL_ESCORT.value: "escort",
    VisitType.HAIRCUT.value: "haircut",
    VisitType.HOLIDAY_DELIVERY.value: None,
    VisitType.MEAL_DELIVERY.value: None,
}
MINUTES_OF_TYPE = {
    VisitType.SAFETY_CHECK.value: 60,
    VisitType.ELECTRICAL_CHECK.value: 60,
    VisitType.COMPANIONSHIP.value: 60,
    VisitType.HOSPITAL_ESCORT.value: 240,
    VisitType.HAIRCUT.value: 45,
    VisitType.HOLIDAY_DELIVERY.value: 30,
    VisitType.MEAL_DELIVERY.value: 30,
}
CREDIT_CAP_MINUTES = {
    VisitType.SAFETY_CHECK.value: 90,
    VisitType.ELECTRICAL_CHECK.value: 120,
    VisitType.COMPANIONSHIP.value: 120,
    VisitType.HOSPITAL_ESCORT.value: 360,
    VisitType.HAIRCUT.value: 60,
    VisitType.HOLIDAY_DELIVERY.value: 45,
    VisitType.MEAL_DELIVERY.value: 45,
}
VOLUNTEER_SKILLS = frozenset({"haircut", "electrical", "escort", "companionship"})
# Visit slots (China time, minutes after midnight): mornings and afternoons.
SLOT_STARTS = (9 * 60, 10 * 60 + 30, 14 * 60 + 30, 16 * 60, 9 * 60 + 30, 15 * 60)


def credit_minutes(visit_type: str, checked_in_at: datetime, checked_out_at: datetime) -> int:
    """Actual minutes on the visit, capped by its type, at least 1."""
    actual = int((checked_out_at - checked_in_at).total_seconds() // 60)
    return max(1, min(actual, CREDIT_CAP_MINUTES.get(visit_type, 60)))


def parse_period(period: str) -> tuple[date, date]:
    """'2026-12' → (first day, first day of the next month). Raises ValueError."""
    year_text, _, month_text = period.partition("-")
    if len(period) != 7 or not (year_text.isdigit() and month_text.isdigit()):
        raise ValueError("a period is written YYYY-MM")
    first = date(int(year_text), int(month_text), 1)
    days = calendar.monthrange(first.year, first.month)[1]
    return first, first + timedelta(days=days)


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def next_period(period: str) -> str:
    _first, after = parse_period(period)
    return period_of(after)


def visit_slots(
    period: str, count: int, *, spread_key: int, minutes: int, not_before: datetime | None = None
) -> list[tuple[datetime, datetime]]:
    """`count` visit times spread evenly over the month, each on a daytime slot (China time).

    `spread_key` (the elder's id) staggers elders so that one volunteer's elders do not all fall on
    the same day and hour. Slots before `not_before` move to the same weekday-free time in the
    remaining days (a month planned part-way through).
    """
    if count <= 0:
        return []
    first, after = parse_period(period)
    start_day = first
    if not_before is not None:
        today = not_before.astimezone(CHINA_TZ).date() + timedelta(days=1)
        start_day = max(first, min(today, after - timedelta(days=1)))
    days = (after - start_day).days
    step = days / count
    out = []
    for i in range(count):
        day = start_day + timedelta(days=int(i * step + (spread_key * 7) % max(int(step), 1)))
        day = min(day, after - timedelta(days=1))
        slot = SLOT_STARTS[(spread_key + i) % len(SLOT_STARTS)]
        begin = datetime.combine(day, time(slot // 60, slot % 60), CHINA_TZ).astimezone(UTC)
        out.append((begin, begin + timedelta(minutes=minutes)))
    return out


# -- pairing ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VolunteerCandidate:
    volunteer_id: int
    resident_id: int
    gender: str
    age: int
    skills: frozenset[str]
    active_pairs: int
    max_elders: int
    building_id: int | None
    unit: int | None
    compound_id: int | None


@dataclass(frozen=True, slots=True)
class ElderNeeds:
    resident_id: int
    building_id: int | None
    unit: int | None
    compound_id: int | None
    preferred_gender: str | None = None
    skills_wanted: frozenset[str] = field(default_factory=frozenset)
    younger_elder_ages: tuple[int, int] = (60, 75)


@dataclass(frozen=True, slots=True)
class RankedVolunteer:
    volunteer_id: int
    rank_key: tuple[int, ...]
    reasons: tuple[tuple[str, str], ...]


def rank_volunteers(
    needs: ElderNeeds, candidates: Sequence[VolunteerCandidate]
) -> tuple[list[RankedVolunteer], list[tuple[int, str]]]:
    """Rank volunteers for a pair: place first, then skills, then 低龄 peers, then the lighter load.

    Ineligible: the elder themself, anyone already at their limit of elders, or of the other gender
    when the elder prefers one. Returns (eligible best first, [(volunteer id, why not)]).
    """
    ranked: list[RankedVolunteer] = []
    rejected: list[tuple[int, str]] = []
    low, high = needs.younger_elder_ages
    for c in candidates:
        if c.resident_id == needs.resident_id:
            rejected.append((c.volunteer_id, "is the elder"))
            continue
        if c.active_pairs >= c.max_elders:
            rejected.append((c.volunteer_id, f"already looks after {c.active_pairs} of {c.max_elders} elders"))
            continue
        if needs.preferred_gender and c.gender != needs.preferred_gender:
            rejected.append((c.volunteer_id, f"the elder prefers a {needs.preferred_gender} volunteer"))
            continue
        reasons: list[tuple[str, str]] = []
        if needs.building_id is not None and c.building_id == needs.building_id and c.unit == needs.unit:
            place = 4
            reasons.append(("same_unit", "lives in the same unit"))
        elif needs.building_id is not None and c.building_id == needs.building_id:
            place = 3
            reasons.append(("same_building", "lives in the same building"))
        elif needs.compound_id is not None and c.compound_id == needs.compound_id:
            place = 2
            reasons.append(("same_compound", "lives in the same compound"))
        else:
            place = 1
            reasons.append(("same_community", "lives in the community"))
        skills = len(needs.skills_wanted & c.skills)
        if skills:
            reasons.append(("skills", f"has {skills} of the skills the visits need"))
        younger = int(low <= c.age <= high)
        if younger:
            reasons.append(("younger_elder", "低龄 volunteer: younger elders help older elders"))
        load = c.active_pairs * 1000 // max(c.max_elders, 1)
        reasons.append(("load", f"looks after {c.active_pairs} of {c.max_elders} elders"))
        ranked.append(RankedVolunteer(c.volunteer_id, (place, skills, younger, -load, -c.volunteer_id), tuple(reasons)))
    ranked.sort(key=lambda r: r.rank_key, reverse=True)
    return ranked, rejected
