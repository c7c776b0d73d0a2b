"""ticketUpdates over a real websocket: uvicorn serves the app, `websockets` speaks graphql-transport-ws.

Changes are made with mutations and pushed by the real `tickets.notify` handler (run by the
JobRunner in this loop) through the in-process bus the server listens on.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from api.app import create_app
from api.core.pubsub import InProcessPubSub, ticket_channel
from api.core.viewer import Role
from tests.factories import make_estate, make_login
from tests.tickets.test_flow import CHANGE, SUBMIT, category_id

PROTOCOL = Subprotocol("graphql-transport-ws")

UPDATES = """
subscription Updates($id: ID!) {
  ticketUpdates(ticketId: $id) { kind status note public at ticket { id status acknowledgedAt } }
}
"""

COMMENT = """
mutation Comment($input: CommentOnTicketInput!) {
  commentOnTicket(input: $input) { __typename ... on UserError { code } }
}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def ws_url(settings, services) -> AsyncIterator[str]:
    """The app served by uvicorn on a free localhost port, for the length of one test."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, services=services), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            assert not task.done(), "uvicorn stopped before it started"
            await asyncio.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@asynccontextmanager
async def graphql_ws(
    url: str, *, token: str | None = None, header_token: str | None = None
) -> AsyncIterator[ClientConnection]:
    """A connection past `connection_ack`; the token goes in the init payload or the handshake header."""
    headers = {"Authorization": f"Bearer {header_token}"} if header_token else None
    async with connect(url, subprotocols=[PROTOCOL], additional_headers=headers, proxy=None) as ws:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "connection_ack"}
        yield ws


async def subscribe(ws: ClientConnection, op_id: str, ticket_id: str) -> None:
    message = {"id": op_id, "type": "subscribe", "payload": {"query": UPDATES, "variables": {"id": ticket_id}}}
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection, wait: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait))
    return message


async def silent(ws: ClientConnection, wait: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return True
    return False


async def listening(bus: InProcessPubSub, channel: str, count: int) -> None:
    """Wait until `count` subscriptions listen on `channel` (the server subscribes asynchronously)."""
    for _ in range(500):  # 5 s
        if bus.subscriber_count(channel) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nobody subscribed to {channel}")


async def submit_street_light(services, gql, desk, runner) -> tuple[str, int]:
    cat = await category_id(services, desk.estate.community.id, "street_light")
    data = await gql(
        SUBMIT,
        {"input": {"categoryId": cat, "description": "路灯不亮", "place": {"latitude": 38.04, "longitude": 114.51}}},
        token=desk.reporter.token,
    )
    await runner.drain(skip={"dispatch.expire_offer"})  # the submission's own pushes go out before anyone listens
    ticket_gid = data["submitTicket"]["ticket"]["id"]
    from strawberry.relay import GlobalID

    return ticket_gid, int(GlobalID.from_id(ticket_gid).node_id)


async def test_the_reporter_receives_the_acknowledgement_as_it_happens(services, gql, desk, runner, ws_url):
    # given
    bus = services.pubsub
    assert isinstance(bus, InProcessPubSub)
    ticket_gid, ticket_id = await submit_street_light(services, gql, desk, runner)
    async with graphql_ws(ws_url, token=desk.reporter.token) as ws:
        await subscribe(ws, "1", ticket_gid)
        await listening(bus, ticket_channel(ticket_id), 1)
        # when
        await gql(
            CHANGE,
            {"input": {"ticketId": ticket_gid, "action": "ACKNOWLEDGE", "note": "已电话联系"}},
            token=desk.staff.token,
        )
        ran = await runner.drain(skip={"dispatch.expire_offer"})
        update = await receive(ws)
        quiet = await silent(ws)
    # then
    assert "tickets.notify" in ran
    assert update["type"] == "next"
    assert update["id"] == "1"
    assert "errors" not in update["payload"]
    pushed = update["payload"]["data"]["ticketUpdates"]
    assert {k: pushed[k] for k in ("kind", "status", "note", "public")} == {
        "kind": "status",
        "status": "ACKNOWLEDGED",
        "note": "已电话联系",
        "public": True,
    }
    assert pushed["ticket"]["id"] == ticket_gid
    assert pushed["ticket"]["status"] == "ACKNOWLEDGED"  # reloaded, not the copy cached at subscribe time
    assert pushed["ticket"]["acknowledgedAt"] is not None
    assert quiet
    assert bus.subscriber_count(ticket_channel(ticket_id)) == 0  # the socket closed: unsubscribed


async def test_an_internal_note_reaches_staff_but_not_the_reporter(services, gql, desk, runner, ws_url):
    # given: the reporter authenticates with the handshake header, staff with the init payload
    bus = services.pubsub
    ticket_gid, ticket_id = await submit_street_light(services, gql, desk, runner)
    async with (
        graphql_ws(ws_url, header_token=desk.reporter.token) as reporter,
        graphql_ws(ws_url, token=desk.staff.token) as staff,
    ):
        await subscribe(reporter, "r", ticket_gid)
        await subscribe(staff, "s", ticket_gid)
        await listening(bus, ticket_channel(ticket_id), 2)
        await listening(bus, ticket_channel(ticket_id, staff=True), 1)
        # when: an internal note, then a public one
        for note, public in (("内部：先联系物业", False), ("已安排电工今天处理", True)):
            result = await gql(
                COMMENT, {"input": {"ticketId": ticket_gid, "note": note, "public": public}}, token=desk.staff.token
            )
            assert result["commentOnTicket"]["__typename"] == "TicketSuccess"
        await runner.drain(skip={"dispatch.expire_offer"})
        staff_got = [await receive(staff), await receive(staff)]
        reporter_got = await receive(reporter)
        reporter_quiet = await silent(reporter)
    # then
    assert [
        (m["payload"]["data"]["ticketUpdates"]["note"], m["payload"]["data"]["ticketUpdates"]["public"])
        for m in staff_got
    ] == [
        ("内部：先联系物业", False),
        ("已安排电工今天处理", True),
    ]
    assert reporter_got["payload"]["data"]["ticketUpdates"]["note"] == "已安排电工今天处理"
    assert reporter_quiet  # the internal note never reached the reporter, before or after


async def test_a_stranger_gets_not_found_and_is_never_subscribed(services, gql, desk, runner, ws_url):
    # given: a resident of another community, and nobody at all
    bus = services.pubsub
    ticket_gid, ticket_id = await submit_street_light(services, gql, desk, runner)
    elsewhere = await make_estate(services, households=1, members=1)
    stranger = await make_login(
        services, role=Role.RESIDENT, community=elsewhere.community, resident=elsewhere.residents[0]
    )
    errors = []
    # when
    for token in (stranger.token, None):
        async with graphql_ws(ws_url, token=token) as ws:
            await subscribe(ws, "x", ticket_gid)
            errors.append(await receive(ws))
    # then
    for message in errors:
        assert message["type"] == "error"
        assert message["id"] == "x"
        assert [(e["message"], e["extensions"]["code"]) for e in message["payload"]] == [
            ("No such ticket.", "NOT_FOUND")
        ]
    assert bus.subscriber_count(ticket_channel(ticket_id)) == 0


async def test_an_invalid_token_in_connection_init_closes_the_socket_with_4403(ws_url):
    # given
    async with connect(ws_url, subprotocols=[PROTOCOL], proxy=None) as ws:
        # when
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer not-a-token"}}))
        # then
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403
