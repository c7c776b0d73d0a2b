"""Request ids, redacted structured logs, and the Prometheus metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

import httpx

from api.app import create_app
from api.core.database import Database
from api.core.jobs import Job
from api.observability import JsonFormatter, RedactingFilter, redact, request_id_var
from tests.conftest import make_settings
from tests.factories import national_id

VIEWER = {"query": "query Who { viewer { isAuthenticated } }"}


async def test_each_response_carries_a_request_id(client) -> None:
    given = await client.post("/graphql", json=VIEWER, headers={"X-Request-ID": "abc-123"})
    fresh = await client.post("/graphql", json=VIEWER)
    hostile = await client.post("/graphql", json=VIEWER, headers={"X-Request-ID": "x" * 65})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(fresh.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "x" * 65


def test_id_numbers_and_phones_never_reach_a_log_line() -> None:
    from datetime import date

    number = national_id(date(1950, 3, 4))
    text = redact(f"resident {number} called from 13812345678 and +86 139 not-a-phone 1381234567890")
    assert text == "resident [id-number] called from [phone] and +86 139 not-a-phone 1381234567890"


def test_json_lines_carry_the_request_id_and_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "linli.access",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "phone %s",
            "args": ("13912345678",),
        }
    )
    record.route = "/graphql"
    token = request_id_var.set("req-1")
    try:
        RedactingFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-1"
    assert line["message"] == "phone [phone]"
    assert line["route"] == "/graphql"


async def test_metrics_count_requests_by_operation_and_report_the_outbox(client, services) -> None:
    await client.post("/graphql", json=VIEWER)
    await client.post("/graphql", json={"query": "{ nope }"})
    async with services.db.unit_of_work() as uow:
        uow.enqueue(Job("accounts.purge_expired_sessions", "maintenance", {"period_key": "x"}))
    body = (await client.get("/metrics")).text
    assert 'linli_http_request_seconds_count{operation="query:Who",route="/graphql",status="200"} 1.0' in body
    assert 'linli_graphql_errors_total{code="GRAPHQL_VALIDATION"} 1.0' in body
    assert "linli_outbox_pending" in body
    assert "linli_dispatch_latency_seconds" in body


async def test_metrics_can_require_a_token(pg_url, services) -> None:
    settings = make_settings(pg_url, metrics_token="s3cret-metrics-token")
    app = create_app(settings, services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linli.test") as client:
        refused = await client.get("/metrics")
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert refused.status_code == 401
    assert allowed.status_code == 200


async def test_a_database_that_is_down_answers_503_with_retry_after(services) -> None:
    services.db = Database("postgresql+asyncpg://linli@127.0.0.1:1/nowhere", pool_size=1)
    app = create_app(services.settings, services=services)
    login = {
        "query": "mutation($i: LoginInput!) { login(input: $i) { __typename } }",
        "variables": {"i": {"phone": "13912345678", "password": "x"}},
    }
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linli.test") as client:
            in_resolver = await client.post("/graphql", json=login)
            in_context = await client.post("/graphql", json=VIEWER, headers={"Authorization": "Bearer some-token"})
            ready = await client.get("/readyz")
    finally:
        await services.db.dispose()
    for answer in (in_resolver, in_context):
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert ready.status_code == 503


async def test_a_client_that_leaves_before_its_body_arrives_is_a_499_not_a_server_error(
    pg_url, services, caplog
) -> None:
    # given the app, and a client that disconnects before sending the POST body
    app = create_app(make_settings(pg_url), services=services)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/graphql", "raw_path": b"/graphql", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"40")],
        "client": ("127.0.0.1", 5000), "server": ("linli.test", 80),
    }  # fmt: skip
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    # when
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
    # then nothing is answered, nothing is logged as an error, and the request counts as 499
    assert sent == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("POST /graphql 499" in r.getMessage() for r in caplog.records)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linli.test") as client:
        body = (await client.get("/metrics")).text
    assert 'route="/graphql",status="499"' in body
