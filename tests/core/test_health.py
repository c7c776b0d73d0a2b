from __future__ import annotations

import time

import httpx

from api.app import build_services, create_app
from tests.conftest import make_settings


async def test_readyz_is_ok_when_database_and_broker_answer(client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "broker": "ok"}


async def test_healthz_answers_without_touching_dependencies(client) -> None:
    response = await client.get("/healthz")
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_503_fast_when_the_dependencies_are_down() -> None:
    # given: a database and a Redis broker on ports nothing listens on
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/nothing", redis_url="redis://127.0.0.1:1/0")
    services = build_services(settings)
    app = create_app(settings, services=services)
    # when
    started = time.monotonic()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linli.test") as c:
        response = await c.get("/readyz")
    elapsed = time.monotonic() - started
    await services.db.dispose()
    # then
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["database"].startswith("unavailable")
    assert body["broker"].startswith("unavailable")
    assert elapsed < 8
