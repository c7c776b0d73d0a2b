"""Queries and mutations of the listings domain."""

from __future__ import annotations

from typing import Any

import strawberry

from api.graphql.errors import UserError


@strawberry.type
class ListingsQuery:
    pass


@strawberry.type
class ListingsMutation:
    pass


ERROR_TYPES: list[type[UserError]] = []
TYPES: list[Any] = []
