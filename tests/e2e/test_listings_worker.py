"""Listings on the production worker: a real `linli worker` on Redis and PostgreSQL expires listings from its
scheduler, warns before expiry, and delivers moderation notices and messages to the inbox.

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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from api.core.broker import DramatiqJobSender, build_broker
from api.core.database import Database
from api.graphql.context import Services
from api.listings.models import Listing, ListingStatus
from api.settings import Settings
from tests.conftest import make_settings
from tests.e2e.test_tickets_worker import ROOT, SECRET, Worker, eventually, ready, unsent_outbox
from tests.listings.conftest import Board, expire_in, gid, make_board, published

pytestmark = pytest.mark.e2e

CREATE = """
mutation C($input: CreateListingInput!) {
  createListing(input: $input) { __typename ... on ListingSuccess { listing { id status } } }
}
"""
MODERATE = """
mutation M($input: ModerateListingInput!) {
  moderateListing(input: $input) { __typename ... on ListingSuccess { listing { status } } }
}
"""
SEND = """
mutation S($input: SendListingMessageInput!) {
  sendListingMessage(input: $input) { __typename ... on ListingMessageSuccess { conversation { id } } }
}
"""
MY_LISTINGS = "{ myListings(includeClosed: true) { edges { node { title status } } } }"
INBOX = "{ inbox(first: 20) { edges { node { title subjectKind } } } }"

Gql = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def settings(pg_url: str, redis_url: str, redis_namespace: str) -> Settings:
    return make_settings(pg_url, redis_url=redis_url, redis_namespace=redis_namespace)


@pytest.fixture
def jobs(settings: Settings) -> DramatiqJobSender:
    """What api/app.build_services wires in production: a Dramatiq sender over the Redis broker."""
    return DramatiqJobSender(build_broker(settings))


@dataclass
class Given:
    board: Board
    overdue: Listing  # published, its time ran out a minute ago
    ending: Listing  # published, two days left


@pytest.fixture
async def given(services: Services) -> Given:
    """Made before the worker starts, so that its scheduler's first scan finds them."""
    board = await make_board(services)
    overdue = await published(services, board, title="旧书桌")
    ending = await published(services, board, title="儿童床")
    await expire_in(services, overdue.id, -timedelta(minutes=1))
    await expire_in(services, ending.id, timedelta(days=2))
    return Given(board, overdue, ending)


@pytest.fixture
def worker(
    pg_url: str,
    redis_url: str,
    redis_namespace: str,
    tmp_path: Path,
    db: Database,
    redis_client: redis.Redis,
    given: Given,
) -> Iterator[Worker]:
    """One `linli worker` (1 process, 2 threads) in its own session, started after the given listings exist."""
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


async def inbox(gql: Gql, token: str) -> list[str]:
    edges = (await gql(INBOX, token=token))["inbox"]["edges"]
    return [e["node"]["title"] for e in edges]


@pytest.mark.timeout(180)
async def test_the_worker_expires_warns_and_delivers_listing_notices(
    services: Services, gql: Gql, worker: Worker, given: Given
) -> None:
    board = given.board
    poster = board.poster.token
    started = time.monotonic()
    await ready(worker, processes=1)

    # then: the scheduler's first scan expires the overdue listing and warns about the ending one
    async def scanned() -> bool:
        titles = await inbox(gql, poster)
        return "信息已到期：旧书桌" in titles and "信息即将到期：儿童床" in titles

    await eventually(scanned, within=60, what="the poster is told of the expiry and the coming one", every=0.5)
    scanned_after = time.monotonic() - started
    mine = {
        e["node"]["title"]: e["node"]["status"] for e in (await gql(MY_LISTINGS, token=poster))["myListings"]["edges"]
    }
    assert (mine["旧书桌"], mine["儿童床"]) == ("EXPIRED", "PUBLISHED")

    # when: the poster submits a new listing and staff approve it through GraphQL
    created = await gql(
        CREATE,
        {
            "input": {
                "communityId": board.community_gid, "kind": "SALE", "title": "九成新电动车", "submit": True,
                "sale": {"priceCents": 80000, "condition": "LIKE_NEW"},
            }
        },
        token=poster,
    )  # fmt: skip
    lid = created["createListing"]["listing"]["id"]
    assert created["createListing"]["listing"]["status"] == "PENDING"
    approved = await gql(MODERATE, {"input": {"listingId": lid, "approve": True}}, token=board.staff.token)
    assert approved["moderateListing"]["listing"]["status"] == "PUBLISHED"

    # then: the worker puts the decision in the poster's inbox
    async def told() -> bool:
        return "信息已发布：九成新电动车" in await inbox(gql, poster)

    await eventually(told, within=20, what="the poster is told it was published")

    # when: a neighbour asks about it
    sent = await gql(SEND, {"input": {"listingId": lid, "body": "电池用了多久？"}}, token=board.neighbour.token)
    assert sent["sendListingMessage"]["__typename"] == "ListingMessageSuccess"

    # then: the question reaches the poster's inbox, as a conversation
    async def asked() -> bool:
        edges = (await gql(INBOX, token=poster))["inbox"]["edges"]
        return {"title": "有人咨询：九成新电动车", "subjectKind": "listing_conversation"} in [e["node"] for e in edges]

    await eventually(asked, within=20, what="the poster has the question in the inbox")
    async with services.db.read_session() as session:
        status = await session.scalar(select(Listing.status).where(Listing.id == given.overdue.id))
    assert status == ListingStatus.EXPIRED.value
    assert gid("Listing", given.ending.id) != lid

    async def outbox_empty() -> bool:
        return await unsent_outbox(services.db) == 0

    await eventually(outbox_empty, within=15, what="every outbox row is published")
    print(f"\nfirst scan done {scanned_after:.1f}s after the worker started")

    # when: the worker is stopped as systemd would; then it exits cleanly
    assert worker.proc.poll() is None
    worker.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(worker.proc.wait, 20)
    assert code == 0
