"""Community notices: drafts, audiences, scheduled publishing, delivery to inboxes, read receipts, withdrawal.

A notice's audience is the union of the whole community, compounds, buildings and resident tags;
it reaches the active accounts of the residents in it. Delivery writes one ``notice_delivery`` row
per account (the read receipt, unique per notice and account) in one INSERT … SELECT, and one inbox
notification per account (unique per account and event), so a repeated job adds nothing. State
changes are conditional UPDATEs on the status, so racing schedulers publish a notice once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, case, false, func, literal, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import Account
from api.core.clock import utc_now
from api.core.database import UnitOfWork
from api.core.db import UtcDateTime
from api.core.errors import Conflict, NotFound, ValidationFailed
from api.core.viewer import Permission, Viewer
from api.notices import jobs
from api.notices.models import Notice, NoticeDelivery, NoticeStatus
from api.notifications import service as notifications
from api.notifications.models import Notification
from api.registry.models import Building, Compound, Household, Resident, ResidentTag, ResidentTagLink

MAX_TITLE = 100
MAX_BODY = 10_000
MAX_AUDIENCE = 100
PUBLISH_BATCH = 200
EDITABLE = (NoticeStatus.DRAFT.value, NoticeStatus.SCHEDULED.value)


class NoticeNotEditable(Conflict):
    """Only drafts and scheduled notices change; a published one can only be withdrawn."""

    code = "NOTICE_NOT_EDITABLE"


class NoticeNotPublished(Conflict):
    code = "NOTICE_NOT_PUBLISHED"


class EmptyAudience(ValidationFailed):
    code = "EMPTY_AUDIENCE"


def may_publish(viewer: Viewer, community_id: int) -> bool:
    return viewer.can(Permission.PUBLISH_NOTICES, community_id)


def _text(value: str, *, field: str, limit: int, what: str) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise ValidationFailed(f"Please give the {what}.", field=field)
    if len(cleaned) > limit:
        raise ValidationFailed(f"At most {limit} characters.", field=field)
    return cleaned


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True, slots=True)
class Audience:
    whole_community: bool = False
    compound_ids: tuple[int, ...] = ()
    building_ids: tuple[int, ...] = ()
    tags: tuple[ResidentTag, ...] = ()


@dataclass(frozen=True, slots=True)
class NoticeDraft:
    community_id: int
    title: str
    body: str
    audience: Audience


async def _check_audience(session: AsyncSession, community_id: int, audience: Audience) -> Audience:
    """Validate the audience: ids of this community, known tags, at least one part. Raises NotFound, EmptyAudience."""
    compounds = tuple(dict.fromkeys(audience.compound_ids))
    buildings = tuple(dict.fromkeys(audience.building_ids))
    tags = tuple(dict.fromkeys(ResidentTag(t) for t in audience.tags))
    if max(len(compounds), len(buildings), len(tags)) > MAX_AUDIENCE:
        raise ValidationFailed(f"At most {MAX_AUDIENCE} compounds, buildings or tags.", field="audience")
    if not (audience.whole_community or compounds or buildings or tags):
        raise EmptyAudience("Choose who the notice is for.", field="audience")
    if compounds:
        found = set(
            (
                await session.scalars(
                    select(Compound.id).where(Compound.id.in_(compounds), Compound.community_id == community_id)
                )
            ).all()
        )
        if found != set(compounds):
            raise NotFound("No such compound in this community.", field="compoundIds")
    if buildings:
        found = set(
            (
                await session.scalars(
                    select(Building.id).where(Building.id.in_(buildings), Building.community_id == community_id)
                )
            ).all()
        )
        if found != set(buildings):
            raise NotFound("No such building in this community.", field="buildingIds")
    return Audience(audience.whole_community, compounds, buildings, tags)


async def _notice(session: AsyncSession, viewer: Viewer, notice_id: int, *, lock: bool = False) -> Notice:
    """A notice the viewer may manage. Raises NotFound, Forbidden."""
    stmt = select(Notice).where(Notice.id == notice_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    notice = await session.scalar(stmt)
    if notice is None or notice.community_id not in viewer.community_ids:
        raise NotFound("No such notice.", field="noticeId")
    viewer.require(Permission.PUBLISH_NOTICES, notice.community_id)
    return notice


async def create_notice(uow: UnitOfWork, *, viewer: Viewer, draft: NoticeDraft) -> Notice:
    """Write a draft notice. Raises Forbidden, ValidationFailed, EmptyAudience, NotFound (an audience id)."""
    viewer.require(Permission.PUBLISH_NOTICES, draft.community_id)
    audience = await _check_audience(uow.session, draft.community_id, draft.audience)
    now = utc_now()
    notice = Notice(
        community_id=draft.community_id,
        title=_text(draft.title, field="title", limit=MAX_TITLE, what="title"),
        body=_text(draft.body, field="body", limit=MAX_BODY, what="text"),
        status=NoticeStatus.DRAFT.value,
        whole_community=audience.whole_community,
        compound_ids=list(audience.compound_ids),
        building_ids=list(audience.building_ids),
        tags=[t.value for t in audience.tags],
        author_account_id=viewer.account_id,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(notice)
    await uow.session.flush()
    return notice


async def update_notice(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    notice_id: int,
    title: str | None = None,
    body: str | None = None,
    audience: Audience | None = None,
) -> Notice:
    """Change a draft or scheduled notice. Raises NotFound, Forbidden, ValidationFailed, NoticeNotEditable."""
    notice = await _notice(uow.session, viewer, notice_id, lock=True)
    if notice.status not in EDITABLE:
        raise NoticeNotEditable("A published or withdrawn notice cannot change.", field="noticeId")
    if title is not None:
        notice.title = _text(title, field="title", limit=MAX_TITLE, what="title")
    if body is not None:
        notice.body = _text(body, field="body", limit=MAX_BODY, what="text")
    if audience is not None:
        checked = await _check_audience(uow.session, notice.community_id, audience)
        notice.whole_community = checked.whole_community
        notice.compound_ids = list(checked.compound_ids)
        notice.building_ids = list(checked.building_ids)
        notice.tags = [t.value for t in checked.tags]
    notice.updated_at = utc_now()
    await uow.session.flush()
    return notice


async def publish_notice(
    uow: UnitOfWork, *, viewer: Viewer, notice_id: int, at: datetime | None = None, now: datetime | None = None
) -> Notice:
    """Publish now, or schedule for `at` (the worker publishes it then); a scheduled notice can be moved.

    Raises NotFound, Forbidden, ValidationFailed, NoticeNotEditable.
    """
    now = now or utc_now()
    notice = await _notice(uow.session, viewer, notice_id, lock=True)
    if notice.status not in EDITABLE:
        raise NoticeNotEditable("This notice has been published or withdrawn already.", field="noticeId")
    if at is not None and at.tzinfo is None:
        raise ValidationFailed("Give the time with a time zone.", field="publishAt")
    if at is not None and at.astimezone(UTC) > now:
        notice.status = NoticeStatus.SCHEDULED.value
        notice.publish_at = at.astimezone(UTC)
    else:
        notice.status = NoticeStatus.PUBLISHED.value
        notice.published_at = now
        uow.enqueue(jobs.deliver(notice.id))
    notice.updated_at = now
    await uow.session.flush()
    return notice


async def withdraw_notice(uow: UnitOfWork, *, viewer: Viewer, notice_id: int, now: datetime | None = None) -> Notice:
    """Withdraw a scheduled or published notice: residents no longer see it. Raises NotFound, Forbidden, NoticeNotPublished."""
    now = now or utc_now()
    notice = await _notice(uow.session, viewer, notice_id, lock=True)
    if notice.status not in (NoticeStatus.SCHEDULED.value, NoticeStatus.PUBLISHED.value):
        raise NoticeNotPublished("Only a scheduled or published notice can be withdrawn.", field="noticeId")
    notice.status = NoticeStatus.WITHDRAWN.value
    notice.withdrawn_at = now
    notice.updated_at = now
    await uow.session.flush()
    return notice


async def publish_due(uow: UnitOfWork, *, now: datetime | None = None) -> list[int]:
    """Publish scheduled notices whose time has come and enqueue their delivery. Idempotent: scheduled → published once."""
    now = now or utc_now()
    due = select(Notice.id).where(Notice.status == NoticeStatus.SCHEDULED.value, Notice.publish_at <= now)
    ids = list(
        (
            await uow.session.scalars(
                update(Notice)
                .where(Notice.id.in_(due.order_by(Notice.publish_at).limit(PUBLISH_BATCH).scalar_subquery()))
                .where(Notice.status == NoticeStatus.SCHEDULED.value)
                .values(status=NoticeStatus.PUBLISHED.value, published_at=now, updated_at=now)
                .returning(Notice.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    )
    for notice_id in sorted(ids):
        uow.enqueue(jobs.deliver(notice_id))
    return sorted(ids)


def audience_residents(notice: Notice) -> Select[int]:
    """Ids of the residents a notice is for (the union of its parts)."""
    conds: list[Any] = []
    if notice.whole_community:
        conds.append(true())
    if notice.compound_ids:
        conds.append(
            Resident.household_id.in_(
                select(Household.id)
                .join(Building, Building.id == Household.building_id)
                .where(Building.compound_id.in_(list(notice.compound_ids)))
            )
        )
    if notice.building_ids:
        conds.append(
            Resident.household_id.in_(select(Household.id).where(Household.building_id.in_(list(notice.building_ids))))
        )
    if notice.tags:
        conds.append(
            Resident.id.in_(
                select(ResidentTagLink.resident_id).where(
                    ResidentTagLink.community_id == notice.community_id, ResidentTagLink.tag.in_(list(notice.tags))
                )
            )
        )
    return select(Resident.id).where(Resident.community_id == notice.community_id, or_(*conds) if conds else false())


async def deliver(uow: UnitOfWork, *, notice_id: int, now: datetime | None = None) -> int:
    """Deliver a published notice to its audience's accounts. Returns new deliveries.

    Idempotent: the unique (notice, account) and (account, event) keys make a repeat add nothing;
    a notice withdrawn or not published yet is left alone.
    """
    now = now or utc_now()
    notice = await uow.session.get(Notice, notice_id)
    if notice is None or notice.status != NoticeStatus.PUBLISHED.value:
        return 0
    source = select(
        literal(notice.community_id),
        literal(notice.id),
        Account.id,
        Account.resident_id,
        literal(now, UtcDateTime()),
    ).where(Account.resident_id.in_(audience_residents(notice)), Account.is_active.is_(True))
    insert = postgresql.insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    result = await uow.session.execute(
        insert(NoticeDelivery)
        .from_select(["community_id", "notice_id", "account_id", "resident_id", "delivered_at"], source)
        .on_conflict_do_nothing(index_elements=["notice_id", "account_id"])
    )
    added = _rowcount(result)
    recipients = (
        await uow.session.scalars(select(NoticeDelivery.account_id).where(NoticeDelivery.notice_id == notice.id))
    ).all()
    body = notice.body if len(notice.body) <= 200 else notice.body[:199] + "…"
    await notifications.notify(
        uow,
        recipients=recipients,
        message=notifications.Message(
            community_id=notice.community_id, event_key=f"notice:{notice.id}", subject_kind="notice",
            subject_id=notice.id, title=f"社区公告：{notice.title}", body=body,
        ),
    )  # fmt: skip
    if notice.delivered_at is None:
        notice.delivered_at = now
    await uow.session.flush()
    return added


async def mark_read(uow: UnitOfWork, *, viewer: Viewer, notice_id: int, now: datetime | None = None) -> NoticeDelivery:
    """The viewer has read the notice (their read receipt, and the inbox item). Raises NotFound."""
    viewer.require_authenticated()
    now = now or utc_now()
    row = await uow.session.scalar(visible_deliveries(viewer).where(NoticeDelivery.notice_id == notice_id))
    if row is None:
        raise NotFound("No such notice.", field="noticeId")
    if row.read_at is None:
        await uow.session.execute(
            update(NoticeDelivery)
            .where(NoticeDelivery.id == row.id, NoticeDelivery.read_at.is_(None))
            .values(read_at=now)
            .execution_options(synchronize_session=False)
        )
        await uow.session.execute(
            update(Notification)
            .where(
                Notification.recipient_account_id == row.account_id,
                Notification.event_key == f"notice:{notice_id}",
                Notification.read_at.is_(None),
            )
            .values(read_at=now)
            .execution_options(synchronize_session=False)
        )
        await uow.session.refresh(row)
    return row


# -- reads ------------------------------------------------------------------------------------------


def visible_deliveries(viewer: Viewer) -> Select[NoticeDelivery]:
    """The viewer's own deliveries of notices that are published now."""
    account = viewer.account_id if viewer.account_id is not None else -1
    return (
        select(NoticeDelivery)
        .join(Notice, Notice.id == NoticeDelivery.notice_id)
        .where(
            NoticeDelivery.account_id == account,
            Notice.status == NoticeStatus.PUBLISHED.value,
            NoticeDelivery.community_id.in_(viewer.community_ids),
        )
    )


