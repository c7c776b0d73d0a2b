"""Queries and mutations of the hall domain."""

from __future__ import annotations

from typing import Any

import strawberry

from api.graphql.errors import UserError


@strawberry.type
class HallQuery:
    pass


@strawberry.type
class HallMutation:
    pass


ERROR_TYPES: list[type[UserError]] = []
TYPES: list[Any] = []
