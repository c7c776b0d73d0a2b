"""Jobs of the eldercare domain, and its periodic jobs (name, period, job built from the period key)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from api.core.jobs import Job

QUEUE = "eldercare"


def plan(period_key: str) -> Job:
    """The periodic planning tick: plan this month (and next month in its last week) for every community."""
    return Job("eldercare.plan", QUEUE, {"period_key": period_key})


def plan_community(community_id: int, period: str) -> Job:
    """Plan and dispatch one community's visits for one month (YYYY-MM); idempotent by period."""
    return Job("eldercare.plan_community", QUEUE, {"community_id": community_id, "period": period})


def scan(period_key: str) -> Job:
    """Escalate missed and overdue visits to staff."""
    return Job("eldercare.scan", QUEUE, {"period_key": period_key})


def hazard_found(finding_id: int) -> Job:
    """A visit found a hazard: open a repair ticket in the right category (or alert staff)."""
    return Job("eldercare.hazard_found", QUEUE, {"finding_id": finding_id})


def generate_campaign(campaign_id: int) -> Job:
    """Make and dispatch one delivery per household a holiday campaign targets."""
    return Job("eldercare.generate_campaign", QUEUE, {"campaign_id": campaign_id})


PERIODIC: list[tuple[str, timedelta, Callable[[str], Job]]] = [
    ("eldercare.plan", timedelta(hours=6), plan),
    ("eldercare.scan", timedelta(minutes=15), scan),
]
