"""小修小补 workshop: sessions, slots and bookings (queries, mutations and their types)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import Enum
from typing import Annotated, Any, Self

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from api.core.errors import DomainError
from api.graphql.context import Info
from api.graphql.errors import ConflictError, NotFoundError, UserError, ValidationError, to_user_error
from api.graphql.pagination import decode_id
from api.graphql.tickets.schema import IllegalTransitionError
from api.graphql.tickets.types import Responder, Ticket, TicketCategory
from api.tickets import service as tickets_service
from api.tickets import workshop
from api.tickets.models import WorkshopBooking as BookingModel
from api.tickets.models import WorkshopSession as SessionModel

InputArg = strawberry.argument(description="The mutation's input.")
CURRENCY = "CNY"


# -- loaders (kept per request in the context's `extra`) --------------------------------------------


def _loader(info: Info, key: str, load: Any) -> DataLoader[Any, Any]:
    loaders = info.context.extra
    if key not in loaders:
        loaders[key] = DataLoader(load)
    loader: DataLoader[Any, Any] = loaders[key]
    return loader


def _sessions(info: Info) -> DataLoader[int, SessionModel | None]:
    async def load(ids: list[int]) -> list[SessionModel | None]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(SessionModel).where(
                        SessionModel.id.in_(ids), SessionModel.community_id.in_(info.context.viewer.community_ids)
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "workshop.sessions", load)


def _seats_taken(info: Info) -> DataLoader[int, dict[dt.datetime, int]]:
    async def load(ids: list[int]) -> list[dict[dt.datetime, int]]:
        async with info.context.db.read_session() as session:
            taken = await workshop.seats_taken(session, session_ids=ids)
        return [taken.get(i, {}) for i in ids]

    return _loader(info, "workshop.seats_taken", load)


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1


# -- types --------------------------------------------------------------------------------------------


@strawberry.type(description="One slot of a workshop session, with the seats still free.")
class WorkshopSlot:
    start: dt.datetime = strawberry.field(description="When the slot begins (book with this time).")
    end: dt.datetime = strawberry.field(description="When the slot ends.")
    seats_left: int = strawberry.field(description="Seats still free in this slot.")


@strawberry.type(description="A craftsperson's bookable session (e.g. the Saturday pop-up in the square).")
class WorkshopSession(relay.Node):
    db_id: relay.NodeID[int]
    title: str = strawberry.field(description="What is on offer, e.g. 周六广场便民服务.")
    location: str = strawberry.field(description="Where it takes place.")
    starts_at: dt.datetime = strawberry.field(description="When the first slot begins.")
    ends_at: dt.datetime = strawberry.field(description="When the last slot ends.")
    slot_minutes: int = strawberry.field(description="Length of each slot in minutes.")
    seats_per_slot: int = strawberry.field(description="How many residents each slot takes.")
    price_cents: int = strawberry.field(description="Price per booking in fen (cents); 0 is free.")
    currency: str = strawberry.field(description="Currency of the price: CNY.")
    cancelled_at: dt.datetime | None = strawberry.field(description="When the session was called off.")
    row: strawberry.Private[SessionModel]

    @classmethod
    def from_model(cls, m: SessionModel) -> Self:
        return cls(db_id=m.id, title=m.title, location=m.location, starts_at=m.starts_at, ends_at=m.ends_at,
                   slot_minutes=m.slot_minutes, seats_per_slot=m.seats_per_slot, price_cents=m.price_cents,
                   currency=CURRENCY, cancelled_at=m.cancelled_at, row=m)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _sessions(info).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="The price in yuan as a decimal string, e.g. 15.00; 0.00 is free.")
    def price(self) -> str:
        return f"{self.price_cents // 100}.{self.price_cents % 100:02d}"

    @strawberry.field(description="True when booking costs nothing.")
    def free(self) -> bool:
        return self.price_cents == 0

    @strawberry.field(description="The craftsperson who holds the session.")
    async def craftsperson(self, info: Info) -> Responder | None:
        row = await info.context.loaders.tickets.responder.load(self.row.responder_id)
        return Responder.from_model(row) if row else None

    @strawberry.field(description="The service offered (a workshop category).")
    async def category(self, info: Info) -> TicketCategory | None:
        row = await info.context.loaders.tickets.category.load(self.row.category_id)
        return TicketCategory.from_model(row) if row else None

    @strawberry.field(description="Every slot with the seats left, in order.")
    async def slots(self, info: Info) -> list[WorkshopSlot]:
        taken = await _seats_taken(info).load(self.db_id)
        return [
            WorkshopSlot(start=s.start, end=s.end, seats_left=s.seats_left) for s in workshop.slots_of(self.row, taken)
        ]


@strawberry.enum(description="Whether a booking still holds its seat.")
class WorkshopBookingStatus(Enum):
    BOOKED = "booked"
    CANCELLED = "cancelled"


@strawberry.type(description="A resident's seat in one slot of a workshop session.")
class WorkshopBooking(relay.Node):
    db_id: relay.NodeID[int]
    slot_start: dt.datetime = strawberry.field(description="When the booked slot begins.")
    status: WorkshopBookingStatus = strawberry.field(description="Booked, or cancelled (the seat is free again).")
    seat: int | None = strawberry.field(description="Seat number within the slot; null once cancelled.")
    created_at: dt.datetime = strawberry.field(description="When it was booked.")
    session_id: strawberry.Private[int]
    ticket_id: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, m: BookingModel) -> Self:
        return cls(db_id=m.id, slot_start=m.slot_start, status=WorkshopBookingStatus(m.status), seat=m.seat,
                   created_at=m.created_at, session_id=m.session_id, ticket_id=m.ticket_id)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(workshop.visible_bookings(info.context.viewer).where(BookingModel.id.in_(ids)))
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="The session booked.")
    async def session(self, info: Info) -> WorkshopSession | None:
        row = await _sessions(info).load(self.session_id)
        return WorkshopSession.from_model(row) if row else None

    @strawberry.field(description="The ticket the booking became (kind WORKSHOP), assigned to the craftsperson.")
    async def ticket(self, info: Info) -> Ticket | None:
        if self.ticket_id is None:
            return None
        row = await info.context.loaders.tickets.ticket.load(self.ticket_id)
        return Ticket.from_model(row) if row else None


# -- errors -------------------------------------------------------------------------------------------


@strawberry.type(description="Every seat in the slot is taken: choose another slot.")
class SlotFullError(UserError):
    pass


@strawberry.type(description="You already hold a seat in this session.")
class AlreadyBookedError(UserError):
    pass


def _error(exc: DomainError, allowed: list[type[UserError]]) -> Any:
    typed: dict[type[DomainError], type[UserError]] = {
        workshop.SlotFull: SlotFullError,
        workshop.AlreadyBooked: AlreadyBookedError,
        tickets_service.IllegalTransition: IllegalTransitionError,
    }
    for klass, gql_type in typed.items():
        if isinstance(exc, klass) and gql_type in allowed:
            return gql_type(message=exc.message, field=exc.field, code=exc.code)
    return to_user_error(exc, allowed)


# -- inputs and results ---------------------------------------------------------------------------------


@strawberry.input(description="A new workshop session (staff, or the craftsperson themself).")
class CreateWorkshopSessionInput:
    responder_id: relay.GlobalID = strawberry.field(description="The craftsperson.")
    category_id: relay.GlobalID = strawberry.field(description="The service: a workshop category they offer.")
    title: str = strawberry.field(description="Title (1 to 100 characters).")
    location: str = strawberry.field(description="Where (1 to 200 characters).")
    starts_at: dt.datetime = strawberry.field(description="Start, with a time zone, on a whole minute.")
    ends_at: dt.datetime = strawberry.field(description="End; at most 12 hours after the start.")
    slot_minutes: int = strawberry.field(default=20, description="Slot length in minutes; must divide the session.")
    seats_per_slot: int = strawberry.field(default=1, description="Residents per slot (1 to 20).")
    price_cents: int = strawberry.field(default=0, description="Price in fen (cents); 0 is free.")


@strawberry.type(description="The session.")
class WorkshopSessionSuccess:
    session: WorkshopSession = strawberry.field(description="The session.")


SESSION_ERRORS: list[type[UserError]] = [ValidationError, NotFoundError, ConflictError]
CreateWorkshopSessionResult = Annotated[
    WorkshopSessionSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("CreateWorkshopSessionResult", description="The new session, or why it was refused."),
]


@strawberry.input(description="Book a seat in one slot of a session (a resident of the community).")
class BookWorkshopSlotInput:
    session_id: relay.GlobalID = strawberry.field(description="The session.")
    slot_start: dt.datetime = strawberry.field(description="The slot's start, as listed in `slots`.")
    description: str = strawberry.field(default="", description="What needs doing (at most 4,000 characters).")
    answers: JSON | None = strawberry.field(default=None, description="Answers to the service's questions by code.")


@strawberry.type(description="The booking.")
class WorkshopBookingSuccess:
    booking: WorkshopBooking = strawberry.field(description="The booking.")


BOOK_ERRORS: list[type[UserError]] = [SlotFullError, AlreadyBookedError, ValidationError, NotFoundError, ConflictError]
BookWorkshopSlotResult = Annotated[
    WorkshopBookingSuccess | SlotFullError | AlreadyBookedError | ValidationError | NotFoundError | ConflictError,
    strawberry.union("BookWorkshopSlotResult", description="The booking, or why there is no seat for you."),
]


@strawberry.input(description="Cancel a booking (the resident, or staff).")
class CancelWorkshopBookingInput:
    booking_id: relay.GlobalID = strawberry.field(description="The booking.")


CANCEL_BOOKING_ERRORS: list[type[UserError]] = [NotFoundError, ConflictError, IllegalTransitionError, ValidationError]
CancelWorkshopBookingResult = Annotated[
    WorkshopBookingSuccess | NotFoundError | ConflictError | IllegalTransitionError | ValidationError,
    strawberry.union("CancelWorkshopBookingResult", description="The cancelled booking, or why it was refused."),
]


@strawberry.input(description="Call a session off (staff, or the craftsperson); its residents are told.")
class CancelWorkshopSessionInput:
    session_id: relay.GlobalID = strawberry.field(description="The session.")
    reason: str | None = strawberry.field(default=None, description="Why, told to the residents.")


@strawberry.type(description="The session was called off.")
class CancelWorkshopSessionSuccess:
    session: WorkshopSession = strawberry.field(description="The session.")
    bookings_cancelled: int = strawberry.field(description="Bookings cancelled (their residents were told).")


CancelWorkshopSessionResult = Annotated[
    CancelWorkshopSessionSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("CancelWorkshopSessionResult", description="The cancelled session, or why it was refused."),
]

ToArg = Annotated[dt.datetime | None, strawberry.argument(description="Sessions starting before this time.")]


@strawberry.type
class WorkshopQuery:
    @strawberry.field(description="Upcoming workshop sessions of a community that are not cancelled, soonest first.")
    async def workshop_sessions(
        self,
        info: Info,
        community_id: Annotated[relay.GlobalID, strawberry.argument(description="The community.")],
        from_: Annotated[
            dt.datetime | None,
            strawberry.argument(name="from", description="Only sessions starting at or after this time."),
        ] = None,
        to: ToArg = None,
    ) -> list[WorkshopSession]:
        try:
            async with info.context.db.read_session() as session:
                rows = await workshop.upcoming_sessions(
                    session, viewer=info.context.viewer, community_id=decode_id(community_id, "Community"),
                    since=from_, until=to,
                )  # fmt: skip
        except DomainError as exc:
            raise GraphQLError(exc.message, extensions={"code": "BAD_USER_INPUT"}) from exc
        return [WorkshopSession.from_model(r) for r in rows]

    @strawberry.field(description="The viewer's workshop bookings, latest slot first.")
    async def my_workshop_bookings(
        self,
        info: Info,
        include_cancelled: Annotated[bool, strawberry.argument(description="Also list cancelled bookings.")] = False,
    ) -> list[WorkshopBooking]:
        async with info.context.db.read_session() as session:
            rows = await workshop.my_bookings(session, viewer=info.context.viewer, include_cancelled=include_cancelled)
        return [WorkshopBooking.from_model(r) for r in rows]


@strawberry.type
class WorkshopMutation:
    @strawberry.mutation(description="Open a bookable workshop session (staff, or the craftsperson themself).")
    async def create_workshop_session(
        self, info: Info, input: Annotated[CreateWorkshopSessionInput, InputArg]
    ) -> CreateWorkshopSessionResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await workshop.create_session(
                    uow, viewer=info.context.viewer, responder_id=decode_id(input.responder_id, "Responder"),
                    category_id=decode_id(input.category_id, "TicketCategory"), title=input.title,
                    location=input.location, starts_at=input.starts_at, ends_at=input.ends_at,
                    slot_minutes=input.slot_minutes, seats_per_slot=input.seats_per_slot,
                    price_cents=input.price_cents,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, SESSION_ERRORS)
        return WorkshopSessionSuccess(session=WorkshopSession.from_model(row))

    @strawberry.mutation(
        description="Book a seat in a workshop slot; the booking becomes a ticket for the craftsperson."
    )
    async def book_workshop_slot(
        self, info: Info, input: Annotated[BookWorkshopSlotInput, InputArg]
    ) -> BookWorkshopSlotResult:
        try:
            if input.answers is not None and not isinstance(input.answers, dict):
                raise DomainError("Answers are an object keyed by question code.", field="answers")
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await workshop.book(
                    uow, viewer=info.context.viewer, session_id=decode_id(input.session_id, "WorkshopSession"),
                    slot_start=input.slot_start, description=input.description, answers=dict(input.answers or {}),
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, BOOK_ERRORS)
        return WorkshopBookingSuccess(booking=WorkshopBooking.from_model(row))

    @strawberry.mutation(description="Cancel a workshop booking: the seat is freed and the ticket cancelled.")
    async def cancel_workshop_booking(
        self, info: Info, input: Annotated[CancelWorkshopBookingInput, InputArg]
    ) -> CancelWorkshopBookingResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await workshop.cancel_booking(
                    uow, viewer=info.context.viewer, booking_id=decode_id(input.booking_id, "WorkshopBooking")
                )
        except DomainError as exc:
            return _error(exc, CANCEL_BOOKING_ERRORS)
        return WorkshopBookingSuccess(booking=WorkshopBooking.from_model(row))

    @strawberry.mutation(description="Call a workshop session off: every booking is cancelled and its resident told.")
    async def cancel_workshop_session(
        self, info: Info, input: Annotated[CancelWorkshopSessionInput, InputArg]
    ) -> CancelWorkshopSessionResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                done = await workshop.cancel_session(
                    uow, viewer=info.context.viewer, session_id=decode_id(input.session_id, "WorkshopSession"),
                    reason=input.reason,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, SESSION_ERRORS)
        return CancelWorkshopSessionSuccess(
            session=WorkshopSession.from_model(done.session), bookings_cancelled=done.bookings_cancelled
        )


NODE_TYPES = [WorkshopSession, WorkshopBooking]
