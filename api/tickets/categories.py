"""Category questions: validating answers (typed kinds, blocking answers) and the default catalogue."""

from __future__ import annotations

from typing import Any

from api.core.errors import DomainError, ValidationFailed
from api.tickets.models import TicketCategory

QUESTION_KINDS = frozenset({"text", "number", "boolean", "choice"})


class EmergencyNotice(DomainError):
    """An answer means this is an emergency: the client shows the notice instead of submitting."""

    code = "EMERGENCY"

    def __init__(self, message: str, *, notice: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.notice = notice


def validate_answers(category: TicketCategory, answers: dict[str, Any]) -> dict[str, Any]:
    """Check answers against the category's questions; raise EmergencyNotice for a blocking answer."""
    questions = {q["code"]: q for q in category.questions or []}
    unknown = set(answers) - set(questions)
    if unknown:
        raise ValidationFailed(f"Unknown question: {sorted(unknown)[0]}.", field="answers")
    clean: dict[str, Any] = {}
    for code, q in questions.items():
        value = answers.get(code)
        if value is None or value == "":
            if q.get("required"):
                raise ValidationFailed(f"Please answer: {q['label']}", field=f"answers.{code}")
            continue
        kind = q.get("kind", "text")
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ValidationFailed(f"Answer yes or no: {q['label']}", field=f"answers.{code}")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationFailed(f"Answer with a number: {q['label']}", field=f"answers.{code}")
        elif kind == "choice":
            if value not in q.get("choices", []):
                raise ValidationFailed(f"Choose one of the options: {q['label']}", field=f"answers.{code}")
        elif not isinstance(value, str) or len(value) > 500:
            raise ValidationFailed(f"Answer in at most 500 characters: {q['label']}", field=f"answers.{code}")
        if value in q.get("blocking_answers", []):
            raise EmergencyNotice(
                q.get("notice") or "This needs the emergency services.",
                notice=q.get("notice") or "",
                field=f"answers.{code}",
            )
        clean[code] = value
    return clean


def _gas_question() -> dict[str, Any]:
    return {
        "code": "smell_gas",
        "label": "闻到燃气味了吗？",
        "kind": "boolean",
        "required": True,
        "blocking_answers": [True],
        "notice": "燃气泄漏请立即开窗、不要开关电器，离开后拨打燃气抢修电话或119。",
    }


def _injury_question() -> dict[str, Any]:
    return {
        "code": "anyone_hurt_badly",
        "label": "有人受重伤需要急救吗？",
        "kind": "boolean",
        "required": False,
        "blocking_answers": [True],
        "notice": "有人受重伤请立即拨打120。",
    }


# code, name, group, kind, area, skill, callback min, injury callback min, resolution h, dispatch, questions
DEFAULT_CATEGORIES: tuple[tuple[str, str, str, str, str, str | None, int, int, int, str, list[dict[str, Any]]], ...] = (
    ("manhole", "井盖松动/缺失", "公共设施", "report", "public", "municipal", 30, 10, 8, "offer", [_injury_question()]),
    ("street_light", "路灯不亮", "公共设施", "report", "public", "electrical", 60, 15, 24, "offer", []),
    ("road_damage", "路面破损", "公共设施", "report", "public", "municipal", 60, 15, 24, "offer", [_injury_question()]),
    ("lift", "电梯故障", "公共设施", "repair", "public", "lift", 15, 5, 8, "offer",
     [{"code": "people_trapped", "label": "有人被困吗？", "kind": "boolean", "required": True,
       "blocking_answers": [True], "notice": "有人被困请立即拨打电梯内紧急电话或119，并保持通话。"}]),
    ("leak", "漏水", "居家维修", "repair", "home", "plumbing", 30, 10, 24, "offer",
     [{"code": "where", "label": "漏水位置", "kind": "choice", "required": True,
       "choices": ["厨房", "卫生间", "楼上渗漏", "管道井", "其他"]}]),
    ("electrical", "家中用电故障", "居家维修", "repair", "home", "electrical", 30, 10, 24, "offer", [_gas_question()]),
    ("gas", "燃气问题", "居家维修", "repair", "home", "gas", 10, 5, 8, "offer", [_gas_question()]),
    ("clothes", "衣物修补", "小修小补", "workshop", "home", "tailoring", 240, 240, 72, "grab", []),
    ("shoes", "修鞋", "小修小补", "workshop", "home", "shoe_repair", 240, 240, 72, "grab", []),
    ("watch", "修表", "小修小补", "workshop", "home", "watch_repair", 240, 240, 72, "grab", []),
    ("appliance", "小家电维修", "小修小补", "workshop", "home", "appliance_repair", 240, 240, 72, "grab",
     [{"code": "appliance", "label": "什么电器？", "kind": "text", "required": True}]),
    ("haircut", "理发", "小修小补", "workshop", "home", "haircut", 240, 240, 72, "grab", []),
)  # fmt: skip


def default_categories(community_id: int) -> list[TicketCategory]:
    """The realistic starting catalogue for a community."""
    return [
        TicketCategory(
            community_id=community_id,
            code=code,
            name=name,
            group=group,
            kind=kind,
            area=area,
            skill=skill,
            callback_minutes=callback,
            injury_callback_minutes=injury_callback,
            resolution_hours=resolution,
            dispatch_mode=mode,
            questions=questions,
            description="",
            keywords="",
            duplicate_radius_m=50,
            follow_up_days=7,
            active=True,
        )
        for code, name, group, kind, area, skill, callback, injury_callback, resolution, mode, questions in DEFAULT_CATEGORIES
    ]
