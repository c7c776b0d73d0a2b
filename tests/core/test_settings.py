from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from api.app import build_services, create_app
from api.core.crypto import PersonalDataCipher
from api.core.database import Database
from api.core.jobs import RecordingJobSender
from api.core.viewer import Role
from api.graphql.context import Services
from api.registry.models import PersonalDataAccess
from api.settings import DEV_SECRET_KEY, Environment, Settings
from tests.conftest import TEST_SECRET
from tests.factories import make_estate, make_login

PRODUCTION_KEY = "production-key-" + "k" * 40
INTROSPECTION = "{ __schema { types { name } } }"
NO_INTROSPECTION = "GraphQL introspection has been disabled, but the requested query contained the field '{}'."

AppClient = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


def production(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"environment": Environment.PRODUCTION, "secret_key": PRODUCTION_KEY}
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def no_linli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read LINLI_* variables; these tests state every value they rely on."""
    for name in list(os.environ):
        if name.startswith("LINLI_"):
            monkeypatch.delenv(name)


@pytest.fixture
def app_client(db: Database) -> AppClient:
    """An HTTP client on an app built from the given settings (its database is the test database)."""

    @asynccontextmanager
    async def open_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        services = build_services(settings, jobs=RecordingJobSender())
        await services.db.dispose()
        services.db = db
        app = create_app(services.settings, services=services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://linli.test") as client:
            yield client

    return open_client


# -- production needs real values --------------------------------------------------------------


def test_production_refuses_the_development_secret_key() -> None:
    with pytest.raises(ValidationError, match="LINLI_SECRET_KEY must be set to a random value of 32\\+ characters"):
        production(secret_key=DEV_SECRET_KEY)


def test_production_refuses_the_default_secret_key() -> None:
    # given: no secret key at all, so the development default
    with pytest.raises(ValidationError, match="LINLI_SECRET_KEY must be set"):
        Settings(_env_file=None, environment=Environment.PRODUCTION)


@pytest.mark.parametrize("length", [0, 1, 16, 31])
def test_production_refuses_a_short_secret_key(length: int) -> None:
    with pytest.raises(ValidationError, match="LINLI_SECRET_KEY must be set"):
        production(secret_key="s" * length)


def test_production_accepts_a_32_character_secret_key() -> None:
    settings = production(secret_key="s" * 32)
    assert settings.secret_key.get_secret_value() == "s" * 32


@pytest.mark.parametrize("environment", [Environment.EMBEDDED, Environment.DEVELOPMENT, Environment.TEST])
def test_other_environments_allow_the_development_key(environment: Environment) -> None:
    settings = Settings(_env_file=None, environment=environment)
    assert settings.secret_key.get_secret_value() == DEV_SECRET_KEY
    assert settings.graphql_ide is True
    assert settings.graphql_introspection is True


def test_production_turns_off_the_ide_and_introspection_even_when_asked_for() -> None:
    # when
    settings = production(graphql_ide=True, graphql_introspection=True)
    # then
    assert settings.graphql_ide is False
    assert settings.graphql_introspection is False


def test_production_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.setenv("LINLI_ENVIRONMENT", "production")
    monkeypatch.setenv("LINLI_SECRET_KEY", "short")
    # when / then
    with pytest.raises(ValidationError, match="LINLI_SECRET_KEY must be set"):
        Settings(_env_file=None)
    monkeypatch.setenv("LINLI_SECRET_KEY", PRODUCTION_KEY)
    monkeypatch.setenv("LINLI_GRAPHQL_INTROSPECTION", "true")
    settings = Settings(_env_file=None)
    assert settings.environment is Environment.PRODUCTION
    assert settings.graphql_introspection is False


# -- what a production app serves --------------------------------------------------------------


async def test_a_production_app_refuses_introspection(app_client: AppClient, pg_url: str) -> None:
    # given
    async with app_client(production(database_url=pg_url)) as client:
        # when
        response = await client.post("/graphql", json={"query": INTROSPECTION})
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == [
        NO_INTROSPECTION.format("__schema"),
        NO_INTROSPECTION.format("types"),
    ]


async def test_a_production_app_refuses_introspection_nested_in_a_query(app_client: AppClient, pg_url: str) -> None:
    async with app_client(production(database_url=pg_url)) as client:
        response = await client.post(
            "/graphql", json={"query": '{ viewer { isAuthenticated } __type(name: "Query") { name } }'}
        )
    body = response.json()
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == [NO_INTROSPECTION.format("__type")]


async def test_the_embedded_default_allows_introspection(app_client: AppClient, pg_url: str) -> None:
    # given: the defaults but for the database
    async with app_client(Settings(_env_file=None, database_url=pg_url)) as client:
        # when
        response = await client.post("/graphql", json={"query": INTROSPECTION})
    # then
    body = response.json()
    assert "errors" not in body
    names = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"Query", "Mutation", "Resident", "Community"} <= names


async def test_a_production_app_serves_no_graphiql(app_client: AppClient, pg_url: str) -> None:
    async with app_client(production(database_url=pg_url)) as client:
        response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


async def test_the_embedded_default_serves_graphiql(app_client: AppClient, pg_url: str) -> None:
    async with app_client(Settings(_env_file=None, database_url=pg_url)) as client:
        response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


# -- crashes are masked ------------------------------------------------------------------------

REVEAL = """
{ residents(first: 1) { edges { node { name nationalId(reveal: true, purpose: "核对身份信息") } } } }
"""


async def test_an_unexpected_exception_is_masked_without_a_traceback(services: Services, db: Database) -> None:
    # given: residents encrypted with the test key, and an app whose cipher has another key,
    # so that decrypting raises ValueError inside the resolver
    estate = await make_estate(services, households=1, members=1)
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=estate.community)
    wrong_key = "another-secret-key-" + "z" * 40
    assert wrong_key != TEST_SECRET
    services.cipher = PersonalDataCipher(wrong_key)
    app = create_app(services.settings, services=services)
    transport = httpx.ASGITransport(app=app)
    # when
    async with httpx.AsyncClient(transport=transport, base_url="http://linli.test") as client:
        response = await client.post(
            "/graphql", json={"query": REVEAL}, headers={"Authorization": f"Bearer {admin.token}"}
        )
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"] == [
        {
            "message": "Internal server error.",
            "locations": [{"line": 2, "column": 45}],
            "path": ["residents", "edges", 0, "node", "nationalId"],
        }
    ]
    for leak in ("Traceback", "ValueError", "decrypted", "InvalidToken", ".py"):
        assert leak not in response.text
    # and the failed read was not logged as a disclosure
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(PersonalDataAccess)) == 0


async def test_the_same_read_with_the_right_key_succeeds(services: Services, gql) -> None:
    # given: the control for the test above, through the same query with the right key
    estate = await make_estate(services, households=1, members=1)
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=estate.community)
    # when
    data = await gql(REVEAL, token=admin.token)
    # then
    [edge] = data["residents"]["edges"]
    assert edge["node"]["name"] == estate.residents[0].name
    assert len(edge["node"]["nationalId"]) == 18
    assert services.cipher.lookup_hash(edge["node"]["nationalId"]) == estate.residents[0].national_id_hash
