"""Pub/sub: the in-process bus across threads and loops, and Redis pub/sub on the real server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from dramatiq.brokers.stub import StubBroker
from strawberry.relay import GlobalID

from api.app import build_services
from api.core.jobs import RecordingJobSender
from api.core.pubsub import InProcessPubSub, RedisPubSub, build_pubsub, global_id, ticket_channel
from tests.conftest import make_settings
from worker import runtime


async def next_message(stream: AsyncIterator[dict[str, Any]], wait: float = 5.0) -> dict[str, Any]:
    return await asyncio.wait_for(anext(stream), wait)


async def nothing_more(stream: AsyncIterator[dict[str, Any]], wait: float = 0.2) -> bool:
    try:
        await asyncio.wait_for(anext(stream), wait)
    except TimeoutError:
        return True
    return False


def publish_from_another_thread(bus: Any, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish from a thread with its own event loop, as Dramatiq's worker thread does."""

    async def run() -> None:
        try:
            for channel, message in messages:
                await bus.publish(channel, message)
        finally:
            await bus.close()  # what the worker runtime's dispose does: release this loop's connections

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert errors == []


# -- in-process ------------------------------------------------------------------------------


async def test_in_process_messages_published_from_another_thread_arrive_in_order() -> None:
    # given
    bus = InProcessPubSub()
    async with bus.subscribe("ticket:1") as stream:
        # when
        await asyncio.to_thread(
            publish_from_another_thread, bus, [("ticket:1", {"n": 1}), ("ticket:2", {"n": 99}), ("ticket:1", {"n": 2})]
        )
        # then
        assert await next_message(stream) == {"n": 1}
        assert await next_message(stream) == {"n": 2}
        assert await nothing_more(stream)


async def test_in_process_one_subscription_listens_on_several_channels_and_each_gets_its_own_copy() -> None:
    # given
    bus = InProcessPubSub()
    async with bus.subscribe("ticket:1", "ticket-staff:1") as staff, bus.subscribe("ticket:1") as resident:
        message: dict[str, Any] = {"note": "已派人", "tags": ["a"]}
        # when
        await bus.publish("ticket-staff:1", {"note": "内部"})
        await bus.publish("ticket:1", message)
        message["tags"].append("changed after publishing")
        # then
        assert await next_message(staff) == {"note": "内部"}
        got = await next_message(staff)
        assert got == {"note": "已派人", "tags": ["a"]}
        assert await next_message(resident) == {"note": "已派人", "tags": ["a"]}
        assert await nothing_more(resident)
        got["tags"].append("x")
        assert message["tags"] == ["a", "changed after publishing"]


async def test_in_process_a_slow_subscriber_loses_the_oldest_messages_not_the_newest() -> None:
    # given
    bus = InProcessPubSub(max_queued=3)
    async with bus.subscribe("ticket:7") as stream:
        # when
        await asyncio.to_thread(publish_from_another_thread, bus, [("ticket:7", {"n": n}) for n in range(1, 6)])
        # then
        assert [(await next_message(stream))["n"] for _ in range(3)] == [3, 4, 5]
        assert await nothing_more(stream)


async def test_in_process_leaving_the_subscription_unsubscribes() -> None:
    # given
    bus = InProcessPubSub()
    # when
    async with bus.subscribe("ticket:3", "ticket-staff:3"):
        during = (bus.subscriber_count("ticket:3"), bus.subscriber_count("ticket-staff:3"))
    # then
    assert during == (1, 1)
    assert (bus.subscriber_count("ticket:3"), bus.subscriber_count("ticket-staff:3")) == (0, 0)
    assert bus.publish_nowait("ticket:3", {"n": 1}) == 0


def test_without_redis_the_server_and_the_embedded_worker_share_one_bus(pg_url: str) -> None:
    # given
    settings = make_settings(pg_url)
    # when
    services = build_services(settings, jobs=RecordingJobSender())
    runtime.configure(settings, StubBroker())
    # then
    assert isinstance(services.pubsub, InProcessPubSub)
    assert runtime.pubsub() is services.pubsub
    assert build_pubsub(settings) is services.pubsub


