"""The viewer, login and logout."""

from __future__ import annotations

import datetime as dt
import math
from datetime import timedelta
from typing import Annotated

import strawberry

from api.accounts import service
from api.accounts.service import InvalidCredentials
from api.core.errors import DomainError, Unauthenticated
from api.core.ratelimit import Limit
from api.core.viewer import Permission, Role
from api.graphql.context import Info
from api.graphql.errors import InvalidCredentialsError, InvalidPhoneError, UserError, auth_error, to_user_error
from api.graphql.registry.types import Community, Resident
from api.registry.validation import normalise_phone

RoleEnum = strawberry.enum(Role, name="Role", description="A role granted in a community.")
PermissionEnum = strawberry.enum(Permission, name="Permission", description="Something a role allows.")


@strawberry.type(description="The viewer's roles and permissions in one community.")
class CommunityGrant:
    community: Community = strawberry.field(description="The community.")
    roles: list[Role] = strawberry.field(description="Roles held there.")
    permissions: list[Permission] = strawberry.field(description="What those roles allow there.")


@strawberry.type(description="Who is asking, and what they may do.")
class ViewerInfo:
    account_id: strawberry.Private[int | None]

    @strawberry.field(description="True when a valid session token was sent.")
    def is_authenticated(self) -> bool:
        return self.account_id is not None

    @strawberry.field(description="The account's display name.")
    async def display_name(self, info: Info) -> str | None:
        if self.account_id is None:
            return None
        async with info.context.db.read_session() as session:
            account = await service.get_account(session, self.account_id)
        return account.display_name if account else None

    @strawberry.field(description="The resident record of the viewer, if they are a registered resident.")
    async def resident(self, info: Info) -> Resident | None:
        rid = info.context.viewer.resident_id
        if rid is None:
            return None
        row = await info.context.loaders.resident.load(rid)
        return Resident.from_model(row) if row else None

    @strawberry.field(description="Roles and permissions per community.")
    async def grants(self, info: Info) -> list[CommunityGrant]:
        viewer = info.context.viewer
        ids = sorted(viewer.community_ids)
        rows = await info.context.loaders.community.load_many(ids)
        return [
            CommunityGrant(
                community=Community.from_model(row),
                roles=sorted(viewer.roles_in(row.id)),
                permissions=sorted(viewer.permissions_in(row.id)),
            )
            for row in rows
            if row is not None
        ]


@strawberry.input(description="Phone number and password.")
class LoginInput:
    phone: str = strawberry.field(description="Mainland China mobile number.")
    password: str = strawberry.field(description="Password.")


@strawberry.type(description="Logged in: send the token as `Authorization: Bearer <token>`.")
class LoginSuccess:
    token: str = strawberry.field(description="Session token; keep it secret. Shown only once.")
    expires_at: dt.datetime = strawberry.field(description="When the session ends unless you log out first.")
    viewer: ViewerInfo = strawberry.field(description="Who you are now.")


@strawberry.type(description="Too many failed logins: wait before trying again.")
class TooManyAttemptsError(UserError):
    retry_after_seconds: int = strawberry.field(description="Seconds until logging in is allowed again.")


LoginResult = Annotated[
    LoginSuccess | InvalidCredentialsError | InvalidPhoneError | TooManyAttemptsError,
    strawberry.union("LoginResult", description="A session, or why login failed."),
]


@strawberry.type(description="The session was ended.")
class LogoutSuccess:
    revoked: bool = strawberry.field(description="True if an active session was revoked.")


@strawberry.type
class AccountsQuery:
    @strawberry.field(description="Who is asking, and what they may do.")
    def viewer(self, info: Info) -> ViewerInfo:
        return ViewerInfo(account_id=info.context.viewer.account_id)


@strawberry.type
class AccountsMutation:
    @strawberry.mutation(description="Log in with phone number and password; returns a session token.")
    async def login(
        self, info: Info, input: Annotated[LoginInput, strawberry.argument(description="The mutation's input.")]
    ) -> LoginResult:
        services = info.context.services
        settings = services.settings
        limiter = services.limiter
        # Per address, every attempt counts; per account, failures lock it for a while (success clears).
        request = info.context.request
        address = request.client.host if request is not None and request.client else "unknown"
        wait = await limiter.hit(f"login-address:{address}", Limit(settings.login_attempts_per_address, 60))
        try:
            phone = normalise_phone(input.phone)
        except DomainError as exc:
            return to_user_error(exc, [InvalidPhoneError])
        failures_key = f"login-failures:{services.cipher.lookup_hash(phone)}"
        lockout = Limit(settings.login_max_failures, settings.login_lockout_minutes * 60)
        wait = wait or await limiter.blocked(failures_key, lockout)
        if wait is not None:
            return TooManyAttemptsError(
                message=f"Too many attempts. Try again in {math.ceil(wait / 60)} minute(s).",
                field=None,
                code="TOO_MANY_ATTEMPTS",
                retry_after_seconds=int(wait),
            )
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                account, token, expires_at = await service.log_in(
                    uow,
                    cipher=services.cipher,
                    passwords=services.passwords,
                    phone=phone,
                    password=input.password,
                    ttl=timedelta(hours=services.settings.session_ttl_hours),
                )
        except InvalidCredentials as exc:
            await limiter.hit(failures_key, lockout)
            return to_user_error(exc, [InvalidCredentialsError])
        except DomainError as exc:
            return to_user_error(exc, [InvalidCredentialsError, InvalidPhoneError])
        await limiter.reset(failures_key)
        return LoginSuccess(token=token, expires_at=expires_at, viewer=ViewerInfo(account_id=account.id))

    @strawberry.mutation(description="End the current session (the token stops working at once).")
    async def logout(self, info: Info) -> LogoutSuccess:
        viewer = info.context.viewer
        if viewer.session_id is None:
            raise auth_error(Unauthenticated("Log in first."))
        async with info.context.db.unit_of_work(info.context.jobs) as uow:
            revoked = await service.log_out(uow, session_id=viewer.session_id)
        return LogoutSuccess(revoked=revoked)
