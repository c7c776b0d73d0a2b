"""The DomainError family: expected failures that clients see as typed errors."""

from __future__ import annotations


class DomainError(Exception):
    """An expected failure caused by the request, never by the system."""

    code = "INVALID"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(DomainError):
    code = "INVALID"


class NotFound(DomainError):
    """The object does not exist, or does not exist for this viewer."""

    code = "NOT_FOUND"


class Conflict(DomainError):
    code = "CONFLICT"


class Forbidden(DomainError):
    """The viewer may not do this (raised as a GraphQL error, not a payload)."""

    code = "FORBIDDEN"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
