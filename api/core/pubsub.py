"""Pub/sub for live pushes: Redis in production, in-process (thread-safe) in the embedded default.

A push is a hint that something changed, not a record: a subscriber that is not listening
when a message is published never sees it, and a slow subscriber loses its oldest messages.
The inbox and the database stay the source of truth.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.settings import Settings

log = logging.getLogger(__name__)

Message = dict[str, Any]

MAX_QUEUED = 100  # per subscriber; the oldest message is dropped when a slow subscriber falls behind
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0


class PubSub(Protocol):
    """Publish JSON messages on named channels; subscribe to one or more channels."""

    async def publish(self, channel: str, message: Message) -> None:
        """Send `message` (JSON-able) to the current subscribers of `channel`."""
        ...

    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[AsyncIterator[Message]]:
        """Listen on `channels`: subscribed once entered, unsubscribed on exit.

        ``async with pubsub.subscribe("a", "b") as messages: async for m in messages: ...``
        """
        ...

    async def close(self) -> None:
        """Release what this event loop holds (connections)."""
        ...


def ticket_channel(ticket_id: int, *, staff: bool = False) -> str:
    """The channel of a ticket's updates; internal events go only to the staff channel."""
    return f"ticket-staff:{ticket_id}" if staff else f"ticket:{ticket_id}"


def global_id(type_name: str, id_: int) -> str:
    """The Relay global id clients know an object by (base64 of "Type:id", as the GraphQL API prints it)."""
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


