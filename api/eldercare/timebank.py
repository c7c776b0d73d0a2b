"""时间银行: a double-entry ledger of volunteer minutes that never goes negative.

Each transaction has two entries that sum to zero: a credit for a completed visit moves minutes
from the community pool to the volunteer; a redemption moves them back when the volunteer (or
their family) receives care. Each account keeps its running balance; the update that takes
minutes out is conditional (``… WHERE balance_minutes >= :amount``), which on PostgreSQL also locks
the row until commit, and a CHECK keeps a volunteer's balance from ever going below zero. Accounts
are updated in id order, so two transactions never wait on each other in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import utc_now
from api.core.database import UnitOfWork
from api.core.db import is_unique_violation
from api.core.errors import NotFound, ValidationFailed
from api.core.viewer import Viewer
from api.eldercare import rules
from api.eldercare.common import InsufficientHours, clean_text, require_manage
from api.eldercare.models import TimeAccount, TimeEntry, TimeTransaction, Visit, VisitState, Volunteer
from api.registry.models import Resident

MAX_REDEEM_MINUTES = 100 * 60


async def pool_account(uow: UnitOfWork, community_id: int) -> TimeAccount:
    """The community's pool, made on first use (a concurrent first use finds the other's row)."""
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await uow.session.execute(
        insert(TimeAccount)
        .values(community_id=community_id, kind="pool", volunteer_id=None, balance_minutes=0, created_at=utc_now())
        .on_conflict_do_nothing(index_elements=["community_id"], index_where=TimeAccount.kind == "pool")
    )
    pool = await uow.session.scalar(
        select(TimeAccount).where(TimeAccount.community_id == community_id, TimeAccount.kind == "pool")
    )
    assert pool is not None
    return pool


async def volunteer_account(uow: UnitOfWork, volunteer: Volunteer) -> TimeAccount:
    account = await uow.session.scalar(select(TimeAccount).where(TimeAccount.volunteer_id == volunteer.id))
    if account is None:
        account = TimeAccount(community_id=volunteer.community_id, kind="volunteer", volunteer_id=volunteer.id)
        account.balance_minutes = 0
        uow.session.add(account)
        await uow.session.flush()
    return account


async def _post(
    uow: UnitOfWork,
    transaction: TimeTransaction,
    legs: list[tuple[TimeAccount, int]],
) -> TimeTransaction | None:
    """Write the transaction and its balanced entries; None when its unique key exists (done already).

    Raises InsufficientHours when a volunteer account would go below zero.
    """
    assert sum(amount for _, amount in legs) == 0, "a transaction's entries sum to zero"
    try:
        async with uow.session.begin_nested():
            uow.session.add(transaction)
            await uow.session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            return None
        raise
    now = utc_now()
    for account, amount in sorted(legs, key=lambda leg: leg[0].id):
        stmt = (
            update(TimeAccount)
            .where(TimeAccount.id == account.id)
            .values(balance_minutes=TimeAccount.balance_minutes + amount)
            .returning(TimeAccount.balance_minutes)
        )
        if account.kind != "pool" and amount < 0:
            stmt = stmt.where(TimeAccount.balance_minutes >= -amount)
        balance = (await uow.session.execute(stmt)).scalar_one_or_none()
        if balance is None:
            raise InsufficientHours(
                f"Only {account.balance_minutes // 60} h {account.balance_minutes % 60} min are held; "
                f"{-amount // 60} h {-amount % 60} min were asked for.",
                field="minutes",
            )
        uow.session.add(
            TimeEntry(transaction_id=transaction.id, account_id=account.id, amount_minutes=amount,
                      balance_after=int(balance), created_at=now)
        )  # fmt: skip
    await uow.session.flush()
    for account, _amount in legs:
        await uow.session.refresh(account)
    return transaction


async def credit_visit(uow: UnitOfWork, *, visit: Visit) -> TimeTransaction | None:
    """Credit the volunteer with the visit's actual minutes, capped by its type. Idempotent by visit."""
    if visit.volunteer_id is None or visit.checked_in_at is None or visit.checked_out_at is None:
        return None
    volunteer = await uow.session.get(Volunteer, visit.volunteer_id)
    if volunteer is None:
        return None
    minutes = rules.credit_minutes(visit.visit_type, visit.checked_in_at, visit.checked_out_at)
    pool = await pool_account(uow, visit.community_id)
    mine = await volunteer_account(uow, volunteer)
    return await _post(
        uow,
        TimeTransaction(community_id=visit.community_id, kind="credit", visit_id=visit.id, note=visit.visit_type),
        [(pool, -minutes), (mine, minutes)],
    )


