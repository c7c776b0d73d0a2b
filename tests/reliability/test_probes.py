"""The graphql-cop probes, ported, against `linli serve` in production mode.

Each probe sends what graphql-cop sends and passes when the server refuses (or, for the two
that are by design, when the design holds: GET queries are allowed for caching, and nothing is
authorised by cookies, so a cross-site GET or form cannot act as the user).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import Server, record

pytestmark = pytest.mark.reliability

Probe = Callable[[httpx.Client], tuple[bool, str]]


@pytest.fixture
def production(pg_url: str, redis_url: str, redis_namespace: str, tmp_path: Path, redis_client) -> Iterator[Server]:
    server = Server(
        tmp_path / "serve.log",
        environment="production",
        database_url=pg_url,
        redis_url=redis_url,
        redis_namespace=redis_namespace,
        graphql_ide="false",
        graphql_introspection="false",
        rate_limit_per_address="100000",
    )
    yield server
    server.stop()


def _errors(response: httpx.Response) -> list[dict[str, object]]:
    try:
        body = response.json()
    except ValueError:
        return []
    return list(body.get("errors") or []) if isinstance(body, dict) else []


def _refused(response: httpx.Response) -> bool:
    """Refused: an HTTP error status, or a GraphQL answer with errors and no data."""
    if response.status_code >= 400:
        return True
    body = response.json()
    return bool(body.get("errors")) and not body.get("data")


def alias_overloading(c: httpx.Client) -> tuple[bool, str]:
    query = "query { " + " ".join(f"a{i}: __typename" for i in range(101)) + " }"
    r = c.post("/graphql", json={"query": query})
    return _refused(r), f"101 aliases → {r.status_code}"


def batch_queries(c: httpx.Client) -> tuple[bool, str]:
    r = c.post("/graphql", json=[{"query": "query { __typename }"}] * 10)
    return r.status_code >= 400, f"array of 10 → {r.status_code}"


def directive_overloading(c: httpx.Client) -> tuple[bool, str]:
    query = "query { __typename " + "@aa" * 100 + " }"
    r = c.post("/graphql", json={"query": query})
    return _refused(r), f"100 directives → {r.status_code}"


def field_duplication(c: httpx.Client) -> tuple[bool, str]:
    query = "query { " + "__typename " * 5000 + "}"
    r = c.post("/graphql", json={"query": query})
    return _refused(r), f"5,000 duplicated fields → {r.status_code}"


def circular_introspection(c: httpx.Client) -> tuple[bool, str]:
    query = "query { __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    r = c.post("/graphql", json={"query": query})
    return _refused(r), f"circular introspection → {r.status_code}"


def introspection(c: httpx.Client) -> tuple[bool, str]:
    r = c.post("/graphql", json={"query": "query { __schema { queryType { name } } }"})
    return _refused(r), f"introspection → {r.status_code}"


def field_suggestions(c: httpx.Client) -> tuple[bool, str]:
    r = c.post("/graphql", json={"query": "query { viewr { isAuthenticated } }"})
    messages = " ".join(str(e.get("message")) for e in _errors(r))
    return "Did you mean" not in messages, messages[:80]


def graphiql(c: httpx.Client) -> tuple[bool, str]:
    r = c.get("/graphql", headers={"Accept": "text/html"})
    return "graphiql" not in r.text.lower(), f"GET text/html → {r.status_code}"


def get_mutation(c: httpx.Client) -> tuple[bool, str]:
    r = c.get("/graphql", params={"query": "mutation { logout { revoked } }"})
    return r.status_code >= 400, f"mutation over GET → {r.status_code}"


def post_form(c: httpx.Client) -> tuple[bool, str]:
    r = c.post("/graphql", data={"query": "mutation { logout { revoked } }"})
    return r.status_code >= 400, f"url-encoded POST → {r.status_code}"


def get_query(c: httpx.Client) -> tuple[bool, str]:
    # By design: read-only queries over GET (cacheable); bearer tokens only, so a cross-site GET
    # carries no credentials and sees only what an anonymous visitor sees.
    r = c.get("/graphql", params={"query": "query { viewer { isAuthenticated } }"}, headers={"Cookie": "session=x"})
    return r.json()["data"]["viewer"][
        "isAuthenticated"
    ] is False, f"GET query with a cookie → anonymous ({r.status_code})"


def trace_mode(c: httpx.Client) -> tuple[bool, str]:
    r = c.post("/graphql", json={"query": "query { __typename }", "extensions": {"tracing": True}})
    extensions = r.json().get("extensions") or {}
    return "tracing" not in extensions, f"extensions: {sorted(extensions)}"


def unhandled_errors(c: httpx.Client) -> tuple[bool, str]:
    answers = [
        c.post("/graphql", content=b"{not json", headers={"content-type": "application/json"}),
        c.post("/graphql", json={"query": 'query { node(id: "%%%") { id } }'}),
        c.post("/graphql", json={"query": 42}),
        c.post("/graphql", json={"query": "query($x: Int!) { __typename }", "variables": {"x": "nope"}}),
    ]
    leaked = [a.status_code for a in answers if a.status_code >= 500 or "Traceback" in a.text or 'File "' in a.text]
    return not leaked, f"{len(answers)} malformed requests, leaks: {leaked}"


def deep_recursion(c: httpx.Client) -> tuple[bool, str]:
    inner = "name"
    for _ in range(20):
        inner = f"compounds(first: 1) {{ edges {{ node {{ name community {{ {inner} }} }} }} }}"
    r = c.post("/graphql", json={"query": f"query {{ communities(first: 1) {{ edges {{ node {{ {inner} }} }} }} }}"})
    return _refused(r), f"depth 60+ → {r.status_code}"


PROBES: dict[str, Probe] = {
    "alias overloading": alias_overloading,
    "batch queries": batch_queries,
    "directive overloading": directive_overloading,
    "field duplication": field_duplication,
    "circular introspection": circular_introspection,
    "introspection": introspection,
    "field suggestions": field_suggestions,
    "GraphiQL in production": graphiql,
    "mutation over GET (CSRF)": get_mutation,
    "url-encoded POST (CSRF)": post_form,
    "query over GET (CSRF)": get_query,
    "trace mode": trace_mode,
    "unhandled errors / debug output": unhandled_errors,
    "deep recursion": deep_recursion,
}


def test_every_graphql_cop_probe_is_refused(production: Server) -> None:
    outcomes = {}
    with httpx.Client(base_url=production.url, timeout=30) as client:
        for name, probe in PROBES.items():
            outcomes[name] = probe(client)
    failed = {name: detail for name, (ok, detail) in outcomes.items() if not ok}
    record(
        "graphql-cop probes refused",
        f"{len(outcomes) - len(failed)}/{len(outcomes)}",
        "all",
        not failed,
        detail={name: detail for name, (_, detail) in outcomes.items()},
    )
    assert not failed, failed
