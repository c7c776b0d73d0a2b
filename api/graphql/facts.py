"""Tell the request's access log and metrics which operation ran and which error codes it gave."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from api.observability import note, note_error_codes


class OperationFacts(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        ctx = self.execution_context
        try:
            kind: str | None = ctx.operation_type.value
        except Exception:  # no operation could be chosen (parse failed, unknown operation name)
            kind = "invalid"
        note(operation_name=ctx.operation_name, operation_type=kind)
        errors = ctx.result.errors if ctx.result is not None and ctx.result.errors else []
        note_error_codes([_code(e) for e in errors])


def _code(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    if code:
        return str(code)
    return "GRAPHQL_VALIDATION" if error.original_error is None else "INTERNAL"
