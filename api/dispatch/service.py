"""The dispatch engine: requests, offers, answers, expiry, manual assignment and grabs.

Every state change is a conditional UPDATE whose row count says whether this call won, and
the partial unique index `uq_assignment_one_active` guarantees at most one active assignment
per subject, so redelivered jobs and racing requests can never double-assign.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import CHINA_TZ, utc_now
from api.core.database import UnitOfWork
from api.core.db import is_unique_violation
from api.core.errors import Conflict, NotFound, ValidationFailed
from api.core.viewer import Permission, Viewer
from api.dispatch import jobs
from api.dispatch.matching import Candidate, Need, Ranked, Reason, rank
from api.dispatch.models import (
    ACTIVE_STATES,
    Assignment,
    AssignmentState,
    AvailabilityWindow,
    DispatchMode,
    DispatchRequest,
    RequestState,
    Responder,
    TimeOff,
)

MAX_REASONS = 8


class OfferNotOpen(Conflict):
    """The offer was answered, withdrawn or expired already."""

    code = "OFFER_NOT_OPEN"


class AlreadyAssigned(Conflict):
    code = "ALREADY_ASSIGNED"


@dataclass(frozen=True, slots=True)
class DispatchNeed:
    """What the owning domain knows about the work; dispatch never reads the domain's tables."""

    kind: str
    subject_id: int
    community_id: int
    skill: str | None
    building_id: int | None = None
    compound_id: int | None = None
    mode: DispatchMode = DispatchMode.OFFER
    preferred_responder_id: int | None = None
    preferred_first: bool = False
    offer_ttl_seconds: int = 900


async def open_request(uow: UnitOfWork, need: DispatchNeed) -> DispatchRequest:
    """Start (or restart, after a reopen) looking for someone; offers go out from the worker."""
    request = await uow.session.scalar(
        select(DispatchRequest).where(DispatchRequest.kind == need.kind, DispatchRequest.subject_id == need.subject_id)
    )
    if request is None:
        request = DispatchRequest(kind=need.kind, subject_id=need.subject_id)
        uow.session.add(request)
    request.community_id = need.community_id
    request.skill = need.skill
    request.building_id, request.compound_id = need.building_id, need.compound_id
    request.mode = need.mode.value
    request.state = RequestState.OPEN.value
    request.preferred_responder_id = need.preferred_responder_id
    request.preferred_first = need.preferred_first
    request.offer_ttl_seconds = need.offer_ttl_seconds
    request.updated_at = utc_now()
    await uow.session.flush()
    if need.mode is DispatchMode.OFFER:
        uow.enqueue(jobs.assign(request.id))
    return request


async def get_request(session: AsyncSession, *, kind: str, subject_id: int) -> DispatchRequest | None:
    return await session.scalar(
        select(DispatchRequest).where(DispatchRequest.kind == kind, DispatchRequest.subject_id == subject_id)
    )


def _available(windows: list[AvailabilityWindow], now: datetime) -> bool:
    if not windows:
        return True
    local = now.astimezone(CHINA_TZ)
    minute = local.hour * 60 + local.minute
    return any(w.weekday == local.weekday() and w.start_minute <= minute < w.end_minute for w in windows)


