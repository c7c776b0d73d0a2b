"""The ranking of candidates: a pure function, tested by example and by property."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from api.dispatch.matching import Candidate, Need, Ranked, Reason, rank

BUILDING, COMPOUND = 10, 20


def cand(rid: int, **kw: object) -> Candidate:
    values: dict[str, object] = {"skills": frozenset({"plumbing"}), "open_load": 0, "max_open": 5}
    values.update(kw)
    return Candidate(responder_id=rid, **values)  # type: ignore[arg-type]


def order(need: Need, candidates: list[Candidate]) -> list[int]:
    ranked, _ = rank(need, candidates)
    return [r.responder_id for r in ranked]


def codes(r: Ranked) -> list[str]:
    return [reason.code for reason in r.reasons]


# -- eligibility -------------------------------------------------------------------------------


def test_ineligible_candidates_are_rejected_each_with_its_reason():
    # given
    need = Need(skill="plumbing", excluded=frozenset({1}))
    candidates = [
        cand(1),  # declined earlier
        cand(2, skills=frozenset({"electrical"})),
        cand(3, on_leave=True),
        cand(4, open_load=5, max_open=5),
        cand(5, open_load=7, max_open=5),
        cand(6, open_load=4, max_open=5),
    ]
    # when
    ranked, rejected = rank(need, candidates)
    # then
    assert [r.responder_id for r in ranked] == [6]
    assert rejected == [
        (1, Reason("already_tried", "declined or let an earlier offer expire")),
        (2, Reason("no_skill", "does not have the skill plumbing")),
        (3, Reason("on_leave", "on leave now")),
        (4, Reason("full", "already has 5 open jobs (limit 5)")),
        (5, Reason("full", "already has 7 open jobs (limit 5)")),
    ]


def test_already_tried_wins_over_every_other_reason():
    need = Need(skill="plumbing", excluded=frozenset({1}))
    _, rejected = rank(need, [cand(1, skills=frozenset(), on_leave=True, open_load=9)])
    assert [r.code for _, r in rejected] == ["already_tried"]


def test_a_need_without_skill_takes_anyone_and_gives_no_skill_reason():
    ranked, rejected = rank(Need(skill=None), [cand(1, skills=frozenset()), cand(2)])
    assert rejected == []
    assert [r.responder_id for r in ranked] == [1, 2]
    assert "skill" not in codes(ranked[0])


def test_a_responder_with_no_capacity_is_always_full():
    _, rejected = rank(Need(skill=None), [cand(1, max_open=0)])
    assert rejected == [(1, Reason("full", "already has 0 open jobs (limit 0)"))]


# -- order -------------------------------------------------------------------------------------


def test_reasons_explain_the_rank():
    need = Need(skill="plumbing", building_id=BUILDING, compound_id=COMPOUND)
    ranked, _ = rank(need, [cand(1, home_building_id=BUILDING, open_load=2, did_last_job_here=True)])
    assert [(r.code, r.detail) for r in ranked[0].reasons] == [
        ("skill", "has the skill plumbing"),
        ("available", "within their working hours now"),
        ("same_building", "lives or works in the same building"),
        ("load", "2 of 5 open jobs"),
        ("continuity", "did the last job here"),
    ]


def test_availability_comes_before_place():
    need = Need(skill="plumbing", building_id=BUILDING, compound_id=COMPOUND)
    near_but_off = cand(1, home_building_id=BUILDING, available_now=False)
    far_but_working = cand(2)
    ranked, _ = rank(need, [near_but_off, far_but_working])
    assert [r.responder_id for r in ranked] == [2, 1]
    assert "off_hours" in codes(ranked[1])


def test_place_comes_before_load():
    need = Need(skill="plumbing", building_id=BUILDING, compound_id=COMPOUND)
    busy_neighbour = cand(1, home_building_id=BUILDING, open_load=4)
    idle_stranger = cand(2)
    assert order(need, [idle_stranger, busy_neighbour]) == [1, 2]


def test_place_tiers_are_building_then_compound_then_community():
    need = Need(skill="plumbing", building_id=BUILDING, compound_id=COMPOUND)
    candidates = [
        cand(1),
        cand(2, home_compound_id=COMPOUND),
        cand(3, home_building_id=BUILDING, home_compound_id=COMPOUND),
        cand(4, home_building_id=99, home_compound_id=98),
    ]
    ranked, _ = rank(need, candidates)
    assert [r.responder_id for r in ranked] == [3, 2, 1, 4]
    assert [r.rank_key[2] for r in ranked] == [3, 2, 1, 1]
    assert [codes(r)[2] for r in ranked] == ["same_building", "same_compound", "same_community", "same_community"]


def test_a_need_without_a_place_puts_everyone_in_the_community_tier():
    ranked, _ = rank(Need(skill="plumbing"), [cand(1, home_building_id=None), cand(2, home_compound_id=None)])
    assert {r.rank_key[2] for r in ranked} == {1}


def test_load_is_compared_relative_to_each_limit():
    # 1 of 5 (20%) is lighter than 3 of 10 (30%), which is lighter than 1 of 2 (50%)
    need = Need(skill="plumbing")
    assert order(need, [cand(1, open_load=1, max_open=2), cand(2, open_load=3, max_open=10), cand(3, open_load=1)]) == [
        3,
        2,
        1,
    ]


def test_continuity_only_breaks_ties():
    need = Need(skill="plumbing")
    # the one who did the last job here loses to a lighter load ...
    assert order(need, [cand(1, did_last_job_here=True, open_load=1), cand(2)]) == [2, 1]
    # ... and wins an otherwise equal contest, whatever the ids
    assert order(need, [cand(1), cand(2, did_last_job_here=True)]) == [2, 1]


def test_the_preferred_responder_is_only_a_tie_breaker_by_default():
    need = Need(skill="plumbing", building_id=BUILDING, preferred_responder_id=1)
    ranked, _ = rank(need, [cand(1), cand(2, home_building_id=BUILDING), cand(3)])
    assert [r.responder_id for r in ranked] == [2, 1, 3]
    assert "continuity" in codes(ranked[1])
    assert "paired" not in codes(ranked[1])


def test_preferred_first_puts_the_paired_responder_before_anyone():
    need = Need(skill="plumbing", building_id=BUILDING, preferred_responder_id=3, preferred_first=True)
    paired = cand(3, available_now=False, open_load=4)
    ranked, _ = rank(need, [cand(1, home_building_id=BUILDING), cand(2, did_last_job_here=True), paired])
    assert [r.responder_id for r in ranked] == [3, 1, 2]
    assert "paired" in codes(ranked[0])
    assert "continuity" not in codes(ranked[0])


def test_preferred_first_still_respects_eligibility():
    need = Need(skill="plumbing", preferred_responder_id=3, preferred_first=True)
    ranked, rejected = rank(need, [cand(1), cand(3, on_leave=True)])
    assert [r.responder_id for r in ranked] == [1]
    assert rejected == [(3, Reason("on_leave", "on leave now"))]


def test_equal_candidates_are_ordered_by_lower_id():
    need = Need(skill="plumbing")
    assert order(need, [cand(7), cand(3), cand(5)]) == [3, 5, 7]


def test_score_follows_the_order_even_where_load_differences_are_tiny():
    # given: a tiny load difference (1 of 1000) outranks continuity
    need = Need(skill=None)
    ranked, _ = rank(need, [cand(1, max_open=1000), cand(2, open_load=1, max_open=1000, did_last_job_here=True)])
    # then: the score says the same
    assert [r.responder_id for r in ranked] == [1, 2]
    assert ranked[0].score > ranked[1].score


# -- properties --------------------------------------------------------------------------------

SKILLS = ["plumbing", "electrical", "tailoring"]


@st.composite
def candidates_st(draw: st.DrawFn) -> list[Candidate]:
    ids = draw(st.lists(st.integers(1, 60), min_size=0, max_size=12, unique=True))
    out = []
    for rid in ids:
        max_open = draw(st.integers(0, 1000))
        out.append(
            Candidate(
                responder_id=rid,
                skills=frozenset(draw(st.lists(st.sampled_from(SKILLS), max_size=3))),
                open_load=draw(st.integers(0, max_open + 1)),
                max_open=max_open,
                home_building_id=draw(st.sampled_from([None, BUILDING, 11])),
                home_compound_id=draw(st.sampled_from([None, COMPOUND, 21])),
                available_now=draw(st.booleans()),
                on_leave=draw(st.booleans()),
                did_last_job_here=draw(st.booleans()),
            )
        )
    return out


needs_st = st.builds(
    Need,
    skill=st.sampled_from([None, *SKILLS]),
    building_id=st.sampled_from([None, BUILDING]),
    compound_id=st.sampled_from([None, COMPOUND]),
    preferred_responder_id=st.one_of(st.none(), st.integers(1, 60)),
    preferred_first=st.booleans(),
    excluded=st.frozensets(st.integers(1, 60), max_size=5),
)


def _eligible(need: Need, c: Candidate) -> bool:
    return (
        c.responder_id not in need.excluded
        and (need.skill is None or need.skill in c.skills)
        and not c.on_leave
        and c.open_load < c.max_open
    )


@settings(max_examples=150, deadline=None)
@given(need=needs_st, candidates=candidates_st())
def test_every_candidate_is_ranked_or_rejected_by_the_eligibility_rules(need: Need, candidates: list[Candidate]):
    ranked, rejected = rank(need, candidates)
    assert sorted(r.responder_id for r in ranked) == sorted(c.responder_id for c in candidates if _eligible(need, c))
    assert sorted(rid for rid, _ in rejected) == sorted(c.responder_id for c in candidates if not _eligible(need, c))


@settings(max_examples=150, deadline=None)
@given(need=needs_st, candidates=candidates_st(), seed=st.randoms(use_true_random=False))
def test_the_order_does_not_depend_on_the_input_order(need: Need, candidates: list[Candidate], seed):
    shuffled = list(candidates)
    seed.shuffle(shuffled)
    assert rank(need, shuffled)[0] == rank(need, candidates)[0]


@settings(max_examples=150, deadline=None)
@given(need=needs_st, candidates=candidates_st())
def test_score_is_monotone_with_rank(need: Need, candidates: list[Candidate]):
    ranked, _ = rank(need, candidates)
    for better, worse in itertools.pairwise(ranked):
        assert better.rank_key > worse.rank_key
        assert better.score >= worse.score
        if better.rank_key[:-1] != worse.rank_key[:-1]:  # differ beyond the id tie-break
            assert better.score > worse.score


@settings(max_examples=150, deadline=None)
@given(need=needs_st, candidates=candidates_st())
def test_lexicographic_priorities_hold_between_any_two(need: Need, candidates: list[Candidate]):
    ranked, _ = rank(need, candidates)
    position = {r.responder_id: i for i, r in enumerate(ranked)}
    by_id = {c.responder_id: c for c in candidates}
    for a in ranked:
        for b in ranked:
            ca, cb = by_id[a.responder_id], by_id[b.responder_id]
            paired_a = need.preferred_first and ca.responder_id == need.preferred_responder_id
            paired_b = need.preferred_first and cb.responder_id == need.preferred_responder_id
            first_by_pairing = paired_a and not paired_b
            first_by_availability = paired_a == paired_b and ca.available_now and not cb.available_now
            if first_by_pairing or first_by_availability:
                assert position[a.responder_id] < position[b.responder_id]
