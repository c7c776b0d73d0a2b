"""GB/T 42195-2022 老年人能力评估: items and their score ranges, total → level, and the raising rules (pure).

Higher scores mean more ability; the four areas add up to 90 (能力完好). The preliminary level comes
from the total; the final level applies the change rules: coma (意识水平 scored 0) sets level 4;
otherwise diagnosed dementia, another diagnosed mental or behavioural disorder, or two or more
care-risk events (fall, choking, suicide or self-harm, wandering off) in the 30 days before the
assessment raise the level by one (one step for any of them, never past 4). A reassessment is due
6 months later, or at once when the elder's condition changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum, StrEnum

from api.core.errors import ValidationFailed


class ScoreOutOfRange(ValidationFailed):
    """An item score outside the item's range."""

    code = "SCORE_OUT_OF_RANGE"


class Area(StrEnum):
    SELF_CARE = "self_care"  # 自理能力
    MOTOR = "motor"  # 基础运动能力
    MENTAL = "mental"  # 精神状态
    PERCEPTION_SOCIAL = "perception_social"  # 感知觉与社会参与


class Level(IntEnum):
    INTACT = 0  # 能力完好
    MILD = 1  # 能力轻度受损
    MODERATE = 2  # 能力中度受损
    SEVERE = 3  # 能力重度受损
    TOTAL_LOSS = 4  # 能力完全丧失


LEVEL_NAMES = {
    Level.INTACT: "能力完好",
    Level.MILD: "能力轻度受损",
    Level.MODERATE: "能力中度受损",
    Level.SEVERE: "能力重度受损",
    Level.TOTAL_LOSS: "能力完全丧失",
}


class RiskEventKind(StrEnum):
    FALL = "fall"  # 跌倒
    CHOKING = "choking"  # 噎食
    SELF_HARM = "self_harm"  # 自杀、自伤
    WANDERING = "wandering"  # 走失


@dataclass(frozen=True, slots=True)
class Item:
    code: str
    name: str
    area: Area
    max_score: int


# The 26 second-level items with their ranges (0..max_score); the maxima add up to 90.
ITEMS: tuple[Item, ...] = (
    Item("eating", "进食", Area.SELF_CARE, 4),
    Item("grooming", "修饰", Area.SELF_CARE, 4),
    Item("bathing", "洗澡", Area.SELF_CARE, 4),
    Item("dressing_upper", "穿/脱上衣", Area.SELF_CARE, 4),
    Item("dressing_lower", "穿/脱裤子和鞋袜", Area.SELF_CARE, 4),
    Item("bladder", "小便控制", Area.SELF_CARE, 4),
    Item("bowel", "大便控制", Area.SELF_CARE, 4),
    Item("toileting", "如厕", Area.SELF_CARE, 4),
    Item("bed_mobility", "床上体位转移", Area.MOTOR, 4),
    Item("bed_chair_transfer", "床椅转移", Area.MOTOR, 4),
    Item("walking", "平地行走", Area.MOTOR, 4),
    Item("stairs", "上下楼梯", Area.MOTOR, 4),
    Item("orientation_time", "时间定向", Area.MENTAL, 4),
    Item("orientation_place", "空间定向", Area.MENTAL, 4),
    Item("orientation_person", "人物定向", Area.MENTAL, 4),
    Item("memory", "记忆", Area.MENTAL, 4),
    Item("comprehension", "理解能力", Area.MENTAL, 4),
    Item("expression", "表达能力", Area.MENTAL, 4),
    Item("aggression", "攻击行为", Area.MENTAL, 1),
    Item("depression", "抑郁症状", Area.MENTAL, 1),
    Item("consciousness", "意识水平", Area.MENTAL, 2),
    Item("vision", "视力", Area.PERCEPTION_SOCIAL, 2),
    Item("hearing", "听力", Area.PERCEPTION_SOCIAL, 2),
    Item("daily_affairs", "执行日常事务", Area.PERCEPTION_SOCIAL, 4),
    Item("transport", "使用交通工具外出", Area.PERCEPTION_SOCIAL, 3),
    Item("social", "社会交往能力", Area.PERCEPTION_SOCIAL, 3),
)
ITEMS_BY_CODE = {i.code: i for i in ITEMS}
MAX_TOTAL = sum(i.max_score for i in ITEMS)
COMA_ITEM = "consciousness"  # scored 0: 昏迷
RISK_WINDOW_DAYS = 30
RISK_EVENTS_TO_RAISE = 2
REASSESS_AFTER_DAYS = 182  # about 6 months