async def candidates_for(
    session: AsyncSession, request: DispatchRequest, now: datetime, *, only: Collection[int] | None = None
) -> list[Candidate]:
    """Active responders of the request's community (or those in `only`), with load, availability and history."""
    stmt = select(Responder).where(Responder.community_id == request.community_id, Responder.active.is_(True))
    if only is not None:
        stmt = stmt.where(Responder.id.in_(list(only)))
    responders = list((await session.scalars(stmt)).all())
    if not responders:
        return []
    ids = [r.id for r in responders]
    loads = dict(
        (
            await session.execute(
                select(Assignment.responder_id, func.count())
                .where(Assignment.responder_id.in_(ids), Assignment.state.in_(ACTIVE_STATES))
                .group_by(Assignment.responder_id)
            )
        ).all()
    )
    windows: dict[int, list[AvailabilityWindow]] = defaultdict(list)
    for w in (await session.scalars(select(AvailabilityWindow).where(AvailabilityWindow.responder_id.in_(ids)))).all():
        windows[w.responder_id].append(w)
    on_leave = set(
        (
            await session.scalars(
                select(TimeOff.responder_id).where(
                    TimeOff.responder_id.in_(ids), TimeOff.starts_at <= now, TimeOff.ends_at > now
                )
            )
        ).all()
    )
    last_here: int | None = None
    if request.building_id is not None:
        last_here = await session.scalar(
            select(Assignment.responder_id)
            .join(DispatchRequest, DispatchRequest.id == Assignment.request_id)
            .where(
                DispatchRequest.building_id == request.building_id,
                DispatchRequest.kind == request.kind,
                DispatchRequest.id != request.id,
                Assignment.state.in_([AssignmentState.ACCEPTED.value, AssignmentState.COMPLETED.value]),
            )
            .order_by(Assignment.id.desc())
            .limit(1)
        )
    return [
        Candidate(
            responder_id=r.id,
            skills=frozenset(r.skills or ()),
            open_load=int(loads.get(r.id, 0)),
            max_open=r.max_open,
            home_building_id=r.home_building_id,
            home_compound_id=r.home_compound_id,
            available_now=_available(windows[r.id], now),
            on_leave=r.id in on_leave,
            did_last_job_here=r.id == last_here,
        )
        for r in responders
    ]


async def rank_for(session: AsyncSession, request: DispatchRequest, now: datetime) -> list[Ranked]:
    """The current ranking for a request (also shown to staff choosing by hand)."""
    tried = set(
        (
            await session.scalars(
                select(Assignment.responder_id).where(
                    Assignment.request_id == request.id,
                    Assignment.state.in_([AssignmentState.DECLINED.value, AssignmentState.EXPIRED.value]),
                )
            )
        ).all()
    )
    need = Need(
        skill=request.skill,
        building_id=request.building_id,
        compound_id=request.compound_id,
        preferred_responder_id=request.preferred_responder_id,
        preferred_first=request.preferred_first,
        excluded=frozenset(tried),
    )
    ranked, _rejected = rank(need, await candidates_for(session, request, now))
    return ranked


def _reasons(ranked: Ranked, position: int, total: int) -> list[dict[str, str]]:
    head = Reason("rank", f"ranked {position} of {total} eligible")
    return [head.as_dict(), *(r.as_dict() for r in ranked.reasons[: MAX_REASONS - 1])]


async def _insert_assignment(uow: UnitOfWork, assignment: Assignment) -> bool:
    """Insert inside a savepoint; False when another active assignment won the race."""
    try:
        async with uow.session.begin_nested():
            uow.session.add(assignment)
            await uow.session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            return False
        raise
    return True


async def offer_to_best_candidate(
    uow: UnitOfWork, *, request_id: int, now: datetime | None = None
) -> Assignment | None:
    """Offer an open request to the best candidate, or escalate when nobody is eligible.

    Idempotent: does nothing unless the request is open and has no active assignment.
    """
    now = now or utc_now()
    request = await uow.session.get(DispatchRequest, request_id)
    if request is None or request.state != RequestState.OPEN.value or request.mode != DispatchMode.OFFER.value:
        return None
    active = await uow.session.scalar(
        select(Assignment.id).where(Assignment.request_id == request.id, Assignment.state.in_(ACTIVE_STATES))
    )
    if active is not None:
        return None
    ranked = await rank_for(uow.session, request, now)
    if not ranked:
        won = await uow.session.execute(
            update(DispatchRequest)
            .where(DispatchRequest.id == request.id, DispatchRequest.state == RequestState.OPEN.value)
            .values(state=RequestState.ESCALATED.value, updated_at=now)
        )
        if _rowcount(won):
            uow.enqueue(jobs.assignment_changed(request.kind, request.id, "escalated"))
        return None
    best = ranked[0]
    assignment = Assignment(
        community_id=request.community_id,
        request_id=request.id,
        kind=request.kind,
        subject_id=request.subject_id,
        responder_id=best.responder_id,
        state=AssignmentState.OFFERED.value,
        mode="auto",
        score=best.score,
        reasons=_reasons(best, 1, len(ranked)),
        offered_at=now,
        expires_at=now + timedelta(seconds=request.offer_ttl_seconds),
    )
    if not await _insert_assignment(uow, assignment):
        return None
    request.attempts += 1
    request.updated_at = now
    uow.enqueue(jobs.expire_offer(assignment.id, delay_ms=request.offer_ttl_seconds * 1000))
    uow.enqueue(jobs.assignment_changed(request.kind, request.id, "offered", assignment.id))
    return assignment


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _responder_of(session: AsyncSession, viewer: Viewer, community_id: int) -> list[Responder]:
    viewer.require_authenticated()
    return list(
        (
            await session.scalars(
                select(Responder).where(
                    Responder.account_id == viewer.account_id,
                    Responder.community_id == community_id,
                    Responder.active.is_(True),
                )
            )
        ).all()
    )


