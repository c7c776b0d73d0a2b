"""Queries and mutations of the notices domain: drafts, audiences, publishing, read receipts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated, Any, Self

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from strawberry import relay
from strawberry.dataloader import DataLoader

from api.core.errors import DomainError, Forbidden, Unauthenticated, ValidationFailed
from api.core.pagination import Page
from api.graphql.context import Info
from api.graphql.errors import ConflictError, NotFoundError, UserError, ValidationError, auth_error, to_user_error
from api.graphql.pagination import Connection, connection, decode_id, decode_ids, page_args, paged
from api.graphql.registry.types import AfterArg, FirstArg
from api.notices import models
from api.notices import service as notices_service
from api.registry.models import ResidentTag

InputArg = strawberry.argument(description="The mutation's input.")
CommunityArg = Annotated[relay.GlobalID, strawberry.argument(description="The community.")]

NoticeStatusEnum = strawberry.enum(
    models.NoticeStatus,
    name="NoticeStatus",
    description="draft, scheduled (published by the worker at its time), published or withdrawn.",
)


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1


def _receipts_loader(info: Info) -> DataLoader[int, notices_service.Receipts]:
    key = "notices.receipts"
    if key not in info.context.extra:

        async def load(ids: list[int]) -> list[notices_service.Receipts]:
            async with info.context.db.read_session() as session:
                found = await notices_service.receipts(session, notice_ids=ids)
            return [found[i] for i in ids]

        info.context.extra[key] = DataLoader(load)
    loader: DataLoader[int, notices_service.Receipts] = info.context.extra[key]
    return loader


def _my_reads_loader(info: Info) -> DataLoader[int, dt.datetime | None]:
    """When the viewer read each notice (None: unread, or not sent to them)."""
    key = "notices.my_reads"
    if key not in info.context.extra:

        async def load(ids: list[int]) -> list[dt.datetime | None]:
            async with info.context.db.read_session() as session:
                rows = (
                    await session.execute(
                        select(models.NoticeDelivery.notice_id, models.NoticeDelivery.read_at).where(
                            models.NoticeDelivery.notice_id.in_(ids),
                            models.NoticeDelivery.account_id == (info.context.viewer.account_id or -1),
                        )
                    )
                ).all()
            found = {int(n): r for n, r in rows}
            return [found.get(i) for i in ids]

        info.context.extra[key] = DataLoader(load)
    loader: DataLoader[int, dt.datetime | None] = info.context.extra[key]
    return loader


@strawberry.type(description="Who a notice is for: the union of the whole community, compounds, buildings and tags.")
class NoticeAudience:
    whole_community: bool = strawberry.field(description="Every resident of the community.")
    compound_ids: list[relay.GlobalID] = strawberry.field(description="Residents of these compounds.")
    building_ids: list[relay.GlobalID] = strawberry.field(description="Residents of these buildings.")
    tags: list[ResidentTag] = strawberry.field(description="Residents with any of these tags.")


@strawberry.type(description="How many received a notice and how many have read it (those who publish notices).")
class NoticeReceipts:
    delivered: int = strawberry.field(description="Accounts it was delivered to.")
    read: int = strawberry.field(description="Accounts that have read it.")
    unread: int = strawberry.field(description="Accounts that have not read it yet.")


@strawberry.type(description="A community announcement (公告).")
class Notice(relay.Node):
    db_id: relay.NodeID[int]
    title: str = strawberry.field(description="Title.")
    body: str = strawberry.field(description="The text.")
    status: models.NoticeStatus = strawberry.field(description="Where the notice stands.")
    publish_at: dt.datetime | None = strawberry.field(description="When a scheduled notice is published.")
    published_at: dt.datetime | None = strawberry.field(description="When it was published.")
    withdrawn_at: dt.datetime | None = strawberry.field(description="When it was withdrawn.")
    created_at: dt.datetime = strawberry.field(description="When it was written.")
    row: strawberry.Private[models.Notice]
    known_read_at: strawberry.Private[dt.datetime | None] = None
    read_known: strawberry.Private[bool] = False

    @classmethod
    def from_model(cls, m: models.Notice, *, read_at: dt.datetime | None = None, read_known: bool = False) -> Self:
        return cls(
            db_id=m.id, title=m.title, body=m.body, status=models.NoticeStatus(m.status), publish_at=m.publish_at,
            published_at=m.published_at, withdrawn_at=m.withdrawn_at, created_at=m.created_at, row=m,
            known_read_at=read_at, read_known=read_known,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    notices_service.visible_notices(info.context.viewer).where(models.Notice.id.in_(ids))
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="When you read it; null while unread.")
    async def read_at(self, info: Info) -> dt.datetime | None:
        if self.read_known:
            return self.known_read_at
        return await _my_reads_loader(info).load(self.db_id)

    @strawberry.field(description="Who it is for (shown to those who publish notices; null for others).")
    def audience(self, info: Info) -> NoticeAudience | None:
        if not notices_service.may_publish(info.context.viewer, self.row.community_id):
            return None
        return NoticeAudience(
            whole_community=self.row.whole_community,
            compound_ids=[relay.GlobalID("Compound", str(i)) for i in self.row.compound_ids or []],
            building_ids=[relay.GlobalID("Building", str(i)) for i in self.row.building_ids or []],
            tags=[ResidentTag(t) for t in self.row.tags or []],
        )

    @strawberry.field(description="Deliveries and read receipts (those who publish notices; null for others).")
    async def receipts(self, info: Info) -> NoticeReceipts | None:
        if not notices_service.may_publish(info.context.viewer, self.row.community_id):
            return None
        found = await _receipts_loader(info).load(self.db_id)
        return NoticeReceipts(delivered=found.delivered, read=found.read, unread=found.unread)


# -- errors -------------------------------------------------------------------------------------------


@strawberry.type(description="Only a draft or scheduled notice can change; a published one can only be withdrawn.")
class NoticeNotEditableError(UserError):
    pass


@strawberry.type(description="Only a scheduled or published notice can be withdrawn.")
class NoticeNotPublishedError(UserError):
    pass


@strawberry.type(description="The notice has no audience: choose the community, compounds, buildings or tags.")
class EmptyAudienceError(UserError):
    pass


_TYPED: dict[type[DomainError], type[UserError]] = {
    notices_service.NoticeNotEditable: NoticeNotEditableError,
    notices_service.NoticeNotPublished: NoticeNotPublishedError,
    notices_service.EmptyAudience: EmptyAudienceError,
}
ERROR_TYPES: list[type[UserError]] = list(_TYPED.values())


def _error(exc: DomainError, allowed: list[type[UserError]]) -> Any:
    gql_type = _TYPED.get(type(exc))
    if gql_type is not None and gql_type in allowed:
        return gql_type(message=exc.message, field=exc.field, code=exc.code)
    return to_user_error(exc, allowed)


# -- inputs and results -------------------------------------------------------------------------------


@strawberry.input(description="Who a notice is for; the parts add up (a union).")
class NoticeAudienceInput:
    whole_community: bool = strawberry.field(default=False, description="Every resident of the community.")
    compound_ids: list[relay.GlobalID] = strawberry.field(
        default_factory=list, description="Residents of these compounds (at most 100)."
    )
    building_ids: list[relay.GlobalID] = strawberry.field(
        default_factory=list, description="Residents of these buildings (at most 100)."
    )
    tags: list[ResidentTag] = strawberry.field(default_factory=list, description="Residents with any of these tags.")

    def to_audience(self) -> notices_service.Audience:
        if (
            len(self.compound_ids) > notices_service.MAX_AUDIENCE
            or len(self.building_ids) > notices_service.MAX_AUDIENCE
        ):
            raise ValidationFailed(f"At most {notices_service.MAX_AUDIENCE} compounds or buildings.", field="audience")
        return notices_service.Audience(
            whole_community=self.whole_community,
            compound_ids=tuple(decode_ids(self.compound_ids, "Compound")),
            building_ids=tuple(decode_ids(self.building_ids, "Building")),
            tags=tuple(self.tags),
        )


@strawberry.input(description="Write a draft notice (those who publish notices).")
class CreateNoticeInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    title: str = strawberry.field(description="Title (1 to 100 characters).")
    body: str = strawberry.field(description="The text (at most 10000 characters).")
    audience: NoticeAudienceInput = strawberry.field(description="Who it is for.")


@strawberry.input(description="Change a draft or scheduled notice; fields left out stay as they are.")
class UpdateNoticeInput:
    notice_id: relay.GlobalID = strawberry.field(description="The notice.")
    title: str | None = strawberry.field(default=None, description="New title.")
    body: str | None = strawberry.field(default=None, description="New text.")
    audience: NoticeAudienceInput | None = strawberry.field(default=None, description="New audience.")


@strawberry.input(description="Publish a notice now, or at a later time (the worker publishes it then).")
class PublishNoticeInput:
    notice_id: relay.GlobalID = strawberry.field(description="The draft or scheduled notice.")
    publish_at: dt.datetime | None = strawberry.field(
        default=None, description="When to publish (with a time zone); now when left out or past."
    )


@strawberry.input(description="Withdraw a scheduled or published notice; residents no longer see it.")
class WithdrawNoticeInput:
    notice_id: relay.GlobalID = strawberry.field(description="The notice.")


@strawberry.input(description="Mark a notice you received as read (your read receipt).")
class MarkNoticeReadInput:
    notice_id: relay.GlobalID = strawberry.field(description="The notice.")


@strawberry.type(description="The notice.")
class NoticeSuccess:
    notice: Notice = strawberry.field(description="The notice.")


NOTICE_ERRORS: list[type[UserError]] = [
    NoticeNotEditableError, NoticeNotPublishedError, EmptyAudienceError, ValidationError, NotFoundError, ConflictError,
]  # fmt: skip
NoticeResult = Annotated[
    NoticeSuccess | NoticeNotEditableError | NoticeNotPublishedError | EmptyAudienceError | ValidationError
    | NotFoundError | ConflictError,
    strawberry.union("NoticeResult", description="The notice, or why the change was refused."),
]  # fmt: skip


# -- queries ------------------------------------------------------------------------------------------


@strawberry.type
class NoticesQuery:
    @strawberry.field(description="Notices published to you, unread first, newest first within each.")
    async def my_notices(
        self,
        info: Info,
        first: FirstArg = None,
        after: AfterArg = None,
        unread_only: Annotated[bool, strawberry.argument(description="Only those not read yet.")] = False,
    ) -> Connection[Notice]:
        viewer = info.context.viewer
        if not viewer.is_authenticated:
            raise GraphQLError("Log in first.", extensions={"code": "UNAUTHENTICATED"})
        args = page_args(first, after)
        async with info.context.db.read_session() as session:
            found = await notices_service.my_notices(
                session, viewer=viewer, first=args.first, after=args.after, unread_only=unread_only
            )

        async def count() -> int:
            async with info.context.db.read_session() as session:
                return await notices_service.count_my_notices(session, viewer=viewer, unread_only=unread_only)

        page: Page[Any] = Page(found.items, found.has_next, found.has_previous)
        return connection(page, lambda m: Notice.from_model(m.notice, read_at=m.read_at, read_known=True), count)

    @strawberry.field(description="Every notice of the community, in the order written (those who publish notices).")
    async def community_notices(
        self,
        info: Info,
        community_id: CommunityArg,
        first: FirstArg = None,
        after: AfterArg = None,
        status: Annotated[
            models.NoticeStatus | None, strawberry.argument(description="Only notices in this state.")
        ] = None,
    ) -> Connection[Notice]:
        try:
            stmt = notices_service.community_notices(info.context.viewer, decode_id(community_id, "Community"), status)
        except (Forbidden, Unauthenticated) as exc:
            raise auth_error(exc) from exc
        return await paged(info.context.db, stmt, models.Notice.id, page_args(first, after), Notice.from_model)

    @strawberry.field(description="How many notices you have not read yet.")
    async def unread_notice_count(self, info: Info) -> int:
        viewer = info.context.viewer
        if not viewer.is_authenticated:
            return 0
        async with info.context.db.read_session() as session:
            return await notices_service.count_my_notices(session, viewer=viewer, unread_only=True)


# -- mutations ----------------------------------------------------------------------------------------


@strawberry.type
class NoticesMutation:
    @strawberry.mutation(description="Write a draft notice with its audience (those who publish notices).")
    async def create_notice(self, info: Info, input: Annotated[CreateNoticeInput, InputArg]) -> NoticeResult:
        try:
            draft = notices_service.NoticeDraft(
                community_id=decode_id(input.community_id, "Community"), title=input.title, body=input.body,
                audience=input.audience.to_audience(),
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await notices_service.create_notice(uow, viewer=info.context.viewer, draft=draft)
        except DomainError as exc:
            return _error(exc, NOTICE_ERRORS)
        return NoticeSuccess(notice=Notice.from_model(row))

    @strawberry.mutation(description="Change a draft or scheduled notice.")
    async def update_notice(self, info: Info, input: Annotated[UpdateNoticeInput, InputArg]) -> NoticeResult:
        try:
            audience = input.audience.to_audience() if input.audience is not None else None
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await notices_service.update_notice(
                    uow, viewer=info.context.viewer, notice_id=decode_id(input.notice_id, "Notice"),
                    title=input.title, body=input.body, audience=audience,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, NOTICE_ERRORS)
        return NoticeSuccess(notice=Notice.from_model(row))

    @strawberry.mutation(description="Publish a notice now (it reaches the audience's inboxes) or schedule it.")
    async def publish_notice(self, info: Info, input: Annotated[PublishNoticeInput, InputArg]) -> NoticeResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await notices_service.publish_notice(
                    uow, viewer=info.context.viewer, notice_id=decode_id(input.notice_id, "Notice"),
                    at=input.publish_at,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, NOTICE_ERRORS)
        return NoticeSuccess(notice=Notice.from_model(row))

    @strawberry.mutation(description="Withdraw a scheduled or published notice.")
    async def withdraw_notice(self, info: Info, input: Annotated[WithdrawNoticeInput, InputArg]) -> NoticeResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await notices_service.withdraw_notice(
                    uow, viewer=info.context.viewer, notice_id=decode_id(input.notice_id, "Notice")
                )
        except DomainError as exc:
            return _error(exc, NOTICE_ERRORS)
        return NoticeSuccess(notice=Notice.from_model(row))

    @strawberry.mutation(description="Mark a notice you received as read.")
    async def mark_notice_read(self, info: Info, input: Annotated[MarkNoticeReadInput, InputArg]) -> NoticeResult:
        try:
            notice_id = decode_id(input.notice_id, "Notice")
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                delivery = await notices_service.mark_read(uow, viewer=info.context.viewer, notice_id=notice_id)
                row = await uow.session.get(models.Notice, notice_id)
        except DomainError as exc:
            return _error(exc, NOTICE_ERRORS)
        assert row is not None
        return NoticeSuccess(notice=Notice.from_model(row, read_at=delivery.read_at, read_known=True))


TYPES: list[Any] = [Notice]
