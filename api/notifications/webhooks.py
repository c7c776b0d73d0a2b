"""Signed webhooks: a community registers a URL; each event is POSTed to it at most once per endpoint.

The receiver checks ``X-Linli-Signature: sha256=<hex>``, the HMAC-SHA256 of
``"<X-Linli-Timestamp>.<raw body>"`` keyed with the endpoint's secret (shown once, at
registration, and stored encrypted). Payloads carry ids, statuses and public notes only:
never personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import utc_now
from api.core.crypto import PersonalDataCipher
from api.core.database import Database, UnitOfWork
from api.core.errors import NotFound, ValidationFailed
from api.core.jobs import Job
from api.core.viewer import Permission, Viewer
from api.notifications.models import WebhookDelivery, WebhookEndpoint
from api.registry.models import Community

ACTOR = "notifications.deliver_webhook"
QUEUE = "webhooks"  # its own queue: a slow receiver never holds up inbox notifications
TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 12  # then the delivery is given up as failed
MAX_RETRY_AFTER_MS = 3_600_000
MAX_ENDPOINTS = 10  # active endpoints per community
MAX_URL = 500
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})
USER_AGENT = "Linli-Webhooks/1"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def deliver_job(delivery_id: int) -> Job:
    """POST one webhook delivery."""
    return Job(ACTOR, QUEUE, {"delivery_id": delivery_id})


# -- registering -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    endpoint: WebhookEndpoint
    secret: str  # shown once; only its encryption is stored


def validate_url(raw: str) -> str:
    """An https URL, or http for localhost/127.0.0.1 only (a receiver on the same machine). Raises ValidationFailed."""
    url = raw.strip()
    if not url or len(url) > MAX_URL:
        raise ValidationFailed(f"Give a URL of at most {MAX_URL} characters.", field="url")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise ValidationFailed("That is not a valid URL.", field="url") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationFailed("The URL must start with https://.", field="url")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed("Do not put credentials in the URL; verify the signature instead.", field="url")
    if parts.fragment:
        raise ValidationFailed("The URL must not have a #fragment.", field="url")
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise ValidationFailed("Plain http is allowed only for localhost or 127.0.0.1; use https.", field="url")
    if any(c.isspace() for c in url):
        raise ValidationFailed("The URL must not contain spaces.", field="url")
    return url


async def register_endpoint(
    uow: UnitOfWork, *, viewer: Viewer, cipher: PersonalDataCipher, community_id: int, url: str
) -> Registered:
    """Register a URL for the community's events (community admins). Raises NotFound, Forbidden, ValidationFailed."""
    viewer.require_authenticated()
    if community_id not in viewer.community_ids or await uow.session.get(Community, community_id) is None:
        raise NotFound("No such community.", field="communityId")
    viewer.require(Permission.MANAGE_ROLES, community_id)
    clean = validate_url(url)
    active = await uow.session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.community_id == community_id, WebhookEndpoint.active.is_(True))
    )
    if (active or 0) >= MAX_ENDPOINTS:
        raise ValidationFailed(f"A community has at most {MAX_ENDPOINTS} webhooks.", field="url")
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(
        community_id=community_id,
        url=clean,
        secret_encrypted=cipher.encrypt(secret),
        active=True,
        created_at=utc_now(),
    )
    uow.session.add(endpoint)
    await uow.session.flush()
    return Registered(endpoint, secret)


async def visible_endpoints(session: AsyncSession, viewer: Viewer, ids: list[int]) -> dict[int, WebhookEndpoint]:
    """The endpoints among `ids` that the viewer administers."""
    scope = viewer.communities_where(Permission.MANAGE_ROLES)
    if not ids or not scope:
        return {}
    rows = await session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids), WebhookEndpoint.community_id.in_(scope))
    )
    return {row.id: row for row in rows}


# -- fanning out -----------------------------------------------------------------------------


async def enqueue_deliveries(
    uow: UnitOfWork, *, community_id: int, event_key: str, payload: dict[str, Any]
) -> list[int]:
    """One delivery per active endpoint of the community, and a job for each new one.

    Idempotent: the (endpoint, event key) pair is unique, so a repeat adds no row and no job.
    `payload` must hold ids, statuses and public text only, with its type under "event".
    """
    endpoint_ids = (
        await uow.session.scalars(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.community_id == community_id, WebhookEndpoint.active.is_(True)
            )
        )
    ).all()
    if not endpoint_ids:
        return []
    now = utc_now()
    rows = [
        {
            "endpoint_id": endpoint_id,
            "event_key": event_key[:120],
            "payload": payload,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
        }
        for endpoint_id in sorted(endpoint_ids)
    ]
    insert = postgresql.insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(WebhookDelivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["endpoint_id", "event_key"])
        .returning(WebhookDelivery.id)
    )
    added = sorted((await uow.session.scalars(stmt)).all())
    for delivery_id in added:
        uow.enqueue(deliver_job(delivery_id))
    return added


# -- signing and sending ---------------------------------------------------------------------


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Linli-Signature value: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, *, timestamp: str, body: bytes, signature: str, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (replays are refused)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    return abs(now - ts) <= tolerance_s and hmac.compare_digest(sign(secret, ts, body), signature)


class Outcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # permanently: the receiver refused it, or it kept failing
    RETRY = "retry"
    SKIPPED = "skipped"  # already delivered or failed, or being sent by another worker


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    retry_after_ms: int | None = None  # the receiver's Retry-After, when it gave one


