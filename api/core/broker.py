"""The one place that talks to Dramatiq: the broker factory and the job sender that publishes to it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    SkipMessage,
    TimeLimit,
)

from api.core.jobs import OutboundJob
from api.settings import Settings

log = logging.getLogger(__name__)

# How long a delivery count outlives a worker that died holding the message (a crash loop
# comes round every heartbeat timeout or so, far sooner).
DELIVERY_COUNT_TTL_MS = 86_400_000

# Overwrites a message's stored copy only while it is still there (our worker holds it).
_RESTAMP = """
if redis.call("hexists", KEYS[1], ARGV[1]) == 1 then
    redis.call("hset", KEYS[1], ARGV[1], ARGV[2])
end
"""


class DeliveryLimit(dramatiq.Middleware):
    """Dead-letters a message whose worker process keeps dying while running it.

    Retries only counts exceptions. A process that dies (OOM killer, segfault, kill -9) raises
    nothing: Redis hands the message out again once the process's heartbeat times out, and a
    message that kills its process would do so forever. So each start is counted in Redis under
    the message's Redis id (new for every enqueue, so each retry starts afresh) and the count is
    dropped when the run ends either way: it only grows across deaths.
    """

    def __init__(self, *, max_deliveries: int) -> None:
        self.max_deliveries = max_deliveries

    @staticmethod
    def _key(broker: dramatiq.Broker, message: MessageProxy) -> str | None:
        redis_id = message.options.get("redis_message_id")
        namespace = getattr(broker, "namespace", None)
        return f"{namespace}:__deliveries__.{redis_id}" if redis_id and namespace else None

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        key = self._key(broker, message)
        client = getattr(broker, "client", None)
        if key is None or client is None:
            return
        try:
            pipe = client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.pexpire(key, DELIVERY_COUNT_TTL_MS)
            deliveries = int(pipe.execute()[0])
        except redis.RedisError:
            log.warning("could not count the deliveries of message %s", message.message_id, exc_info=True)
            return
        if deliveries > self.max_deliveries:
            message.options["failure"] = (
                f"DeliveryLimitExceeded: the worker process died while running it {deliveries - 1} times"
            )
            log.error(
                "message %s (%s) goes to the dead-letter queue: %s",
                message.message_id,
                message.actor_name,
                message.options["failure"],
            )
            message.fail()
            raise SkipMessage("delivery limit exceeded")

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        key = self._key(broker, message)
        client = getattr(broker, "client", None)
        if key is None or client is None:
            return
        try:
            client.delete(key)
        except redis.RedisError:
            log.warning("could not clear the delivery count of message %s", message.message_id, exc_info=True)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)


class DeadLetterReason(dramatiq.Middleware):
    """Before a message goes to the dead-letter queue, stores it with why and after how many retries.

    Redis moves the message as it was last enqueued; this rewrites that copy with the final
    options (retry count, traceback, failure) so `linli dead-letters` shows the last failure.
    """

    def before_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        client = getattr(broker, "client", None)
        namespace = getattr(broker, "namespace", None)
        redis_id = message.options.get("redis_message_id")
        if client is None or namespace is None or not redis_id:
            return
        if "failure" not in message.options:
            message.options["failure"] = _failure_of(message)
        try:
            client.eval(_RESTAMP, 1, f"{namespace}:{message.queue_name}.msgs", redis_id, message.encode())
        except redis.RedisError:
            log.warning("could not record why message %s failed", message.message_id, exc_info=True)


def _failure_of(message: MessageProxy) -> str:
    """The exception the last run raised, else the exception line of the traceback Retries stored."""
    exception = getattr(message, "_exception", None)
    if isinstance(exception, BaseException):
        first_line = (str(exception).strip().splitlines() or [""])[0]
        return f"{type(exception).__name__}: {first_line}"[:500]
    lines = str(message.options.get("traceback") or "").splitlines()
    # The exception line starts at the margin; SQLAlchemy appends "[SQL: …]" and "(Background …)".
    raised = [line for line in lines if line.strip() and not line[0].isspace() and line[0] not in "[("]
    return raised[-1][:500] if raised else "unknown"


def _middleware(settings: Settings) -> list[dramatiq.Middleware]:
    on_redis = not settings.embedded_queue
    return [
        # First, so that a message that keeps killing its process does not start again.
        *([DeliveryLimit(max_deliveries=settings.broker_max_deliveries)] if on_redis else []),
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=10,
            min_backoff=settings.broker_retry_min_backoff_ms,
            max_backoff=settings.broker_retry_max_backoff_ms,
        ),
        AsyncIO(),
        *([DeadLetterReason()] if on_redis else []),
    ]


def build_broker(settings: Settings) -> dramatiq.Broker:
    """Build (but do not install) the broker for these settings."""
    if settings.embedded_queue:
        return StubBroker(middleware=_middleware(settings))
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=settings.redis_url,
        namespace=settings.redis_namespace,
        middleware=_middleware(settings),
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_chance=settings.broker_maintenance_chance,
    )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message Dramatiq gave up on, as kept in `<namespace>:<queue>.XQ` (for a week)."""

    queue_name: str
    message_id: str
    actor_name: str
    args: list[Any]
    kwargs: dict[str, Any]
    failed_runs: int  # runs that raised (1 + the retries); a process that died raised nothing
    failure: str
    dead_lettered_at: datetime


