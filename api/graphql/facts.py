"""Tell the request's access log and metrics which operation ran and which error codes it gave.

A crash caused by a dependency that is down (the database, Redis) is not an internal error the
client can do nothing about: the answer becomes 503 with Retry-After and the code
SERVICE_UNAVAILABLE, so that clients and load balancers retry instead of reporting a bug.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from api.observability import RETRY_AFTER_SECONDS, dependency_down, note, note_error_codes


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
        if ctx.result is not None and any(dependency_down(e.original_error) for e in errors):
            ctx.result.errors = [
                GraphQLError(
                    "A service this request needs is unavailable; try again shortly.",
                    extensions={"code": "SERVICE_UNAVAILABLE"},
                )
            ]
            ctx.result.data = None
            response = getattr(ctx.context, "response", None)
            if response is not None and hasattr(response, "status_code"):
                response.status_code = 503
                response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            errors = ctx.result.errors
        note_error_codes([_code(e) for e in errors])


def _code(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code")
    if code:
        return str(code)
    return "GRAPHQL_VALIDATION" if error.original_error is None else "INTERNAL"
