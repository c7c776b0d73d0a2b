"""The service hall on the production worker: a real `linli worker` on Redis and PostgreSQL tells
staff of a new application, tells the applicant of each step, and escalates a lapsed time limit once.

The test talks to the worker only through the database, Redis and the GraphQL API; the API side
publishes its jobs through a Dramatiq sender over a Redis broker in the worker's namespace.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update

from api.core.broker import DramatiqJobSender, build_broker
from api.core.clock import utc_now
from api.core.database import Database
from api.graphql.context import Services
from api.hall import jobs as hall_jobs
from api.hall.models import HallApplication
from api.settings import Settings
from tests.conftest import make_settings
from tests.e2e.test_tickets_worker import ROOT, SECRET, Worker, eventually, ready, unsent_outbox
from tests.hall.conftest import db_id, make_desk, multipart, png

pytestmark = pytest.mark.e2e

SUBMIT = """
mutation Submit($input: SubmitHallApplicationInput!) {
  submitHallApplication(input: $input) { __typename ... on HallApplicationSuccess { application { id state } } }
}
"""
ACCEPT = """
mutation A($input: MoveHallApplicationInput!) { acceptHallApplication(input: $input) { __typename } }
"""
APPLICATION = """
query A($id: ID!) {
  node(id: $id) { ... on HallApplication { state escalatedAt timeline { kind handlerName } } }
}
"""
INBOX = "{ inbox(first: 20) { edges { node { title subjectKind } } } }"

Gql = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def settings(pg_url: str, redis_url: str, redis_namespace: str, tmp_path: Path) -> Settings:
    return make_settings(pg_url, redis_url=redis_url, redis_namespace=redis_namespace, media_dir=str(tmp_path / "m"))


@pytest.fixture
def jobs(settings: Settings) -> DramatiqJobSender:
    """What api/app.build_services wires in production: a Dramatiq sender over the Redis broker."""
    return DramatiqJobSender(build_broker(settings))


@pytest.fixture
def worker(
    pg_url: str, redis_url: str, redis_namespace: str, tmp_path: Path, db: Database, redis_client: redis.Redis
) -> Iterator[Worker]:
    """One `linli worker` (1 process, 2 threads) in its own session; gone before `db` and Redis clean up."""
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


async def titles(gql: Gql, token: str) -> list[str]:
    edges = (await gql(INBOX, token=token))["inbox"]["edges"]
    return [e["node"]["title"] for e in edges]


@pytest.mark.timeout(180)
async def test_the_worker_announces_steps_and_escalates_a_lapsed_application_once(
    services: Services, client: Any, gql: Gql, worker: Worker
) -> None:
    # given: a running worker and a community with its procedures
    desk = await make_desk(services)
    await ready(worker, processes=1)

    # when: a resident applies for a residence certificate through GraphQL
    variables = {"input": {"procedureId": desk.procedure_gid("residence-certificate"),
                           "documents": [{"slot": "id_card", "file": None}, {"slot": "tenancy_or_deed", "file": None}]}}  # fmt: skip
    files = {"input.documents.0.file": png(), "input.documents.1.file": png()}
    submitted = (await multipart(client, SUBMIT, variables, files, token=desk.resident.token))["submitHallApplication"]
    assert submitted["__typename"] == "HallApplicationSuccess"
    app_gid = submitted["application"]["id"]

    # then: the worker puts it in the hall staff's inbox
    async def staff_told() -> bool:
        return await titles(gql, desk.staff.token) == ["新的办事申请：居住证明"]

    await eventually(staff_told, within=30, what="staff hear of the new application")

    # when: staff accept it; then: the applicant hears of it
    accepted = await gql(ACCEPT, {"input": {"applicationId": app_gid}}, token=desk.staff.token)
    assert accepted["acceptHallApplication"]["__typename"] == "HallApplicationSuccess"

    async def applicant_told() -> bool:
        return await titles(gql, desk.resident.token) == ["居住证明：已受理"]

    await eventually(applicant_told, within=30, what="the applicant hears it was accepted")

    # when: its time limit lapses and the scan runs (twice: once queued here, once from the scheduler)
    async with services.db.unit_of_work(services.jobs) as uow:
        now = utc_now()
        await uow.session.execute(
            update(HallApplication)
            .where(HallApplication.id == db_id(app_gid))
            .values(warn_at=now - timedelta(hours=9), due_at=now - timedelta(minutes=1))
        )
        uow.enqueue(hall_jobs.scan("e2e-1"))
    async with services.db.unit_of_work(services.jobs) as uow:
        uow.enqueue(hall_jobs.scan("e2e-2"))

    # then: it is escalated, once, to the community's admin and the handler
    async def escalated() -> bool:
        node = (await gql(APPLICATION, {"id": app_gid}, token=desk.resident.token))["node"]
        return node["escalatedAt"] is not None

    await eventually(escalated, within=30, what="the lapsed application is escalated")
    await asyncio.sleep(2)  # let the second scan run too
    admin = await titles(gql, desk.admin.token)
    assert admin.count("已超时：居住证明") == 1
    assert (await titles(gql, desk.staff.token)).count("已超时：居住证明") == 1
    node = (await gql(APPLICATION, {"id": app_gid}, token=desk.resident.token))["node"]
    assert [e["kind"] for e in node["timeline"]] == ["SUBMITTED", "ACCEPTED", "ESCALATED"]

    async def outbox_empty() -> bool:
        return await unsent_outbox(services.db) == 0

    await eventually(outbox_empty, within=15, what="every outbox row is published")

    # when: the worker is stopped as systemd would; then: it exits cleanly
    worker.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.proc.wait, 20) == 0
