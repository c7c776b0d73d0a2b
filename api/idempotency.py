"""`Idempotency-Key` on POST /graphql: a retried request replays the first answer instead of running twice.

Keys belong to the logged-in account (a retry after logging in again still matches); anonymous
requests ignore the header, since nothing they can create needs it and an anonymous key would be
shared by everyone. The whole request body is the fingerprint: the same key with a different body
is refused with 422. Answers with a server error are not kept, so the retry runs again.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.accounts.service import viewer_for_token
from api.core import idempotency
from api.core.idempotency import Outcome
from api.graphql.context import Services
from api.graphql.view import parse_bearer

_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
STALE_AFTER = timedelta(minutes=5)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status, headers=headers
    )


class IdempotencyKeys:
    """ASGI wrapper for the GraphQL endpoint."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        key = headers.get("idempotency-key")
        token = parse_bearer(headers.get("authorization", ""))
        if scope["type"] != "http" or scope.get("method") != "POST" or key is None or token is None:
            await self.app(scope, receive, send)
            return
        if not _KEY.match(key):
            await _error(400, "BAD_IDEMPOTENCY_KEY", "Idempotency-Key must be 1-200 printable ASCII characters.")(
                scope, receive, send
            )
            return
        async with self.services.db.read_session() as session:
            viewer = await viewer_for_token(session, token)
        if viewer is None or viewer.account_id is None:
            await self.app(scope, receive, send)  # the view answers the bad token
            return

        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        db = self.services.db
        claim = await idempotency.claim(
            db,
            scope=f"account:{viewer.account_id}",
            key=key,
            request_hash=hashlib.sha256(body).hexdigest(),
            stale_after=STALE_AFTER,
        )
        if claim.outcome is Outcome.MISMATCH:
            response: Response = _error(
                422, "IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used for a different request."
            )
        elif claim.outcome is Outcome.IN_PROGRESS:
            response = _error(
                409, "IDEMPOTENCY_KEY_IN_PROGRESS", "A request with this key is still running.", {"Retry-After": "1"}
            )
        elif claim.outcome is Outcome.REPLAY:
            response = Response(
                claim.body or b"",
                status_code=claim.status_code or 200,
                media_type=claim.content_type,
                headers={"Idempotent-Replayed": "true"},
            )
        else:
            assert claim.record_id is not None
            await self._run(scope, body, send, claim.record_id)
            return
        await response(scope, receive, send)

    async def _run(self, scope: Scope, body: bytes, send: Send, record_id: int) -> None:
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        status = 500
        content_type: str | None = None
        out: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = Headers(raw=message.get("headers", [])).get("content-type")
            elif message["type"] == "http.response.body":
                out.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await idempotency.release(self.services.db, record_id)
            raise
        if status >= 500:
            await idempotency.release(self.services.db, record_id)
        else:
            await idempotency.complete(
                self.services.db, record_id, status_code=status, content_type=content_type, body=b"".join(out)
            )
