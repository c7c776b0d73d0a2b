"""The GraphQL ASGI view: resolves the bearer token into a viewer and builds the context."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from api.accounts.service import viewer_for_token
from api.core.clock import local_today
from api.core.ratelimit import Limit
from api.core.viewer import Viewer
from api.graphql.context import Context, Services
from api.graphql.loaders import Loaders
from api.graphql.schema import build_schema
from api.observability import RateLimited, note, request_id_var


def bearer_token(request: Request | WebSocket) -> str | None:
    return parse_bearer(request.headers.get("authorization", ""))


def parse_bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


class LinliGraphQL(GraphQL[Context, None]):
    def __init__(self, services: Services) -> None:
        settings = services.settings
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphql_ide else None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.services = services

    async def viewer_for(self, request: Request | WebSocket) -> Viewer:
        token = bearer_token(request)
        if token is None:
            return Viewer.anonymous()
        async with self.services.db.read_session() as session:
            return await viewer_for_token(session, token) or Viewer.anonymous()

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket | None) -> Context:
        viewer = await self.viewer_for(request)
        if viewer.account_id is not None:
            note(account_id=viewer.account_id)
            if isinstance(request, Request):
                settings = self.services.settings
                wait = await self.services.limiter.hit(
                    f"account:{viewer.account_id}", Limit(settings.rate_limit_per_account, 60)
                )
                if wait is not None:
                    raise RateLimited(wait, "account")
        request_id = request_id_var.get() or request.headers.get("x-request-id") or uuid.uuid4().hex
        today = local_today()
        loaders = Loaders(self.services.db, viewer, today, cipher=self.services.cipher, request_id=request_id[:64])
        return Context(
            services=self.services,
            viewer=viewer,
            loaders=loaders,
            today=today,
            request_id=request_id[:64],
            request=request,
            response=response,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws `connection_init`: the payload's {"Authorization": "Bearer …"} sets the viewer.

        Without one the handshake's Authorization header counts. A token that is given but not (or
        no longer) valid closes the socket with 4403, so the client logs in again.
        """
        params = context.connection_params or {}
        header = next((v for k, v in params.items() if k.lower() == "authorization" and isinstance(v, str)), None)
        if header is None:
            if context.request is not None and bearer_token(context.request) and not context.viewer.is_authenticated:
                raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
            return UNSET
        token = parse_bearer(header)
        viewer = None
        if token is not None:
            async with self.services.db.read_session() as session:
                viewer = await viewer_for_token(session, token)
        if viewer is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
        context.viewer = viewer
        context.loaders = Loaders(
            self.services.db, viewer, context.today, cipher=self.services.cipher, request_id=context.request_id
        )
        return UNSET

    async def get_root_value(self, request: Any) -> None:
        return None

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        # orjson writes UTF-8 (not \u escapes) and is several times faster than json.dumps.
        return orjson.dumps(data)
