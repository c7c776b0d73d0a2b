"""Queries and mutations of the canteen domain."""

from __future__ import annotations

from typing import Any

import strawberry

from api.graphql.errors import UserError


@strawberry.type
class CanteenQuery:
    pass


@strawberry.type
class CanteenMutation:
    pass


ERROR_TYPES: list[type[UserError]] = []
TYPES: list[Any] = []