async def answer_offer(
    uow: UnitOfWork, *, viewer: Viewer, assignment_id: int, accept: bool, note: str | None = None
) -> Assignment:
    """Accept or decline an offer made to the viewer. Raises NotFound, OfferNotOpen."""
    viewer.require_authenticated()
    now = utc_now()
    assignment = await uow.session.get(Assignment, assignment_id)
    responder = await uow.session.get(Responder, assignment.responder_id) if assignment else None
    if assignment is None or responder is None or responder.account_id != viewer.account_id:
        raise NotFound("No such offer.", field="assignmentId")
    new_state = AssignmentState.ACCEPTED if accept else AssignmentState.DECLINED
    won = await uow.session.execute(
        update(Assignment)
        .where(
            Assignment.id == assignment.id,
            Assignment.state == AssignmentState.OFFERED.value,
            Assignment.expires_at > now,
        )
        .values(state=new_state.value, responded_at=now, note=(note or "").strip()[:500] or None)
    )
    if not _rowcount(won):
        raise OfferNotOpen("This offer was answered, withdrawn or has expired.", field="assignmentId")
    await uow.session.refresh(assignment)
    if accept:
        await uow.session.execute(
            update(DispatchRequest)
            .where(DispatchRequest.id == assignment.request_id)
            .values(state=RequestState.ASSIGNED.value, updated_at=now)
        )
        uow.enqueue(jobs.assignment_changed(assignment.kind, assignment.request_id, "accepted", assignment.id))
    else:
        uow.enqueue(jobs.assign(assignment.request_id))
        uow.enqueue(jobs.assignment_changed(assignment.kind, assignment.request_id, "declined", assignment.id))
    return assignment


async def expire_offer(uow: UnitOfWork, *, assignment_id: int, now: datetime | None = None) -> bool:
    """Expire an unanswered offer whose time is up and look for the next candidate.

    Idempotent: only an OFFERED assignment past its expiry changes; True when this call did it.
    """
    now = now or utc_now()
    won = await uow.session.execute(
        update(Assignment)
        .where(
            Assignment.id == assignment_id,
            Assignment.state == AssignmentState.OFFERED.value,
            Assignment.expires_at <= now,
        )
        .values(state=AssignmentState.EXPIRED.value, responded_at=now)
    )
    if not _rowcount(won):
        return False
    assignment = await uow.session.get(Assignment, assignment_id)
    assert assignment is not None
    uow.enqueue(jobs.assign(assignment.request_id))
    uow.enqueue(jobs.assignment_changed(assignment.kind, assignment.request_id, "expired", assignment.id))
    return True


async def _cancel_active(uow: UnitOfWork, request: DispatchRequest, now: datetime) -> None:
    await uow.session.execute(
        update(Assignment)
        .where(Assignment.request_id == request.id, Assignment.state.in_(ACTIVE_STATES))
        .values(state=AssignmentState.CANCELLED.value, responded_at=now)
    )


