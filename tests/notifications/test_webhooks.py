"""Signed webhooks end to end: a real HTTP receiver on 127.0.0.1, the real actor handlers, PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import pytest
import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.core.crypto import PersonalDataCipher
from api.core.database import Database
from api.core.migrations import upgrade
from api.core.pubsub import global_id
from api.core.viewer import Role, Viewer
from api.notifications import webhooks
from api.notifications.models import WebhookDelivery, WebhookEndpoint
from api.registry.models import Community
from tests.conftest import TEST_SECRET
from tests.factories import make_community, make_estate, make_login
from tests.jobs import HANDLERS, JobRunner
from tests.tickets.conftest import Desk, make_desk
from tests.tickets.test_flow import SUBMIT, category_id
from worker.actors.notifications import handle_deliver_webhook

REGISTER = """
mutation Register($input: RegisterWebhookInput!) {
  registerWebhook(input: $input) {
    __typename
    ... on RegisterWebhookSuccess { secret endpoint { id url active } }
    ... on UserError { message field code }
  }
}
"""

COMMENT = """
mutation Comment($input: CommentOnTicketInput!) {
  commentOnTicket(input: $input) { __typename }
}
"""

SKIP = {"dispatch.expire_offer", "notifications.deliver_webhook"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A front end's webhook endpoint: answers with the scripted statuses (then 200) and records each POST."""

    url: str
    script: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    during: Callable[[], Awaitable[None]] | None = None  # run while answering
    retry_after: str | None = None
    requests: list[Received] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        self.requests.append(Received({k.lower(): v for k, v in request.headers.items()}, await request.body()))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.during is not None:
            await self.during()
        status = self.script.pop(0) if self.script else 200
        headers = {"Retry-After": self.retry_after} if self.retry_after and status == 429 else None
        return Response(status_code=status, headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    r = Receiver(url=f"http://127.0.0.1:{port}/hooks/linli")
    app = Starlette(routes=[Route("/hooks/linli", r.endpoint, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            assert not task.done(), "the receiver stopped before it started"
            await asyncio.sleep(0.02)
    try:
        yield r
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


@pytest.fixture
async def desk(services) -> Desk:
    return await make_desk(services)


@pytest.fixture
async def admin(services, desk):
    return await make_login(services, role=Role.COMMUNITY_ADMIN, community=desk.estate.community)


async def register(gql_raw, token: str | None, community_id: int, url: str) -> dict[str, Any]:
    body: dict[str, Any] = await gql_raw(
        REGISTER, {"input": {"communityId": global_id("Community", community_id), "url": url}}, token=token
    )
    return body


async def registered(gql_raw, admin, desk, receiver) -> str:
    """Register the receiver; returns the secret shown once."""
    body = await register(gql_raw, admin.token, desk.estate.community.id, receiver.url)
    assert body["data"]["registerWebhook"]["__typename"] == "RegisterWebhookSuccess", body
    secret: str = body["data"]["registerWebhook"]["secret"]
    return secret


async def submit(services, gql, desk, runner) -> tuple[str, int]:
    cat = await category_id(services, desk.estate.community.id, "street_light")
    data = await gql(
        SUBMIT,
        {
            "input": {
                "categoryId": cat,
                "description": "3号楼东侧路灯不亮",
                "place": {"latitude": 38.04, "longitude": 114.51},
            }
        },
        token=desk.reporter.token,
    )
    await runner.drain(skip=SKIP)
    ticket_gid = data["submitTicket"]["ticket"]["id"]
    from strawberry.relay import GlobalID

    return ticket_gid, int(GlobalID.from_id(ticket_gid).node_id)


async def deliveries(services) -> list[WebhookDelivery]:
    async with services.db.read_session() as session:
        return list((await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all())


def webhook_jobs(jobs) -> list[int]:
    return [o.job.kwargs["delivery_id"] for o in jobs.sent if o.job.actor_name == "notifications.deliver_webhook"]


# -- registering -----------------------------------------------------------------------------


async def test_an_admin_registers_an_endpoint_and_sees_the_secret_once(services, gql_raw, desk, admin, receiver):
    # when
    body = await register(gql_raw, admin.token, desk.estate.community.id, receiver.url)
    # then
    result = body["data"]["registerWebhook"]
    assert result["__typename"] == "RegisterWebhookSuccess"
    assert result["endpoint"]["url"] == receiver.url
    assert result["endpoint"]["active"] is True
    assert result["secret"].startswith("whsec_")
    assert len(result["secret"]) >= 40
    async with services.db.read_session() as session:
        row = await session.scalar(select(WebhookEndpoint))
    assert row.community_id == desk.estate.community.id
    assert result["secret"] not in row.secret_encrypted  # stored encrypted, never in the clear
    assert services.cipher.decrypt(row.secret_encrypted) == result["secret"]
    again = await gql_raw("query($id: ID!) { node(id: $id) { ... on WebhookEndpoint { url } } }",
                          {"id": result["endpoint"]["id"]}, token=admin.token)  # fmt: skip
    staff_view = await gql_raw("query($id: ID!) { node(id: $id) { id } }", {"id": result["endpoint"]["id"]},
                               token=desk.staff.token)  # fmt: skip
    assert again["data"]["node"] == {"url": receiver.url}
    assert staff_view["data"]["node"] is None


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.org/linli",  # plain http to a real host
        "ftp://127.0.0.1/hook",
        "https://user:pw@hooks.example.org/linli",
        "not a url",
        "https://hooks.example.org/" + "x" * 500,
        "https://hooks.example.org:99999/linli",
    ],
)
async def test_a_bad_url_is_a_typed_error_and_writes_nothing(services, gql_raw, desk, admin, url):
    # when
    body = await register(gql_raw, admin.token, desk.estate.community.id, url)
    # then
    result = body["data"]["registerWebhook"]
    assert (result["__typename"], result["field"], result["code"]) == ("ValidationError", "url", "INVALID")
    async with services.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


async def test_https_and_local_http_urls_are_accepted():
    assert webhooks.validate_url(" https://hooks.example.org/linli?x=1 ") == "https://hooks.example.org/linli?x=1"
    assert webhooks.validate_url("http://localhost:8080/hook") == "http://localhost:8080/hook"
    assert webhooks.validate_url("http://127.0.0.1/hook") == "http://127.0.0.1/hook"


async def test_only_a_community_admin_may_register(services, gql_raw, desk, receiver):
    # given
    elsewhere = await make_estate(services, households=1, members=1)
    other_admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=elsewhere.community)
    # when
    as_staff = await register(gql_raw, desk.staff.token, desk.estate.community.id, receiver.url)
    as_other_admin = await register(gql_raw, other_admin.token, desk.estate.community.id, receiver.url)
    anonymous = await register(gql_raw, None, desk.estate.community.id, receiver.url)
    # then
    assert as_staff["data"] is None
    assert as_staff["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert as_other_admin["data"]["registerWebhook"]["code"] == "NOT_FOUND"
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    async with services.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


# -- delivering ------------------------------------------------------------------------------


async def test_a_ticket_event_is_posted_signed_and_without_personal_data(
    services, gql, gql_raw, desk, admin, receiver, runner, jobs
):
    # given
    secret = await registered(gql_raw, admin, desk, receiver)
    # when
    ticket_gid, _ = await submit(services, gql, desk, runner)
    [delivery_id] = webhook_jobs(jobs)
    before = int(time.time())
    await handle_deliver_webhook(delivery_id)
    # then
    [request] = receiver.requests
    h = request.headers
    assert h["content-type"] == "application/json"
    assert h["x-linli-event"] == "ticket.updated"
    assert h["x-linli-delivery"] == str(delivery_id)
    assert before - 1 <= int(h["x-linli-timestamp"]) <= int(time.time()) + 1
    expected = hmac.new(secret.encode(), h["x-linli-timestamp"].encode() + b"." + request.body, hashlib.sha256)
    assert h["x-linli-signature"] == f"sha256={expected.hexdigest()}"
    assert webhooks.verify(secret, timestamp=h["x-linli-timestamp"], body=request.body,
                           signature=h["x-linli-signature"], now=int(time.time()))  # fmt: skip
    assert not webhooks.verify(secret, timestamp=h["x-linli-timestamp"], body=request.body + b" ",
                               signature=h["x-linli-signature"], now=int(time.time()))  # fmt: skip
    payload = json.loads(request.body)
    at = payload.pop("at")
    assert payload == {
        "event": "ticket.updated",
        "communityId": global_id("Community", desk.estate.community.id),
        "ticketId": ticket_gid,
        "eventId": payload["eventId"],
        "kind": "status",
        "status": "submitted",
        "note": None,
        "public": True,
    }
    assert at.startswith(str(time.gmtime().tm_year))
    text = request.body.decode()
    for personal in ("路灯", desk.reporter.phone, desk.reporter.account.display_name, "38.04"):
        assert personal not in text
    [row] = await deliveries(services)
    assert (row.id, row.status, row.attempts, row.last_error) == (delivery_id, "delivered", 1, None)
    assert row.delivered_at is not None


async def test_a_500_is_retried_and_the_next_attempt_delivers(
    services, gql, gql_raw, desk, admin, receiver, runner, jobs
):
    # given
    await registered(gql_raw, admin, desk, receiver)
    receiver.script = [500, 200]
    await submit(services, gql, desk, runner)
    [delivery_id] = webhook_jobs(jobs)
    # when
    with pytest.raises(dramatiq.Retry) as retry:
        await handle_deliver_webhook(delivery_id)
    [after_first] = await deliveries(services)
    await handle_deliver_webhook(delivery_id)
    # then
    assert retry.value.delay is None  # Dramatiq's exponential backoff decides
    assert (after_first.status, after_first.attempts, after_first.last_error) == ("pending", 1, "HTTP 500")
    [row] = await deliveries(services)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)
    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["x-linli-delivery"] == second.headers["x-linli-delivery"] == str(delivery_id)


async def test_a_400_fails_for_good_and_is_never_sent_again(
    services, gql, gql_raw, desk, admin, receiver, runner, jobs
):
    # given
    await registered(gql_raw, admin, desk, receiver)
    receiver.script = [400]
    await submit(services, gql, desk, runner)
    [delivery_id] = webhook_jobs(jobs)
    # when: no Retry is raised, and a redelivered job does nothing
    await handle_deliver_webhook(delivery_id)
    await handle_deliver_webhook(delivery_id)
    # then
    assert len(receiver.requests) == 1
    [row] = await deliveries(services)
    assert (row.status, row.attempts, row.last_error, row.delivered_at) == ("failed", 1, "HTTP 400", None)


async def test_a_429_waits_as_long_as_the_receiver_asks(services, gql, gql_raw, desk, admin, receiver, runner, jobs):
    # given
    await registered(gql_raw, admin, desk, receiver)
    receiver.script = [429]
    receiver.retry_after = "120"
    await submit(services, gql, desk, runner)
    [delivery_id] = webhook_jobs(jobs)
    # when
    with pytest.raises(dramatiq.Retry) as retry:
        await handle_deliver_webhook(delivery_id)
    # then
    assert retry.value.delay == 120_000
    [row] = await deliveries(services)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 429")


async def test_a_receiver_that_does_not_answer_in_time_is_retried(
    services, gql, gql_raw, desk, admin, receiver, runner, jobs, monkeypatch
):
    # given: the 10 s timeout shortened so the test stays fast
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.2)
    await registered(gql_raw, admin, desk, receiver)
    receiver.delay_s = 1.0
    await submit(services, gql, desk, runner)
    [delivery_id] = webhook_jobs(jobs)
    # when
    with pytest.raises(dramatiq.Retry):
        await handle_deliver_webhook(delivery_id)
    # then
    [row] = await deliveries(services)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "no answer within 0.2 s"


async def test_giving_up_after_the_last_attempt_marks_the_delivery_failed(
    services, gql, gql_raw, desk, admin, receiver, runner, jobs, monkeypatch
):
    # given
    monkeypatch.setattr(webhooks, "MAX_ATTEMPTS", 2)
    await registered(gql_raw, admin, desk, receiver)
    receiver.script = [503, 503, 503]
    await submit(services, gql, desk, runner)
    [delivery_id] = webhook_jobs(jobs)
    # when
    with pytest.raises(dramatiq.Retry):
        await handle_deliver_webhook(delivery_id)
    await handle_deliver_webhook(delivery_id)  # the last attempt: no Retry
    await handle_deliver_webhook(delivery_id)
    # then
    assert len(receiver.requests) == 2
    [row] = await deliveries(services)
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.last_error == "HTTP 503; gave up after 2 attempts"


async def test_redelivered_jobs_post_once_and_make_one_delivery(
    services, gql, gql_raw, desk, admin, receiver, runner, jobs
):
    # given
    await registered(gql_raw, admin, desk, receiver)
    await submit(services, gql, desk, runner)
    # when: every job is delivered a second time, the webhook job included
    await runner.drain(skip={"dispatch.expire_offer"})
    for outbound in list(runner.done):
        await HANDLERS[outbound.job.actor_name](**outbound.job.kwargs)
    await runner.drain(skip={"dispatch.expire_offer"})
    # then
    rows = await deliveries(services)
    assert len(rows) == 1 == len(webhook_jobs(jobs))
    assert [(r.status, r.attempts) for r in rows] == [("delivered", 1)]
    assert len(receiver.requests) == 1


async def test_an_internal_note_is_not_sent(services, gql, gql_raw, desk, admin, receiver, runner, jobs):
    # given
    await registered(gql_raw, admin, desk, receiver)
    ticket_gid, _ = await submit(services, gql, desk, runner)
    # when: an internal note, then a public one
    for note, public in (("内部：住户电话138", False), ("已安排电工", True)):
        await gql(COMMENT, {"input": {"ticketId": ticket_gid, "note": note, "public": public}}, token=desk.staff.token)
    await runner.drain(skip={"dispatch.expire_offer"})
    # then
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [(b["kind"], b["note"], b["public"]) for b in bodies] == [
        ("status", None, True),
        ("comment", "已安排电工", True),
    ]
    assert len(await deliveries(services)) == 2


async def test_no_endpoint_means_no_delivery_and_an_inactive_one_is_skipped(
    services, gql, gql_raw, desk, admin, receiver, runner, jobs
):
    # given
    await submit(services, gql, desk, runner)
    none_yet = await deliveries(services)
    await registered(gql_raw, admin, desk, receiver)
    async with services.db.unit_of_work() as uow:
        endpoint = await uow.session.scalar(select(WebhookEndpoint))
        endpoint.active = False
    await submit(services, gql, desk, runner)
    # then
    assert none_yet == []
    assert await deliveries(services) == []
    assert webhook_jobs(jobs) == []


async def test_on_sqlite_the_write_lock_is_not_held_while_the_receiver_answers(tmp_path, receiver):
    # given: the embedded database, an endpoint and one pending delivery
    url = f"sqlite+aiosqlite:///{tmp_path / 'linli.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    cipher = PersonalDataCipher(TEST_SECRET)
    try:
        community = await make_community(db)
        admin = Viewer(account_id=1, roles={community.id: frozenset({Role.COMMUNITY_ADMIN})})
        async with db.unit_of_work() as uow:
            endpoint = await webhooks.register_endpoint(
                uow, viewer=admin, cipher=cipher, community_id=community.id, url=receiver.url
            )
        payload = {"event": "ticket.updated", "ticketId": global_id("Ticket", 1), "status": "submitted"}
        async with db.unit_of_work() as uow:
            added = await webhooks.enqueue_deliveries(
                uow, community_id=community.id, event_key="ticket-event:1", payload=payload
            )
            queued = [j.kwargs for j in uow._jobs]
        async with db.unit_of_work() as uow:
            repeated = await webhooks.enqueue_deliveries(
                uow, community_id=community.id, event_key="ticket-event:1", payload=payload
            )
            queued_again = list(uow._jobs)

        async def write_meanwhile() -> None:  # would wait out the 30 s busy timeout if the lock were held
            async with asyncio.timeout(5), db.unit_of_work() as uow:
                row = await uow.session.get(Community, community.id)
                assert row is not None
                row.name = "改名了"

        receiver.during = write_meanwhile
        # when
        first = await webhooks.deliver(db, cipher=cipher, delivery_id=added[0])
        second = await webhooks.deliver(db, cipher=cipher, delivery_id=added[0])
        # then
        assert queued == [{"delivery_id": added[0]}]
        assert (repeated, queued_again) == ([], [])
        assert (first.outcome, first.status_code, second.outcome) == (
            webhooks.Outcome.DELIVERED,
            200,
            webhooks.Outcome.SKIPPED,
        )
        assert len(receiver.requests) == 1
        body = receiver.requests[0].body
        assert json.loads(body) == payload
        signature = receiver.requests[0].headers["x-linli-signature"]
        timestamp = receiver.requests[0].headers["x-linli-timestamp"]
        assert webhooks.verify(
            endpoint.secret, timestamp=timestamp, body=body, signature=signature, now=int(time.time())
        )
        async with db.read_session() as session:
            row = await session.get(WebhookDelivery, added[0])
            renamed = await session.get(Community, community.id)
        assert row is not None
        assert renamed is not None
        assert (row.status, row.attempts) == ("delivered", 1)
        assert renamed.name == "改名了"
    finally:
        await db.dispose()
