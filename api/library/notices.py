"""Notices to readers: due soon, overdue in stages, hold ready, hold expired; each sent once.

The scan finds what is due and enqueues one job per notice; the job claims the notice by
inserting its LibraryNotice row (unique per loan or hold and stage) and, in the same
transaction, puts the message in the inbox of the reader's accounts (and a child's guardian's).
A redelivered job finds the row taken and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, and_, cast, exists, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import Account
from api.core.clock import utc_now
from api.core.database import UnitOfWork
from api.library import jobs
from api.library import service as library
from api.library.models import Book, Branch, Hold, HoldStatus, LibraryNotice, Loan, Reader
from api.notifications import service as notifications
from api.registry.models import Resident

DUE_SOON_DAYS = 3
SCAN_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    notices: list[tuple[str, int, str]]  # (loan|hold, id, stage) enqueued
    expired_holds: list[int]


async def _claim(uow: UnitOfWork, *, loan_id: int | None = None, hold_id: int | None = None, stage: str) -> int | None:
    """Insert the notice row; its id, or None when this notice was claimed before."""
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = ["loan_id", "stage"] if loan_id is not None else ["hold_id", "stage"]
    result = await uow.session.execute(
        insert(LibraryNotice)
        .values(loan_id=loan_id, hold_id=hold_id, stage=stage, recipients=0, created_at=utc_now())
        .on_conflict_do_nothing(index_elements=key)
        .returning(LibraryNotice.id)
    )
    notice_id: int | None = result.scalar_one_or_none()
    return notice_id


async def _recipients(session: AsyncSession, reader: Reader) -> tuple[list[int], int | None]:
    """(active accounts of the reader and of a child's guardian, the reader's community)."""
    people = [reader.resident_id, *([reader.guardian_resident_id] if reader.guardian_resident_id else [])]
    accounts = (
        await session.scalars(
            select(Account.id).where(Account.resident_id.in_(people), Account.is_active.is_(True)).order_by(Account.id)
        )
    ).all()
    community_id = await session.scalar(select(Resident.community_id).where(Resident.id == reader.resident_id))
    return list(accounts), community_id


async def _deliver(
    uow: UnitOfWork, *, notice_id: int, reader: Reader, kind: str, subject_id: int, stage: str, title: str, body: str
) -> int:
    recipients, community_id = await _recipients(uow.session, reader)
    added = 0
    if recipients and community_id is not None:
        added = await notifications.notify(
            uow,
            recipients=recipients,
            message=notifications.Message(
                community_id=community_id, event_key=f"library:{kind}:{subject_id}:{stage}", subject_kind=kind,
                subject_id=subject_id, title=title, body=body,
            ),
        )  # fmt: skip
    await uow.session.execute(update(LibraryNotice).where(LibraryNotice.id == notice_id).values(recipients=added))
    return added


def _date(moment: datetime) -> str:
    day = library.local_day(moment)
    return f"{day.month}月{day.day}日"


async def send_loan_notice(uow: UnitOfWork, *, loan_id: int, stage: str, now: datetime | None = None) -> int | None:
    """Send one loan notice once. Returns inbox messages added, or None when nothing is (still) due."""
    now = now or utc_now()
    loan = await uow.session.get(Loan, loan_id)
    if loan is None or loan.reader_id is None or loan.returned_at is not None:
        return None
    late = library.days_overdue(loan.due_at, now)
    if stage.startswith("overdue_"):
        days = int(stage.removeprefix("overdue_"))
        if days not in jobs.OVERDUE_STAGES or late < days:
            return None
    elif stage != jobs.due_soon_stage(loan.renewals) or loan.due_at < now:
        return None  # renewed or overdue meanwhile: this reminder is moot
    notice_id = await _claim(uow, loan_id=loan.id, stage=stage)
    if notice_id is None:
        return None
    if stage.startswith("overdue_"):
        days = int(stage.removeprefix("overdue_"))
        await uow.session.execute(
            update(Loan).where(Loan.id == loan.id, Loan.overdue_stage < days).values(overdue_stage=days)
        )
    reader = await uow.session.get(Reader, loan.reader_id)
    book = await uow.session.get(Book, loan.book_id)
    if reader is None or book is None:
        return 0
    if stage.startswith("overdue_"):
        title = "逾期提醒"
        body = f"《{book.title}》已逾期{late}天（应还日期{_date(loan.due_at)}），请尽快到任一网点归还；逾期归还将暂停借阅。"
    else:
        title = "还书提醒"
        body = f"《{book.title}》将于{_date(loan.due_at)}到期，可在任一网点归还，或在到期前续借。"
    return await _deliver(uow, notice_id=notice_id, reader=reader, kind="loan", subject_id=loan.id, stage=stage,
                          title=title, body=body)  # fmt: skip


async def send_hold_notice(uow: UnitOfWork, *, hold_id: int, stage: str) -> int | None:
    """Send one hold notice once. Returns inbox messages added, or None when nothing is (still) due."""
    hold = await uow.session.get(Hold, hold_id)
    if hold is None:
        return None
    if stage == jobs.HOLD_READY:
        if hold.status != HoldStatus.TRAPPED.value or hold.expires_at is None:
            return None
    elif stage != jobs.HOLD_EXPIRED or hold.status != HoldStatus.EXPIRED.value:
        return None
    notice_id = await _claim(uow, hold_id=hold.id, stage=stage)
    if notice_id is None:
        return None
    reader = await uow.session.get(Reader, hold.reader_id)
    book = await uow.session.get(Book, hold.book_id)
    branch = await uow.session.get(Branch, hold.pickup_branch_id)
    if reader is None or book is None or branch is None:
        return 0
    if stage == jobs.HOLD_READY:
        assert hold.expires_at is not None
        title = "预约到书"
        body = f"您预约的《{book.title}》已到{branch.name}，请凭身份证于{_date(hold.expires_at)}前取书。"
    else:
        title = "预约已过期"
        body = f"您预约的《{book.title}》未在期限内到{branch.name}取书，预约已取消，书留给下一位读者。"
    return await _deliver(uow, notice_id=notice_id, reader=reader, kind="hold", subject_id=hold.id, stage=stage,
                          title=title, body=body)  # fmt: skip


async def scan(uow: UnitOfWork, *, now: datetime | None = None) -> ScanOutcome:
    """Expire uncollected holds and enqueue the notices now due (each at most once, by its notice row)."""
    now = now or utc_now()
    expired = await library.expire_holds(uow, now=now)
    today = library.local_day(now)
    found: list[tuple[str, int, str]] = []

    due_soon_stage = literal("due_soon_") + cast(Loan.renewals, String)
    reminded = exists().where(LibraryNotice.loan_id == Loan.id, LibraryNotice.stage == due_soon_stage)
    soon = await uow.session.execute(
        select(Loan.id, Loan.renewals)
        .where(
            Loan.returned_at.is_(None),
            Loan.reader_id.is_not(None),
            Loan.due_at > now,
            Loan.due_at <= now + timedelta(days=DUE_SOON_DAYS),
            ~reminded,
        )
        .order_by(Loan.due_at, Loan.id)
        .limit(SCAN_BATCH)
    )
    found += [("loan", loan_id, jobs.due_soon_stage(renewals)) for loan_id, renewals in soon.all()]

    # Overdue by at least `s` local days <=> due at or before the end of the day `s` days ago.
    stage_due = [
        and_(Loan.due_at <= library.end_of_day(today - timedelta(days=s)), Loan.overdue_stage < s)
        for s in jobs.OVERDUE_STAGES
    ]
    late_loans = await uow.session.execute(
        select(Loan.id, Loan.due_at)
        .where(Loan.returned_at.is_(None), Loan.reader_id.is_not(None), or_(*stage_due))
        .order_by(Loan.due_at, Loan.id)
        .limit(SCAN_BATCH)
    )
    for loan_id, due_at in late_loans.all():
        late = library.days_overdue(due_at, now)
        reached = max(s for s in jobs.OVERDUE_STAGES if s <= late)
        found.append(("loan", loan_id, jobs.overdue_stage(reached)))

    told = exists().where(LibraryNotice.hold_id == Hold.id, LibraryNotice.stage == jobs.HOLD_READY)
    ready = await uow.session.scalars(
        select(Hold.id)
        .where(Hold.status == HoldStatus.TRAPPED.value, Hold.expires_at.is_not(None), ~told)
        .order_by(Hold.id)
        .limit(SCAN_BATCH)
    )
    found += [("hold", hold_id, jobs.HOLD_READY) for hold_id in ready.all()]

    for kind, subject_id, notice_stage in found:
        uow.enqueue(
            jobs.loan_notice(subject_id, notice_stage) if kind == "loan" else jobs.hold_notice(subject_id, notice_stage)
        )
    return ScanOutcome(notices=found, expired_holds=expired)
