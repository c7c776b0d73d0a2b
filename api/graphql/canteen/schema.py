"""Queries and mutations of the canteen domain: canteens, price rules, menus, reservations, count sheets."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay

from api.canteen import models
from api.canteen import service as canteen_service
from api.core.clock import local_today
from api.core.errors import DomainError, Forbidden, NotFound, Unauthenticated, ValidationFailed
from api.core.viewer import Permission
from api.graphql.canteen.types import (
    Canteen,
    CountSheet,
    Meal,
    MealReservation,
    PriceRule,
)
from api.graphql.context import Info
from api.graphql.errors import (
    ConflictError,
    NotFoundError,
    UserError,
    ValidationError,
    auth_error,
    to_user_error,
)
from api.graphql.pagination import Connection, decode_id, page_args, paged
from api.graphql.registry.types import AfterArg, FirstArg
from api.registry.models import ResidentTag

InputArg = strawberry.argument(description="The mutation's input.")
CommunityArg = Annotated[relay.GlobalID, strawberry.argument(description="The community.")]
_CLOCK = re.compile(r"^(-)?([01]\d|2[0-4]):([0-5]\d)$")


# -- errors -------------------------------------------------------------------------------------------


@strawberry.type(description="Reservations for the meal have closed: its cut-off has passed.")
class AfterCutOffError(UserError):
    pass


@strawberry.type(description="Every portion of the meal is reserved.")
class MealFullError(UserError):
    pass


@strawberry.type(description="The resident has a reservation for this meal already.")
class AlreadyReservedError(UserError):
    pass


@strawberry.type(description="Delivery is for residents who are disabled or 80 and over (or when staff allow it).")
class NotEligibleForDeliveryError(UserError):
    pass


@strawberry.type(description="The canteen does not serve on that day of the week.")
class CanteenClosedError(UserError):
    pass


@strawberry.type(description="More portions are reserved than the new capacity.")
class CapacityBelowReservedError(UserError):
    pass


@strawberry.type(description="You can reserve for yourself, your household and the people in your care only.")
class NotYourHouseholdError(UserError):
    pass


@strawberry.type(description="The reservation is cancelled already.")
class ReservationNotActiveError(UserError):
    pass


_TYPED: dict[type[DomainError], type[UserError]] = {
    canteen_service.AfterCutOff: AfterCutOffError,
    canteen_service.MealFull: MealFullError,
    canteen_service.AlreadyReserved: AlreadyReservedError,
    canteen_service.NotEligibleForDelivery: NotEligibleForDeliveryError,
    canteen_service.CanteenClosedOnDay: CanteenClosedError,
    canteen_service.CapacityBelowReserved: CapacityBelowReservedError,
    canteen_service.NotYourHousehold: NotYourHouseholdError,
    canteen_service.ReservationNotActive: ReservationNotActiveError,
}

ERROR_TYPES: list[type[UserError]] = list(_TYPED.values())


def _error(exc: DomainError, allowed: list[type[UserError]]) -> Any:
    gql_type = _TYPED.get(type(exc))
    if gql_type is not None and gql_type in allowed:
        return gql_type(message=exc.message, field=exc.field, code=exc.code)
    return to_user_error(exc, allowed)


def _minute(value: str, field: str) -> int:
    match = _CLOCK.match(value.strip())
    if match is None or (match.group(2) == "24" and match.group(3) != "00"):
        raise ValidationFailed("Give times as HH:MM (or -HH:MM for the day before).", field=field)
    minute = int(match.group(2)) * 60 + int(match.group(3))
    return -minute if match.group(1) else minute


def _bad_input(exc: DomainError) -> GraphQLError:
    return GraphQLError(exc.message, extensions={"code": "BAD_USER_INPUT", "field": exc.field})


# -- inputs and results -------------------------------------------------------------------------------


@strawberry.input(description="A new canteen (canteen staff).")
class CreateCanteenInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    name: str = strawberry.field(description="Name (1 to 100 characters, unique in the community).")
    location: str = strawberry.field(default="", description="Where it is.")
    opening_days: list[int] = strawberry.field(
        default_factory=lambda: [0, 1, 2, 3, 4], description="Weekdays it serves on (0 Monday … 6 Sunday; at most 7)."
    )
    default_capacity: int = strawberry.field(default=60, description="Portions per meal (1 to 2000).")
    breakfast_cut_off: str = strawberry.field(
        default="-04:00", description="Breakfast cut-off, HH:MM on the meal's day; -04:00 is 20:00 the day before."
    )
    lunch_cut_off: str = strawberry.field(default="09:30", description="Lunch cut-off, HH:MM on the meal's day.")
    dinner_cut_off: str = strawberry.field(default="15:00", description="Dinner cut-off, HH:MM on the meal's day.")


@strawberry.type(description="The canteen.")
class CanteenSuccess:
    canteen: Canteen = strawberry.field(description="The canteen.")


CANTEEN_ERRORS: list[type[UserError]] = [ValidationError, NotFoundError, ConflictError]
CanteenResult = Annotated[
    CanteenSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("CanteenResult", description="The canteen, or why the change was refused."),
]


@strawberry.input(description="One price rule: a minimum age and/or a tag, and the price for those who match.")
class PriceRuleInput:
    name: str = strawberry.field(description="Name on receipts, e.g. 80岁以上 (unique per canteen).")
    price_fen: int = strawberry.field(description="The price in fen (0 to 100000).")
    min_age: int | None = strawberry.field(default=None, description="Matches residents at least this old on the day.")
    tag: ResidentTag | None = strawberry.field(default=None, description="Matches residents with this registry tag.")
    meal_kind: models.MealKind | None = strawberry.field(default=None, description="Only this meal (default: all).")


@strawberry.input(description="Replace a canteen's price rules (canteen staff); reservations made keep their price.")
class SetPriceRulesInput:
    canteen_id: relay.GlobalID = strawberry.field(description="The canteen.")
    rules: list[PriceRuleInput] = strawberry.field(description="Every rule (at most 30).")


@strawberry.input(description="One meal of the day's menu.")
class MealInput:
    kind: models.MealKind = strawberry.field(description="Breakfast, lunch or dinner.")
    dishes: list[str] = strawberry.field(description="The dishes (1 to 20, each at most 50 characters).")
    base_price_fen: int = strawberry.field(description="The price in fen for residents no rule covers.")
    capacity: int | None = strawberry.field(default=None, description="Portions (default: the canteen's).")


@strawberry.input(description="Publish or change a day's menu (canteen staff); a closed meal cannot change.")
class SetMenuInput:
    canteen_id: relay.GlobalID = strawberry.field(description="The canteen.")
    served_on: dt.date = strawberry.field(description="The day.")
    meals: list[MealInput] = strawberry.field(description="One to three meals, each kind once.")


@strawberry.type(description="The day's meals as they are now.")
class SetMenuSuccess:
    meals: list[Meal] = strawberry.field(description="The meals given, in the order given.")


SET_MENU_ERRORS: list[type[UserError]] = [
    CanteenClosedError, AfterCutOffError, CapacityBelowReservedError, ValidationError, NotFoundError, ConflictError,
]  # fmt: skip
SetMenuResult = Annotated[
    SetMenuSuccess | CanteenClosedError | AfterCutOffError | CapacityBelowReservedError | ValidationError
    | NotFoundError | ConflictError,
    strawberry.union("SetMenuResult", description="The meals, or why the menu was refused."),
]  # fmt: skip


@strawberry.input(description="Reserve a meal for yourself, your household or someone in your care.")
class ReserveMealInput:
    meal_id: relay.GlobalID = strawberry.field(description="The meal.")
    resident_id: relay.GlobalID | None = strawberry.field(default=None, description="Who eats (default: you).")
    delivery: bool = strawberry.field(
        default=False, description="Deliver it home (for residents who are disabled or 80 and over)."
    )
    delivery_override: bool = strawberry.field(
        default=False, description="Canteen staff only: allow delivery for someone else who is housebound."
    )
    note: str = strawberry.field(default="", description="A note for the kitchen, e.g. 少盐 (at most 200 characters).")


@strawberry.type(description="The reservation.")
class MealReservationSuccess:
    reservation: MealReservation = strawberry.field(description="The reservation.")


RESERVE_ERRORS: list[type[UserError]] = [
    AfterCutOffError, MealFullError, AlreadyReservedError, NotEligibleForDeliveryError, NotYourHouseholdError,
    ValidationError, NotFoundError, ConflictError,
]  # fmt: skip
ReserveMealResult = Annotated[
    MealReservationSuccess | AfterCutOffError | MealFullError | AlreadyReservedError | NotEligibleForDeliveryError
    | NotYourHouseholdError | ValidationError | NotFoundError | ConflictError,
    strawberry.union("ReserveMealResult", description="The reservation, or why the meal could not be reserved."),
]  # fmt: skip


@strawberry.input(description="Cancel a reservation before the meal's cut-off; the portion goes back.")
class CancelMealReservationInput:
    reservation_id: relay.GlobalID = strawberry.field(description="The reservation.")


CANCEL_ERRORS: list[type[UserError]] = [AfterCutOffError, ReservationNotActiveError, NotFoundError, ValidationError]
CancelMealReservationResult = Annotated[
    MealReservationSuccess | AfterCutOffError | ReservationNotActiveError | NotFoundError | ValidationError,
    strawberry.union("CancelMealReservationResult", description="The cancelled reservation, or why not."),
]


# -- queries ------------------------------------------------------------------------------------------


@strawberry.type
class CanteenQuery:
    @strawberry.field(description="The community's canteens.")
    async def canteens(self, info: Info, community_id: CommunityArg) -> list[Canteen]:
        async with info.context.db.read_session() as session:
            rows = await canteen_service.list_canteens(
                session, viewer=info.context.viewer, community_id=decode_id(community_id, "Community")
            )
        return [Canteen.from_model(r) for r in rows]

    @strawberry.field(description="A canteen's meals from one day to another (at most 31 days), by day and meal.")
    async def meals(
        self,
        info: Info,
        canteen_id: Annotated[relay.GlobalID, strawberry.argument(description="The canteen.")],
        from_: Annotated[
            dt.date | None, strawberry.argument(name="from", description="First day (default: today).")
        ] = None,
        to: Annotated[dt.date | None, strawberry.argument(description="Last day (default: a week on).")] = None,
    ) -> list[Meal]:
        start = from_ or local_today()
        end = to or start + dt.timedelta(days=6)
        try:
            async with info.context.db.read_session() as session:
                rows = await canteen_service.meals_between(
                    session, viewer=info.context.viewer, canteen_id=decode_id(canteen_id, "Canteen"), start=start,
                    end=end,
                )  # fmt: skip
        except NotFound:
            return []
        except DomainError as exc:
            raise _bad_input(exc) from exc
        return [Meal.from_model(r) for r in rows]

    @strawberry.field(
        description="Your reservations and those of your household and the people in your care, in the order made."
    )
    async def my_meal_reservations(
        self,
        info: Info,
        first: FirstArg = None,
        after: AfterArg = None,
        include_past: Annotated[bool, strawberry.argument(description="Also meals of past days.")] = False,
    ) -> Connection[MealReservation]:
        viewer = info.context.viewer
        if not viewer.is_authenticated:
            raise GraphQLError("Log in first.", extensions={"code": "UNAUTHENTICATED"})
        stmt = canteen_service.my_reservations_query(viewer, include_past=include_past, today=local_today())
        return await paged(
            info.context.db, stmt, models.CanteenReservation.id, page_args(first, after), MealReservation.from_model
        )

    @strawberry.field(description="Every reservation of a meal (canteen staff), in the order made.")
    async def meal_reservations(
        self,
        info: Info,
        meal_id: Annotated[relay.GlobalID, strawberry.argument(description="The meal.")],
        first: FirstArg = None,
        after: AfterArg = None,
        include_cancelled: Annotated[bool, strawberry.argument(description="Also cancelled ones.")] = False,
    ) -> Connection[MealReservation]:
        meal = await _managed_meal(info, meal_id)
        stmt = canteen_service.visible_reservations(info.context.viewer).where(
            models.CanteenReservation.meal_id == meal.id
        )
        if not include_cancelled:
            stmt = stmt.where(models.CanteenReservation.status == models.ReservationStatus.ACTIVE.value)
        return await paged(
            info.context.db, stmt, models.CanteenReservation.id, page_args(first, after), MealReservation.from_model
        )

    @strawberry.field(description="The kitchen's count sheet of a meal (canteen staff): final after the cut-off.")
    async def meal_count_sheet(
        self, info: Info, meal_id: Annotated[relay.GlobalID, strawberry.argument(description="The meal.")]
    ) -> CountSheet:
        meal = await _managed_meal(info, meal_id)
        async with info.context.db.read_session() as session:
            sheet = await canteen_service.count_sheet(session, meal=meal)
        return CountSheet.from_sheet(sheet)

    @strawberry.field(description="The count sheets of a canteen's meals on one day (canteen staff).")
    async def canteen_count_sheets(
        self,
        info: Info,
        canteen_id: Annotated[relay.GlobalID, strawberry.argument(description="The canteen.")],
        day: Annotated[dt.date, strawberry.argument(description="The day.")],
    ) -> list[CountSheet]:
        viewer = info.context.viewer
        cid = decode_id(canteen_id, "Canteen")
        try:
            async with info.context.db.read_session() as session:
                canteen = await session.get(models.Canteen, cid)
                if canteen is None or canteen.community_id not in viewer.community_ids:
                    return []
                viewer.require(Permission.MANAGE_CANTEEN, canteen.community_id)
                meals = await canteen_service.meals_between(session, viewer=viewer, canteen_id=cid, start=day, end=day)
                return [CountSheet.from_sheet(await canteen_service.count_sheet(session, meal=m)) for m in meals]
        except (Forbidden, Unauthenticated) as exc:
            raise auth_error(exc) from exc
        except NotFound:
            return []
        except DomainError as exc:
            raise _bad_input(exc) from exc


async def _managed_meal(info: Info, meal_gid: relay.GlobalID) -> models.CanteenMeal:
    """A meal of the viewer's communities that they manage; NotFound as a GraphQL error otherwise."""
    viewer = info.context.viewer
    async with info.context.db.read_session() as session:
        meal = await session.get(models.CanteenMeal, decode_id(meal_gid, "Meal"))
    if meal is None or meal.community_id not in viewer.community_ids:
        raise GraphQLError("No such meal.", extensions={"code": "NOT_FOUND"})
    try:
        viewer.require(Permission.MANAGE_CANTEEN, meal.community_id)
    except (Forbidden, Unauthenticated) as exc:
        raise auth_error(exc) from exc
    return meal