def _encode(message: Message) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# -- in-process ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    channels: frozenset[str]
    queue: asyncio.Queue[Message]
    dropped: int = 0

    def put(self, message: Message) -> None:
        """Runs in the subscriber's loop: enqueue, dropping the oldest message when full."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
        self.queue.put_nowait(message)


@dataclass(eq=False)
class _QueueStream:
    subscriber: _Subscriber

    def __aiter__(self) -> _QueueStream:
        return self

    async def __anext__(self) -> Message:
        return await self.subscriber.queue.get()


@dataclass(eq=False)
class InProcessPubSub:
    """Pub/sub inside one process, across threads and event loops.

    Publishers may run in any thread or loop (the embedded worker runs actors in Dramatiq's own
    loop thread); each message is handed to the subscriber's loop with `call_soon_threadsafe`
    and put on its bounded queue.
    """

    max_queued: int = MAX_QUEUED
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _by_channel: dict[str, set[_Subscriber]] = field(default_factory=dict, repr=False)

    async def publish(self, channel: str, message: Message) -> None:
        self.publish_nowait(channel, message)

    def publish_nowait(self, channel: str, message: Message) -> int:
        """Publish from any thread without awaiting; returns how many subscribers it was handed to."""
        raw = _encode(message)  # the same JSON round trip as Redis: subscribers get their own copy
        with self._lock:
            subscribers = list(self._by_channel.get(channel, ()))
        handed = 0
        for subscriber in subscribers:
            try:
                subscriber.loop.call_soon_threadsafe(subscriber.put, json.loads(raw))
                handed += 1
            except RuntimeError:  # the subscriber's loop is closed: it will never read again
                self._remove(subscriber)
        return handed

    def subscriber_count(self, channel: str) -> int:
        with self._lock:
            return len(self._by_channel.get(channel, ()))

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[AsyncIterator[Message]]:
        if not channels:
            raise ValueError("subscribe to at least one channel")
        subscriber = _Subscriber(asyncio.get_running_loop(), frozenset(channels), asyncio.Queue(self.max_queued))
        with self._lock:
            for channel in subscriber.channels:
                self._by_channel.setdefault(channel, set()).add(subscriber)
        try:
            yield _QueueStream(subscriber)
        finally:
            self._remove(subscriber)

    def _remove(self, subscriber: _Subscriber) -> None:
        with self._lock:
            for channel in subscriber.channels:
                members = self._by_channel.get(channel)
                if members is not None:
                    members.discard(subscriber)
                    if not members:
                        del self._by_channel[channel]

    async def close(self) -> None:
        return None


# -- Redis -----------------------------------------------------------------------------------


class _RedisStream:
    """One subscriber's own connection; reconnects and resubscribes quietly when it drops."""

    def __init__(self, url: str, channels: list[str], options: dict[str, Any]) -> None:
        self.url = url
        self.channels = channels
        self.options = options
        self.client: aioredis.Redis | None = None
        self.pubsub: aioredis.client.PubSub | None = None
        self.reconnects = 0

    async def connect(self) -> None:
        self.client = aioredis.Redis.from_url(self.url, **self.options)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(*self.channels)

    async def close(self) -> None:
        pubsub, client = self.pubsub, self.client
        self.pubsub = self.client = None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            if client is not None:
                await client.aclose()

    async def _reconnect(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        while True:
            await self.close()
            await asyncio.sleep(delay)
            try:
                await self.connect()
            except (RedisConnectionError, RedisTimeoutError, OSError):
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            self.reconnects += 1
            log.info("pub/sub reconnected to %s", ", ".join(self.channels))
            return

    def __aiter__(self) -> _RedisStream:
        return self

    async def __anext__(self) -> Message:
        while True:
            if self.pubsub is None:
                await self._reconnect()
                continue
            try:
                raw = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                log.debug("pub/sub connection lost; reconnecting", exc_info=True)
                await self._reconnect()
                continue
            if raw is None or raw.get("type") != "message":
                continue
            try:
                message = json.loads(raw["data"])
            except (TypeError, ValueError):
                log.warning("ignoring a pub/sub message that is not JSON on %r", raw.get("channel"))
                continue
            if isinstance(message, dict):
                return message


class RedisPubSub:
    """Redis pub/sub: JSON messages; each subscriber gets a dedicated connection.

    Publishing uses one client per event loop (async connections belong to the loop that made them).
    Channels are prefixed, because Redis pub/sub ignores the database number.
    """

    def __init__(self, url: str, *, prefix: str = "", client_name: str | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self._options: dict[str, Any] = {"socket_keepalive": True, "health_check_interval": 30}
        if client_name:
            self._options["client_name"] = client_name  # shows in CLIENT LIST
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, aioredis.Redis]] = {}
        self._lock = threading.Lock()

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.get(id(loop))
            if entry is None or entry[0] is not loop:
                entry = (loop, aioredis.Redis.from_url(self.url, **self._options))
                self._clients[id(loop)] = entry
            return entry[1]

    async def publish(self, channel: str, message: Message) -> None:
        # redis-py retries a command on a fresh connection when a pooled one has died.
        await self._client().publish(self.prefix + channel, _encode(message))

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[AsyncIterator[Message]]:
        if not channels:
            raise ValueError("subscribe to at least one channel")
        stream = _RedisStream(self.url, [self.prefix + c for c in channels], self._options)
        try:
            await stream.connect()
        except BaseException:
            await stream.close()
            raise
        try:
            yield stream
        finally:
            await stream.close()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.pop(id(loop), None)
            # Clients of other (finished) loops cannot be closed from here; they are dropped.
            self._clients = {k: v for k, v in self._clients.items() if not v[0].is_closed()}
        if entry is not None and entry[0] is loop:
            await entry[1].aclose()


_shared_lock = threading.Lock()
_shared: InProcessPubSub | None = None


def shared_in_process() -> InProcessPubSub:
    """The process-wide in-process pub/sub, shared by the server and the embedded worker."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = InProcessPubSub()
        return _shared


def build_pubsub(settings: Settings) -> PubSub:
    """Redis pub/sub when LINLI_REDIS_URL is set, else the process-wide in-process one."""
    if settings.redis_url:
        return RedisPubSub(settings.redis_url, prefix=f"{settings.redis_namespace}:push:")
    return shared_in_process()
