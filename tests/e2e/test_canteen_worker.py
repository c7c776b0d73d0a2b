"""The canteen's cut-off and scheduled notices on the production worker: a real `linli worker` on Redis
and PostgreSQL closes a meal at its cut-off, makes the count sheet, turns deliveries into elder-care
visits, and publishes a scheduled notice into residents' inboxes.

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
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from api.canteen.models import CanteenMeal
from api.core.broker import DramatiqJobSender, build_broker
from api.core.clock import utc_now
from api.core.database import Database
from api.eldercare.models import Visit
from api.graphql.context import Services
from api.settings import Settings
from tests.canteen.conftest import gid, make_kitchen, move_cutoff
from tests.conftest import make_settings
from tests.e2e.test_tickets_worker import ROOT, SECRET, Worker, eventually, ready, unsent_outbox

pytestmark = pytest.mark.e2e

RESERVE = """
mutation Reserve($input: ReserveMealInput!) {
  reserveMeal(input: $input) {
    __typename ... on MealReservationSuccess { reservation { priceFen delivery } } ... on UserError { code }
  }
}
"""
SHEET = """
query Sheet($id: ID!) {
  mealCountSheet(mealId: $id) { final portions pickup delivery byRule { rule portions } deliveries { residentName } }
}
"""
CREATE = """
mutation Create($input: CreateNoticeInput!) {
  createNotice(input: $input) { __typename ... on NoticeSuccess { notice { id } } }
}
"""
PUBLISH = """
mutation Publish($input: PublishNoticeInput!) {
  publishNotice(input: $input) { __typename ... on NoticeSuccess { notice { status } } }
}
"""
MY_NOTICES = "{ myNotices(first: 10) { edges { node { title readAt } } } }"
INBOX = "{ inbox(first: 20) { edges { node { title } } } }"

Gql = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def settings(pg_url: str, redis_url: str, redis_namespace: str) -> Settings:
    return make_settings(pg_url, redis_url=redis_url, redis_namespace=redis_namespace)


@pytest.fixture
def jobs(settings: Settings) -> DramatiqJobSender:
    """What api/app.build_services wires in production: a Dramatiq sender over the Redis broker."""
    return DramatiqJobSender(build_broker(settings))


@pytest.fixture
def worker(
    pg_url: str, redis_url: str, redis_namespace: str, tmp_path: Path, db: Database, redis_client: redis.Redis
) -> Iterator[Worker]:
    """One `linli worker` (1 process, 2 threads) in its own session.

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


@pytest.mark.timeout(180)
async def test_the_worker_closes_the_meal_at_its_cut_off_and_publishes_the_scheduled_notice(
    services: Services, gql: Gql, worker: Worker
) -> None:
    # given: a running worker, tomorrow's lunch, and reservations through the API
    kitchen = await make_kitchen(services)
    await ready(worker, processes=1)
    meal_id = gid("Meal", kitchen.lunch.id)
    staff = kitchen.staff.token
    grandma = await gql(RESERVE, {"input": {"mealId": meal_id, "residentId": gid("Resident", kitchen.grandma.id),
                                            "delivery": True}}, token=kitchen.adult_login.token)  # fmt: skip
    grandpa = await gql(RESERVE, {"input": {"mealId": meal_id}}, token=kitchen.grandpa_login.token)
    poor = await gql(
        RESERVE, {"input": {"mealId": meal_id, "residentId": gid("Resident", kitchen.poor.id)}}, token=staff
    )
    assert grandma["reserveMeal"]["reservation"] == {"priceFen": 600, "delivery": True}
    assert grandpa["reserveMeal"]["reservation"] == {"priceFen": 800, "delivery": False}
    assert poor["reserveMeal"]["reservation"] == {"priceFen": 600, "delivery": False}
    # and a notice to everyone living alone, scheduled two seconds ahead
    created = await gql(CREATE, {"input": {"communityId": gid("Community", kitchen.cid), "title": "明日午餐加鸡腿",
                                           "body": "幸福食堂明日午餐加鸡腿。", "audience": {"tags": ["LIVES_ALONE"]}}},
                        token=staff)  # fmt: skip
    notice_id = created["createNotice"]["notice"]["id"]
    at = utc_now() + timedelta(seconds=2)
    scheduled = await gql(PUBLISH, {"input": {"noticeId": notice_id, "publishAt": at.isoformat()}}, token=staff)
    assert scheduled["publishNotice"]["notice"]["status"] == "SCHEDULED"

    # when: the lunch's cut-off passes
    await move_cutoff(services, kitchen.lunch.id, utc_now() + timedelta(seconds=1))
    await asyncio.sleep(1.2)
    closed_started = time.monotonic()
    late = await gql(RESERVE, {"input": {"mealId": meal_id}}, token=kitchen.neighbour_login.token)
    assert late["reserveMeal"] == {"__typename": "AfterCutOffError", "code": "AFTER_CUT_OFF"}

    # then: within a sweep the worker closes the meal and the kitchen's sheet is final
    sheet: dict[str, Any] = {}

    async def sheet_final() -> bool:
        sheet.update((await gql(SHEET, {"id": meal_id}, token=staff))["mealCountSheet"])
        return bool(sheet["final"])

    await eventually(sheet_final, within=45, what="the meal is closed and its sheet made", every=0.5)
    closed_after = time.monotonic() - closed_started
    assert (sheet["portions"], sheet["pickup"], sheet["delivery"]) == (3, 2, 1)
    assert sheet["byRule"] == [
        {"rule": "80岁以上", "portions": 1},
        {"rule": "低保", "portions": 1},
        {"rule": "60岁以上", "portions": 1},
    ]
    assert sheet["deliveries"] == [{"residentName": "王奶奶"}]

    # and grandma's delivery became one meal-delivery visit in elder care
    async def visit_planned() -> bool:
        async with services.db.read_session() as session:
            rows = (await session.scalars(select(Visit).where(Visit.visit_type == "meal_delivery"))).all()
        return len(rows) == 1 and rows[0].resident_id == kitchen.grandma.id

    await eventually(visit_planned, within=20, what="the meal delivery is a visit")

    # and grandpa (who lives alone) has the notice in his list and his inbox; others have nothing
    async def notice_arrived() -> bool:
        edges = (await gql(MY_NOTICES, token=kitchen.grandpa_login.token))["myNotices"]["edges"]
        return [e["node"]["title"] for e in edges] == ["明日午餐加鸡腿"]

    await eventually(notice_arrived, within=45, what="the scheduled notice reached grandpa", every=0.5)
    inbox = (await gql(INBOX, token=kitchen.grandpa_login.token))["inbox"]["edges"]
    assert [e["node"]["title"] for e in inbox] == ["社区公告：明日午餐加鸡腿"]
    assert (await gql(MY_NOTICES, token=kitchen.adult_login.token))["myNotices"]["edges"] == []
    async with services.db.read_session() as session:
        meal = await session.get(CanteenMeal, kitchen.lunch.id)
    assert meal is not None
    assert meal.closed_at is not None

    async def outbox_empty() -> bool:
        return await unsent_outbox(services.db) == 0

    await eventually(outbox_empty, within=15, what="every outbox row is published")
    print(f"\nmeal closed {closed_after:.1f}s after its cut-off")

    # when: the worker is stopped as systemd would; then it exits cleanly
    worker.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(worker.proc.wait, 20)
    assert code == 0
