"""Test fixtures: a migrated PostgreSQL database per xdist worker, Redis, the app and factories."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy import text

from api.app import build_services, create_app
from api.core.database import Database
from api.core.jobs import RecordingJobSender
from api.core.migrations import upgrade
from api.graphql.context import Services
from api.models import metadata
from api.settings import Environment, Settings

PG_ADMIN_URL = os.environ.get("LINLI_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LINLI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def _require(service: str, ok: bool) -> None:
    if ok:
        return
    message = f"{service} is not reachable; start it (see README) — the suite runs on real services"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": Environment.TEST,
        "database_url": database_url,
        "redis_url": "",
        "secret_key": TEST_SECRET,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        "seed_on_start": False,
        "db_pool_size": 5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def run_id(request: pytest.FixtureRequest) -> str:
    """Unique per test run and xdist worker, so concurrent runs never share a database or keys."""
    workerinput = getattr(request.config, "workerinput", {})
    run = str(workerinput.get("testrunuid", uuid.uuid4().hex))[:8]
    return f"{run}_{workerinput.get('workerid', 'main')}"


@pytest.fixture(scope="session")
def pg_url(run_id: str) -> Iterator[str]:
    """A fresh database for this run and xdist worker, migrated with Alembic, dropped at the end."""
    _require("PostgreSQL", _reachable(PG_ADMIN_URL, 5432))
    name = f"linli_test_{run_id}"

    async def admin(*statements: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    _require("Redis", _reachable(REDIS_URL, 6379))
    return REDIS_URL


@pytest.fixture
def redis_namespace(run_id: str) -> str:
    """A Dramatiq namespace of this run's own; the broker's keys all start with it."""
    return f"linli-test-{run_id}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def redis_client(redis_url: str, redis_namespace: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{redis_namespace}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def settings(pg_url: str) -> Settings:
    return make_settings(pg_url)


TABLES = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, pool_size=5)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        await database.dispose()


@pytest.fixture
def jobs() -> RecordingJobSender:
    return RecordingJobSender()


@pytest.fixture
async def services(settings: Settings, db: Database, jobs: RecordingJobSender) -> AsyncIterator[Services]:
    built = build_services(settings, jobs=jobs)
    built.db = db
    yield built
    await built.limiter.close()


@pytest.fixture
async def client(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://linli.test") as c:
        yield c


Gql = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def gql_raw(client: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    """POST a document; returns the whole response body (data and errors)."""

    async def run(query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return run


@pytest.fixture
def gql(gql_raw: Callable[..., Awaitable[dict[str, Any]]]) -> Gql:
    """POST a document and return `data`, failing the test on any GraphQL error."""

    async def run(query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> dict[str, Any]:
        body = await gql_raw(query, variables, token=token)
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    return run