def dead_letters(broker: dramatiq.Broker, *, queue_name: str | None = None, limit: int = 100) -> list[DeadLetter]:
    """The newest dead-lettered messages of one queue, or of every queue, newest first."""
    client: redis.Redis | None = getattr(broker, "client", None)
    namespace: str | None = getattr(broker, "namespace", None)
    if client is None or namespace is None:
        return []  # the in-process queue keeps no dead letters
    if queue_name is not None:
        keys = [f"{namespace}:{queue_name}.XQ"]
    else:
        pattern = f"{_glob_escape(namespace)}:*.XQ"
        keys = sorted({k.decode() if isinstance(k, bytes) else str(k) for k in client.scan_iter(match=pattern)})
    found: list[DeadLetter] = []
    for key in keys:
        queue = key[len(namespace) + 1 : -len(".XQ")]
        entries = cast(list[tuple[bytes, float]], client.zrevrange(key, 0, limit - 1, withscores=True))
        if not entries:
            continue
        stored = cast(list[bytes | None], client.hmget(f"{key}.msgs", [redis_id for redis_id, _ in entries]))
        for (_redis_id, score), data in zip(entries, stored, strict=True):
            if data is None:
                continue
            message = dramatiq.Message.decode(data)
            found.append(
                DeadLetter(
                    queue_name=queue,
                    message_id=message.message_id,
                    actor_name=message.actor_name,
                    args=list(message.args),
                    kwargs=dict(message.kwargs),
                    failed_runs=int(message.options.get("retries", 0)),
                    failure=str(message.options.get("failure") or _failure_of(MessageProxy(message))),
                    dead_lettered_at=datetime.fromtimestamp(score / 1000, tz=UTC),
                )
            )
    found.sort(key=lambda d: d.dead_lettered_at, reverse=True)
    return found[:limit]


@dataclass(frozen=True, slots=True)
class QueueDepth:
    queue_name: str
    waiting: int  # ready to run now
    delayed: int  # waiting for their time (retries with backoff, delayed jobs)
    dead: int  # quarantined in the dead-letter set


def queue_depths(broker: dramatiq.Broker) -> list[QueueDepth]:
    """How many messages wait in each declared queue (not counting the delay queues' own names)."""
    declared = {q for q in broker.get_declared_queues() if not q.endswith((".DQ", ".XQ"))}
    client: redis.Redis | None = getattr(broker, "client", None)
    namespace: str | None = getattr(broker, "namespace", None)
    if client is None or namespace is None:
        queues = getattr(broker, "queues", {})
        return [QueueDepth(n, queues[n].qsize() if n in queues else 0, 0, 0) for n in sorted(declared)]
    # A process that only sends (the API) declares few queues: the queues in use have a `.msgs` hash.
    for key in client.scan_iter(match=f"{_glob_escape(namespace)}:*.msgs", count=500):
        name = (key.decode() if isinstance(key, bytes) else str(key))[len(namespace) + 1 : -len(".msgs")]
        if not name.endswith((".DQ", ".XQ")):
            declared.add(name)
    names = sorted(declared)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(f"{namespace}:{name}")
        pipe.llen(f"{namespace}:{name}.DQ")
        pipe.zcard(f"{namespace}:{name}.XQ")
    counts = [int(c) for c in pipe.execute()]
    return [QueueDepth(n, *counts[i * 3 : i * 3 + 3]) for i, n in enumerate(names)]


def _glob_escape(text: str) -> str:
    """Escape Redis glob characters in a namespace."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


class DramatiqJobSender:
    """Publishes jobs to a Dramatiq broker (Redis in production, in-process when embedded)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def _send_sync(self, jobs: Sequence[OutboundJob]) -> None:
        for outbound in jobs:
            job = outbound.job
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=job.queue_name,
                actor_name=job.actor_name,
                args=(),
                kwargs=job.kwargs,
                options={},
                message_id=f"outbox-{outbound.outbox_id}",
            )
            self.broker.enqueue(message, delay=job.delay_ms)

    async def send(self, jobs: Sequence[OutboundJob]) -> None:
        if jobs:
            # The Redis client is synchronous: keep it off the event loop.
            await asyncio.to_thread(self._send_sync, jobs)
