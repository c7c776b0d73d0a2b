"""Actors of the canteen domain; HANDLERS maps actor names to their plain handlers (for tests)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq

from api.canteen import service as canteen_service
from api.core.errors import DomainError
from api.eldercare import service as eldercare_service
from worker import runtime

log = logging.getLogger(__name__)

MEAL_DELIVERY = "meal_delivery"


async def handle_close_meal(meal_id: int) -> None:
    """Close the meal's reservations and make its count sheet. Idempotent: `closed_at` is set once."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        sheet = await canteen_service.close_meal(uow, meal_id=meal_id)
    if sheet is not None:
        log.info("meal %d closed: %d portions, %d to deliver", meal_id, sheet.portions, sheet.delivery)


async def handle_delivery_requested(reservation_id: int) -> None:
    """Ask elder care for a meal-delivery visit. Idempotent: the visit's source key is the reservation's."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        request = await canteen_service.delivery_request(uow.session, reservation_id=reservation_id)
        if request is None:
            return  # cancelled, or not a delivery: nothing to ask for
        visit_id = await eldercare_service.request_visit(
            uow,
            community_id=request.community_id,
            resident_id=request.resident_id,
            visit_type=MEAL_DELIVERY,
            starts_at=request.starts_at,
            ends_at=request.ends_at,
            source_key=request.source_key,
            note=request.note,
        )
    log.info("reservation %d: meal delivery visit %d", reservation_id, visit_id)


async def handle_scan(period_key: str) -> None:
    """Enqueue the closing of every meal past its cut-off; each close is idempotent, so a repeat is harmless."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        due = await canteen_service.scan(uow)
    if due:
        log.info("canteen scan %s: %d meal(s) to close", period_key, len(due))


@dramatiq.actor(actor_name="canteen.close_meal", queue_name="canteen", max_retries=10, time_limit=120_000)
async def close_meal(meal_id: int) -> None:
    await handle_close_meal(meal_id)


# A refusal from elder care (say, the resident moved away) will not change on a retry.
@dramatiq.actor(
    actor_name="canteen.delivery_requested",
    queue_name="canteen",
    max_retries=10,
    time_limit=60_000,
    throws=(DomainError,),
)
async def delivery_requested(reservation_id: int) -> None:
    await handle_delivery_requested(reservation_id)


@dramatiq.actor(actor_name="canteen.scan", queue_name="canteen", max_retries=3, time_limit=120_000)
async def scan(period_key: str) -> None:
    await handle_scan(period_key)


HANDLERS: dict[str, Callable[..., Awaitable[Any]]] = {
    "canteen.close_meal": handle_close_meal,
    "canteen.delivery_requested": handle_delivery_requested,
    "canteen.scan": handle_scan,
}
