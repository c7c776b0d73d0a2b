"""The executor: graphql-core's, with a short path over data that is already loaded.

A nested page (50 tickets, each with its category, reporter, household, building, assignee and
events) is about a thousand fields, and graphql-core runs its whole field machinery for each: a
`Path`, a resolve info of 14 values, the resolver through strawberry's wrapper, `is_awaitable`,
`complete_value`'s dispatch on the type and a gather of awaitables. Once a list resolver has
prefetched the page's relations (api/graphql/prefetch.py), every one of those fields could be
answered synchronously, and that machinery is most of what the request costs.

So this executor plans the completion of a field's value: once per request and field selection it
builds a completer from graphql-core's own collected fields. Plain fields (strawberry's
`is_basic_field`: no resolver, no field extensions) read the attribute; resolver fields call the
field's resolver, strawberry's wrapper with its permission classes and argument conversion, with
one resolve info per selected field instead of one per object; leaves are coerced with their type's
`coerce_output_value`; lists and objects recurse. A selection is planned only when every field in it
can be (no `@defer`, no interface or union below, no async resolver). While completing, anything
graphql-core would treat specially (a resolver returning an awaitable, an exception, a null in a
non-null field, a failed coercion, `is_type_of` saying no) abandons the plan, and graphql-core
completes the same value its own way, so errors and partial results are exactly graphql-core's.
Below an unplannable field (a connection's `totalCount`, say), the values of its plannable
siblings and children are still planned one by one.

Resolvers get the same `info` for every object of a list in planned completion, whose `path` ends at
the field without the list index; nothing in Linli reads `info.path`. With resolver middleware
(a schema extension with a `resolve` hook) every field takes graphql-core's path.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import isawaitable
from typing import Any, TypeAlias

from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    is_leaf_type,
)
from graphql.execution.executor import to_nodes
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField

# A completed value from a resolved one; raises _Abandon where graphql-core must complete it instead.
Completer: TypeAlias = Callable[[Any], Any]


class _Abandon(Exception):
    """The planned completion cannot give graphql-core's answer for this value."""


def _strawberry_field(field_def: GraphQLField) -> StrawberryField | None:
    definition = field_def.extensions.get("strawberry-definition") if field_def.extensions else None
    return definition if isinstance(definition, StrawberryField) else None


