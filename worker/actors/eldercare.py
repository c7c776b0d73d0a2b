"""Actors of the eldercare domain; HANDLERS maps actor names to their plain handlers (for tests)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import dramatiq
from sqlalchemy import select

from api.accounts.models import Account
from api.core.clock import CHINA_TZ, utc_now
from api.core.database import UnitOfWork
from api.core.viewer import Role, Viewer
from api.eldercare import jobs as eldercare_jobs
from api.eldercare import rules
from api.eldercare import service as eldercare_service
from api.eldercare.common import ElderCareSettings, for_update
from api.eldercare.models import Visit, VisitFinding
from api.registry.models import Household
from api.tickets import service as tickets_service
from api.tickets.categories import EmergencyNotice
from api.tickets.models import TicketCategory
from worker import runtime

log = logging.getLogger(__name__)

PLAN_AHEAD_DAYS = 7  # next month is planned in the last week of this one


def _settings() -> ElderCareSettings:
    return ElderCareSettings.from_settings(runtime.settings())


async def handle_plan(period_key: str) -> None:
    """Ask for this month's plan, or next month's in the last week of this one, in every community with elders.

    A month first planned in its last week would crowd all its visits into a few days, so then only
    the next month is planned. Idempotent: planning a community's month twice creates nothing new.
    """
    today = utc_now().astimezone(CHINA_TZ).date()
    periods = [rules.period_of(today + timedelta(days=PLAN_AHEAD_DAYS))]
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        for community_id in await eldercare_service.communities_with_elders(uow.session):
            for period in periods:
                uow.enqueue(eldercare_jobs.plan_community(community_id, period))


async def handle_plan_community(community_id: int, period: str) -> None:
    """Plan and dispatch one community's month. Idempotent: visits are unique by (elder, period, sequence)."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        outcome = await eldercare_service.plan_period(
            uow, community_id=community_id, period=period, settings=_settings()
        )
    if outcome.created:
        log.info("community %d %s: planned %d visit(s) for %d elders", community_id, period, outcome.created,
                 outcome.elders)  # fmt: skip


async def handle_scan(period_key: str) -> None:
    """Escalate missed and overdue visits. Idempotent: conditional updates, one notice per visit."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        outcome = await eldercare_service.scan(uow, settings=_settings())
    if outcome.missed or outcome.overdue:
        log.info("eldercare scan %s: %d missed, %d overdue", period_key, len(outcome.missed), len(outcome.overdue))


def _answers(category: TicketCategory, note: str) -> dict[str, Any]:
    """Answers to the category's required questions from a visitor's finding (never an emergency answer)."""
    out: dict[str, Any] = {}
    for q in category.questions or []:
        if not q.get("required"):
            continue
        kind = q.get("kind", "text")
        if kind == "boolean":
            out[q["code"]] = False
        elif kind == "choice":
            out[q["code"]] = q["choices"][-1]
        elif kind == "number":
            out[q["code"]] = 0
        else:
            out[q["code"]] = (note or "上门探访发现")[:500]
    return out


async def _alert_staff(uow: UnitOfWork, finding: VisitFinding, visit: Visit) -> None:
    await eldercare_service.tell_staff(
        uow, visit, event_key=f"visit-hazard:{finding.id}", title="上门探访发现安全隐患",
        body=f"{finding.item_code}: {finding.note or finding.hazard_kind}",
    )  # fmt: skip
    finding.staff_alerted_at = utc_now()


async def handle_hazard_found(finding_id: int) -> None:
    """Open a repair ticket for a hazard found on a visit and link it to the finding (or alert staff).

    Idempotent: the finding is locked and acted on only while it has neither a ticket nor an alert.
    """
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        finding = await uow.session.scalar(
            for_update(uow.session, select(VisitFinding).where(VisitFinding.id == finding_id))
        )
        if finding is None or finding.ticket_id is not None or finding.staff_alerted_at is not None:
            return
        visit = await uow.session.get(Visit, finding.visit_id)
        household = await uow.session.get(Household, visit.household_id) if visit else None
        if visit is None or household is None:
            return
        code = rules.TICKET_CATEGORY_OF_HAZARD.get(finding.hazard_kind)
        category = None
        if code is not None:
            category = await uow.session.scalar(
                select(TicketCategory).where(
                    TicketCategory.community_id == visit.community_id,
                    TicketCategory.code == code,
                    TicketCategory.active.is_(True),
                )
            )
        account = (
            await uow.session.get(Account, finding.recorded_by_account_id)
            if finding.recorded_by_account_id is not None
            else None
        )
        if category is None or account is None:
            await _alert_staff(uow, finding, visit)
            return
        reporter = Viewer(
            account_id=account.id,
            resident_id=account.resident_id,
            roles={visit.community_id: frozenset({Role.VOLUNTEER})},
        )
        draft = tickets_service.TicketDraft(
            category_id=category.id,
            description=f"上门探访发现隐患（{finding.item_code}）：{finding.note or category.name}",
            place=tickets_service.Place(building_id=household.building_id, unit=household.unit, room=household.room),
            answers=_answers(category, finding.note),
        )
        try:
            ticket = await tickets_service.submit(uow, viewer=reporter, draft=draft)
        except EmergencyNotice:
            await _alert_staff(uow, finding, visit)
            return
        finding.ticket_id = ticket.id
    log.info("finding %d: opened ticket %d", finding_id, ticket.id)


async def handle_generate_campaign(campaign_id: int) -> None:
    """Make and dispatch the campaign's deliveries. Idempotent: one delivery per (campaign, household)."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        made = await eldercare_service.generate_campaign(uow, campaign_id=campaign_id)
    if made:
        log.info("campaign %d: %d deliveries", campaign_id, made)


