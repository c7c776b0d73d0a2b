"""The executor's short path for plain scalar fields answers exactly as graphql-core's own path."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission

from api.graphql.execution import Executor

AT = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class OnlyAdmins(BasePermission):
    message = "Admins only."

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return bool(info.context.get("admin"))


@strawberry.type
class Leaf:
    name: str
    colour: Colour
    at: dt.datetime
    note: str | None
    size: int
    secret: str | None = strawberry.field(permission_classes=[OnlyAdmins])

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times

    @strawberry.field
    def later_name(self) -> str:
        """A sync resolver that returns an awaitable (as `loaded` does when nothing was prefetched)."""
        return self._name_soon()  # type: ignore[return-value]

    async def _name_soon(self) -> str:
        return self.name

    @strawberry.field
    @staticmethod
    def tag(root: Leaf, info: strawberry.Info, prefix: str = "#") -> str:
        """The object as `root`, the info and a defaulted argument."""
        return f"{prefix}{root.name}{'!' if info.context.get('admin') else ''}"

    @strawberry.field
    def matches(self, parent: strawberry.Parent[Leaf], colour: Colour) -> bool:
        """An enum argument (converted to the Python enum) and the object as `parent`."""
        return parent.colour is colour and self is parent


def _leaves() -> list[Leaf | None]:
    return [
        Leaf(name="a", colour=Colour.RED, at=AT, note=None, size=1, secret="s1"),
        Leaf(name="b", colour=Colour.BLUE, at=AT.replace(microsecond=120000), note="n", size=2, secret="s2"),
        # broken data: a null in a non-null field and a value its scalar cannot serialise
        Leaf(name=None, colour=Colour.RED, at=AT, note="x", size=3, secret=None),  # type: ignore[arg-type]
        Leaf(name="d", colour=Colour.RED, at=AT, note="x", size="many", secret=None),  # type: ignore[arg-type]
    ]


@strawberry.type
class Query:
    @strawberry.field
    def leaves(self) -> list[Leaf | None]:
        return _leaves()

    @strawberry.field
    async def later(self) -> Leaf | None:
        return _leaves()[0]


QUERY = """
query {
  leaves { __typename name colour at note size alias: name shout(times: 2) ...F secret tag
           dollar: tag(prefix: "$") matches(colour: RED) }
  later { name ... on Leaf { colour at } }
}
fragment F on Leaf { note colour }
"""
AWAITING = "query { leaves { name laterName } later { laterName } }"


class Resolving(SchemaExtension):
    """An extension with a resolve hook: the executor leaves every field to graphql-core then."""

    calls = 0

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        Resolving.calls += 1
        return _next(root, info, *args, **kwargs)


async def _run(
    executor: Any, *, admin: bool, extensions: list[Any] | None = None, query: str = QUERY
) -> dict[str, Any]:
    schema = strawberry.Schema(query=Query, execution_context_class=executor, extensions=extensions or [])
    result = await schema.execute(query, context_value={"admin": admin})
    return {"data": result.data, "errors": sorted((e.message, tuple(e.path or ())) for e in result.errors or [])}


@pytest.mark.parametrize("admin", [True, False])
async def test_the_short_path_gives_the_same_data_errors_and_key_order(admin: bool) -> None:
    # given the same schema run by graphql-core's executor and by ours
    expected = await _run(None, admin=admin)
    # when
    ours = await _run(Executor, admin=admin)
    # then
    assert ours == expected
    first = ours["data"]["leaves"][0]
    assert list(first) == list(expected["data"]["leaves"][0])  # keys in the order selected
    assert first["colour"] == "RED"
    assert first["at"] == "2026-11-30T09:00:00+00:00"
    assert first["note"] is None
    assert first["secret"] == ("s1" if admin else None)  # the permission class still runs
    assert (first["tag"], first["dollar"]) == (("#a!", "$a!") if admin else ("#a", "$a"))
    assert [x and x["matches"] for x in ours["data"]["leaves"]] == [True, False, None, None]
    assert ours["data"]["leaves"][2] is None  # the broken items: null, with located errors
    assert ours["data"]["leaves"][3] is None
    paths = [path for _message, path in ours["errors"]]
    assert ("leaves", 2, "name") in paths
    assert ("leaves", 3, "size") in paths
    assert (("Admins only.", ("leaves", 0, "secret")) in ours["errors"]) is not admin


async def test_with_resolver_middleware_every_field_takes_the_usual_path() -> None:
    # given an extension that wraps every resolver
    Resolving.calls = 0
    # when
    ours = await _run(Executor, admin=True, extensions=[Resolving])
    # then it saw the plain fields too, and the answer is graphql-core's
    assert Resolving.calls > 20
    assert ours == await _run(None, admin=True)


async def test_a_planned_list_builds_one_resolve_info_per_field_not_one_per_object(monkeypatch) -> None:
    # given a count of the resolve infos each executor builds
    built: list[str] = []
    original = Executor.build_resolve_info

    def counting(self: Any, field_def: Any, field_nodes: Any, parent_type: Any, path: Any) -> Any:
        built.append(field_nodes[0].name.value)
        return original(self, field_def, field_nodes, parent_type, path)

    monkeypatch.setattr(Executor, "build_resolve_info", counting)
    query = "query { leaves { name shout secret tag matches(colour: RED) } }"
    # when the same query runs through graphql-core's completion and through the plan
    expected = await _run(None, admin=True, query=query)
    built.clear()
    ours = await _run(Executor, admin=True, query=query)
    # then the answer is the same, and the plan resolved `shout` and `secret` with one info each
    # (graphql-core builds one per list item: 3 here); the broken item falls back to graphql-core,
    # which stops at its null `name`
    assert ours == expected
    assert [built.count(name) for name in ("leaves", "shout", "secret", "tag", "matches")] == [1, 1, 1, 1, 1]


async def test_a_resolver_that_returns_an_awaitable_hands_the_value_back_to_graphql_core() -> None:
    # given a field whose resolver returns an awaitable, in a list and in a single object
    # when
    ours = await _run(Executor, admin=True, query=AWAITING)
    # then graphql-core completes it, with the same answer as its own executor
    assert ours == await _run(None, admin=True, query=AWAITING)
    assert ours["data"]["later"] == {"laterName": "a"}
    assert [x and x["laterName"] for x in ours["data"]["leaves"]] == ["a", "b", None, "d"]
