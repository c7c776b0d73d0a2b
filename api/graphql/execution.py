"""The executor: graphql-core's, with a short path for plain scalar fields.

A nested page is mostly plain scalar fields (a ticket's `status`, an event's `kind`…): strawberry
fields with no resolver, no permission classes and no arguments, whose value is an attribute of the
object. graphql-core still runs its whole field machinery for each of them: a `Path`, a resolve
info of 14 values, the resolver call, `is_awaitable` and `complete_value`'s dispatch on the type.
On a 50-ticket page that is about a thousand times per request.

For those fields only (strawberry's own `is_basic_field`: no resolver and no field extensions, so
no permission classes and no masking hook; a leaf type; no field middleware in the schema), this
executor reads the attribute and coerces it with the type's `coerce_output_value`, as
`complete_leaf_value` does. A missing non-null value or a failed coercion goes through the usual
path, so errors are located and reported exactly as before. Every other field, and every field
when an extension installs resolver middleware, takes graphql-core's path unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeAlias, cast

from graphql import GraphQLField, GraphQLNonNull, GraphQLObjectType, is_leaf_type
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

# (parent type name, field name) → (attribute name, leaf type, non-null), or None for the usual path.
LeafPlan: TypeAlias = tuple[str, Any, bool] | None


def leaf_plan(field_def: GraphQLField) -> LeafPlan:
    """How to read a plain scalar field directly, or None when it needs graphql-core's path."""
    definition = field_def.extensions.get("strawberry-definition") if field_def.extensions else None
    if not isinstance(definition, StrawberryField) or not definition.is_basic_field or field_def.args:
        return None
    field_type = field_def.type
    non_null = isinstance(field_type, GraphQLNonNull)
    leaf = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if not is_leaf_type(leaf):
        return None
    return definition.python_name, leaf, non_null


class Executor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor with the short path for plain scalar fields (see the module)."""

    _plans: ClassVar[dict[tuple[str, str], LeafPlan]] = {}

    @property
    def _has_middleware(self) -> bool:
        manager = self.middleware_manager
        return manager is not None and bool(manager.middlewares)

    def _plan(self, parent_type: GraphQLObjectType, field_name: str) -> LeafPlan:
        key = (parent_type.name, field_name)
        try:
            return self._plans[key]
        except KeyError:
            field_def = parent_type.fields.get(field_name)
            plan = leaf_plan(field_def) if field_def is not None else None
            self._plans[key] = plan
            return plan

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        if self._has_middleware:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        rest: dict[str, Any] | None = None
        done: dict[str, Any] = {}
        for response_name, field_details_list in grouped_field_set.items():
            plan = self._plan(parent_type, field_details_list[0].node.name.value)
            if plan is not None:
                attribute, leaf, non_null = plan
                value = getattr(source_value, attribute, Undefined)
                if value is not None and value is not Undefined:
                    try:
                        coerced = leaf.coerce_output_value(value)
                    except Exception:
                        coerced = Undefined
                    if coerced is not Undefined and coerced is not None:
                        done[response_name] = coerced
                        continue
                elif value is None and not non_null:
                    done[response_name] = None
                    continue
            if rest is None:
                rest = {}
            rest[response_name] = field_details_list
        if rest is None:
            return done
        if len(rest) == len(grouped_field_set):
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        others = super().execute_fields(parent_type, source_value, path, rest, position_context)
        if self.is_awaitable(others):
            return self._merge_later(grouped_field_set, done, others)
        return _in_order(grouped_field_set, done, cast(dict[str, Any], others))

    async def _merge_later(self, grouped_field_set: Any, done: dict[str, Any], others: Any) -> dict[str, Any]:
        return _in_order(grouped_field_set, done, await others)


def _in_order(grouped_field_set: Any, done: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
    """The response keys in the order the query selected them (the spec's ordering)."""
    return {
        name: done[name] if name in done else others[name]
        for name in grouped_field_set
        if name in done or name in others
    }
