"""Jobs of the canteen domain, and its periodic jobs (name, period, job built from the period key)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from api.core.jobs import Job

QUEUE = "canteen"


def close_meal(meal_id: int) -> Job:
    """Close a meal's reservations at its cut-off and make the kitchen's count sheet."""
    return Job("canteen.close_meal", QUEUE, {"meal_id": meal_id})


def delivery_requested(reservation_id: int) -> Job:
    """Ask the elder-care domain for a meal-delivery visit for a closed meal's delivery reservation."""
    return Job("canteen.delivery_requested", QUEUE, {"reservation_id": reservation_id})


def scan(period_key: str) -> Job:
    """The periodic sweep: close every meal whose cut-off has passed."""
    return Job("canteen.scan", QUEUE, {"period_key": period_key})


# Cut-offs are on whole minutes; a half-minute sweep closes a meal within 30 s of its cut-off.
PERIODIC: list[tuple[str, timedelta, Callable[[str], Job]]] = [
    ("canteen.scan", timedelta(seconds=30), scan),
]
