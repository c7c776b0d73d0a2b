"""Schemathesis against `linli serve`: every query and mutation of schema.graphql with generated input.

Each generated document is sent as a community admin of a small estate (so that permission
checks pass and the input reaches the domain code). Pass: no 5xx and no masked internal error
in any answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from api.core.viewer import Role
from tests.factories import make_estate, make_login
from tests.reliability.conftest import ROOT, Server, record, size

pytestmark = pytest.mark.reliability

EXAMPLES_PER_OPERATION = size(2, 25)

schemathesis.graphql.scalar("DateTime", st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())))
schemathesis.graphql.scalar("Date", st.dates().map(lambda d: nodes.String(d.isoformat())))
schemathesis.graphql.scalar("Upload", st.just(nodes.Null))
schemathesis.graphql.scalar("JSON", st.just(nodes.Null))


@pytest.fixture
def server(pg_url: str, redis_url: str, redis_namespace: str, tmp_path: Path, redis_client) -> Iterator[Server]:
    server = Server(
        tmp_path / "serve.log",
        database_url=pg_url,
        redis_url=redis_url,
        redis_namespace=redis_namespace,
        rate_limit_per_address="1000000",
        rate_limit_per_account="1000000",
    )
    yield server
    server.stop()


def fuzz(client: httpx.Client, operation: Any, failures: list[str]) -> int:
    """Send generated documents for one operation; returns how many were sent."""
    sent = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: Any) -> None:
        nonlocal sent
        response = client.post("/graphql", json={"query": case.body})
        sent += 1
        if (response.status_code >= 500 or "INTERNAL" in response.text) and len(failures) < 20:
            failures.append(f"{operation.label}: {response.status_code} {response.text[:200]} <- {case.body!r}")

    run()
    return sent


async def test_generated_documents_never_cause_a_server_error(services, server: Server) -> None:
    estate = await make_estate(services, households=3, members=2)
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=estate.community)
    schema = schemathesis.graphql.from_path(ROOT / "schema.graphql")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {admin.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        sent = sum(fuzz(client, operation, failures) for operation in operations)
    record(
        "schemathesis: generated GraphQL documents",
        {"cases": sent, "operations": len(operations), "server_errors": len(failures)},
        "0 server errors in at least 2,000 cases (full run)",
        not failures,
        failures=failures[:5],
    )
    assert not failures, json.dumps(failures[:5], ensure_ascii=False, indent=1)
