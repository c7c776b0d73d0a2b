"""A real third-party GraphQL client against the real app in a real HTTP server.

The `gql` library talks to uvicorn over TCP exactly as a front end would: it logs in, sends
the bearer token, validates its documents against the schema it fetched by introspection,
and reads typed user errors through the `UserError` interface.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
import uvicorn
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import GraphQLError
from strawberry import relay

from api.app import create_app
from api.core.viewer import Role
from api.registry.models import Building
from tests.factories import PASSWORD, Estate, make_estate, make_login, national_id


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def server_url(settings, services) -> AsyncIterator[str]:
    """The app served by uvicorn on a free localhost port, for the length of one test."""
    port = free_port()
    config = uvicorn.Config(create_app(settings, services=services), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            assert not task.done(), "uvicorn stopped before it started"
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


LOGIN = gql(
    """
    mutation Login($input: LoginInput!) {
      login(input: $input) {
        __typename
        ... on LoginSuccess { token viewer { isAuthenticated } }
        ... on UserError { message field code }
      }
    }
    """
)

COMMUNITIES = gql("query Communities { communities(first: 10) { totalCount edges { node { id code name } } } }")

# The page a front end shows for one community, down to each household's member count,
# starting at `node(id:)` as a community page does.
REGISTRY_PAGE = gql(
    """
    query RegistryPage($id: ID!) {
      node(id: $id) {
        ... on Community {
          compounds(first: 10) { totalCount edges { node { name
            buildings(first: 10) { totalCount edges { node { name
              households(first: 10) { totalCount edges { node { unit room address
                members(first: 10) { totalCount } } } } } } } } } }
        }
      }
    }
    """
)

REGISTER_RESIDENT = gql(
    """
    mutation Register($input: RegisterResidentInput!) {
      registerResident(input: $input) {
        __typename
        ... on RegisterResidentSuccess { resident { id name } }
        ... on UserError { message field code }
      }
    }
    """
)


async def log_in(url: str, phone: str) -> str:
    """Log in as a front end does before it has a token; validated against the fetched schema."""
    async with Client(transport=HTTPXAsyncTransport(url=url), fetch_schema_from_transport=True) as session:
        result = await session.execute(
            GraphQLRequest(LOGIN, variable_values={"input": {"phone": phone, "password": PASSWORD}})
        )
    assert result["login"]["__typename"] == "LoginSuccess", result
    assert result["login"]["viewer"] == {"isAuthenticated": True}
    token: str = result["login"]["token"]
    return token


def authorised(url: str, token: str) -> Client:
    transport = HTTPXAsyncTransport(url=url, headers={"Authorization": f"Bearer {token}"})
    return Client(transport=transport, fetch_schema_from_transport=True)


def expected_page(estate: Estate) -> dict[str, Any]:
    """The community's page as the factories built it: children ordered by id."""
    members = {h.id: sum(1 for r in estate.residents if r.household_id == h.id) for h in estate.households}

    def households(building: Building) -> dict[str, Any]:
        rows = sorted((h for h in estate.households if h.building_id == building.id), key=lambda h: h.id)
        return {
            "totalCount": len(rows),
            "edges": [
                {
                    "node": {
                        "unit": h.unit,
                        "room": h.room,
                        "address": f"{building.name}{h.unit}单元{h.room}",
                        "members": {"totalCount": members[h.id]},
                    }
                }
                for h in rows
            ],
        }

    buildings = sorted(estate.buildings, key=lambda b: b.id)
    return {
        "node": {
            "compounds": {
                "totalCount": 1,
                "edges": [
                    {
                        "node": {
                            "name": estate.compound.name,
                            "buildings": {
                                "totalCount": len(buildings),
                                "edges": [{"node": {"name": b.name, "households": households(b)}} for b in buildings],
                            },
                        }
                    }
                ],
            }
        }
    }


async def test_a_front_end_logs_in_and_reads_a_nested_registry_page(services, server_url) -> None:
    # given: the viewer's community, and another one they must not see
    estate = await make_estate(services, households=4, members=2, code="gql-client")
    await make_estate(services, households=1, members=1, code="gql-other")
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    # when
    token = await log_in(server_url, staff.phone)
    async with authorised(server_url, token) as session:
        communities = await session.execute(COMMUNITIES)
        community_id = communities["communities"]["edges"][0]["node"]["id"]
        page = await session.execute(GraphQLRequest(REGISTRY_PAGE, variable_values={"id": community_id}))
    # then
    assert communities == {
        "communities": {
            "totalCount": 1,
            "edges": [
                {
                    "node": {
                        "id": str(relay.GlobalID("Community", str(estate.community.id))),
                        "code": "gql-client",
                        "name": estate.community.name,
                    }
                }
            ],
        }
    }
    assert page == expected_page(estate)
    assert (
        sum(
            h["node"]["members"]["totalCount"]
            for b in page["node"]["compounds"]["edges"][0]["node"]["buildings"]["edges"]
            for h in b["node"]["households"]["edges"]
        )
        == 8
    )


async def test_a_wrong_check_digit_comes_back_as_a_typed_user_error(services, server_url) -> None:
    # given: a valid ID number with its check character replaced
    estate = await make_estate(services, households=1, members=1, code="gql-client")
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    valid = national_id(date(1984, 6, 1))
    wrong = valid[:17] + ("0" if valid[17] != "0" else "1")
    household = str(relay.GlobalID("Household", str(estate.households[0].id)))
    token = await log_in(server_url, staff.phone)
    # when
    async with authorised(server_url, token) as session:
        variables = {"input": {"householdId": household, "name": "王五", "nationalId": wrong}}
        result = await session.execute(GraphQLRequest(REGISTER_RESIDENT, variable_values=variables))
    # then
    assert result == {
        "registerResident": {
            "__typename": "InvalidNationalIdError",
            "message": "The ID number's check digit is wrong; please check it again.",
            "field": "nationalId",
            "code": "INVALID_NATIONAL_ID",
        }
    }


async def test_the_client_rejects_a_document_the_server_schema_does_not_have(services, server_url) -> None:
    # given
    estate = await make_estate(services, households=1, members=1, code="gql-client")
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    token = await log_in(server_url, staff.phone)
    # when / then: validated locally against the fetched schema, never sent
    async with authorised(server_url, token) as session:
        with pytest.raises(GraphQLError, match="Cannot query field 'nationalIdNumber' on type 'Resident'"):
            await session.execute(gql("{ residents { edges { node { nationalIdNumber } } } }"))


async def test_the_server_refuses_a_document_deeper_than_its_limit(services, server_url) -> None:
    # given: the registry tree from the `communities` root down to each member's building: 17 levels
    estate = await make_estate(services, households=1, members=1, code="gql-client")
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    token = await log_in(server_url, staff.phone)
    too_deep = gql(
        """
        query TooDeep {
          communities { edges { node {
            compounds { edges { node {
              buildings { edges { node {
                households { edges { node {
                  members { edges { node { household { building { name } } } } }
                } } }
              } } }
            } } }
          } } }
        }
        """
    )
    # when / then
    async with authorised(server_url, token) as session:
        with pytest.raises(TransportQueryError) as raised:
            await session.execute(too_deep)
    assert raised.value.errors is not None
    assert [e["message"] for e in raised.value.errors] == ["'TooDeep' exceeds maximum operation depth of 16"]
    assert raised.value.data is None