def visible_notices(viewer: Viewer) -> Select[Notice]:
    """Notices that exist for the viewer: every notice of communities where they publish, and published ones sent to them."""
    account = viewer.account_id if viewer.account_id is not None else -1
    sent = select(NoticeDelivery.notice_id).where(NoticeDelivery.account_id == account)
    return select(Notice).where(
        Notice.community_id.in_(viewer.community_ids),
        or_(
            Notice.community_id.in_(viewer.communities_where(Permission.PUBLISH_NOTICES)),
            and_(Notice.status == NoticeStatus.PUBLISHED.value, Notice.id.in_(sent)),
        ),
    )


@dataclass(frozen=True, slots=True)
class MyNotice:
    """A notice as its reader sees it; `id` is the delivery's (the list's cursor)."""

    id: int
    notice: Notice
    read_at: datetime | None


@dataclass(frozen=True, slots=True)
class MyNoticesPage:
    items: list[MyNotice]
    has_next: bool
    has_previous: bool


async def my_notices(
    session: AsyncSession, *, viewer: Viewer, first: int, after: int | None, unread_only: bool = False
) -> MyNoticesPage:
    """The viewer's published notices, unread first, newest first within each (keyset on read flag and delivery id)."""
    read_flag = case((NoticeDelivery.read_at.is_(None), 0), else_=1)
    stmt = (
        select(NoticeDelivery, Notice)
        .join(Notice, Notice.id == NoticeDelivery.notice_id)
        .where(
            NoticeDelivery.account_id == (viewer.account_id if viewer.account_id is not None else -1),
            Notice.status == NoticeStatus.PUBLISHED.value,
            NoticeDelivery.community_id.in_(viewer.community_ids),
        )
    )
    if unread_only:
        stmt = stmt.where(NoticeDelivery.read_at.is_(None))
    if after is not None:
        anchor = await session.scalar(select(NoticeDelivery).where(NoticeDelivery.id == after))
        if anchor is not None:
            flag = 0 if anchor.read_at is None else 1
            stmt = stmt.where(or_(read_flag > flag, and_(read_flag == flag, NoticeDelivery.id < anchor.id)))
    rows = (await session.execute(stmt.order_by(read_flag, NoticeDelivery.id.desc()).limit(first + 1))).all()
    items = [MyNotice(d.id, n, d.read_at) for d, n in rows[:first]]
    return MyNoticesPage(items, len(rows) > first, after is not None)


