"""Look-ahead loading: fetch a page's relations level by level, then resolve them without awaiting.

A list of N objects with relations costs, resolved field by field, N coroutines per relation
(each awaiting its dataloader) and as many tasks and event-loop turns, which is where a nested
page spends its time. Instead, a list resolver looks at the fields the query selects under its
objects and loads each selected relation for the whole page in one batch (and the relations of
those, level by level) before returning; the relation fields then find their rows in the
dataloaders' caches and return them synchronously.

Two pieces, both small:
- `loaded(loader, key, convert)`: what a relation field returns. The converted row at once when the
  loader holds it, else an awaitable of it (so a field works the same when nothing was prefetched,
  as for `node(id:)`).
- `Prefetch` rules per GraphQL type: field name → how to batch-load it for a list of objects and
  which type its values are (for the next level). `prefetch(info_fields, type_name, objects)`
  walks the selection and applies them.

The scoping and masking stay in the loaders and in the types: prefetching only warms the same
per-request, per-viewer dataloaders the fields use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")


def loaded(loader: DataLoader[K, V], key: K, convert: Callable[[V], R]) -> R:
    """`convert(row)` now when `loader` already holds the row for `key`; else an awaitable of it.

    The declared return type is the value's: graphql-core awaits an awaitable a resolver returns.
    """
    future = loader.cache_map.get(key)
    if future is not None and future.done() and not future.cancelled() and future.exception() is None:
        return convert(future.result())
    return _later(loader, key, convert)  # type: ignore[return-value]


async def _later(loader: DataLoader[K, V], key: K, convert: Callable[[V], R]) -> R:
    return convert(await loader.load(key))


@dataclass(frozen=True, slots=True)
class Relation:
    """How to prefetch one relation field for a list of parent objects.

    `load(context, parents, field)` loads (warms the loaders) and returns the related objects, so
    that their own selected relations can be prefetched in turn; `child_type` names their type.
    """

    load: Callable[[Any, Sequence[Any], SelectedField], Awaitable[Sequence[Any]]]
    child_type: str | None = None


RULES: dict[str, dict[str, Relation]] = {}


def rules(type_name: str, relations: dict[str, Relation]) -> None:
    """Register the prefetch rules of a GraphQL type (by its name)."""
    RULES.setdefault(type_name, {}).update(relations)


def fields_under(selections: Iterable[Selection], *path: str) -> list[SelectedField]:
    """The fields selected at `path` below `selections` (fragments flattened)."""
    current = list(_flatten(selections))
    for name in path:
        current = [child for f in current if f.name == name for child in _flatten(f.selections)]
    return current


def _flatten(selections: Iterable[Selection]) -> Iterable[SelectedField]:
    for s in selections:
        if isinstance(s, SelectedField):
            yield s
        elif isinstance(s, (InlineFragment, FragmentSpread)):
            yield from _flatten(s.selections)


async def prefetch(context: Any, selections: Sequence[SelectedField], type_name: str, objects: Sequence[Any]) -> None:
    """Load every selected relation of `objects` (of GraphQL type `type_name`), level by level."""
    type_rules = RULES.get(type_name)
    if not objects or not type_rules:
        return
    wanted = [(f, type_rules[f.name]) for f in selections if f.name in type_rules]
    if not wanted:
        return
    # One relation after the other: each load holds one pooled connection for one statement, so a
    # request never needs more than one connection at a time (under load, parallel loads per
    # request would drain the pool and make it open and close connections).
    for f, rule in wanted:
        found = await rule.load(context, objects, f)
        if rule.child_type is not None and found:
            await prefetch(context, list(_flatten(f.selections)), rule.child_type, found)


async def prefetch_connection(info: Any, type_name: str, rows: Sequence[Any]) -> None:
    """Prefetch what the query selects under `edges.node` and `nodes` of the connection being resolved."""
    if not rows or type_name not in RULES:
        return
    field = info.selected_fields[0]
    selections = fields_under(field.selections, "edges", "node") + fields_under(field.selections, "nodes")
    await prefetch(info.context, selections, type_name, rows)