# -- mutations ----------------------------------------------------------------------------------------


@strawberry.type
class CanteenMutation:
    @strawberry.mutation(description="Open a canteen in the community (canteen staff).")
    async def create_canteen(self, info: Info, input: Annotated[CreateCanteenInput, InputArg]) -> CanteenResult:
        try:
            if len(input.opening_days) > 7:
                raise ValidationFailed("At most seven opening days.", field="openingDays")
            draft = canteen_service.CanteenDraft(
                community_id=decode_id(input.community_id, "Community"), name=input.name, location=input.location,
                opening_days=tuple(input.opening_days), default_capacity=input.default_capacity,
                breakfast_cutoff_minute=_minute(input.breakfast_cut_off, "breakfastCutOff"),
                lunch_cutoff_minute=_minute(input.lunch_cut_off, "lunchCutOff"),
                dinner_cutoff_minute=_minute(input.dinner_cut_off, "dinnerCutOff"),
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await canteen_service.create_canteen(uow, viewer=info.context.viewer, draft=draft)
        except DomainError as exc:
            return _error(exc, CANTEEN_ERRORS)
        return CanteenSuccess(canteen=Canteen.from_model(row))

    @strawberry.mutation(
        description="Replace a canteen's price rules (canteen staff); the cheapest matching rule wins."
    )
    async def set_canteen_price_rules(
        self, info: Info, input: Annotated[SetPriceRulesInput, InputArg]
    ) -> CanteenResult:
        try:
            if len(input.rules) > canteen_service.MAX_RULES:
                raise ValidationFailed(f"At most {canteen_service.MAX_RULES} rules.", field="rules")
            canteen_id = decode_id(input.canteen_id, "Canteen")
            rules = [
                canteen_service.PriceRuleDraft(
                    name=r.name, price_fen=r.price_fen, min_age=r.min_age, tag=r.tag, meal_kind=r.meal_kind
                )
                for r in input.rules
            ]
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                await canteen_service.set_price_rules(
                    uow, viewer=info.context.viewer, canteen_id=canteen_id, rules=rules
                )
                row = await uow.session.get(models.Canteen, canteen_id)
        except DomainError as exc:
            return _error(exc, CANTEEN_ERRORS)
        assert row is not None
        return CanteenSuccess(canteen=Canteen.from_model(row))

    @strawberry.mutation(description="Publish or change a day's menu (canteen staff).")
    async def set_canteen_menu(self, info: Info, input: Annotated[SetMenuInput, InputArg]) -> SetMenuResult:
        try:
            if len(input.meals) > len(models.MealKind):
                raise ValidationFailed("Give one to three meals.", field="meals")
            drafts = [
                canteen_service.MealDraft(
                    kind=m.kind,
                    dishes=tuple(m.dishes[: canteen_service.MAX_DISHES + 1]),
                    base_price_fen=m.base_price_fen,
                    capacity=m.capacity,
                )
                for m in input.meals
            ]
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                rows = await canteen_service.set_menu(
                    uow, viewer=info.context.viewer, canteen_id=decode_id(input.canteen_id, "Canteen"),
                    served_on=input.served_on, meals=drafts,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, SET_MENU_ERRORS)
        return SetMenuSuccess(meals=[Meal.from_model(r) for r in rows])

    @strawberry.mutation(
        description="Reserve a meal before its cut-off; the price is set now by the best matching rule."
    )
    async def reserve_meal(self, info: Info, input: Annotated[ReserveMealInput, InputArg]) -> ReserveMealResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await canteen_service.reserve(
                    uow, viewer=info.context.viewer, meal_id=decode_id(input.meal_id, "Meal"),
                    resident_id=decode_id(input.resident_id, "Resident") if input.resident_id else None,
                    delivery=input.delivery, delivery_override=input.delivery_override, note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, RESERVE_ERRORS)
        return MealReservationSuccess(reservation=MealReservation.from_model(row))

    @strawberry.mutation(description="Cancel a meal reservation before the cut-off.")
    async def cancel_meal_reservation(
        self, info: Info, input: Annotated[CancelMealReservationInput, InputArg]
    ) -> CancelMealReservationResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await canteen_service.cancel_reservation(
                    uow, viewer=info.context.viewer, reservation_id=decode_id(input.reservation_id, "MealReservation")
                )
        except DomainError as exc:
            return _error(exc, CANCEL_ERRORS)
        return MealReservationSuccess(reservation=MealReservation.from_model(row))


TYPES: list[Any] = [Canteen, Meal, MealReservation, PriceRule]
