"""Request ids, structured logs without personal data, Prometheus metrics, and the HTTP rate limits.

Every HTTP request gets a request id (the caller's `X-Request-ID` when it is a sane token, else a
new one), echoed in the response and carried by every log line written while it is served. Log
lines are JSON in production; ID numbers and mobile numbers are masked out of every message
whatever the format. /metrics serves the Prometheus text format.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.ratelimit import Limit, RateLimiter
from api.settings import Environment, Settings

log = logging.getLogger("linli.access")

request_id_var: ContextVar[str | None] = ContextVar("linli_request_id", default=None)
# Per request, what the GraphQL layer learnt (the operation), for the access log and metrics.
request_state_var: ContextVar[dict[str, Any] | None] = ContextVar("linli_request_state", default=None)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")
MAX_OPERATION_LABELS = 300  # label values per process; further names count as "other"


# -- personal data never reaches a log line ----------------------------------------------------------

_NATIONAL_ID = re.compile(
    r"(?<![0-9])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9])"
)
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9]\d{9}(?![0-9])")


def redact(text: str) -> str:
    """Mask mainland ID numbers and mobile numbers in `text`."""
    return _MOBILE.sub("[phone]", _NATIONAL_ID.sub("[id-number]", text))


class RedactingFilter(logging.Filter):
    """Adds the request id to each record and masks personal data in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra` fields."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "request_id"}

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            doc["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    """Root logging for `linli serve` and `linli worker`: JSON lines or text, always redacted."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # replaced by linli.access, which has the request id


def configure_logging_for(settings: Settings) -> None:
    """JSON lines in production (or when LINLI_LOG_JSON says so), text otherwise."""
    production = settings.environment is Environment.PRODUCTION
    configure_logging(json_lines=settings.log_json if settings.log_json is not None else production)


# -- metrics ---------------------------------------------------------------------------------------


class Metrics:
    """The API's Prometheus metrics, in a registry of its own (several apps can live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "linli_http_request_seconds",
            "HTTP request latency by route, GraphQL operation and status.",
            ["route", "operation", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.errors = Counter(
            "linli_graphql_errors_total",
            "GraphQL errors by code (INTERNAL for masked crashes).",
            ["code"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "linli_rate_limited_total", "Requests refused by a rate limit.", ["scope"], registry=self.registry
        )
        self.outbox_pending = Gauge(
            "linli_outbox_pending", "Outbox messages not yet handed to the broker.", registry=self.registry
        )
        self.outbox_lag = Gauge(
            "linli_outbox_lag_seconds", "Age of the oldest unsent outbox message.", registry=self.registry
        )
        self.queue_depth = Gauge(
            "linli_queue_depth", "Messages waiting in each broker queue.", ["queue"], registry=self.registry
        )
        self.dead_letters = Gauge(
            "linli_dead_letters", "Messages quarantined after too many attempts.", ["queue"], registry=self.registry
        )
        self.dispatch_seconds = Gauge(
            "linli_dispatch_latency_seconds",
            "Submit-to-offer latency of dispatch requests opened in the last hour, by quantile.",
            ["quantile"],
            registry=self.registry,
        )
        self._operations: set[str] = set()

    def operation_label(self, name: str | None, kind: str | None) -> str:
        if kind is None:
            return ""
        label = f"{kind}:{name}" if name and _OPERATION_NAME.match(name) else f"{kind}:anonymous"
        if label not in self._operations:
            if len(self._operations) >= MAX_OPERATION_LABELS:
                return f"{kind}:other"
            self._operations.add(label)
        return label


def route_of(path: str) -> str:
    """A bounded route label for a path."""
    for prefix in ("/graphql", "/open311", "/media", "/calendar", "/healthz", "/readyz", "/metrics"):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return "other"


def metrics_endpoint(
    metrics: Metrics, refresh: Callable[[], Awaitable[None]] | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """GET /metrics: refreshes the gauges read from the database and broker, then serves the registry."""

    async def endpoint(_request: Request) -> Response:
        if refresh is not None:
            try:
                await refresh()
            except Exception:
                log.warning("could not refresh the queue and outbox gauges", exc_info=True)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return endpoint


# -- dependencies that are down -------------------------------------------------------------------

RETRY_AFTER_SECONDS = 5
_DOWN = (OperationalError, InterfaceError, PoolTimeout, ConnectionError, TimeoutError, RedisConnectionError)


def dependency_down(error: BaseException | None) -> bool:
    """True when `error` (or what caused it) says the database or Redis could not be reached."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, _DOWN) or type(error).__name__ in ("CannotConnectNowError", "ConnectionDoesNotExistError"):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def service_unavailable() -> JSONResponse:
    body = {
        "errors": [
            {
                "message": "A service this request needs is unavailable; try again shortly.",
                "extensions": {"code": "SERVICE_UNAVAILABLE"},
            }
        ]
    }
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


# -- the middleware -------------------------------------------------------------------------------


class RateLimited(Exception):
    """Raised anywhere inside a request to answer 429 with Retry-After."""

    def __init__(self, retry_after: float, scope: str) -> None:
        super().__init__(f"rate limited ({scope})")
        self.retry_after = max(1, int(retry_after))
        self.scope = scope


def too_many_requests(exc: RateLimited) -> JSONResponse:
    body = {
        "errors": [
            {
                "message": f"Too many requests; try again in {exc.retry_after} s.",
                "extensions": {"code": "RATE_LIMITED", "retryAfter": exc.retry_after},
            }
        ]
    }
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(exc.retry_after)})


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RequestContext:
    """Outermost HTTP middleware: request id, access log, metrics, per-address rate limit, 429s and 500s."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, limiter: RateLimiter, per_address: Limit, limited_routes: set[str]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        self.per_address = per_address
        self.limited_routes = limited_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state: dict[str, Any] = {}
        id_token = request_id_var.set(request_id)
        state_token = request_state_var.set(state)
        scope.setdefault("state", {})["request_id"] = request_id
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, request_id, state)
        finally:
            request_id_var.reset(id_token)
            request_state_var.reset(state_token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str, state: dict[str, Any]) -> None:
        started = time.perf_counter()
        route = route_of(scope.get("path", ""))
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            if route in self.limited_routes:
                wait = await self.limiter.hit(f"addr:{client_address(scope)}", self.per_address)
                if wait is not None:
                    raise RateLimited(wait, "address")
            await self.app(scope, receive, send_with_id)
        except RateLimited as exc:
            self.metrics.rate_limited.labels(exc.scope).inc()
            if not status["sent"]:
                await too_many_requests(exc)(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away before its body arrived: nothing to answer and nothing wrong
            # here. Counted as 499 (nginx's "client closed request"), not as a server error.
            status["code"] = 499
        except Exception as exc:
            if dependency_down(exc):
                log.warning("dependency down serving %s %s: %s", scope.get("method"), route, type(exc).__name__)
                if not status["sent"]:
                    await service_unavailable()(scope, receive, send_with_id)
            else:
                log.exception("unhandled error serving %s %s", scope.get("method"), route)
                if not status["sent"]:
                    body = {"errors": [{"message": "Internal server error.", "extensions": {"code": "INTERNAL"}}]}
                    await JSONResponse(body, status_code=500)(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            operation = self.metrics.operation_label(state.get("operation_name"), state.get("operation_type"))
            self.metrics.requests.labels(route, operation, str(status["code"])).observe(seconds)
            for code in state.get("error_codes", ()):
                self.metrics.errors.labels(code).inc()
            log.info(
                "%s %s %s %.1f ms",
                scope.get("method"),
                scope.get("path"),
                status["code"],
                seconds * 1000,
                extra={
                    "route": route,
                    "status": status["code"],
                    "duration_ms": round(seconds * 1000, 1),
                    "operation": operation or None,
                    "account_id": state.get("account_id"),
                },
            )


def note(**values: Any) -> None:
    """Record facts about the current request for its access log line and metrics."""
    state = request_state_var.get()
    if state is not None:
        state.update(values)


def note_error_codes(codes: list[str]) -> None:
    state = request_state_var.get()
    if state is not None and codes:
        state.setdefault("error_codes", []).extend(codes)
