"""Queries and mutations of the notices domain."""

from __future__ import annotations

from typing import Any

import strawberry

from api.graphql.errors import UserError


@strawberry.type
class NoticesQuery:
    pass


@strawberry.type
class NoticesMutation:
    pass


ERROR_TYPES: list[type[UserError]] = []
TYPES: list[Any] = []
