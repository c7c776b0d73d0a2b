"""Run recorded jobs through the real actor handlers, the way a worker would, until none are left."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from dramatiq.brokers.stub import StubBroker

from api.core.jobs import OutboundJob, RecordingJobSender
from api.observability import redact
from api.settings import Settings
from worker import runtime
from worker.actors import (
    accounts,
    canteen,
    dispatch,
    eldercare,
    hall,
    library,
    listings,
    notices,
    notifications,
    tickets,
    venues,
)
from worker.main import install

HANDLERS: dict[str, Callable[..., Awaitable[Any]]] = {
    "accounts.purge_expired_sessions": accounts.handle_purge_expired_sessions,
    "privacy.retention": accounts.handle_retention,
    "dispatch.assign": dispatch.handle_assign,
    "dispatch.expire_offer": dispatch.handle_expire_offer,
    "dispatch.sweep": dispatch.handle_sweep,
    "library.loan_notice": library.handle_loan_notice,
    "library.hold_notice": library.handle_hold_notice,
    "library.scan": library.handle_scan,
    "library.anonymise": library.handle_anonymise,
    "notifications.deliver_webhook": notifications.handle_deliver_webhook,
    "ticket.assignment_changed": tickets.handle_assignment_changed,
    "tickets.notify": tickets.handle_notify,
    "tickets.sla_scan": tickets.handle_sla_scan,
    "tickets.follow_up_scan": tickets.handle_follow_up_scan,
    "venues.offer_next": venues.handle_offer_next,
    "venues.expire_offer": venues.handle_expire_offer,
    "venues.send_reminders": venues.handle_send_reminders,
    "venues.close_attendance": venues.handle_close_attendance,
    "venues.activity_cancelled": venues.handle_activity_cancelled,
    "venues.scan": venues.handle_scan,
    **eldercare.HANDLERS,
    **hall.HANDLERS,
    **listings.HANDLERS,
    **canteen.HANDLERS,
    **notices.HANDLERS,
}


def assert_no_personal_data(kwargs: dict[str, Any], actor_name: str) -> None:
    """Job arguments are ids and keys: no ID number or mobile number may travel through the broker.

    Every test that runs jobs through the JobRunner checks this for every job it runs.
    """
    text = json.dumps(kwargs, ensure_ascii=False, default=str)
    assert redact(text) == text, f"{actor_name} carries personal data in its arguments: {text}"


class JobRunner:
    """Configures the worker runtime on the test database and runs jobs from a recorder."""

    def __init__(self, settings: Settings, recorder: RecordingJobSender) -> None:
        self.recorder = recorder
        install(settings, StubBroker())
        runtime.configure(settings, runtime._broker or StubBroker(), sender=recorder)
        self.done: list[OutboundJob] = []

    async def drain(self, *, skip: set[str] | frozenset[str] = frozenset(), limit: int = 1000) -> list[str]:
        """Run every recorded job (and the jobs they record) except actors in `skip`; return actor names run."""
        ran: list[str] = []
        for _ in range(limit):
            pending = [o for o in self.recorder.sent if o not in self.done and o.job.actor_name not in skip]
            if not pending:
                return ran
            outbound = pending[0]
            self.done.append(outbound)
            assert_no_personal_data(outbound.job.kwargs, outbound.job.actor_name)
            await HANDLERS[outbound.job.actor_name](**outbound.job.kwargs)
            ran.append(outbound.job.actor_name)
        raise AssertionError("jobs kept producing jobs")

    async def close(self) -> None:
        await runtime.dispose()
