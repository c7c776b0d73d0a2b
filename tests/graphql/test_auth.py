from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from api.accounts.models import AccountSession
from api.core.clock import utc_now
from api.core.viewer import Role
from tests.factories import PASSWORD, make_community, make_login

LOGIN = """
mutation Login($input: LoginInput!) {
  login(input: $input) {
    __typename
    ... on LoginSuccess { token expiresAt viewer { isAuthenticated displayName } }
    ... on UserError { message field code }
  }
}
"""

VIEWER = """
{ viewer { isAuthenticated displayName grants { community { name } roles permissions } } }
"""


async def test_login_returns_a_token_that_identifies_the_viewer(services, gql) -> None:
    # given
    community = await make_community(services.db, name="明珠花苑社区")
    login = await make_login(services, role=Role.STAFF, community=community)
    # when
    data = await gql(LOGIN, {"input": {"phone": login.phone, "password": PASSWORD}})
    token = data["login"]["token"]
    viewer = await gql(VIEWER, token=token)
    # then
    assert data["login"]["__typename"] == "LoginSuccess"
    assert viewer["viewer"]["isAuthenticated"] is True
    assert viewer["viewer"]["grants"] == [
        {
            "community": {"name": "明珠花苑社区"},
            "roles": ["STAFF"],
            "permissions": [
                "DISPATCH",
                "MANAGE_CANTEEN",
                "MANAGE_ELDER_CARE",
                "MANAGE_HALL",
                "MANAGE_LIBRARY",
                "MANAGE_REGISTRY",
                "MANAGE_TICKETS",
                "MODERATE_LISTINGS",
                "PUBLISH_NOTICES",
                "VIEW_REGISTRY",
                "VIEW_SURVEY",
            ],
        }
    ]


async def test_wrong_password_is_a_typed_error(services, gql) -> None:
    login = await make_login(services, role=Role.RESIDENT, community=await make_community(services.db))
    data = await gql(LOGIN, {"input": {"phone": login.phone, "password": "wrong"}})
    assert data["login"] == {
        "__typename": "InvalidCredentialsError",
        "message": "The phone number or password is wrong.",
        "field": None,
        "code": "INVALID_CREDENTIALS",
    }


async def test_unknown_phone_gets_the_same_error_as_a_wrong_password(gql) -> None:
    data = await gql(LOGIN, {"input": {"phone": "13912345678", "password": "whatever"}})
    assert data["login"]["__typename"] == "InvalidCredentialsError"


async def test_login_with_a_landline_is_an_invalid_phone(gql) -> None:
    data = await gql(LOGIN, {"input": {"phone": "0311-8888888", "password": "x"}})
    assert data["login"]["__typename"] == "InvalidPhoneError"
    assert data["login"]["field"] == "phone"


async def test_logout_revokes_the_token(services, gql) -> None:
    login = await make_login(services, role=Role.STAFF, community=await make_community(services.db))
    data = await gql("mutation { logout { revoked } }", token=login.token)
    after = await gql(VIEWER, token=login.token)
    assert data["logout"]["revoked"] is True
    assert after["viewer"]["isAuthenticated"] is False


async def test_expired_session_is_anonymous(services, gql) -> None:
    login = await make_login(services, role=Role.STAFF, community=await make_community(services.db))
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(update(AccountSession).values(expires_at=utc_now() - timedelta(seconds=1)))
    data = await gql(VIEWER, token=login.token)
    assert data["viewer"]["isAuthenticated"] is False


async def test_tokens_are_stored_only_as_digests(services) -> None:
    login = await make_login(services, role=Role.STAFF, community=await make_community(services.db))
    async with services.db.read_session() as session:
        stored = (await session.scalars(select(AccountSession.token_hash))).all()
    assert login.token not in stored
    assert len(stored) == 1
    assert len(stored[0]) == 64


async def test_logout_without_a_session_is_unauthenticated(gql_raw) -> None:
    body = await gql_raw("mutation { logout { revoked } }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
