"""Ticket queries and mutations."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from strawberry import relay
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON

from api.core.clock import utc_now
from api.core.errors import DomainError
from api.core.pagination import count_of, fetch_page
from api.core.viewer import Permission
from api.dispatch import service as dispatch_service
from api.dispatch.models import Assignment as AssignmentModel
from api.dispatch.models import AssignmentState
from api.dispatch.models import Responder as ResponderModel
from api.graphql.context import Info
from api.graphql.errors import (
    ConflictError,
    NotFoundError,
    UserError,
    ValidationError,
    to_user_error,
)
from api.graphql.pagination import Connection, connection, decode_id, page_args
from api.graphql.prefetch import prefetch_connection
from api.graphql.registry.types import AfterArg, FirstArg
from api.graphql.tickets.photos import PhotoError, photo_limits, read_uploads
from api.graphql.tickets.types import Assignment, Notification, RankingReason, Responder, Ticket, TicketCategory
from api.notifications import service as notifications_service
from api.notifications.models import Notification as NotificationModel
from api.tickets import metrics as tickets_metrics
from api.tickets import photos as photos_service
from api.tickets import service as tickets_service
from api.tickets.categories import EmergencyNotice
from api.tickets.models import OPEN_STATUS_VALUES, Channel, TicketStatus
from api.tickets.models import Ticket as TicketModel
from api.tickets.models import TicketCategory as CategoryModel

InputArg = strawberry.argument(description="The mutation's input.")


@strawberry.type(description="An answer means an emergency: show the notice instead of submitting.")
class EmergencyNoticeError(UserError):
    notice: str = strawberry.field(description="What the resident should do now (e.g. call 119).")


@strawberry.type(description="That workflow step is not possible from the ticket's current status.")
class IllegalTransitionError(UserError):
    pass


@strawberry.type(description="The offer was answered, withdrawn or has expired.")
class OfferNotOpenError(UserError):
    pass


TICKET_ERRORS: list[type[UserError]] = [NotFoundError, ValidationError, ConflictError, IllegalTransitionError]


def _ticket_error(exc: DomainError, extra: list[type[UserError]] | None = None) -> Any:
    if isinstance(exc, EmergencyNotice):
        return EmergencyNoticeError(message=exc.message, field=exc.field, code=exc.code, notice=exc.notice)
    if isinstance(exc, tickets_service.IllegalTransition):
        return IllegalTransitionError(message=exc.message, field=exc.field, code=exc.code)
    if isinstance(exc, dispatch_service.OfferNotOpen):
        return OfferNotOpenError(message=exc.message, field=exc.field, code=exc.code)
    return to_user_error(exc, [*TICKET_ERRORS, *(extra or [])])


# -- inputs ----------------------------------------------------------------------------------------


@strawberry.input(description="Where the problem is: a building (with unit and room), a map point, or words.")
class PlaceInput:
    building_id: relay.GlobalID | None = strawberry.field(default=None, description="The building.")
    unit: int | None = strawberry.field(default=None, description="Unit number.")
    room: str | None = strawberry.field(default=None, description="Room number, for a home.")
    latitude: float | None = strawberry.field(default=None, description="WGS84 latitude.")
    longitude: float | None = strawberry.field(default=None, description="WGS84 longitude.")
    address_text: str | None = strawberry.field(default=None, description="The place in words (at most 200).")

    def to_place(self) -> tickets_service.Place:
        return tickets_service.Place(
            building_id=decode_id(self.building_id, "Building") if self.building_id else None,
            unit=self.unit,
            room=self.room,
            latitude=self.latitude,
            longitude=self.longitude,
            address_text=self.address_text,
        )


@strawberry.input(description="A new report, repair request or workshop booking.")
class SubmitTicketInput:
    category_id: relay.GlobalID = strawberry.field(description="The category.")
    description: str = strawberry.field(description="What is wrong (1 to 4,000 characters).")
    place: PlaceInput = strawberry.field(description="Where.")
    injury: bool = strawberry.field(default=False, description="Someone was hurt: first contact comes sooner.")
    answers: JSON | None = strawberry.field(default=None, description="Answers to the category's questions by code.")
    channel: Channel = strawberry.field(default=Channel.APP, description="How it came in (phone and walk-in: staff).")
    on_behalf_of_resident_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Staff: the resident who phoned or walked in."
    )
    contact_name: str | None = strawberry.field(default=None, description="Staff: a contact name when not registered.")
    photos: list[Upload] | None = strawberry.field(
        default=None, description="Photos, sent as a multipart request (see photoUploadLimits)."
    )


@strawberry.type(description="The ticket was submitted; staff will call back by `callbackDueAt`.")
class SubmitTicketSuccess:
    ticket: Ticket = strawberry.field(description="The new ticket.")


SubmitTicketResult = Annotated[
    SubmitTicketSuccess | EmergencyNoticeError | NotFoundError | ValidationError | PhotoError,
    strawberry.union("SubmitTicketResult", description="The ticket, or why it was not submitted."),
]


TicketActionEnum = strawberry.enum(tickets_service.Action, name="TicketAction", description="A workflow step.")


@strawberry.input(description="Move a ticket through its workflow.")
class ChangeTicketStatusInput:
    ticket_id: relay.GlobalID = strawberry.field(description="The ticket.")
    action: tickets_service.Action = strawberry.field(description="The step to take.")
    note: str | None = strawberry.field(default=None, description="A note (required to reject or reopen).")
    public: bool = strawberry.field(default=True, description="False: an internal note for staff and the assignee.")


@strawberry.type(description="The ticket after the change.")
class TicketSuccess:
    ticket: Ticket = strawberry.field(description="The ticket.")


TicketChangeResult = Annotated[
    TicketSuccess | NotFoundError | ValidationError | ConflictError | IllegalTransitionError,
    strawberry.union("TicketChangeResult", description="The ticket, or why the change was refused."),
]


@strawberry.input(description="A note on a ticket.")
class CommentOnTicketInput:
    ticket_id: relay.GlobalID = strawberry.field(description="The ticket.")
    note: str = strawberry.field(description="The note (at most 2,000 characters).")
    public: bool = strawberry.field(default=True, description="False: internal (staff and assignee only).")


@strawberry.input(description="Mark a ticket as a duplicate of another.")
class MarkDuplicateInput:
    ticket_id: relay.GlobalID = strawberry.field(description="The duplicate.")
    original_id: relay.GlobalID = strawberry.field(description="The original ticket.")


@strawberry.input(description="Rate resolved work.")
class RateTicketInput:
    ticket_id: relay.GlobalID = strawberry.field(description="The ticket.")
    rating: int = strawberry.field(description="1 (poor) to 5 (excellent).")
    comment: str | None = strawberry.field(default=None, description="A comment (at most 1,000 characters).")


@strawberry.input(description="Answer the follow-up question: is it still fixed?")
class AnswerFollowUpInput:
    ticket_id: relay.GlobalID = strawberry.field(description="The ticket.")
    still_fixed: bool = strawberry.field(description="True closes the ticket; false reopens it.")


@strawberry.input(description="Accept or decline an offer.")
class AnswerOfferInput:
    assignment_id: relay.GlobalID = strawberry.field(description="The offer.")
    accept: bool = strawberry.field(description="True to take the job.")
    note: str | None = strawberry.field(default=None, description="Why, when declining.")


@strawberry.type(description="The offer was answered.")
class AnswerOfferSuccess:
    assignment: Assignment = strawberry.field(description="The assignment after the answer.")


AnswerOfferResult = Annotated[
    AnswerOfferSuccess | NotFoundError | OfferNotOpenError,
    strawberry.union("AnswerOfferResult", description="The assignment, or why the answer was refused."),
]


@strawberry.input(description="Staff assign a ticket to a responder by hand.")
class AssignTicketInput:
    ticket_id: relay.GlobalID = strawberry.field(description="The ticket.")
    responder_id: relay.GlobalID = strawberry.field(description="Who will do it.")
    note: str | None = strawberry.field(default=None, description="Why this person.")


@strawberry.input(description="Claim a ticket in grab mode (抢单).")
class ClaimTicketInput:
    ticket_id: relay.GlobalID = strawberry.field(description="The ticket.")


@strawberry.type(description="The assignment made.")
class AssignmentSuccess:
    assignment: Assignment = strawberry.field(description="The assignment.")


AssignmentResult = Annotated[
    AssignmentSuccess | NotFoundError | ValidationError | ConflictError,
    strawberry.union("AssignmentResult", description="The assignment, or why it was refused."),
]


@strawberry.input(description="Mark inbox messages read.")
class MarkNotificationsReadInput:
    ids: list[relay.GlobalID] = strawberry.field(description="Notification ids (at most 100).")


@strawberry.type(description="How many messages changed.")
class MarkNotificationsReadSuccess:
    marked: int = strawberry.field(description="Messages newly marked read.")


@strawberry.input(description="Filters for tickets.")
class TicketFilter:
    statuses: list[TicketStatus] | None = strawberry.field(default=None, description="Any of these statuses.")
    open_only: bool = strawberry.field(default=False, description="Only tickets still open.")
    category_id: relay.GlobalID | None = strawberry.field(default=None, description="Only this category.")
    mine: bool = strawberry.field(default=False, description="Only tickets the viewer reported.")
    assigned_to_me: bool = strawberry.field(default=False, description="Only tickets assigned to the viewer.")


# -- metrics ---------------------------------------------------------------------------------------


@strawberry.type(description="Is every report answered (件件有回声), how fast and how well.")
class AnswerMetrics:
    category: str | None = strawberry.field(description="The category name; null for the whole community.")
    tickets: int = strawberry.field(description="Tickets submitted in the period.")
    answered: int = strawberry.field(description="Tickets with first contact made.")
    answered_on_time: int = strawberry.field(description="First contact made within the call-back target.")
    answered_on_time_rate: float | None = strawberry.field(description="answeredOnTime / tickets.")
    resolved: int = strawberry.field(description="Tickets resolved (at least once).")
    reopened: int = strawberry.field(description="Tickets reopened at least once.")
    reopen_rate: float | None = strawberry.field(description="reopened / resolved.")
    rated: int = strawberry.field(description="Tickets rated by their reporter.")
    average_rating: float | None = strawberry.field(description="Mean rating, 1 to 5.")
    median_minutes_to_first_contact: float | None = strawberry.field(description="Median minutes to first contact.")
    median_minutes_to_resolution: float | None = strawberry.field(description="Median minutes to resolution.")

    @classmethod
    def from_metrics(cls, m: tickets_metrics.AnswerMetrics) -> AnswerMetrics:
        return cls(
            category=m.category_name, tickets=m.tickets, answered=m.answered, answered_on_time=m.answered_on_time,
            answered_on_time_rate=None if m.answered_on_time_rate is None else round(m.answered_on_time_rate, 4),
            resolved=m.resolved, reopened=m.reopened,
            reopen_rate=None if m.reopen_rate is None else round(m.reopen_rate, 4),
            rated=m.rated, average_rating=m.average_rating,
            median_minutes_to_first_contact=m.median_minutes_to_first_contact,
            median_minutes_to_resolution=m.median_minutes_to_resolution,
        )  # fmt: skip


@strawberry.type(description="Answer metrics for a community and each of its categories.")
class AnswerReport:
    since: dt.datetime = strawberry.field(description="Start of the period.")
    until: dt.datetime = strawberry.field(description="End of the period.")
    total: AnswerMetrics = strawberry.field(description="The whole community.")
    categories: list[AnswerMetrics] = strawberry.field(description="One row per category with tickets.")


@strawberry.type(description="A candidate for a ticket, ranked by the dispatch engine.")
class RankedCandidate:
    responder: Responder = strawberry.field(description="The candidate.")
    score: float = strawberry.field(description="Higher is better.")
    reasons: list[RankingReason] = strawberry.field(description="Why.")


CommunityArg = Annotated[relay.GlobalID, strawberry.argument(description="The community.")]


def _forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


@strawberry.type
class TicketsQuery:
    @strawberry.field(description="The categories residents can report in.")
    async def ticket_categories(self, info: Info, community_id: CommunityArg) -> list[TicketCategory]:
        cid = decode_id(community_id, "Community")
        if cid not in info.context.viewer.community_ids:
            return []
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(CategoryModel)
                    .where(CategoryModel.community_id == cid, CategoryModel.active.is_(True))
                    .order_by(CategoryModel.group, CategoryModel.id)
                )
            ).all()
        return [TicketCategory.from_model(r) for r in rows]

    @strawberry.field(description="Tickets the viewer may see: staff see their communities', others their own.")
    async def tickets(
        self,
        info: Info,
        filter: Annotated[TicketFilter | None, strawberry.argument(description="Conditions.")] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Ticket]:
        viewer = info.context.viewer
        viewer_stmt = tickets_service.visible_tickets(viewer)
        f = filter or TicketFilter()
        if f.statuses:
            viewer_stmt = viewer_stmt.where(TicketModel.status.in_([s.value for s in f.statuses[:20]]))
        if f.open_only:
            viewer_stmt = viewer_stmt.where(TicketModel.status.in_(OPEN_STATUS_VALUES))
        if f.category_id is not None:
            viewer_stmt = viewer_stmt.where(TicketModel.category_id == decode_id(f.category_id, "TicketCategory"))
        if f.mine:
            viewer_stmt = viewer_stmt.where(TicketModel.reporter_account_id == viewer.account_id)
        if f.assigned_to_me:
            viewer_stmt = viewer_stmt.where(
                TicketModel.assignee_responder_id.in_(
                    select(ResponderModel.id).where(ResponderModel.account_id == viewer.account_id)
                )
            )
        args = page_args(first, after)
        db = info.context.db
        async with db.read_session() as session:
            page = await fetch_page(session, viewer_stmt, TicketModel.id, args, plain=True)
        await prefetch_connection(info, "Ticket", page.items)

        async def count() -> int:
            async with db.read_session() as session:
                return await count_of(session, viewer_stmt)

        return connection(page, Ticket.from_model, count)

    @strawberry.field(description="Open tickets that may be the same problem: ask before submitting.")
    async def possible_duplicates(
        self,
        info: Info,
        category_id: Annotated[relay.GlobalID, strawberry.argument(description="The category.")],
        place: Annotated[PlaceInput, strawberry.argument(description="Where.")],
    ) -> list[Ticket]:
        try:
            async with info.context.db.read_session() as session:
                rows = await tickets_service.possible_duplicates(
                    session, info.context.viewer, category_id=decode_id(category_id, "TicketCategory"),
                    place=place.to_place(),
                )  # fmt: skip
        except DomainError as exc:
            raise GraphQLError(exc.message, extensions={"code": exc.code}) from exc
        return [Ticket.from_model(t) for t in rows]

    @strawberry.field(description="Offers waiting for the viewer's answer.")
    async def my_offers(self, info: Info) -> list[Assignment]:
        viewer = info.context.viewer
        if viewer.account_id is None:
            return []
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(AssignmentModel)
                    .join(ResponderModel, ResponderModel.id == AssignmentModel.responder_id)
                    .where(
                        ResponderModel.account_id == viewer.account_id,
                        AssignmentModel.state == AssignmentState.OFFERED.value,
                        AssignmentModel.expires_at > utc_now(),
                    )
                    .order_by(AssignmentModel.id)
                    .limit(100)
                )
            ).all()
        return [Assignment.from_model(a) for a in rows]

    @strawberry.field(description="How the dispatch engine ranks candidates for a ticket now (staff).")
    async def dispatch_ranking(
        self, info: Info, ticket_id: Annotated[relay.GlobalID, strawberry.argument(description="The ticket.")]
    ) -> list[RankedCandidate]:
        tid = decode_id(ticket_id, "Ticket")
        viewer = info.context.viewer
        async with info.context.db.read_session() as session:
            ticket = await session.scalar(tickets_service.visible_tickets(viewer).where(TicketModel.id == tid))
            if ticket is None:
                raise GraphQLError("No such ticket.", extensions={"code": "NOT_FOUND"})
            if not viewer.can(Permission.DISPATCH, ticket.community_id):
                raise _forbidden("Only staff can see the ranking.")
            request = await dispatch_service.get_request(session, kind=tickets_service.KIND, subject_id=tid)
            if request is None:
                return []
            ranked = await dispatch_service.rank_for(session, request, utc_now())
            responders = {
                r.id: r
                for r in (
                    await session.scalars(
                        select(ResponderModel).where(ResponderModel.id.in_([x.responder_id for x in ranked]))
                    )
                ).all()
            }
        return [
            RankedCandidate(
                responder=Responder.from_model(responders[x.responder_id]),
                score=round(x.score, 2),
                reasons=[RankingReason(code=r.code, detail=r.detail) for r in x.reasons],
            )
            for x in ranked
        ]

    @strawberry.field(description="Answer metrics (件件有回声) for a community over a period (staff).")
    async def answer_metrics(
        self,
        info: Info,
        community_id: CommunityArg,
        since: Annotated[dt.datetime | None, strawberry.argument(description="Start; default 30 days ago.")] = None,
        until: Annotated[dt.datetime | None, strawberry.argument(description="End; default now.")] = None,
    ) -> AnswerReport:
        cid = decode_id(community_id, "Community")
        viewer = info.context.viewer
        if cid not in viewer.community_ids:
            raise GraphQLError("No such community.", extensions={"code": "NOT_FOUND"})
        if not viewer.can(Permission.MANAGE_TICKETS, cid):
            raise _forbidden("Only staff can see the answer metrics.")
        end = until or utc_now()
        start = since or end - timedelta(days=30)
        if start.tzinfo is None or end.tzinfo is None:
            raise GraphQLError("Give times with a time zone.", extensions={"code": "BAD_USER_INPUT"})
        async with info.context.db.read_session() as session:
            total, per = await tickets_metrics.answer_metrics(session, community_id=cid, since=start, until=end)
        return AnswerReport(
            since=start,
            until=end,
            total=AnswerMetrics.from_metrics(total),
            categories=[AnswerMetrics.from_metrics(m) for m in per],
        )

    @strawberry.field(description="The viewer's in-app inbox, newest first.")
    async def inbox(self, info: Info, first: FirstArg = None, after: AfterArg = None) -> Connection[Notification]:
        viewer = info.context.viewer
        if viewer.account_id is None:
            raise GraphQLError("Log in first.", extensions={"code": "UNAUTHENTICATED"})
        args = page_args(first, after)
        stmt = select(NotificationModel).where(NotificationModel.recipient_account_id == viewer.account_id)
        if args.after is not None:
            stmt = stmt.where(NotificationModel.id < args.after)
        db = info.context.db
        async with db.read_session() as session:
            rows = list((await session.scalars(stmt.order_by(NotificationModel.id.desc()).limit(args.first + 1))).all())

        async def count() -> int:
            async with db.read_session() as session:
                return await notifications_service.unread_count(session, account_id=viewer.account_id or 0)

        from api.core.pagination import Page

        page = Page(rows[: args.first], len(rows) > args.first, args.after is not None)
        return connection(page, Notification.from_model, count)


async def _ticket_result(info: Info, op: Any, extra: list[type[UserError]] | None = None) -> Any:
    try:
        async with info.context.db.unit_of_work(info.context.jobs) as uow:
            ticket = await op(uow)
    except DomainError as exc:
        return _ticket_error(exc, extra)
    return TicketSuccess(ticket=Ticket.from_model(ticket))


@strawberry.type
class TicketsMutation:
    @strawberry.mutation(description="Submit a report, repair request or workshop booking.")
    async def submit_ticket(self, info: Info, input: Annotated[SubmitTicketInput, InputArg]) -> SubmitTicketResult:
        try:
            if input.answers is not None and not isinstance(input.answers, dict):
                raise DomainError("Answers are an object keyed by question code.", field="answers")
            draft = tickets_service.TicketDraft(
                category_id=decode_id(input.category_id, "TicketCategory"),
                description=input.description,
                place=input.place.to_place(),
                injury=input.injury,
                answers=dict(input.answers or {}),
                channel=input.channel,
                on_behalf_of_resident_id=(
                    decode_id(input.on_behalf_of_resident_id, "Resident") if input.on_behalf_of_resident_id else None
                ),
                contact_name=input.contact_name,
            )
            services, limits = info.context.services, photo_limits(info.context.services.settings)
            raw = await read_uploads(input.photos, limits, info.context.viewer) if input.photos else []
            prepared = await photos_service.prepare_photos(raw, limits=limits)
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                ticket = await tickets_service.submit(uow, viewer=info.context.viewer, draft=draft)
                if prepared:
                    await photos_service.add_photos(
                        uow, viewer=info.context.viewer, store=services.photos, ticket_id=ticket.id, photos=prepared,
                        limits=limits,
                    )  # fmt: skip
        except photos_service.PhotoRejected as exc:
            return PhotoError.from_error(exc)
        except DomainError as exc:
            return _ticket_error(exc)
        return SubmitTicketSuccess(ticket=Ticket.from_model(ticket))

    @strawberry.mutation(description="Take a workflow step: acknowledge (first contact), start, resolve, close, ...")
    async def change_ticket_status(
        self, info: Info, input: Annotated[ChangeTicketStatusInput, InputArg]
    ) -> TicketChangeResult:
        return await _ticket_result(
            info,
            lambda uow: tickets_service.transition(
                uow, viewer=info.context.viewer, ticket_id=decode_id(input.ticket_id, "Ticket"),
                action=input.action, note=input.note, public=input.public,
            ),
        )  # fmt: skip

    @strawberry.mutation(description="Add a public or internal note to a ticket.")
    async def comment_on_ticket(
        self, info: Info, input: Annotated[CommentOnTicketInput, InputArg]
    ) -> TicketChangeResult:
        async def op(uow: Any) -> TicketModel:
            event = await tickets_service.comment(
                uow, viewer=info.context.viewer, ticket_id=decode_id(input.ticket_id, "Ticket"), note=input.note,
                public=input.public,
            )  # fmt: skip
            ticket = await uow.session.get(TicketModel, event.ticket_id)
            assert ticket is not None
            return ticket

        return await _ticket_result(info, op)

    @strawberry.mutation(description="Mark a ticket as a duplicate of another (staff).")
    async def mark_ticket_duplicate(
        self, info: Info, input: Annotated[MarkDuplicateInput, InputArg]
    ) -> TicketChangeResult:
        return await _ticket_result(
            info,
            lambda uow: tickets_service.mark_duplicate(
                uow, viewer=info.context.viewer, ticket_id=decode_id(input.ticket_id, "Ticket"),
                original_id=decode_id(input.original_id, "Ticket"),
            ),
        )  # fmt: skip

    @strawberry.mutation(description="Rate the work on a resolved ticket (the reporter).")
    async def rate_ticket(self, info: Info, input: Annotated[RateTicketInput, InputArg]) -> TicketChangeResult:
        return await _ticket_result(
            info,
            lambda uow: tickets_service.rate(
                uow, viewer=info.context.viewer, ticket_id=decode_id(input.ticket_id, "Ticket"), rating=input.rating,
                comment_text=input.comment,
            ),
        )  # fmt: skip

    @strawberry.mutation(description="Answer the follow-up: is it still fixed? (the reporter).")
    async def answer_follow_up(self, info: Info, input: Annotated[AnswerFollowUpInput, InputArg]) -> TicketChangeResult:
        return await _ticket_result(
            info,
            lambda uow: tickets_service.answer_follow_up(
                uow, viewer=info.context.viewer, ticket_id=decode_id(input.ticket_id, "Ticket"),
                still_fixed=input.still_fixed,
            ),
        )  # fmt: skip

    @strawberry.mutation(description="Accept or decline an offer made to you.")
    async def answer_offer(self, info: Info, input: Annotated[AnswerOfferInput, InputArg]) -> AnswerOfferResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                assignment = await dispatch_service.answer_offer(
                    uow, viewer=info.context.viewer, assignment_id=decode_id(input.assignment_id, "Assignment"),
                    accept=input.accept, note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _ticket_error(exc, [OfferNotOpenError])
        return AnswerOfferSuccess(assignment=Assignment.from_model(assignment))

    @strawberry.mutation(description="Assign a ticket to a responder by hand (staff).")
    async def assign_ticket(self, info: Info, input: Annotated[AssignTicketInput, InputArg]) -> AssignmentResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                assignment = await dispatch_service.assign_by_hand(
                    uow, viewer=info.context.viewer, kind=tickets_service.KIND,
                    subject_id=decode_id(input.ticket_id, "Ticket"),
                    responder_id=decode_id(input.responder_id, "Responder"), note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _ticket_error(exc)
        return AssignmentSuccess(assignment=Assignment.from_model(assignment))

    @strawberry.mutation(description="Claim a ticket offered in grab mode (抢单).")
    async def claim_ticket(self, info: Info, input: Annotated[ClaimTicketInput, InputArg]) -> AssignmentResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                assignment = await dispatch_service.claim(
                    uow, viewer=info.context.viewer, kind=tickets_service.KIND,
                    subject_id=decode_id(input.ticket_id, "Ticket"),
                )  # fmt: skip
        except DomainError as exc:
            return _ticket_error(exc)
        return AssignmentSuccess(assignment=Assignment.from_model(assignment))

    @strawberry.mutation(description="Mark inbox messages read.")
    async def mark_notifications_read(
        self, info: Info, input: Annotated[MarkNotificationsReadInput, InputArg]
    ) -> MarkNotificationsReadSuccess:
        viewer = info.context.viewer
        if viewer.account_id is None:
            raise GraphQLError("Log in first.", extensions={"code": "UNAUTHENTICATED"})
        if len(input.ids) > 100:
            raise GraphQLError("At most 100 ids.", extensions={"code": "BAD_USER_INPUT"})
        ids = [decode_id(i, "Notification") for i in input.ids]
        async with info.context.db.unit_of_work(info.context.jobs) as uow:
            marked = await notifications_service.mark_read(uow, account_id=viewer.account_id, notification_ids=ids)
        return MarkNotificationsReadSuccess(marked=marked)


ERROR_TYPES = [EmergencyNoticeError, IllegalTransitionError, OfferNotOpenError]
