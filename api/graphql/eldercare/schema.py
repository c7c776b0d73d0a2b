"""Queries and mutations of the eldercare domain."""

from __future__ import annotations

from typing import Any

import strawberry

from api.graphql.errors import UserError


@strawberry.type
class ElderCareQuery:
    pass


@strawberry.type
class ElderCareMutation:
    pass


ERROR_TYPES: list[type[UserError]] = []
TYPES: list[Any] = []
