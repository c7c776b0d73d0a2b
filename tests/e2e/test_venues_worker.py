"""The waitlist on the production worker: a real `linli worker` on Redis and PostgreSQL offers
freed seats in order, lets an unanswered offer lapse and moves it on.

The test talks to the worker only through the database, Redis and the GraphQL API; the API side
publishes its jobs through a Dramatiq sender over a Redis broker in the worker's namespace.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from api.core.broker import DramatiqJobSender, build_broker
from api.core.database import Database
from api.graphql.context import Services
from api.notifications.models import Notification
from api.settings import Settings
from api.venues.models import SignUp
from tests.conftest import make_settings
from tests.e2e.test_tickets_worker import ROOT, SECRET, Worker, eventually, ready, unsent_outbox
from tests.venues.conftest import Member, crowd, db_id, gid, make_activity, make_hall

pytestmark = pytest.mark.e2e

OFFER_MINUTES = 1  # the shortest offer the settings allow (LINLI_VENUES_OFFER_MINUTES >= 1)

SIGN_UP = """
mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) { __typename ... on SignUpSuccess { signUps { id status seat waitlistPosition } } }
}
"""
CANCEL = """
mutation Cancel($input: CancelSignUpInput!) {
  cancelSignUp(input: $input) { __typename ... on SignUpChangeSuccess { signUp { status seat } } }
}
"""
ACCEPT = """
mutation Accept($input: AcceptOfferInput!) {
  acceptOffer(input: $input) {
    __typename ... on SignUpChangeSuccess { signUp { status seat } } ... on UserError { code }
  }
}
"""
MY_SIGN_UPS = "{ mySignUps { id status seat waitlistPosition offerExpiresAt cancelReason } }"
INBOX = "{ inbox(first: 20) { edges { node { title subjectKind } } } }"

Gql = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def settings(pg_url: str, redis_url: str, redis_namespace: str) -> Settings:
    return make_settings(
        pg_url, redis_url=redis_url, redis_namespace=redis_namespace, venues_offer_minutes=OFFER_MINUTES
    )


@pytest.fixture
def jobs(settings: Settings) -> DramatiqJobSender:
    """What api/app.build_services wires in production: a Dramatiq sender over the Redis broker."""
    return DramatiqJobSender(build_broker(settings))


@pytest.fixture
def worker(
    pg_url: str, redis_url: str, redis_namespace: str, tmp_path: Path, db: Database, redis_client: redis.Redis
) -> Iterator[Worker]:
    """One `linli worker` (1 process, 2 threads) in its own session, with 1-minute offers.

    It depends on `db` and `redis_client` so that it is gone before those clean up.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
    env.update(
        LINLI_ENVIRONMENT="test",
        LINLI_DATABASE_URL=pg_url,
        LINLI_REDIS_URL=redis_url,
        LINLI_REDIS_NAMESPACE=redis_namespace,
        LINLI_SECRET_KEY=SECRET,
        LINLI_DB_POOL_SIZE="4",
        LINLI_SCHEDULER_TICK_SECONDS="0.5",
        LINLI_OUTBOX_RELAY_INTERVAL_SECONDS="1",
        LINLI_OUTBOX_RELAY_GRACE_SECONDS="2",
        LINLI_VENUES_OFFER_MINUTES=str(OFFER_MINUTES),
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--processes", "1", "--threads", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Worker(proc, log_path, env)
    yield started
    started.kill_everything()
    print(f"--- worker.log (last 4000 characters)\n{started.log()[-4000:]}")


async def mine(gql: Gql, member: Member) -> dict[str, Any]:
    """The member's one sign-up, as they see it."""
    [row] = (await gql(MY_SIGN_UPS, token=member.token))["mySignUps"]
    return dict(row)


async def inbox(gql: Gql, member: Member) -> list[str]:
    edges = (await gql(INBOX, token=member.token))["inbox"]["edges"]
    return [e["node"]["title"] for e in edges]


async def status_becomes(gql: Gql, member: Member, status: str, *, within: float) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await mine(gql, member))
        return bool(seen["status"] == status)

    await eventually(reached, within=within, what=f"the sign-up is {status}: last seen {seen}", every=0.5)
    return seen


