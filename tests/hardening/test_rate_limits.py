"""Rate limits per client address and per account, in Redis, and the login lockout."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.core.ratelimit import Limit, MemoryRateLimiter, RedisRateLimiter
from api.core.viewer import Role
from tests.conftest import make_settings
from tests.factories import PASSWORD, make_community, make_login

VIEWER = {"query": "{ viewer { isAuthenticated } }"}
LOGIN = """
mutation($input: LoginInput!) {
  login(input: $input) {
    __typename
    ... on TooManyAttemptsError { retryAfterSeconds code }
  }
}
"""


@pytest.fixture
async def redis_limiter(redis_url, redis_namespace, redis_client):
    limiter = RedisRateLimiter(redis_url, prefix=f"{redis_namespace}:rl:")
    yield limiter
    await limiter.close()


@pytest.fixture
async def limited_client(pg_url, services, redis_limiter):
    settings = make_settings(pg_url, rate_limit_per_address=5, rate_limit_per_account=3, login_max_failures=3)
    services.settings = settings
    services.limiter = redis_limiter
    app = create_app(settings, services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linli.test") as client:
        yield client


async def test_an_address_over_its_limit_gets_429_with_retry_after(limited_client) -> None:
    answers = [await limited_client.post("/graphql", json=VIEWER) for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429, 429]
    refused = answers[5]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert refused.headers["x-request-id"]


async def test_an_account_over_its_limit_gets_429(limited_client, services) -> None:
    login = await make_login(services, role=Role.STAFF, community=await make_community(services.db))
    headers = {"Authorization": f"Bearer {login.token}"}
    answers = [(await limited_client.post("/graphql", json=VIEWER, headers=headers)).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


async def test_repeated_wrong_passwords_lock_the_account_for_a_while(pg_url, services, redis_limiter) -> None:
    settings = make_settings(pg_url, login_max_failures=3)
    services.settings = settings
    services.limiter = redis_limiter
    community = await make_community(services.db)
    victim = await make_login(services, role=Role.RESIDENT, community=community)
    other = await make_login(services, role=Role.RESIDENT, community=community)
    app = create_app(settings, services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linli.test") as client:

        async def login(phone: str, password: str) -> Any:
            body = (
                await client.post(
                    "/graphql", json={"query": LOGIN, "variables": {"input": {"phone": phone, "password": password}}}
                )
            ).json()
            return body["data"]["login"]

        wrong = [await login(victim.phone, "wrong") for _ in range(3)]
        locked = await login(victim.phone, PASSWORD)
        unaffected = await login(other.phone, PASSWORD)
    assert [w["__typename"] for w in wrong] == ["InvalidCredentialsError"] * 3
    assert locked["__typename"] == "TooManyAttemptsError"
    assert locked["code"] == "TOO_MANY_ATTEMPTS"
    assert 0 < locked["retryAfterSeconds"] <= 15 * 60
    assert unaffected["__typename"] == "LoginSuccess"


async def test_a_successful_login_clears_the_failures(services, redis_limiter) -> None:
    key = f"login-failures:{uuid.uuid4().hex}"
    limit = Limit(2, 60)
    await redis_limiter.hit(key, limit)
    await redis_limiter.hit(key, limit)
    assert await redis_limiter.blocked(key, limit) is not None
    await redis_limiter.reset(key)
    assert await redis_limiter.blocked(key, limit) is None


async def test_the_limiter_lets_requests_through_when_redis_is_unreachable() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", prefix="x:")
    try:
        assert await limiter.hit("k", Limit(1, 60)) is None
        assert await limiter.hit("k", Limit(1, 60)) is None
    finally:
        await limiter.close()


async def test_the_in_process_limiter_counts_per_window() -> None:
    now = [1000.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    limit = Limit(2, 60)
    assert [await limiter.hit("a", limit) for _ in range(3)] == [None, None, 20]
    assert await limiter.hit("b", limit) is None
    now[0] = 1020.0  # the next window
    assert await limiter.hit("a", limit) is None