async def assign_by_hand(
    uow: UnitOfWork, *, viewer: Viewer, kind: str, subject_id: int, responder_id: int, note: str | None = None
) -> Assignment:
    """Staff choose the responder; any active offer or assignment is withdrawn.

    Raises NotFound, Forbidden, ValidationFailed.
    """
    request = await get_request(uow.session, kind=kind, subject_id=subject_id)
    if request is None or request.community_id not in viewer.community_ids:
        raise NotFound("Nothing to assign here.", field="subjectId")
    viewer.require(Permission.DISPATCH, request.community_id)
    responder = await uow.session.get(Responder, responder_id)
    if responder is None or responder.community_id != request.community_id:
        raise NotFound("No such responder in this community.", field="responderId")
    if not responder.active:
        raise ValidationFailed("This responder is not taking work.", field="responderId")
    now = utc_now()
    await _cancel_active(uow, request, now)
    assignment = Assignment(
        community_id=request.community_id,
        request_id=request.id,
        kind=request.kind,
        subject_id=request.subject_id,
        responder_id=responder.id,
        state=AssignmentState.ACCEPTED.value,
        mode="manual",
        reasons=[Reason("manual", "chosen by staff").as_dict()],
        note=(note or "").strip()[:500] or None,
        offered_at=now,
        responded_at=now,
        assigned_by_account_id=viewer.account_id,
    )
    if not await _insert_assignment(uow, assignment):
        raise AlreadyAssigned("Someone else changed the assignment at the same moment; try again.")
    request.state = RequestState.ASSIGNED.value
    request.updated_at = now
    uow.enqueue(jobs.assignment_changed(kind, request.id, "reassigned", assignment.id))
    return assignment


async def assign_directly(uow: UnitOfWork, *, kind: str, subject_id: int, responder_id: int, reason: str) -> Assignment:
    """The owning domain already chose the responder (a booked workshop slot): engage them at once.

    Records an accepted assignment (mode "booking") and marks the request assigned in the caller's
    unit of work, so the request never goes out as an open offer or grab. The caller checks who
    may do this. Raises NotFound, ValidationFailed, AlreadyAssigned.
    """
    request = await get_request(uow.session, kind=kind, subject_id=subject_id)
    if request is None:
        raise NotFound("Nothing to assign here.", field="subjectId")
    responder = await uow.session.get(Responder, responder_id)
    if responder is None or responder.community_id != request.community_id:
        raise NotFound("No such responder in this community.", field="responderId")
    if not responder.active:
        raise ValidationFailed("This responder is not taking work.", field="responderId")
    now = utc_now()
    await _cancel_active(uow, request, now)
    assignment = Assignment(
        community_id=request.community_id,
        request_id=request.id,
        kind=request.kind,
        subject_id=request.subject_id,
        responder_id=responder.id,
        state=AssignmentState.ACCEPTED.value,
        mode="booking",
        reasons=[Reason("booking", reason[:200]).as_dict()],
        offered_at=now,
        responded_at=now,
    )
    if not await _insert_assignment(uow, assignment):
        raise AlreadyAssigned("Someone else changed the assignment at the same moment; try again.")
    request.state = RequestState.ASSIGNED.value
    request.preferred_responder_id = responder.id
    request.updated_at = now
    uow.enqueue(jobs.assignment_changed(kind, request.id, "accepted", assignment.id))
    return assignment


async def claim(uow: UnitOfWork, *, viewer: Viewer, kind: str, subject_id: int) -> Assignment:
    """抢单: an eligible responder claims open work in grab mode.

    Eligible means grab-enabled and passing the same rules as an offer (skill, not on leave,
    below their load limit). Raises NotFound, ValidationFailed, AlreadyAssigned.
    """
    request = await get_request(uow.session, kind=kind, subject_id=subject_id)
    if request is None or request.community_id not in viewer.community_ids:
        raise NotFound("Nothing to claim here.", field="subjectId")
    if request.mode != DispatchMode.GRAB.value:
        raise ValidationFailed("This work is offered to responders in turn, not open to claim.", field="subjectId")
    now = utc_now()
    grabbers = [r.id for r in await _responder_of(uow.session, viewer, request.community_id) if r.grab_enabled]
    if not grabbers:
        raise ValidationFailed("You cannot claim this work: you do not take grab work.", field="subjectId")
    eligible, rejected = rank(Need(skill=request.skill), await candidates_for(uow.session, request, now, only=grabbers))
    if not eligible:
        why = rejected[0][1].detail if rejected else "you are not taking work"
        raise ValidationFailed(f"You cannot claim this work: {why}.", field="subjectId")
    won = await uow.session.execute(
        update(DispatchRequest)
        .where(
            DispatchRequest.id == request.id,
            DispatchRequest.state == RequestState.OPEN.value,
            DispatchRequest.mode == DispatchMode.GRAB.value,
        )
        .values(state=RequestState.ASSIGNED.value, updated_at=now)
    )
    if not _rowcount(won):
        raise AlreadyAssigned("Someone else has taken this already.")
    assignment = Assignment(
        community_id=request.community_id,
        request_id=request.id,
        kind=request.kind,
        subject_id=request.subject_id,
        responder_id=eligible[0].responder_id,
        state=AssignmentState.ACCEPTED.value,
        mode="grab",
        reasons=[Reason("claimed", "claimed it first").as_dict()],
        offered_at=now,
        responded_at=now,
    )
    if not await _insert_assignment(uow, assignment):
        raise AlreadyAssigned("Someone else has taken this already.")
    uow.enqueue(jobs.assignment_changed(kind, request.id, "accepted", assignment.id))
    return assignment


