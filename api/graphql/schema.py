"""The schema: queries, mutations, limits; `schema` (no limits) is what export-schema prints."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Annotated

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from api.graphql.accounts.schema import AccountsMutation, AccountsQuery
from api.graphql.canteen import schema as canteen_schema
from api.graphql.context import Info
from api.graphql.cost import CostBudget, max_directives_rule
from api.graphql.eldercare import schema as eldercare_schema
from api.graphql.errors import ALL_ERROR_TYPES, bad_input
from api.graphql.execution import Executor
from api.graphql.facts import OperationFacts
from api.graphql.hall import schema as hall_schema
from api.graphql.library import schema as library_schema
from api.graphql.listings import schema as listings_schema
from api.graphql.notices import schema as notices_schema
from api.graphql.notifications import NotificationsMutation
from api.graphql.registry.calendar import CalendarMutation, CalendarQuery
from api.graphql.registry.mutations import RegistryMutation
from api.graphql.registry.queries import RegistryQuery
from api.graphql.tickets import schema as tickets_schema
from api.graphql.tickets.photos import TicketPhotosMutation, TicketPhotosQuery
from api.graphql.tickets.schema import TicketsMutation, TicketsQuery
from api.graphql.tickets.subscriptions import TicketsSubscription
from api.graphql.tickets.types import Assignment, Notification, Responder, Ticket, TicketCategory
from api.graphql.tickets.workshop import WorkshopBooking, WorkshopMutation, WorkshopQuery, WorkshopSession
from api.graphql.venues import schema as venues_schema
from api.settings import Settings

MAX_NODES = 100


async def _resolve_nodes(info: Info, ids: list[relay.GlobalID]) -> list[relay.Node | None]:
    """Resolve global ids type by type, each type in one batch; unknown or hidden ids give null."""
    by_type: dict[str, list[int]] = {}
    for index, gid in enumerate(ids):
        by_type.setdefault(gid.type_name, []).append(index)
    out: list[relay.Node | None] = [None] * len(ids)
    for type_name, indexes in by_type.items():
        definition = info.schema.get_type_by_name(type_name)
        origin = getattr(definition, "origin", None)
        if not (isinstance(origin, type) and issubclass(origin, relay.Node)):
            continue
        found = await origin.resolve_nodes(info=info, node_ids=[ids[i].node_id for i in indexes], required=False)  # type: ignore[misc]
        for i, node in zip(indexes, found, strict=True):
            out[i] = node
    return out


@strawberry.type(description="Everything a client can read.")
class Query(
    AccountsQuery,
    RegistryQuery,
    CalendarQuery,
    TicketsQuery,
    WorkshopQuery,
    TicketPhotosQuery,
    library_schema.LibraryQuery,
    venues_schema.VenuesQuery,
    eldercare_schema.ElderCareQuery,
    hall_schema.HallQuery,
    listings_schema.ListingsQuery,
    canteen_schema.CanteenQuery,
    notices_schema.NoticesQuery,
):
    @strawberry.field(description="Any object by its global id; null when it does not exist for you.")
    async def node(
        self, info: Info, id: Annotated[relay.GlobalID, strawberry.argument(description="A global id.")]
    ) -> relay.Node | None:
        return (await _resolve_nodes(info, [id]))[0]

    @strawberry.field(description="Objects by global ids (at most 100); null for each that does not exist for you.")
    async def nodes(
        self, info: Info, ids: Annotated[list[relay.GlobalID], strawberry.argument(description="Global ids.")]
    ) -> list[relay.Node | None]:
        if len(ids) > MAX_NODES:
            raise bad_input(f"At most {MAX_NODES} ids.")
        return await _resolve_nodes(info, ids)


@strawberry.type(description="Everything a client can change.")
class Mutation(
    AccountsMutation,
    RegistryMutation,
    CalendarMutation,
    TicketsMutation,
    WorkshopMutation,
    TicketPhotosMutation,
    NotificationsMutation,
    library_schema.LibraryMutation,
    venues_schema.VenuesMutation,
    eldercare_schema.ElderCareMutation,
    hall_schema.HallMutation,
    listings_schema.ListingsMutation,
    canteen_schema.CanteenMutation,
    notices_schema.NoticesMutation,
):
    pass


@strawberry.type(description="Live updates, over a graphql-transport-ws websocket at /graphql.")
class Subscription(TicketsSubscription):
    pass


def _should_mask(error: GraphQLError) -> bool:
    """Errors raised on purpose carry a code; anything else is a crash and gets masked."""
    if error.original_error is None:
        return False  # parse and validation errors
    return not (error.extensions and "code" in error.extensions)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with the abuse limits and error masking of `settings`."""
    extensions: list[Callable[[], SchemaExtension]] = []
    if settings is not None:
        s = settings
        # The limiters build a new rule class per instance; ValidationCache keys on the rule classes,
        # so build them once here and add the same classes to every request, or the cache never hits.
        rules = [
            *QueryDepthLimiter(max_depth=s.graphql_max_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=s.graphql_max_aliases).validation_rules,
            max_directives_rule(s.graphql_max_directives),
        ]
        if not settings.graphql_introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        # Production mode (no introspection) also gives no "Did you mean …?" hints about hidden names.
        vars(importlib.import_module("graphql.pyutils.did_you_mean"))["MAX_LENGTH"] = (
            5 if settings.graphql_introspection else 0
        )
        extensions = [
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
            lambda: AddValidationRules(rules),
            lambda: MaxTokensLimiter(max_token_count=s.graphql_max_tokens),
            lambda: CostBudget(budget=s.graphql_max_cost),
            lambda: MaskErrors(should_mask_error=_should_mask, error_message="Internal server error."),
            OperationFacts,  # last: it sees the errors before they are masked
        ]
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[
            *ALL_ERROR_TYPES,
            *tickets_schema.ERROR_TYPES,
            *library_schema.ERROR_TYPES,
            *library_schema.TYPES,
            *venues_schema.ERROR_TYPES,
            *venues_schema.NODE_TYPES,
            *eldercare_schema.ERROR_TYPES,
            *eldercare_schema.TYPES,
            *hall_schema.ERROR_TYPES,
            *hall_schema.TYPES,
            *listings_schema.ERROR_TYPES,
            *listings_schema.TYPES,
            *canteen_schema.ERROR_TYPES,
            *canteen_schema.TYPES,
            *notices_schema.ERROR_TYPES,
            *notices_schema.TYPES,
            Ticket,
            TicketCategory,
            Responder,
            Assignment,
            Notification,
            WorkshopSession,
            WorkshopBooking,
        ],
        extensions=extensions,
        execution_context_class=Executor,
    )


schema = build_schema()
