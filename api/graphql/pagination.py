"""Relay cursor connections with `totalCount`, over keyset pages from api.core.pagination."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import strawberry
from sqlalchemy import Select
from strawberry import relay
from strawberry.relay.types import NodeType

from api.core.database import Database
from api.core.pagination import MAX_PAGE_SIZE, Page, PageArgs, count_of, fetch_page
from api.graphql.errors import bad_input
from api.graphql.prefetch import prefetch_connection

N = TypeVar("N", bound=relay.Node)

_CURSOR_PREFIX = "cursor:"


def encode_cursor(id_: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{id_}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        if raw.startswith(_CURSOR_PREFIX):
            return int(raw[len(_CURSOR_PREFIX) :])
    except (ValueError, UnicodeDecodeError):
        pass
    raise bad_input("The `after` cursor is not one this API gave out.")


def page_args(first: int | None, after: str | None) -> PageArgs:
    """Validate `first` (1–100, default 20) and decode `after`."""
    size = 20 if first is None else first
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise bad_input(f"`first` must be between 1 and {MAX_PAGE_SIZE}.")
    return PageArgs(first=size, after=decode_cursor(after) if after else None)


@strawberry.type(name="Connection", description="A page of results with cursors.")
class Connection(relay.Connection[NodeType]):
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many results there are in all, across every page.")
    async def total_count(self) -> int:
        return await self._count()


def connection(page: Page[Any], to_node: Callable[[Any], N], count: Callable[[], Awaitable[int]]) -> Connection[N]:
    """Build a connection from a keyset page."""
    edges = [relay.Edge(node=to_node(item), cursor=encode_cursor(item.id)) for item in page.items]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        _count=count,
    )


def decode_ids(ids: Sequence[relay.GlobalID], type_name: str) -> list[int]:
    """Database ids from global ids of one type; an id of another type matches nothing (-1)."""
    out = []
    for gid in ids:
        try:
            out.append(int(gid.node_id) if gid.type_name == type_name else -1)
        except ValueError:
            out.append(-1)
    return out


def decode_id(gid: relay.GlobalID, type_name: str) -> int:
    return decode_ids([gid], type_name)[0]


async def paged(
    db: Database,
    stmt: Select[Any],
    id_col: Any,
    args: PageArgs,
    to_node: Callable[[Any], N],
    *,
    prefetch_for: tuple[Any, str] | None = None,
) -> Connection[N]:
    """A keyset page of `stmt` as a connection; `totalCount` runs its own count only when asked for.

    `prefetch_for=(info, "TypeName")` loads the relations the query selects under the page's
    nodes in bulk first (api/graphql/prefetch.py).
    """
    async with db.read_session() as session:
        page = await fetch_page(session, stmt, id_col, args)
    if prefetch_for is not None:
        await prefetch_connection(prefetch_for[0], prefetch_for[1], page.items)

    async def count() -> int:
        async with db.read_session() as session:
            return await count_of(session, stmt)

    return connection(page, to_node, count)