def test_channels_and_global_ids() -> None:
    assert ticket_channel(42) == "ticket:42"
    assert ticket_channel(42, staff=True) == "ticket-staff:42"
    assert global_id("Ticket", 42) == str(GlobalID("Ticket", "42"))


# -- Redis -----------------------------------------------------------------------------------


@pytest.fixture
def prefix(run_id: str) -> str:
    """Redis pub/sub ignores the database number: every channel of this test gets its own prefix."""
    return f"linli-test-{run_id}-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def redis_bus(redis_url: str, prefix: str) -> AsyncIterator[RedisPubSub]:
    bus = RedisPubSub(redis_url, prefix=prefix, client_name=prefix.rstrip(":"))
    yield bus
    await bus.close()


async def subscribers(redis_url: str, channel: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        counts = await client.pubsub_numsub(channel)
    finally:
        await client.aclose()
    return int(counts[0][1])


async def test_redis_delivers_json_to_a_subscriber_of_several_channels(redis_bus: RedisPubSub) -> None:
    # given
    async with redis_bus.subscribe("ticket:1", "ticket-staff:1") as stream:
        # when
        await redis_bus.publish("ticket:1", {"ticketId": "VGlja2V0OjE=", "note": "已派人"})
        await redis_bus.publish("ticket:2", {"other": True})
        await redis_bus.publish("ticket-staff:1", {"note": "内部"})
        # then
        assert await next_message(stream) == {"ticketId": "VGlja2V0OjE=", "note": "已派人"}
        assert await next_message(stream) == {"note": "内部"}
        assert await nothing_more(stream)


async def test_redis_publishing_from_another_thread_and_loop_reaches_the_subscriber(redis_bus: RedisPubSub) -> None:
    # given
    async with redis_bus.subscribe("ticket:9") as stream:
        # when: the worker's loop thread publishes through the same RedisPubSub object
        await asyncio.to_thread(
            publish_from_another_thread, redis_bus, [("ticket:9", {"n": 1}), ("ticket:9", {"n": 2})]
        )
        # then
        assert await next_message(stream) == {"n": 1}
        assert await next_message(stream) == {"n": 2}


async def test_redis_uses_a_connection_per_subscriber_and_unsubscribes_on_exit(
    redis_bus: RedisPubSub, redis_url: str, prefix: str
) -> None:
    # given
    channel = f"{prefix}ticket:4"
    # when
    async with redis_bus.subscribe("ticket:4") as first, redis_bus.subscribe("ticket:4") as second:
        during = await subscribers(redis_url, channel)
        await redis_bus.publish("ticket:4", {"n": 1})
        both = [await next_message(first), await next_message(second)]
    # then
    assert during == 2
    assert both == [{"n": 1}, {"n": 1}]
    assert await subscribers(redis_url, channel) == 0


async def test_redis_subscriber_reconnects_quietly_when_its_connection_is_killed(
    redis_bus: RedisPubSub, redis_url: str, prefix: str
) -> None:
    # given
    admin = aioredis.Redis.from_url(redis_url)
    name = prefix.rstrip(":")
    channel = f"{prefix}ticket:8"
    try:
        async with redis_bus.subscribe("ticket:8") as stream:
            reader = asyncio.ensure_future(next_message(stream, wait=15))
            ours = [c for c in await admin.client_list() if c.get("name") == name and int(c.get("sub", 0)) > 0]
            assert len(ours) == 1
            # when: the server drops the subscriber's connection
            await admin.client_kill_filter(_id=ours[0]["id"])
            for _ in range(200):  # resubscribed within 10 s
                if await subscribers(redis_url, channel):
                    break
                await asyncio.sleep(0.05)
            await redis_bus.publish("ticket:8", {"after": "reconnect"})
            got = await reader
        # then
        assert got == {"after": "reconnect"}
    finally:
        await admin.aclose()
