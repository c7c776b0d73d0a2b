"""Account, session and role-grant tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, UtcDateTime, pk, stamped_now


class Account(Base):
    """A login: phone (encrypted, with a keyed hash for lookup) and an argon2 password hash."""

    __tablename__ = "account"

    id: Mapped[int] = pk()
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True)
    phone_encrypted: Mapped[str] = mapped_column(String(300))
    phone_masked: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(100))
    # The resident this login belongs to, if any (staff from outside may have none).
    resident_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("resident.id", ondelete="SET NULL"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = stamped_now()
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AccountSession(Base):
    """A server-side session: the bearer token is stored only as its SHA-256 digest."""

    __tablename__ = "account_session"
    __table_args__ = (Index("ix_account_session_account_id_active", "account_id", "revoked_at"),)

    id: Mapped[int] = pk()
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = stamped_now()
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class RoleGrant(Base):
    """A role in one community, or (district_admin) across every community of a district."""

    __tablename__ = "role_grant"
    __table_args__ = (
        UniqueConstraint("account_id", "role", "community_id", "district"),
        CheckConstraint(
            "(role = 'district_admin' AND district IS NOT NULL AND community_id IS NULL)"
            " OR (role <> 'district_admin' AND community_id IS NOT NULL AND district IS NULL)",
            name="scope_matches_role",
        ),
    )

    id: Mapped[int] = pk()
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    community_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    district: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = stamped_now()