# Lowest total of each level: 90 → 0, 66–89 → 1, 46–65 → 2, 30–45 → 3, 0–29 → 4.
LEVEL_FLOORS: tuple[tuple[int, Level], ...] = (
    (90, Level.INTACT),
    (66, Level.MILD),
    (46, Level.MODERATE),
    (30, Level.SEVERE),
    (0, Level.TOTAL_LOSS),
)


@dataclass(frozen=True, slots=True)
class RiskEvent:
    kind: RiskEventKind
    occurred_on: date


@dataclass(frozen=True, slots=True)
class AssessmentInput:
    scores: Mapping[str, int]
    diagnosed_dementia: bool = False
    diagnosed_mental_disorder: bool = False
    risk_events: Sequence[RiskEvent] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    total: int
    area_totals: dict[str, int]
    preliminary_level: Level
    final_level: Level
    raised_by: tuple[str, ...]  # coma, dementia, mental_disorder, risk_events


def validate_scores(scores: Mapping[str, int]) -> dict[str, int]:
    """Every item scored once, within its range. Raises ValidationFailed naming the first bad item."""
    unknown = sorted(set(scores) - set(ITEMS_BY_CODE))
    if unknown:
        raise ValidationFailed(f"Unknown assessment item: {unknown[0]}.", field=f"scores.{unknown[0]}")
    for item in ITEMS:
        if item.code not in scores:
            raise ValidationFailed(f"Score the item {item.name} ({item.code}).", field=f"scores.{item.code}")
        value = scores[item.code]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= item.max_score:
            raise ScoreOutOfRange(
                f"{item.name} is scored from 0 to {item.max_score}; {value!r} is out of range.",
                field=f"scores.{item.code}",
            )
    return {item.code: int(scores[item.code]) for item in ITEMS}


def level_for_total(total: int) -> Level:
    """The preliminary level of a total score."""
    if not 0 <= total <= MAX_TOTAL:
        raise ValueError(f"a total score is 0..{MAX_TOTAL}")
    for floor, level in LEVEL_FLOORS:
        if total >= floor:
            return level
    return Level.TOTAL_LOSS  # pragma: no cover - the last floor is 0


def recent_risk_events(events: Sequence[RiskEvent], assessed_on: date) -> int:
    """Care-risk events in the 30 days up to and including the assessment day."""
    since = assessed_on - timedelta(days=RISK_WINDOW_DAYS)
    return sum(1 for e in events if since < e.occurred_on <= assessed_on)


def apply_change_rules(
    preliminary: Level, data: AssessmentInput, scores: Mapping[str, int], assessed_on: date
) -> tuple[Level, tuple[str, ...]]:
    """The final level and the rules that raised it."""
    if scores.get(COMA_ITEM) == 0:
        return Level.TOTAL_LOSS, ("coma",)
    raised_by: list[str] = []
    if data.diagnosed_dementia:
        raised_by.append("dementia")
    if data.diagnosed_mental_disorder:
        raised_by.append("mental_disorder")
    if recent_risk_events(data.risk_events, assessed_on) >= RISK_EVENTS_TO_RAISE:
        raised_by.append("risk_events")
    if not raised_by or preliminary is Level.TOTAL_LOSS:
        return preliminary, ()
    return Level(preliminary + 1), tuple(raised_by)


def assess(data: AssessmentInput, *, assessed_on: date) -> Outcome:
    """Score an assessment. Raises ValidationFailed for a missing, unknown or out-of-range item."""
    scores = validate_scores(data.scores)
    for e in data.risk_events:
        if e.occurred_on > assessed_on:
            raise ValidationFailed("A risk event cannot be after the assessment.", field="riskEvents")
    total = sum(scores.values())
    areas = {a.value: 0 for a in Area}
    for code, value in scores.items():
        areas[ITEMS_BY_CODE[code].area.value] += value
    preliminary = level_for_total(total)
    final, raised_by = apply_change_rules(preliminary, data, scores, assessed_on)
    return Outcome(total, areas, preliminary, final, raised_by)


def reassessment_due(assessed_on: date) -> date:
    """The next scheduled assessment: 6 months on (a change in condition calls for one sooner)."""
    return assessed_on + timedelta(days=REASSESS_AFTER_DAYS)
