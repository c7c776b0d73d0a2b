"""The query cost budget: what a request may ask for, priced before anything runs.

Every object field costs 1, leaf fields and introspection (scalars, enums) cost nothing, and a field that returns many
objects multiplies what is selected under it by how many it can return: `first` when the field is
paged (up to the page limit, counted once for the connection and its edges), the length of an `ids` list, or a nominal list size otherwise. Each
mutation field costs 10 more, since it writes. The cost is known before execution from the
document and its variables alone, so a request over the budget is refused without touching the
database, and every answer reports its cost in `extensions.cost`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_operation_ast,
    is_leaf_type,
)
from graphql.type import TypeNameMetaFieldDef
from strawberry.extensions import SchemaExtension

PAGE_LIMIT = 100  # the largest `first` any connection accepts
DEFAULT_PAGE = 20  # what a connection returns without `first`
LIST_SIZE = 10  # what an unpaged list is assumed to hold
MUTATION_COST = 10
COST_EXCEEDED = "QUERY_COST_EXCEEDED"


def _int_argument(node: FieldNode, name: str, variables: Mapping[str, Any]) -> int | None:
    for argument in node.arguments or ():
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            raw = variables.get(value.name.value)
            return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    return None


def _list_length(node: FieldNode, name: str, variables: Mapping[str, Any]) -> int | None:
    for argument in node.arguments or ():
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, ListValueNode):
            return len(value.values)
        if isinstance(value, VariableNode):
            raw = variables.get(value.name.value)
            return len(raw) if isinstance(raw, list) else None
    return None


def _returns_list(field: GraphQLField) -> bool:
    t = field.type
    if isinstance(t, GraphQLNonNull):
        t = t.of_type
    return isinstance(t, GraphQLList)


class _Pricer:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def _fields(self, selection_set: SelectionSetNode, seen: frozenset[str]) -> Iterator[tuple[FieldNode, str | None]]:
        """The fields of a selection set with the type condition they sit under (fragments flattened)."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection, None
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition.name.value if selection.type_condition else None
                for field, inner in self._fields(selection.selection_set, seen):
                    yield field, inner or condition
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue  # validation refuses unknown and cyclic fragments
                for field, inner in self._fields(fragment.selection_set, seen | {name}):
                    yield field, inner or fragment.type_condition.name.value

    def _field_definition(self, parent: GraphQLNamedType, condition: str | None, name: str) -> GraphQLField | None:
        if name == "__typename":
            return TypeNameMetaFieldDef
        owner = self.schema.get_type(condition) if condition else parent
        fields = getattr(owner, "fields", None)
        return fields.get(name) if fields else None

    def selection(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int:
        if selection_set is None:
            return 0
        total = 0
        for node, condition in self._fields(selection_set, frozenset()):
            total += self.field(node, parent, condition)
        return total

    def field(self, node: FieldNode, parent: GraphQLNamedType, condition: str | None) -> int:
        name = node.name.value
        if name in ("__schema", "__type"):
            return 1  # the schema's own size bounds it (and production mode refuses introspection)
        definition = self._field_definition(parent, condition, name)
        if definition is None:
            return 0  # validation reports unknown fields
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        inner = self.selection(node.selection_set, named)
        if "first" in definition.args:
            first = _int_argument(node, "first", self.variables)
            size = min(max(first if first is not None else DEFAULT_PAGE, 0), PAGE_LIMIT)
            return 2 + size * inner
        if name in ("edges", "nodes") and parent.name.endswith("Connection"):
            return 1 + inner  # the connection's `first` has counted these already
        if _returns_list(definition):
            ids = _list_length(node, "ids", self.variables)
            return 1 + (ids if ids is not None else LIST_SIZE) * inner
        return 1 + inner


def operation_cost(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any] | None
) -> int:
    """The cost of the operation that `operation_name` picks from `document` (0 when none matches)."""
    operation: OperationDefinitionNode | None = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    root: GraphQLObjectType | None = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    pricer = _Pricer(schema, document, variables or {})
    cost = pricer.selection(operation.selection_set, root)
    if operation.operation == OperationType.MUTATION:
        cost += MUTATION_COST * len(operation.selection_set.selections)
    return cost


class CostBudget(SchemaExtension):
    """Price each operation before it runs; refuse it over the budget; report the cost in extensions."""

    def __init__(self, *, budget: int) -> None:
        self.budget = budget
        self.cost: int | None = None

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.graphql_document is not None:
            self.cost = operation_cost(
                ctx.schema._schema, ctx.graphql_document, ctx.operation_name, ctx.variables or {}
            )
            if self.cost > self.budget:
                ctx.result = ExecutionResult(
                    data=None,
                    errors=[
                        GraphQLError(
                            f"The query costs {self.cost}, over the budget of {self.budget}: "
                            "ask for fewer items per page or fewer nested lists.",
                            extensions={"code": COST_EXCEEDED, "cost": self.cost, "budget": self.budget},
                        )
                    ],
                )
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost, "budget": self.budget}}


def max_directives_rule(limit: int) -> type[ValidationRule]:
    """A validation rule refusing documents with more than `limit` directives (directive overloading)."""

    class MaxDirectives(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.count = 0

        def enter_directive(self, node: DirectiveNode, *_args: object) -> None:
            self.count += 1
            if self.count == limit + 1:
                self.report_error(GraphQLError(f"More than {limit} directives in one document.", node))

    return MaxDirectives