async def count_my_notices(session: AsyncSession, *, viewer: Viewer, unread_only: bool = False) -> int:
    stmt = select(func.count()).select_from(visible_deliveries(viewer).subquery())
    if unread_only:
        stmt = select(func.count()).select_from(
            visible_deliveries(viewer).where(NoticeDelivery.read_at.is_(None)).subquery()
        )
    return int(await session.scalar(stmt) or 0)


@dataclass(frozen=True, slots=True)
class Receipts:
    delivered: int
    read: int

    @property
    def unread(self) -> int:
        return self.delivered - self.read


async def receipts(session: AsyncSession, *, notice_ids: Sequence[int]) -> dict[int, Receipts]:
    """Deliveries and read receipts per notice, in one statement."""
    rows = await session.execute(
        select(NoticeDelivery.notice_id, func.count(), func.count(NoticeDelivery.read_at))
        .where(NoticeDelivery.notice_id.in_(list(notice_ids)))
        .group_by(NoticeDelivery.notice_id)
    )
    out = dict.fromkeys(notice_ids, Receipts(0, 0))
    for notice_id, delivered, read in rows.all():
        out[int(notice_id)] = Receipts(int(delivered), int(read))
    return out


def community_notices(viewer: Viewer, community_id: int, status: NoticeStatus | None) -> Select[Notice]:
    """Every notice of a community, for those who publish there. Raises Forbidden."""
    viewer.require(Permission.PUBLISH_NOTICES, community_id)
    stmt = select(Notice).where(Notice.community_id == community_id)
    if status is not None:
        stmt = stmt.where(Notice.status == status.value)
    return stmt
