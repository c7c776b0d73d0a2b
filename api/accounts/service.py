"""Accounts: create logins, log in and out, and resolve a bearer token into a Viewer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import column, select, table, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import Account, AccountSession, RoleGrant
from api.core.clock import utc_now
from api.core.crypto import PersonalDataCipher, mask_phone, new_token, token_hash
from api.core.database import UnitOfWork
from api.core.errors import Conflict, DomainError
from api.core.viewer import Role, Viewer, merge_roles

# The registry owns the community table; accounts only needs its district to expand grants.
_community = table("community", column("id"), column("district"))


class InvalidCredentials(DomainError):
    code = "INVALID_CREDENTIALS"


@dataclass(frozen=True, slots=True)
class Passwords:
    """argon2id hashing with configurable cost (cheap in tests, RFC 9106 defaults otherwise)."""

    hasher: PasswordHasher

    @classmethod
    def create(cls, *, time_cost: int, memory_kib: int, parallelism: int) -> Passwords:
        return cls(PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, hashed: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, hashed, password)
        except (VerificationError, InvalidHashError):
            return False


# Verifying against this keeps a login for an unknown phone as slow as one for a known phone.
_DUMMY_HASH_CACHE: dict[int, str] = {}


async def _dummy_hash(passwords: Passwords) -> str:
    key = id(passwords.hasher)
    if key not in _DUMMY_HASH_CACHE:
        _DUMMY_HASH_CACHE[key] = await passwords.hash("not-a-real-password")
    return _DUMMY_HASH_CACHE[key]


async def create_account(
    uow: UnitOfWork,
    *,
    cipher: PersonalDataCipher,
    passwords: Passwords,
    phone: str,
    password: str,
    display_name: str,
    resident_id: int | None = None,
) -> Account:
    """Create a login for a normalised mobile number. Raises Conflict when the phone is taken."""
    phone_hash = cipher.lookup_hash(phone)
    taken = await uow.session.scalar(select(Account.id).where(Account.phone_hash == phone_hash))
    if taken is not None:
        raise Conflict("An account with this phone number exists.", field="phone")
    account = Account(
        phone_hash=phone_hash,
        phone_encrypted=cipher.encrypt(phone),
        phone_masked=mask_phone(phone),
        password_hash=await passwords.hash(password),
        display_name=display_name,
        resident_id=resident_id,
    )
    uow.session.add(account)
    await uow.session.flush()
    return account


async def grant_role(
    uow: UnitOfWork, *, account_id: int, role: Role, community_id: int | None = None, district: str | None = None
) -> RoleGrant:
    """Grant a role in a community (or, for district_admin, across a district)."""
    grant = RoleGrant(account_id=account_id, role=role.value, community_id=community_id, district=district)
    uow.session.add(grant)
    await uow.session.flush()
    return grant


async def log_in(
    uow: UnitOfWork,
    *,
    cipher: PersonalDataCipher,
    passwords: Passwords,
    phone: str,
    password: str,
    ttl: timedelta,
) -> tuple[Account, str, datetime]:
    """Check phone + password and open a session. Raises InvalidCredentials.

    Returns the account, the bearer token (shown once, stored only as a digest) and its expiry.
    """
    account = await uow.session.scalar(select(Account).where(Account.phone_hash == cipher.lookup_hash(phone)))
    if account is None or not account.is_active:
        await passwords.verify(await _dummy_hash(passwords), password)
        raise InvalidCredentials("The phone number or password is wrong.")
    if not await passwords.verify(account.password_hash, password):
        raise InvalidCredentials("The phone number or password is wrong.")
    if passwords.hasher.check_needs_rehash(account.password_hash):
        account.password_hash = await passwords.hash(password)
    now = utc_now()
    token = new_token()
    expires_at = now + ttl
    uow.session.add(AccountSession(account_id=account.id, token_hash=token_hash(token), expires_at=expires_at))
    account.last_login_at = now
    await uow.session.flush()
    return account, token, expires_at


async def log_out(uow: UnitOfWork, *, session_id: int) -> bool:
    """Revoke a session; True if it was active."""
    result = await uow.session.execute(
        update(AccountSession)
        .where(AccountSession.id == session_id, AccountSession.revoked_at.is_(None))
        .values(revoked_at=utc_now())
    )
    return bool(getattr(result, "rowcount", 0))


async def roles_of(session: AsyncSession, account_id: int) -> dict[int, frozenset[Role]]:
    """Roles per community id, district grants expanded to the district's communities (one statement)."""
    direct = select(RoleGrant.community_id, RoleGrant.role).where(
        RoleGrant.account_id == account_id, RoleGrant.community_id.is_not(None)
    )
    district = (
        select(_community.c.id, RoleGrant.role)
        .select_from(RoleGrant)
        .join(_community, _community.c.district == RoleGrant.district)
        .where(RoleGrant.account_id == account_id, RoleGrant.district.is_not(None))
    )
    # On the connection: a plain read, past the ORM's execution layer (it runs on every request).
    rows = await (await session.connection()).execute(union_all(direct, district))
    pairs = [(int(cid), Role(role)) for cid, role in rows.all() if cid is not None]
    return merge_roles(pairs)


async def viewer_for_token(session: AsyncSession, token: str) -> Viewer | None:
    """The viewer for a bearer token, or None when it is unknown, expired or revoked."""
    connection = await session.connection()  # a plain read, past the ORM's execution layer
    row = (
        await connection.execute(
            select(AccountSession.id, Account.id, Account.resident_id)
            .join(Account, Account.id == AccountSession.account_id)
            .where(
                AccountSession.token_hash == token_hash(token),
                AccountSession.revoked_at.is_(None),
                AccountSession.expires_at > utc_now(),
                Account.is_active.is_(True),
            )
        )
    ).one_or_none()
    if row is None:
        return None
    session_id, account_id, resident_id = row
    return Viewer(
        account_id=account_id,
        resident_id=resident_id,
        session_id=session_id,
        roles=await roles_of(session, account_id),
    )


async def get_account(session: AsyncSession, account_id: int) -> Account | None:
    return await session.get(Account, account_id)


async def purge_expired_sessions(uow: UnitOfWork, *, older_than: timedelta = timedelta(days=30)) -> int:
    """Delete sessions that expired or were revoked more than `older_than` ago."""
    from sqlalchemy import delete, or_

    cutoff = utc_now() - older_than
    result = await uow.session.execute(
        delete(AccountSession).where(or_(AccountSession.expires_at < cutoff, AccountSession.revoked_at < cutoff))
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def accounts_with_roles(session: AsyncSession, *, community_id: int, roles: set[Role]) -> list[int]:
    """Active accounts holding any of `roles` in the community (district admins included)."""
    direct = select(RoleGrant.account_id).where(
        RoleGrant.community_id == community_id, RoleGrant.role.in_([r.value for r in roles])
    )
    district = (
        select(RoleGrant.account_id)
        .join(_community, _community.c.district == RoleGrant.district)
        .where(_community.c.id == community_id, RoleGrant.role.in_([r.value for r in roles]))
    )
    ids = set((await session.scalars(direct)).all()) | set((await session.scalars(district)).all())
    if not ids:
        return []
    active = await session.scalars(select(Account.id).where(Account.id.in_(ids), Account.is_active.is_(True)))
    return sorted(active.all())
