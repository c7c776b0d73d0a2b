"""The GraphQL ASGI view: resolves the bearer token into a viewer and builds the context."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from api.accounts.service import viewer_for_token
from api.core.clock import local_today
from api.core.viewer import Viewer
from api.graphql.context import Context, Services
from api.graphql.loaders import Loaders
from api.graphql.schema import build_schema


def bearer_token(request: Request | WebSocket) -> str | None:
    header = request.headers.get("authorization", "")
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
            multipart_uploads_enabled=False,
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
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
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

    async def get_root_value(self, request: Any) -> None:
        return None