@pytest.mark.timeout(240)
async def test_the_worker_offers_a_freed_seat_in_order_lets_the_offer_lapse_and_moves_it_on(
    services: Services, gql: Gql, worker: Worker
) -> None:
    # given: a running worker, an activity with one place, and three neighbours A, B, C
    hall = await make_hall(services)
    a, b, c = await crowd(services, hall.estate.community, 3)
    activity = await make_activity(services, hall, capacity=1, min_age=None, max_age=None)
    await ready(worker, processes=1)

    # when: A, B and C sign up, one after the other
    placed = []
    for member in (a, b, c):
        result = await gql(
            SIGN_UP,
            {
                "input": {
                    "activityId": gid("Activity", activity.id),
                    "participantIds": [gid("Resident", member.resident_id)],
                }
            },
            token=member.token,
        )
        assert result["signUp"]["__typename"] == "SignUpSuccess"
        [row] = result["signUp"]["signUps"]
        placed.append(row)
    # then: A is seated, B and C wait in that order
    assert [(r["status"], r["seat"], r["waitlistPosition"]) for r in placed] == [
        ("CONFIRMED", 1, None),
        ("WAITLISTED", None, 1),
        ("WAITLISTED", None, 2),
    ]
    a_id, b_id, c_id = (r["id"] for r in placed)

    # when: A cancels
    cancelled = await gql(CANCEL, {"input": {"signUpId": a_id}}, token=a.token)
    assert cancelled["cancelSignUp"] == {
        "__typename": "SignUpChangeSuccess",
        "signUp": {"status": "CANCELLED", "seat": None},
    }
    cancelled_at = time.monotonic()

    # then: the worker offers the seat to B, first in line, for a minute, and tells B
    b_offer = await status_becomes(gql, b, "OFFERED", within=30)
    offered_after = time.monotonic() - cancelled_at
    assert (b_offer["id"], b_offer["seat"], b_offer["waitlistPosition"]) == (b_id, 1, 1)
    async with services.db.read_session() as session:
        b_row = await session.get(SignUp, db_id(b_id))
        assert b_row is not None
        assert b_row.offer_expires_at is not None
        held_for = (b_row.offer_expires_at - b_row.updated_at).total_seconds()
    assert held_for == pytest.approx(OFFER_MINUTES * 60, abs=1)
    assert datetime.fromisoformat(b_offer["offerExpiresAt"]) == b_row.offer_expires_at

    async def b_told() -> bool:
        return await inbox(gql, b) == ["候补到位：剪纸"]

    await eventually(b_told, within=10, what="B has the offer in the inbox")
    assert (await mine(gql, c))["status"] == "WAITLISTED"
    assert await inbox(gql, c) == []

    # when: B does not answer; then: once the offer lapses the worker cancels it and offers the seat to C
    c_offer = await status_becomes(gql, c, "OFFERED", within=OFFER_MINUTES * 60 + 45)
    moved_after = time.monotonic() - cancelled_at
    b_after = await mine(gql, b)
    assert (b_after["id"], b_after["status"], b_after["seat"], b_after["cancelReason"]) == (
        b_id,
        "CANCELLED",
        None,
        "offer_expired",
    )
    assert (c_offer["id"], c_offer["seat"], c_offer["waitlistPosition"]) == (c_id, 1, 2)
    assert moved_after >= OFFER_MINUTES * 60
    assert await inbox(gql, b) == ["候补名额已过期：剪纸", "候补到位：剪纸"]  # newest first

    async def c_told() -> bool:
        return await inbox(gql, c) == ["候补到位：剪纸"]

    await eventually(c_told, within=10, what="C has the offer in the inbox")

    # and B, too late, cannot take the seat back
    late = await gql(ACCEPT, {"input": {"signUpId": b_id}}, token=b.token)
    assert late["acceptOffer"] == {"__typename": "SeatOfferNotOpenError", "code": "OFFER_NOT_OPEN"}

    # when: C accepts
    accepted = await gql(ACCEPT, {"input": {"signUpId": c_id}}, token=c.token)

    # then: C holds the one seat; nothing else is seated, offered or waiting, and the outbox is empty
    assert accepted["acceptOffer"] == {
        "__typename": "SignUpChangeSuccess",
        "signUp": {"status": "CONFIRMED", "seat": 1},
    }
    async with services.db.read_session() as session:
        rows = (
            await session.execute(
                select(SignUp.id, SignUp.status, SignUp.seat, SignUp.cancel_reason)
                .where(SignUp.activity_id == activity.id)
                .order_by(SignUp.id)
            )
        ).all()
        titles = (
            await session.scalars(
                select(Notification.title).where(Notification.subject_kind == "sign_up").order_by(Notification.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (db_id(a_id), "cancelled", None, "participant"),
        (db_id(b_id), "cancelled", None, "offer_expired"),
        (db_id(c_id), "confirmed", 1, None),
    ]
    assert list(titles) == ["候补到位：剪纸", "候补名额已过期：剪纸", "候补到位：剪纸"]

    async def outbox_empty() -> bool:
        return await unsent_outbox(services.db) == 0

    await eventually(outbox_empty, within=15, what="every outbox row is published")
    print(f"\nseat offered to B {offered_after:.1f}s after A cancelled; moved to C after {moved_after:.1f}s")

    # when: the worker is stopped as systemd would
    assert worker.proc.poll() is None
    stopping = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    # then: it exits cleanly within 20 seconds
    code = await asyncio.to_thread(worker.proc.wait, 20)
    assert code == 0
    assert time.monotonic() - stopping < 20