async def handle_assignment_changed(request_id: int, event: str, assignment_id: int | None = None) -> None:
    """Mirror a dispatch change on the visit. Idempotent: each change is conditional on the visit's state."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await eldercare_service.on_assignment_changed(
            uow, request_id=request_id, event=event, assignment_id=assignment_id
        )


@dramatiq.actor(actor_name="eldercare.plan", queue_name="eldercare", max_retries=3, time_limit=120_000)
async def plan(period_key: str) -> None:
    await handle_plan(period_key)


@dramatiq.actor(actor_name="eldercare.plan_community", queue_name="eldercare", max_retries=5, time_limit=900_000)
async def plan_community(community_id: int, period: str) -> None:
    await handle_plan_community(community_id, period)


@dramatiq.actor(actor_name="eldercare.scan", queue_name="eldercare", max_retries=3, time_limit=300_000)
async def scan(period_key: str) -> None:
    await handle_scan(period_key)


@dramatiq.actor(actor_name="eldercare.hazard_found", queue_name="eldercare", max_retries=10, time_limit=60_000)
async def hazard_found(finding_id: int) -> None:
    await handle_hazard_found(finding_id)


@dramatiq.actor(actor_name="eldercare.generate_campaign", queue_name="eldercare", max_retries=5, time_limit=600_000)
async def generate_campaign(campaign_id: int) -> None:
    await handle_generate_campaign(campaign_id)


@dramatiq.actor(actor_name="visit.assignment_changed", queue_name="events", max_retries=10, time_limit=60_000)
async def assignment_changed(request_id: int, event: str, assignment_id: int | None = None) -> None:
    await handle_assignment_changed(request_id, event, assignment_id)


HANDLERS: dict[str, Callable[..., Awaitable[Any]]] = {
    "eldercare.plan": handle_plan,
    "eldercare.plan_community": handle_plan_community,
    "eldercare.scan": handle_scan,
    "eldercare.hazard_found": handle_hazard_found,
    "eldercare.generate_campaign": handle_generate_campaign,
    "visit.assignment_changed": handle_assignment_changed,
}
