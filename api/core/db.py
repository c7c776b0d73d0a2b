"""Declarative base with a stable constraint naming convention, and column helpers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, Select, any_, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from api.core.clock import utc_now

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL; INTEGER on SQLite so that it stays the rowid alias (autoincrement).
BigId = BigInteger().with_variant(Integer(), "sqlite")
# JSONB on PostgreSQL, JSON text elsewhere.
JsonDoc = JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sqlite.JSON(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use api.core.clock.utc_now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


def pk() -> Mapped[int]:
    return mapped_column(BigId, primary_key=True, autoincrement=True)


def stamped_now() -> Mapped[datetime]:
    """A non-null timestamp column that defaults to the time of insert."""
    return mapped_column(UtcDateTime(), default=utc_now, nullable=False)


def is_unique_violation(exc: Exception) -> bool:
    """True when an IntegrityError comes from a unique constraint (not a foreign key or a check)."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(orig)


def any_of(column: Any, ids: Iterable[int], *, sqlite: bool) -> Any:
    """`column IN ids`, written for PostgreSQL as `column = ANY($1::BIGINT[])`.

    An IN list has one placeholder per value, so every list length is a different statement:
    PostgreSQL parses and plans it afresh, and the driver prepares it again. One array parameter
    keeps the statement text stable, so it is prepared once per connection and its plan reused.
    """
    values = list(ids)
    if sqlite:
        return column.in_(values)
    return column == any_(literal(values, postgresql.ARRAY(BigInteger())))


M = TypeVar("M", bound=Base)


def plain(stmt: Select[M]) -> Select[Any]:
    """`select(Model)…` (any where, join, order or limit) selecting the model's table columns instead."""
    entity = stmt.column_descriptions[0]["entity"]
    return stmt.with_only_columns(*entity.__table__.columns)


async def read_plain(session: AsyncSession, stmt: Select[M]) -> list[M]:
    """Run `select(Model)…` for display: rows with the model's columns as attributes, no ORM objects.

    An ORM object costs an identity-map entry, instance state and attribute instrumentation, which
    is most of the time a read of a few hundred rows takes. Read-only code that only reads columns
    (the GraphQL types' `from_model`, the loaders) gets the same attribute names from a row at a
    fraction of the cost. The rows are typed as the model for those readers; they have no
    relationships, cannot be changed and are not in the session. Every model read this way has
    attribute names equal to its column names (tests/core/test_plain_reads.py holds that).
    """
    # Run on the session's connection, past the ORM's execution layer (identity map, loader
    # options, autoflush), which costs more than the rows themselves for a statement like this.
    connection = await session.connection()
    rows = (await connection.execute(plain(stmt))).all()
    return cast(list[M], rows)
