"""Library figures, computed in SQL: loans per branch and month, top titles, overdue rate, floating copies.

Anonymised loans count like any other (only the reader link is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import utc_now
from api.core.errors import Forbidden, ValidationFailed
from api.core.viewer import Viewer
from api.library import service as library
from api.library.models import Book, Branch, Copy, CopyStatus, Loan

TOP_TITLES = 10


@dataclass(frozen=True, slots=True)
class MonthLoans:
    branch_id: int
    branch_name: str
    month: str  # YYYY-MM, China time
    loans: int


@dataclass(frozen=True, slots=True)
class TitleLoans:
    book_id: int
    title: str
    author: str
    loans: int


@dataclass(frozen=True, slots=True)
class Figures:
    since: datetime
    until: datetime
    loans: int
    overdue_loans: int  # returned late, or out and past due now
    overdue_rate: float | None
    per_branch_month: list[MonthLoans]
    top_titles: list[TitleLoans]
    copies: int  # copies (not lost) whose home is the branch, or in the network
    copies_away_from_home: int  # of those, how many are at another branch now
    copies_from_elsewhere: int  # copies at the branch now whose home is another branch


def _month(session: AsyncSession, column: object) -> object:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("Asia/Shanghai", column), "YYYY-MM")
    return func.strftime("%Y-%m", column, "+8 hours")


async def figures(
    session: AsyncSession, *, viewer: Viewer, branch_id: int | None, since: datetime, until: datetime
) -> Figures:
    """Figures for loans made in [since, until) at one branch, or in the whole network.

    A branch's figures: its staff. The network's: any library staff. Raises Forbidden, NotFound,
    ValidationFailed.
    """
    viewer.require_authenticated()
    if since.tzinfo is None or until.tzinfo is None:
        raise ValidationFailed("Give times with a time zone.", field="from")
    if until <= since:
        raise ValidationFailed("The period ends after it starts.", field="to")
    if branch_id is not None:
        branch = await library.get_branch(session, branch_id)
        if not await library.can_manage_branch(session, viewer, branch):
            raise Forbidden("Only the branch's staff see its figures.")
    elif not library.is_library_staff(viewer):
        raise Forbidden("Only library staff see the network's figures.")
    now = utc_now()
    in_period = [Loan.loaned_at >= since, Loan.loaned_at < until]
    if branch_id is not None:
        in_period.append(Loan.branch_id == branch_id)
    late = or_(Loan.returned_at > Loan.due_at, and_(Loan.returned_at.is_(None), Loan.due_at < now))
    total, overdue = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(case((late, 1), else_=0)), 0)).where(*in_period)
        )
    ).one()
    month = _month(session, Loan.loaned_at).label("month")  # type: ignore[attr-defined]
    per_month = await session.execute(
        select(Loan.branch_id, Branch.name, month, func.count())
        .join(Branch, Branch.id == Loan.branch_id)
        .where(*in_period)
        .group_by(Loan.branch_id, Branch.name, month)
        .order_by(month, Loan.branch_id)
    )
    loans = func.count().label("loans")
    top = await session.execute(
        select(Book.id, Book.title, Book.author, loans)
        .join(Loan, Loan.book_id == Book.id)
        .where(*in_period)
        .group_by(Book.id, Book.title, Book.author)
        .order_by(loans.desc(), Book.id)
        .limit(TOP_TITLES)
    )
    not_lost = Copy.status != CopyStatus.LOST.value
    away = Copy.current_branch_id != Copy.home_branch_id
    if branch_id is not None:
        copies, away_count = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(case((away, 1), else_=0)), 0)).where(
                    not_lost, Copy.home_branch_id == branch_id
                )
            )
        ).one()
        elsewhere = await session.scalar(
            select(func.count()).where(not_lost, Copy.current_branch_id == branch_id, away)
        )
    else:
        copies, away_count = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(case((away, 1), else_=0)), 0)).where(not_lost)
            )
        ).one()
        elsewhere = away_count
    return Figures(
        since=since,
        until=until,
        loans=int(total),
        overdue_loans=int(overdue),
        overdue_rate=round(int(overdue) / int(total), 4) if total else None,
        per_branch_month=[MonthLoans(int(b), str(n), str(m), int(c)) for b, n, m, c in per_month.all()],
        top_titles=[TitleLoans(int(i), str(t), str(a), int(c)) for i, t, a, c in top.all()],
        copies=int(copies),
        copies_away_from_home=int(away_count),
        copies_from_elsewhere=int(elsewhere or 0),
    )
