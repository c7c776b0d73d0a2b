"""The GraphQL abuse limits: cost budget, directives, suggestions, batching, GET mutations, content types."""

from __future__ import annotations

import httpx
from graphql import parse

from api.app import create_app
from api.graphql.cost import DEFAULT_PAGE, PAGE_LIMIT, operation_cost
from api.graphql.schema import build_schema
from tests.conftest import make_settings

NESTED = """
query Tree($n: Int!) {
  communities(first: $n) { edges { node { name
    compounds(first: $n) { edges { node { name
      buildings(first: $n) { edges { node { name
        households(first: $n) { edges { node { room } } } } } } } } } } } }
}
"""


def _tree_cost(n: int, levels: int) -> int:
    """2 for a connection + n x (1 edge + 1 node + the level below); the households hold only leaves."""
    return 2 + n * 2 if levels == 1 else 2 + n * (2 + _tree_cost(n, levels - 1))


def test_cost_multiplies_by_first_once_per_connection() -> None:
    schema = build_schema()._schema
    document = parse(NESTED)
    assert operation_cost(schema, document, None, {"n": 1}) == _tree_cost(1, 4) == 16
    assert operation_cost(schema, document, None, {"n": 3}) == _tree_cost(3, 4) == 320


def test_a_missing_first_counts_the_default_page_and_an_oversized_one_the_limit() -> None:
    schema = build_schema()._schema
    one = "query { communities(first: %s) { edges { node { name } } } }"
    assert operation_cost(schema, parse(one % "100000"), None, {}) == 2 + PAGE_LIMIT * 2
    assert operation_cost(schema, parse("query { communities { edges { node { name } } } }"), None, {}) == (
        2 + DEFAULT_PAGE * 2
    )


def test_mutations_cost_more_than_reads() -> None:
    schema = build_schema()._schema
    logout = parse("mutation { logout { revoked } }")
    assert operation_cost(schema, logout, None, {}) == 11


async def test_the_cost_is_reported_in_the_extensions(gql_raw, office) -> None:
    body = await gql_raw(NESTED, {"n": 2}, token=office.staff.token)
    assert not body.get("errors")
    assert body["extensions"]["cost"]["requested"] == operation_cost(
        build_schema()._schema, parse(NESTED), None, {"n": 2}
    )
    assert body["extensions"]["cost"]["budget"] == 50_000


async def test_a_query_over_the_budget_is_refused_before_it_runs(gql_raw, office) -> None:
    body = await gql_raw(NESTED, {"n": 100}, token=office.staff.token)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_COST_EXCEEDED"
    assert error["extensions"]["cost"] > error["extensions"]["budget"]


async def test_directive_overloading_is_refused(gql_raw) -> None:
    many = " ".join(f"v{i}: viewer @include(if: true) {{ isAuthenticated }}" for i in range(11))
    body = await gql_raw(f"query {{ {many} }}")
    assert body.get("data") is None
    assert "More than 10 directives" in body["errors"][0]["message"]


async def test_batched_requests_and_other_content_types_are_refused(client) -> None:
    batch = await client.post("/graphql", json=[{"query": "{ viewer { isAuthenticated } }"}] * 2)
    form = await client.post("/graphql", data={"query": "{ viewer { isAuthenticated } }"})
    text = await client.post(
        "/graphql", content=b'{"query": "{ viewer { isAuthenticated } }"}', headers={"content-type": "text/plain"}
    )
    assert batch.status_code == 400
    assert form.status_code == 400
    assert text.status_code == 400


async def test_a_mutation_over_get_is_refused(client, office) -> None:
    response = await client.get(
        "/graphql",
        params={"query": "mutation { logout { revoked } }"},
        headers={"Authorization": f"Bearer {office.staff.token}"},
    )
    assert response.status_code in (400, 405)
    still = await client.post(
        "/graphql",
        json={"query": "{ viewer { isAuthenticated } }"},
        headers={"Authorization": f"Bearer {office.staff.token}"},
    )
    assert still.json()["data"]["viewer"]["isAuthenticated"] is True  # the session was not ended


async def test_production_mode_hides_the_schema(pg_url, services) -> None:
    settings = make_settings(pg_url, graphql_introspection=False, graphql_ide=False)
    services.settings = settings
    app = create_app(settings, services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linli.test") as client:
        typo = await client.post("/graphql", json={"query": "{ viewr { isAuthenticated } }"})
        introspection = await client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        ide = await client.get("/graphql", headers={"accept": "text/html"})
    try:
        message = typo.json()["errors"][0]["message"]
        assert "Cannot query field 'viewr'" in message
        assert "Did you mean" not in message
        assert "introspection" in introspection.json()["errors"][0]["message"].lower()
        assert ide.status_code != 200 or "graphiql" not in ide.text.lower()
    finally:
        build_schema(make_settings(pg_url))  # restore suggestions for the rest of this process


async def test_suggestions_are_given_in_development(gql_raw) -> None:
    body = await gql_raw("{ viewr { isAuthenticated } }")
    assert "Did you mean 'viewer'?" in body["errors"][0]["message"]