class Executor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor with planned completion over loaded data (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per request: (type, id of the field selection) → completer, or None when not plannable.
        # The selections live as long as graphql-core's own per-request caches keep them.
        self._completers: dict[tuple[Any, int], tuple[Any, Completer | None]] = {}

    @property
    def _has_middleware(self) -> bool:
        manager = self.middleware_manager
        return manager is not None and bool(manager.middlewares)

    # -- planned completion ------------------------------------------------------------------

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        if result is not None and not isinstance(result, Exception) and not self._has_middleware:
            completer = self._completer(return_type, field_details_list)
            if completer is not None:
                try:
                    return completer(result)
                except _Abandon:
                    pass
        return super().complete_value(return_type, field_details_list, info, path, result, position_context)

    def _completer(self, type_: Any, field_details_list: Any) -> Completer | None:
        key = (type_, id(field_details_list))
        found = self._completers.get(key)
        if found is None:
            # Keep the selection alive with its completer, so that its id is not reused.
            found = (field_details_list, self._plan(type_, field_details_list))
            self._completers[key] = found
        return found[1]

    def _plan(self, type_: Any, field_details_list: Any) -> Completer | None:
        if isinstance(type_, GraphQLNonNull):
            return _non_null(self._completer(type_.of_type, field_details_list))
        if isinstance(type_, GraphQLList):
            return _list_of(self._completer(type_.of_type, field_details_list))
        if is_leaf_type(type_):
            return _leaf(type_.coerce_output_value)
        if isinstance(type_, GraphQLObjectType):
            return self._plan_object(type_, field_details_list)
        return None  # an interface or a union: graphql-core resolves the runtime type

    def _plan_object(self, type_: GraphQLObjectType, field_details_list: Any) -> Completer | None:
        grouped_field_set, defer_usages, _forbidden = self.collect_subfields(type_, field_details_list)
        if defer_usages:
            return None
        steps: list[tuple[str, Callable[[Any], Any] | None, Completer]] = []
        for response_name, sub_details in grouped_field_set.items():
            name = sub_details[0].node.name.value
            if name == "__typename":
                steps.append((response_name, None, _constant(type_.name)))
                continue
            field_def = type_.fields.get(name)
            if field_def is None:
                return None
            read = self._reader(type_, response_name, field_def, sub_details)
            complete = self._completer(field_def.type, sub_details)
            if read is None or complete is None:
                return None
            steps.append((response_name, read, complete))
        is_type_of = type_.is_type_of
        # graphql-core passes the field's own info to `is_type_of`; strawberry's ignores it.
        type_info: Any = self._info(type_, type_.name, None, field_details_list) if is_type_of else None

        def complete_object(value: Any) -> Any:
            if value is None:
                return None
            if is_type_of is not None and is_type_of(value, type_info) is not True:
                raise _Abandon
            out = {}
            try:
                for response_name, read, complete in steps:
                    out[response_name] = complete(value if read is None else read(value))
            except Exception as exc:  # an attribute missing, or _Abandon from below
                raise _Abandon from exc
            return out

        return complete_object

    def _reader(
        self, parent_type: GraphQLObjectType, response_name: str, field_def: GraphQLField, details: Any
    ) -> Callable[[Any], Any] | None:
        """How to get a field's resolved value from its parent object, or None when it cannot be planned."""
        definition = _strawberry_field(field_def)
        if definition is None:
            return None
        if definition.is_basic_field and not field_def.args:
            attribute = definition.python_name
            return lambda source: getattr(source, attribute)
        if definition.base_resolver is not None and definition.base_resolver.is_async:
            return None  # it always awaits: graphql-core gathers it with its siblings
        node = details[0].node
        kwargs = (
            get_argument_values(field_def, node, self.variable_values, details[0].fragment_variable_values)
            if field_def.args or node.arguments
            else {}
        )
        info = self._info(parent_type, response_name, field_def, details)
        call = self._direct_call(definition, info, kwargs)
        if call is None:
            resolve = field_def.resolve
            if resolve is None:
                return None

            def call(source: Any) -> Any:
                return resolve(source, info, **kwargs)

        def read(source: Any) -> Any:
            try:
                value = call(source)
            except Exception as exc:
                raise _Abandon from exc
            if isawaitable(value):
                close = getattr(value, "close", None)
                if close is not None:
                    close()  # a coroutine not started: graphql-core calls the resolver again
                raise _Abandon
            return value

        return read

    def _direct_call(
        self, definition: StrawberryField, info: Any, graphql_kwargs: dict[str, Any]
    ) -> Callable[[Any], Any] | None:
        """The resolver called as strawberry's wrapper calls it, with its work done once per selection.

        For a resolver without field extensions (so no permission classes): the arguments are
        converted once, and one strawberry `Info` serves every object; the object goes where the
        resolver asks for it (`self`, `root` or `parent`), as in strawberry's `get_arguments`.
        """
        resolver = definition.base_resolver
        if resolver is None or definition.extensions:
            return None
        schema = getattr(self.schema, "_strawberry_schema", None)
        if schema is None:
            return None
        converter = schema.schema_converter
        strawberry_info = schema.config.info_class(_raw_info=info, _field=definition)
        try:
            fixed = convert_arguments(
                graphql_kwargs,
                definition.arguments,
                scalar_registry=converter.scalar_registry,
                config=converter.config,
                info=strawberry_info,
            )
        except Exception:
            return None
        if resolver.info_parameter is not None:
            fixed[resolver.info_parameter.name] = strawberry_info
        sources = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p is not None]
        function: Callable[..., Any] = resolver.wrapped_func  # type: ignore[assignment]
        with_self = resolver.self_parameter is not None

        def call(source: Any) -> Any:
            kwargs = dict(fixed, **dict.fromkeys(sources, source)) if sources else fixed
            return function(source, **kwargs) if with_self else function(**kwargs)

        return call

    def _info(self, parent_type: GraphQLObjectType, response_name: str, field_def: Any, details: Any) -> Any:
        return self.build_resolve_info(
            field_def or GraphQLField(parent_type),
            to_nodes(details),
            parent_type,
            Path(None, response_name, parent_type.name),
        )


def _constant(value: Any) -> Completer:
    return lambda _ignored: value


def _non_null(inner: Completer | None) -> Completer | None:
    if inner is None:
        return None

    def complete_non_null(value: Any) -> Any:
        completed = inner(value) if value is not None else None
        if completed is None:
            raise _Abandon  # graphql-core raises the located non-null error
        return completed

    return complete_non_null


def _list_of(inner: Completer | None) -> Completer | None:
    if inner is None:
        return None

    def complete_list(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise _Abandon  # iterables, async iterables and errors: graphql-core's cases
        return [inner(item) for item in value]

    return complete_list


def _leaf(coerce: Callable[[Any], Any]) -> Completer:
    def complete_leaf(value: Any) -> Any:
        if value is None:
            return None
        try:
            coerced = coerce(value)
        except Exception as exc:
            raise _Abandon from exc
        if coerced is None or coerced is Undefined:
            raise _Abandon
        return coerced

    return complete_leaf
