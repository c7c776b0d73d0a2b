"""User errors as GraphQL types, and the mapping from DomainError to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import GraphQLError

from api.accounts.service import InvalidCredentials
from api.core.errors import Conflict, DomainError, Forbidden, NotFound, Unauthenticated, ValidationFailed
from api.registry.service import DuplicateHousehold, DuplicateNationalId, GuardianRequired, WrongCommunity
from api.registry.validation import InvalidBirthDate, InvalidNationalId, InvalidPhone


@strawberry.interface(description="A problem with the request that the user can fix.")
class UserError:
    message: str = strawberry.field(description="What went wrong, written for the user.")
    field: str | None = strawberry.field(description="The input field at fault, in camelCase, if one is.")
    code: str = strawberry.field(description="A stable machine-readable error code.")


@strawberry.type(description="The input is invalid.")
class ValidationError(UserError):
    pass


@strawberry.type(description="The object does not exist or is not visible to you.")
class NotFoundError(UserError):
    pass


@strawberry.type(description="The change conflicts with existing data.")
class ConflictError(UserError):
    pass


@strawberry.type(description="The ID number is not a valid 18-character national ID (GB 11643).")
class InvalidNationalIdError(UserError):
    pass


@strawberry.type(description="The phone number is not a mainland China mobile number.")
class InvalidPhoneError(UserError):
    pass


@strawberry.type(description="The birth date is impossible or differs from the ID number.")
class InvalidBirthDateError(UserError):
    pass


@strawberry.type(description="A resident with this ID number is already registered in the community.")
class DuplicateNationalIdError(UserError):
    pass


@strawberry.type(description="That address already has a household.")
class DuplicateHouseholdError(UserError):
    pass


@strawberry.type(description="The objects belong to different communities.")
class WrongCommunityError(UserError):
    pass


@strawberry.type(description="A child under 14 needs a guardian for this.")
class GuardianRequiredError(UserError):
    pass


@strawberry.type(description="The phone number or password is wrong.")
class InvalidCredentialsError(UserError):
    pass


# Most specific first: the first class in an exception's MRO found here decides the type.
ERROR_TYPES: dict[type[DomainError], type[UserError]] = {
    InvalidNationalId: InvalidNationalIdError,
    InvalidPhone: InvalidPhoneError,
    InvalidBirthDate: InvalidBirthDateError,
    DuplicateNationalId: DuplicateNationalIdError,
    DuplicateHousehold: DuplicateHouseholdError,
    WrongCommunity: WrongCommunityError,
    GuardianRequired: GuardianRequiredError,
    InvalidCredentials: InvalidCredentialsError,
    NotFound: NotFoundError,
    Conflict: ConflictError,
    ValidationFailed: ValidationError,
}

ALL_ERROR_TYPES: tuple[type[UserError], ...] = tuple(dict.fromkeys(ERROR_TYPES.values()))


def auth_error(exc: Forbidden | Unauthenticated) -> GraphQLError:
    return GraphQLError(exc.message, extensions={"code": exc.code})


def to_user_error(exc: DomainError, allowed: Sequence[type[UserError]]) -> Any:
    """The GraphQL error object for `exc`, among the types a mutation's union declares.

    Authorization failures are not user errors: they are raised as GraphQL errors with
    ``extensions.code``.
    """
    if isinstance(exc, Forbidden | Unauthenticated):
        raise auth_error(exc) from exc
    for klass in type(exc).__mro__:
        gql_type = ERROR_TYPES.get(klass)
        if gql_type is not None and gql_type in allowed:
            return gql_type(message=exc.message, field=exc.field, code=exc.code)
    return ValidationError(message=exc.message, field=exc.field, code=exc.code)


def bad_input(message: str, code: str = "BAD_USER_INPUT") -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})
