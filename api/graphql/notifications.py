"""Notification settings: webhooks a community's systems receive signed event pushes at."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated, Any, Self

import strawberry
from strawberry import relay

from api.core.errors import DomainError
from api.graphql.context import Info
from api.graphql.errors import NotFoundError, ValidationError, to_user_error
from api.graphql.pagination import decode_id
from api.notifications import webhooks
from api.notifications.models import WebhookEndpoint as WebhookEndpointModel


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1


@strawberry.type(description="A URL that receives the community's events as signed POSTs (community admins).")
class WebhookEndpoint(relay.Node):
    db_id: relay.NodeID[int]
    url: str = strawberry.field(description="Where events are POSTed.")
    active: bool = strawberry.field(description="Whether events are sent to it.")
    created_at: dt.datetime = strawberry.field(description="When it was registered.")

    @classmethod
    def from_model(cls, m: WebhookEndpointModel) -> Self:
        return cls(db_id=m.id, url=m.url, active=m.active, created_at=m.created_at)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            found = await webhooks.visible_endpoints(session, info.context.viewer, ids)
        return [cls.from_model(found[i]) if i in found else None for i in ids]


@strawberry.input(description="Register a URL for a community's events.")
class RegisterWebhookInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    url: str = strawberry.field(
        description="An https URL (plain http only for localhost or 127.0.0.1), at most 500 characters."
    )


@strawberry.type(description="The webhook was registered; keep the secret, it is shown only now.")
class RegisterWebhookSuccess:
    endpoint: WebhookEndpoint = strawberry.field(description="The new endpoint.")
    secret: str = strawberry.field(
        description='Verify X-Linli-Signature: "sha256=" + hex HMAC-SHA256 of "<X-Linli-Timestamp>.<body>" with this key.'
    )


RegisterWebhookResult = Annotated[
    RegisterWebhookSuccess | NotFoundError | ValidationError,
    strawberry.union("RegisterWebhookResult", description="The endpoint and its secret, or why it was refused."),
]


@strawberry.type
class NotificationsMutation:
    @strawberry.mutation(description="Register a webhook for a community's ticket events (community admins).")
    async def register_webhook(
        self,
        info: Info,
        input: Annotated[RegisterWebhookInput, strawberry.argument(description="The mutation's input.")],
    ) -> RegisterWebhookResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                registered = await webhooks.register_endpoint(
                    uow,
                    viewer=info.context.viewer,
                    cipher=info.context.cipher,
                    community_id=decode_id(input.community_id, "Community"),
                    url=input.url,
                )
        except DomainError as exc:
            return to_user_error(exc, [NotFoundError, ValidationError])
        return RegisterWebhookSuccess(
            endpoint=WebhookEndpoint.from_model(registered.endpoint), secret=registered.secret
        )