async def redeem(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    volunteer_id: int,
    minutes: int,
    for_visit_id: int | None = None,
    note: str = "",
) -> TimeTransaction:
    """Spend a volunteer's minutes on care they (or their family) received; staff or the volunteer.

    Raises NotFound, Forbidden, ValidationFailed, InsufficientHours.
    """
    from api.eldercare.people import is_self, volunteer_in

    viewer.require_authenticated()
    volunteer = await volunteer_in(uow.session, viewer, volunteer_id)
    if not await is_self(uow.session, viewer, volunteer):
        require_manage(viewer, volunteer.community_id)
    if not 1 <= minutes <= MAX_REDEEM_MINUTES:
        raise ValidationFailed(f"Redeem 1 to {MAX_REDEEM_MINUTES} minutes.", field="minutes")
    if for_visit_id is not None:
        visit = await uow.session.get(Visit, for_visit_id)
        home = await uow.session.scalar(select(Resident.household_id).where(Resident.id == volunteer.resident_id))
        if (
            visit is None
            or visit.community_id != volunteer.community_id
            or visit.state != VisitState.DONE.value
            or visit.household_id != home  # care the volunteer or their family received
        ):
            raise NotFound("No such completed visit to your home to redeem for.", field="forVisitId")
    pool = await pool_account(uow, volunteer.community_id)
    mine = await volunteer_account(uow, volunteer)
    done = await _post(
        uow,
        TimeTransaction(
            community_id=volunteer.community_id, kind="redeem", redeem_visit_id=for_visit_id,
            note=clean_text(note, field="note", limit=200, what="note"), created_by_account_id=viewer.account_id,
        ),
        [(mine, -minutes), (pool, minutes)],
    )  # fmt: skip
    if done is None:
        raise ValidationFailed("That visit has been redeemed for already.", field="forVisitId")
    return done


@dataclass(frozen=True, slots=True)
class StatementLine:
    entry: TimeEntry
    transaction: TimeTransaction


async def balance_of(session: AsyncSession, volunteer_ids: list[int]) -> dict[int, int]:
    rows = await session.execute(
        select(TimeAccount.volunteer_id, TimeAccount.balance_minutes).where(TimeAccount.volunteer_id.in_(volunteer_ids))
    )
    out = dict.fromkeys(volunteer_ids, 0)
    out.update({int(v): int(b) for v, b in rows.all() if v is not None})
    return out


async def statement(
    session: AsyncSession, *, volunteer_id: int, since: datetime | None = None, limit: int = 200
) -> list[StatementLine]:
    """The volunteer's entries, newest first, each with its transaction and the balance after it."""
    stmt = (
        select(TimeEntry, TimeTransaction)
        .join(TimeTransaction, TimeTransaction.id == TimeEntry.transaction_id)
        .join(TimeAccount, TimeAccount.id == TimeEntry.account_id)
        .where(TimeAccount.volunteer_id == volunteer_id)
    )
    if since is not None:
        stmt = stmt.where(TimeEntry.created_at >= since)
    rows = await session.execute(stmt.order_by(TimeEntry.id.desc()).limit(limit))
    return [StatementLine(e, t) for e, t in rows.all()]