async def finish(uow: UnitOfWork, *, kind: str, subject_id: int, completed: bool) -> None:
    """The work is done (completed) or withdrawn: close the request and its active assignment."""
    request = await get_request(uow.session, kind=kind, subject_id=subject_id)
    if request is None:
        return
    now = utc_now()
    await uow.session.execute(
        update(Assignment)
        .where(Assignment.request_id == request.id, Assignment.state.in_(ACTIVE_STATES))
        .values(
            state=(AssignmentState.COMPLETED if completed else AssignmentState.CANCELLED).value,
            responded_at=func.coalesce(Assignment.responded_at, now),
        )
    )
    request.state = RequestState.CLOSED.value
    request.updated_at = now


async def active_assignments(session: AsyncSession, *, kind: str, subject_ids: list[int]) -> dict[int, Assignment]:
    """The active assignment of each subject that has one."""
    rows = (
        await session.scalars(
            select(Assignment).where(
                Assignment.kind == kind, Assignment.subject_id.in_(subject_ids), Assignment.state.in_(ACTIVE_STATES)
            )
        )
    ).all()
    return {a.subject_id: a for a in rows}


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    reassigned: list[int]  # requests whose assign job was sent again
    expired: list[int]  # offers whose expiry job was sent again


SWEEP_BATCH = 500


async def sweep(uow: UnitOfWork, *, stale_after: timedelta, now: datetime | None = None) -> SweepOutcome:
    """Send again the jobs that should have run by now: the broker is a messenger, the database the record.

    An open request with no active assignment that has not moved for `stale_after` gets its assign
    job again; an offer past its expiry by `stale_after` gets its expiry job again. Both jobs are
    idempotent, so a job that was only slow (not lost) does nothing the second time.
    """
    now = now or utc_now()
    cutoff = now - stale_after
    active = (
        select(Assignment.id)
        .where(Assignment.request_id == DispatchRequest.id, Assignment.state.in_(ACTIVE_STATES))
        .exists()
    )
    stalled = list(
        (
            await uow.session.scalars(
                select(DispatchRequest.id)
                .where(
                    DispatchRequest.state == RequestState.OPEN.value,
                    DispatchRequest.mode == DispatchMode.OFFER.value,
                    DispatchRequest.updated_at < cutoff,
                    ~active,
                )
                .order_by(DispatchRequest.id)
                .limit(SWEEP_BATCH)
            )
        ).all()
    )
    overdue = list(
        (
            await uow.session.scalars(
                select(Assignment.id)
                .where(
                    Assignment.state == AssignmentState.OFFERED.value,
                    Assignment.expires_at.is_not(None),
                    Assignment.expires_at < cutoff,
                )
                .order_by(Assignment.id)
                .limit(SWEEP_BATCH)
            )
        ).all()
    )
    for request_id in stalled:
        uow.enqueue(jobs.assign(request_id))
    for assignment_id in overdue:
        uow.enqueue(jobs.expire_offer(assignment_id, delay_ms=None))
    return SweepOutcome(stalled, overdue)
