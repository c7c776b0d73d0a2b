"""Ranking candidates for a piece of work: a pure function of skills, availability, load, place, continuity.

The ranking is lexicographic, so each reason can be read on its own: eligibility first
(skill, not on leave, below their load limit, not already tried), then the preferred
responder when the need asks for them first (the paired volunteer), then availability now,
then place (same building, same compound, the community), then the lighter load, then
continuity (who did the last job here) as the tie-breaker, then the lower id for stability.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reason:
    """One line of why a candidate ranks where it does (stored on the assignment)."""

    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Candidate:
    responder_id: int
    skills: frozenset[str]
    open_load: int
    max_open: int
    home_building_id: int | None = None
    home_compound_id: int | None = None
    available_now: bool = True
    on_leave: bool = False
    did_last_job_here: bool = False


@dataclass(frozen=True, slots=True)
class Need:
    skill: str | None
    building_id: int | None = None
    compound_id: int | None = None
    preferred_responder_id: int | None = None
    preferred_first: bool = False  # elder care: the paired volunteer before anyone else
    excluded: frozenset[int] = field(default_factory=frozenset)  # already declined or let expire


@dataclass(frozen=True, slots=True)
class Ranked:
    responder_id: int
    rank_key: tuple[int, ...]
    reasons: tuple[Reason, ...]

    @property
    def score(self) -> float:
        """A single number for display: higher is better, and it never contradicts rank_key.

        Each term outweighs everything after it: the load term (-999‰..0 mapped to 0.005..5 in
        steps of 0.005) stays below one place step, and continuity (0.001) below one load step.
        """
        preferred, available, place, load, continuity, _ = self.rank_key
        return preferred * 1000 + available * 100 + place * 10 + (1000 + load) / 200 + continuity / 1000


def _ineligible(need: Need, c: Candidate) -> Reason | None:
    if c.responder_id in need.excluded:
        return Reason("already_tried", "declined or let an earlier offer expire")
    if need.skill is not None and need.skill not in c.skills:
        return Reason("no_skill", f"does not have the skill {need.skill}")
    if c.on_leave:
        return Reason("on_leave", "on leave now")
    if c.open_load >= c.max_open:
        return Reason("full", f"already has {c.open_load} open jobs (limit {c.max_open})")
    return None


def _place(need: Need, c: Candidate) -> tuple[int, Reason]:
    if need.building_id is not None and c.home_building_id == need.building_id:
        return 3, Reason("same_building", "lives or works in the same building")
    if need.compound_id is not None and c.home_compound_id == need.compound_id:
        return 2, Reason("same_compound", "lives or works in the same compound")
    return 1, Reason("same_community", "serves this community")


def rank(need: Need, candidates: list[Candidate]) -> tuple[list[Ranked], list[tuple[int, Reason]]]:
    """Return (eligible candidates best first, [(responder id, why not)] for the others)."""
    ranked: list[Ranked] = []
    rejected: list[tuple[int, Reason]] = []
    for c in candidates:
        why_not = _ineligible(need, c)
        if why_not is not None:
            rejected.append((c.responder_id, why_not))
            continue
        reasons: list[Reason] = []
        if need.skill is not None:
            reasons.append(Reason("skill", f"has the skill {need.skill}"))
        preferred = int(need.preferred_first and c.responder_id == need.preferred_responder_id)
        if preferred:
            reasons.append(Reason("paired", "the paired responder comes first"))
        reasons.append(
            Reason("available", "within their working hours now")
            if c.available_now
            else Reason("off_hours", "outside their working hours now")
        )
        place, place_reason = _place(need, c)
        reasons.append(place_reason)
        load_permille = c.open_load * 1000 // max(c.max_open, 1)
        reasons.append(Reason("load", f"{c.open_load} of {c.max_open} open jobs"))
        continuity = int(
            c.did_last_job_here or (not need.preferred_first and c.responder_id == need.preferred_responder_id)
        )
        if continuity:
            reasons.append(Reason("continuity", "did the last job here"))
        key = (preferred, int(c.available_now), place, -load_permille, continuity, -c.responder_id)
        ranked.append(Ranked(c.responder_id, key, tuple(reasons)))
    ranked.sort(key=lambda r: r.rank_key, reverse=True)
    return ranked, rejected