@dataclass(frozen=True, slots=True)
class _Attempt:
    delivery_id: int
    attempts: int
    url: str
    secret: str
    event: str
    body: bytes


async def _prepare(
    session: AsyncSession, *, cipher: PersonalDataCipher, delivery_id: int, lock: bool
) -> _Attempt | Result:
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING.value
    )
    if lock:
        # Another worker sending the same delivery holds the row: this one steps aside.
        stmt = stmt.with_for_update(skip_locked=True)
    delivery = await session.scalar(stmt)
    if delivery is None:
        return Result(Outcome.SKIPPED)
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.active:
        return Result(Outcome.FAILED, error="the endpoint was deactivated")
    try:
        secret = cipher.decrypt(endpoint.secret_encrypted)
    except ValueError:
        return Result(Outcome.FAILED, error="the endpoint secret cannot be decrypted with this key")
    return _Attempt(
        delivery_id=delivery.id,
        attempts=delivery.attempts,
        url=endpoint.url,
        secret=secret,
        event=str(delivery.payload.get("event", "event")),
        body=body_of(delivery.payload),
    )


def _retry_after_ms(response: httpx.Response) -> int | None:
    raw = response.headers.get("retry-after", "").strip()
    if raw.isdigit():
        return min(int(raw) * 1000, MAX_RETRY_AFTER_MS)
    return None


async def _post(client: httpx.AsyncClient, attempt: _Attempt) -> Result:
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Linli-Event": attempt.event,
        "X-Linli-Delivery": str(attempt.delivery_id),
        "X-Linli-Timestamp": str(timestamp),
        "X-Linli-Signature": sign(attempt.secret, timestamp, attempt.body),
    }
    try:
        response = await client.post(attempt.url, content=attempt.body, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.TimeoutException:
        return Result(Outcome.RETRY, error=f"no answer within {TIMEOUT_SECONDS:g} s")
    except httpx.HTTPError as exc:
        return Result(Outcome.RETRY, error=f"could not connect: {type(exc).__name__}")
    code = response.status_code
    if 200 <= code < 300:
        return Result(Outcome.DELIVERED, status_code=code)
    if code == 429:
        return Result(Outcome.RETRY, status_code=code, error="HTTP 429", retry_after_ms=_retry_after_ms(response))
    if code >= 500:
        return Result(Outcome.RETRY, status_code=code, error=f"HTTP {code}")
    # 4xx: the receiver refuses it and will again. 1xx/3xx: redirects are not followed (the
    # registered URL is the one that was validated), so they are refusals too.
    return Result(Outcome.FAILED, status_code=code, error=f"HTTP {code}")


async def _record(session: AsyncSession, attempt: _Attempt, result: Result, now: datetime) -> Result:
    attempts = attempt.attempts + 1
    if result.outcome is Outcome.RETRY and attempts >= MAX_ATTEMPTS:
        result = Result(Outcome.FAILED, result.status_code, f"{result.error}; gave up after {attempts} attempts")
    values: dict[str, Any] = {"attempts": WebhookDelivery.attempts + 1, "last_error": result.error}
    if result.outcome is Outcome.DELIVERED:
        values |= {"status": DeliveryStatus.DELIVERED.value, "delivered_at": now, "last_error": None}
    elif result.outcome is Outcome.FAILED:
        values["status"] = DeliveryStatus.FAILED.value
    won = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == attempt.delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING.value)
        .values(**values)
    )
    if not getattr(won, "rowcount", 0):
        return Result(Outcome.SKIPPED)  # another worker finished it meanwhile
    return result


async def _fail(session: AsyncSession, delivery_id: int, result: Result) -> Result:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING.value)
        .values(status=DeliveryStatus.FAILED.value, last_error=result.error)
    )
    return result


async def deliver(
    db: Database, *, cipher: PersonalDataCipher, delivery_id: int, client: httpx.AsyncClient | None = None
) -> Result:
    """POST a pending delivery once and record what happened.

    Idempotent: only a pending row is sent, and only the attempt that finds it pending records its
    result; a delivered or failed row is never sent again. On PostgreSQL the row stays locked
    (SKIP LOCKED) while it is sent, so two workers never send it at once. SQLite (embedded, one
    process) must not hold its single write lock for a slow receiver: there the row is read,
    sent, and its result recorded with a conditional UPDATE.
    """
    own_client = client is None
    http = client or httpx.AsyncClient(follow_redirects=False)
    try:
        if db.is_sqlite:
            async with db.read_session() as session:
                prepared = await _prepare(session, cipher=cipher, delivery_id=delivery_id, lock=False)
            if isinstance(prepared, Result):
                if prepared.outcome is Outcome.FAILED:
                    async with db.unit_of_work() as uow:
                        await _fail(uow.session, delivery_id, prepared)
                return prepared
            result = await _post(http, prepared)
            async with db.unit_of_work() as uow:
                return await _record(uow.session, prepared, result, utc_now())
        async with db.unit_of_work() as uow:
            prepared = await _prepare(uow.session, cipher=cipher, delivery_id=delivery_id, lock=True)
            if isinstance(prepared, Result):
                return (
                    await _fail(uow.session, delivery_id, prepared) if prepared.outcome is Outcome.FAILED else prepared
                )
            result = await _post(http, prepared)
            return await _record(uow.session, prepared, result, utc_now())
    finally:
        if own_client:
            await http.aclose()
