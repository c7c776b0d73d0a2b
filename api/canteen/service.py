"""The canteen: menus, prices by eligibility, reservations within capacity, cut-off and count sheets.

Capacity is the database's job (see api/canteen/models.py): a reservation takes a portion with a
conditional UPDATE of the meal's ``reserved`` counter, bounded by a CHECK, and holds the meal's row
lock until it commits; cancelling gives the portion back the same way. Both take the meal's lock
before touching a reservation row, so they cannot deadlock each other. Closing a meal at its
cut-off is one more conditional UPDATE on the same row: once it has run, nothing changes the meal.

Prices are data per canteen: a rule matches on a minimum age (on the meal's day) and/or a registry
tag; the cheapest matching rule wins, and never more than the base price. The price and the rule's
name are frozen on the reservation.

Delivery is for the housebound (tag ``disabled``, or 80 and over on the day), or when staff allow
it. The delivery requests go to the elder-care domain as jobs when the meal closes, when the list
is final: a reservation cancelled before the cut-off never becomes a visit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import RoleGrant
from api.canteen import jobs
from api.canteen.models import (
    Canteen,
    CanteenCountSheet,
    CanteenMeal,
    CanteenPriceRule,
    CanteenReservation,
    MealKind,
    ReservationStatus,
)
from api.core.clock import CHINA_TZ, age_on, utc_now
from api.core.database import UnitOfWork
from api.core.errors import Conflict, NotFound, ValidationFailed
from api.core.viewer import ROLE_PERMISSIONS, Permission, Role, Viewer
from api.notifications import service as notifications
from api.registry.models import Building, Compound, Household, Resident, ResidentTag, ResidentTagLink

BASE_PRICE_NAME = "标准价"
HOUSEBOUND_AGE = 80
MAX_DISHES = 20
MAX_DISH = 50
MAX_NAME = 100
MAX_RULES = 30
MAX_PRICE_FEN = 100_000
MAX_CAPACITY = 2_000
MAX_NOTE = 200
MAX_RANGE_DAYS = 31
MAX_LISTED = 500
SCAN_BATCH = 500
RESERVATION_INDEX = "uq_canteen_reservation_meal_id_resident_id"
MEAL_NAMES = {MealKind.BREAKFAST: "早餐", MealKind.LUNCH: "午餐", MealKind.DINNER: "晚餐"}
# When each meal is served (minutes of the day, China time) unless the menu says otherwise.
SERVING = {
    MealKind.BREAKFAST: (7 * 60, 8 * 60 + 30),
    MealKind.LUNCH: (11 * 60 + 30, 12 * 60 + 30),
    MealKind.DINNER: (17 * 60 + 30, 18 * 60 + 30),
}


# -- errors -----------------------------------------------------------------------------------------


class AfterCutOff(Conflict):
    """Reservations for the meal have closed (its cut-off has passed)."""

    code = "AFTER_CUT_OFF"


class MealFull(Conflict):
    code = "MEAL_FULL"


class AlreadyReserved(Conflict):
    code = "ALREADY_RESERVED"


class NotEligibleForDelivery(Conflict):
    code = "NOT_ELIGIBLE_FOR_DELIVERY"


class CanteenClosedOnDay(Conflict):
    code = "CANTEEN_CLOSED"


class CapacityBelowReserved(Conflict):
    code = "CAPACITY_BELOW_RESERVED"


class NotYourHousehold(Conflict):
    """A resident may reserve for themself, their household and the people in their care."""

    code = "NOT_YOUR_HOUSEHOLD"


class ReservationNotActive(Conflict):
    code = "RESERVATION_NOT_ACTIVE"


# -- helpers ----------------------------------------------------------------------------------------


def is_manager(viewer: Viewer, community_id: int) -> bool:
    return viewer.can(Permission.MANAGE_CANTEEN, community_id)


def _text(value: str, *, field: str, limit: int, what: str, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise ValidationFailed(f"Please give the {what}.", field=field)
    if len(cleaned) > limit:
        raise ValidationFailed(f"At most {limit} characters.", field=field)
    return cleaned


def at_minute(day: date, minute: int) -> datetime:
    """`minute` minutes after midnight (China time) of `day` (negative: the day before), in UTC."""
    return (datetime.combine(day, time(0, 0), CHINA_TZ) + timedelta(minutes=minute)).astimezone(UTC)


def cutoff_minute(canteen: Canteen, kind: MealKind) -> int:
    return {
        MealKind.BREAKFAST: canteen.breakfast_cutoff_minute,
        MealKind.LUNCH: canteen.lunch_cutoff_minute,
        MealKind.DINNER: canteen.dinner_cutoff_minute,
    }[kind]


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def meal_title(canteen_name: str, meal: CanteenMeal) -> str:
    return f"{canteen_name} {meal.served_on:%m月%d日}{MEAL_NAMES[MealKind(meal.kind)]}"


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _constraint_of(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if name:
            return str(name)
    return str(orig)


async def _canteen(session: AsyncSession, viewer: Viewer, canteen_id: int) -> Canteen:
    canteen = await session.get(Canteen, canteen_id)
    if canteen is None or canteen.community_id not in viewer.community_ids:
        raise NotFound("No such canteen.", field="canteenId")
    return canteen


def _require_manager(viewer: Viewer, community_id: int) -> None:
    viewer.require(Permission.MANAGE_CANTEEN, community_id)


# -- canteens and price rules ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CanteenDraft:
    community_id: int
    name: str
    location: str = ""
    opening_days: tuple[int, ...] = (0, 1, 2, 3, 4)
    default_capacity: int = 60
    breakfast_cutoff_minute: int = -240
    lunch_cutoff_minute: int = 570
    dinner_cutoff_minute: int = 900


async def create_canteen(uow: UnitOfWork, *, viewer: Viewer, draft: CanteenDraft) -> Canteen:
    """Open a canteen in the community. Raises Forbidden, ValidationFailed, Conflict (the name is taken)."""
    _require_manager(viewer, draft.community_id)
    name = _text(draft.name, field="name", limit=MAX_NAME, what="name")
    days = sorted(set(draft.opening_days))
    if not days or any(not 0 <= d <= 6 for d in days):
        raise ValidationFailed(
            "Opening days run from 0 (Monday) to 6 (Sunday); give at least one.", field="openingDays"
        )
    if not 1 <= draft.default_capacity <= MAX_CAPACITY:
        raise ValidationFailed(f"A meal has 1 to {MAX_CAPACITY} portions.", field="defaultCapacity")
    for field_name, minute in (
        ("breakfastCutOff", draft.breakfast_cutoff_minute),
        ("lunchCutOff", draft.lunch_cutoff_minute),
        ("dinnerCutOff", draft.dinner_cutoff_minute),
    ):
        if not -2 * 24 * 60 <= minute <= 24 * 60:
            raise ValidationFailed("A cut-off is at most two days before the meal's day.", field=field_name)
    taken = await uow.session.scalar(
        select(Canteen.id).where(Canteen.community_id == draft.community_id, Canteen.name == name)
    )
    if taken is not None:
        raise Conflict("The community already has a canteen of that name.", field="name")
    canteen = Canteen(
        community_id=draft.community_id,
        name=name,
        location=_text(draft.location, field="location", limit=200, what="place", required=False),
        opening_days=days,
        default_capacity=draft.default_capacity,
        breakfast_cutoff_minute=draft.breakfast_cutoff_minute,
        lunch_cutoff_minute=draft.lunch_cutoff_minute,
        dinner_cutoff_minute=draft.dinner_cutoff_minute,
        active=True,
    )
    uow.session.add(canteen)
    await uow.session.flush()
    return canteen


@dataclass(frozen=True, slots=True)
class PriceRuleDraft:
    name: str
    price_fen: int
    min_age: int | None = None
    tag: ResidentTag | None = None
    meal_kind: MealKind | None = None


async def set_price_rules(
    uow: UnitOfWork, *, viewer: Viewer, canteen_id: int, rules: Sequence[PriceRuleDraft]
) -> list[CanteenPriceRule]:
    """Replace the canteen's price rules; reservations made keep their price. Raises NotFound, Forbidden, ValidationFailed."""
    viewer.require_authenticated()
    canteen = await _canteen(uow.session, viewer, canteen_id)
    _require_manager(viewer, canteen.community_id)
    if len(rules) > MAX_RULES:
        raise ValidationFailed(f"At most {MAX_RULES} rules.", field="rules")
    names: set[str] = set()
    rows = []
    for rule in rules:
        name = _text(rule.name, field="rules", limit=50, what="rule's name")
        if name in names:
            raise ValidationFailed(f"Two rules are called {name}.", field="rules")
        names.add(name)
        if rule.min_age is None and rule.tag is None:
            raise ValidationFailed(f"Rule {name} needs a minimum age or a tag.", field="rules")
        if rule.min_age is not None and not 0 <= rule.min_age <= 150:
            raise ValidationFailed("A minimum age is 0 to 150.", field="rules")
        if not 0 <= rule.price_fen <= MAX_PRICE_FEN:
            raise ValidationFailed(f"A price is 0 to {MAX_PRICE_FEN} fen.", field="rules")
        rows.append(
            CanteenPriceRule(
                community_id=canteen.community_id,
                canteen_id=canteen.id,
                name=name,
                min_age=rule.min_age,
                tag=ResidentTag(rule.tag).value if rule.tag is not None else None,
                meal_kind=MealKind(rule.meal_kind).value if rule.meal_kind is not None else None,
                price_fen=rule.price_fen,
            )
        )
    for old in (
        await uow.session.scalars(select(CanteenPriceRule).where(CanteenPriceRule.canteen_id == canteen.id))
    ).all():
        await uow.session.delete(old)
    await uow.session.flush()
    uow.session.add_all(rows)
    await uow.session.flush()
    return rows


async def price_rules(session: AsyncSession, *, canteen_ids: Sequence[int]) -> dict[int, list[CanteenPriceRule]]:
    rows = await session.scalars(
        select(CanteenPriceRule)
        .where(CanteenPriceRule.canteen_id.in_(list(canteen_ids)))
        .order_by(CanteenPriceRule.price_fen, CanteenPriceRule.name)
    )
    out: dict[int, list[CanteenPriceRule]] = defaultdict(list)
    for row in rows.all():
        out[row.canteen_id].append(row)
    return out


@dataclass(frozen=True, slots=True)
class Price:
    price_fen: int
    rule_id: int | None
    rule_name: str


def best_price(
    *, base_price_fen: int, kind: MealKind, age: int, tags: set[str], rules: Sequence[CanteenPriceRule]
) -> Price:
    """The most favourable price among the rules the person matches; the base price when none is lower."""
    best = Price(base_price_fen, None, BASE_PRICE_NAME)
    for rule in sorted(rules, key=lambda r: (r.price_fen, r.name)):
        if rule.meal_kind is not None and rule.meal_kind != kind.value:
            continue
        if rule.min_age is not None and age < rule.min_age:
            continue
        if rule.tag is not None and rule.tag not in tags:
            continue
        if rule.price_fen < best.price_fen:
            best = Price(rule.price_fen, rule.id, rule.name)
    return best


async def tags_of(session: AsyncSession, resident_ids: Sequence[int]) -> dict[int, set[str]]:
    rows = await session.execute(
        select(ResidentTagLink.resident_id, ResidentTagLink.tag).where(
            ResidentTagLink.resident_id.in_(list(resident_ids))
        )
    )
    out: dict[int, set[str]] = defaultdict(set)
    for rid, tag in rows.all():
        out[int(rid)].add(str(tag))
    return out


async def quote(session: AsyncSession, *, meal: CanteenMeal, resident: Resident) -> Price:
    """What `resident` pays for `meal` now."""
    rules = (await price_rules(session, canteen_ids=[meal.canteen_id])).get(meal.canteen_id, [])
    tags = (await tags_of(session, [resident.id])).get(resident.id, set())
    return best_price(
        base_price_fen=meal.base_price_fen,
        kind=MealKind(meal.kind),
        age=age_on(resident.birth_date, meal.served_on),
        tags=tags,
        rules=rules,
    )


def housebound(*, age: int, tags: set[str]) -> bool:
    """Who may have meals delivered without staff saying so: the disabled and those 80 and over."""
    return ResidentTag.DISABLED.value in tags or age >= HOUSEBOUND_AGE


# -- menus ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MealDraft:
    kind: MealKind
    dishes: tuple[str, ...]
    base_price_fen: int
    capacity: int | None = None  # None: the canteen's default


async def set_menu(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    canteen_id: int,
    served_on: date,
    meals: Sequence[MealDraft],
    now: datetime | None = None,
) -> list[CanteenMeal]:
    """Publish or change the day's menu, meal by meal; reservations keep their price.

    Raises NotFound, Forbidden, ValidationFailed, CanteenClosedOnDay, AfterCutOff (a meal whose
    reservations have closed cannot change), CapacityBelowReserved.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    canteen = await _canteen(uow.session, viewer, canteen_id)
    _require_manager(viewer, canteen.community_id)
    if served_on.weekday() not in set(canteen.opening_days or []):
        raise CanteenClosedOnDay(f"{canteen.name} does not serve on that day of the week.", field="servedOn")
    if not meals or len(meals) > len(MealKind):
        raise ValidationFailed("Give one to three meals.", field="meals")
    if len({m.kind for m in meals}) != len(meals):
        raise ValidationFailed("Give each meal once.", field="meals")
    out = []
    for draft in meals:
        kind = MealKind(draft.kind)
        dishes = [_text(d, field="meals", limit=MAX_DISH, what="dish") for d in draft.dishes]
        if not dishes or len(dishes) > MAX_DISHES:
            raise ValidationFailed(f"A meal lists 1 to {MAX_DISHES} dishes.", field="meals")
        if not 0 <= draft.base_price_fen <= MAX_PRICE_FEN:
            raise ValidationFailed(f"A price is 0 to {MAX_PRICE_FEN} fen.", field="meals")
        capacity = canteen.default_capacity if draft.capacity is None else draft.capacity
        if not 1 <= capacity <= MAX_CAPACITY:
            raise ValidationFailed(f"A meal has 1 to {MAX_CAPACITY} portions.", field="meals")
        existing = await uow.session.scalar(
            select(CanteenMeal).where(
                CanteenMeal.canteen_id == canteen.id, CanteenMeal.served_on == served_on, CanteenMeal.kind == kind.value
            )
        )
        if existing is None:
            cutoff = at_minute(served_on, cutoff_minute(canteen, kind))
            if cutoff <= now:
                raise AfterCutOff("Reservations for that meal would already be closed.", field="servedOn")
            opens, closes = SERVING[kind]
            meal = CanteenMeal(
                community_id=canteen.community_id, canteen_id=canteen.id, served_on=served_on, kind=kind.value,
                dishes=dishes, base_price_fen=draft.base_price_fen, capacity=capacity, reserved=0,
                serves_from=at_minute(served_on, opens), serves_until=at_minute(served_on, closes), cutoff_at=cutoff,
                created_at=now, updated_at=now,
            )  # fmt: skip
            uow.session.add(meal)
            await uow.session.flush()
            out.append(meal)
            continue
        # Under the meal's row lock, so a reservation in flight cannot slip past the new capacity.
        changed = await uow.session.execute(
            update(CanteenMeal)
            .where(
                CanteenMeal.id == existing.id,
                CanteenMeal.closed_at.is_(None),
                CanteenMeal.cutoff_at > now,
                CanteenMeal.reserved <= capacity,
            )
            .values(dishes=dishes, base_price_fen=draft.base_price_fen, capacity=capacity, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        await uow.session.refresh(existing)
        if _rowcount(changed) == 0:
            if existing.closed_at is not None or existing.cutoff_at <= now:
                raise AfterCutOff("Reservations for that meal have closed; it can no longer change.", field="meals")
            raise CapacityBelowReserved(
                f"{existing.reserved} portions are reserved already; the capacity cannot be lower.", field="meals"
            )
        out.append(existing)
    return out


# -- reservations -----------------------------------------------------------------------------------


def _cared_for(resident_id: int) -> Select[int]:
    """The resident, the people in their household, and those whose guardian they are."""
    household = select(Resident.household_id).where(Resident.id == resident_id).scalar_subquery()
    return select(Resident.id).where(
        or_(Resident.id == resident_id, Resident.household_id == household, Resident.guardian_id == resident_id)
    )


async def _may_act_for(session: AsyncSession, viewer: Viewer, resident: Resident) -> bool:
    if is_manager(viewer, resident.community_id) or viewer.resident_id == resident.id:
        return True
    if viewer.resident_id is None:
        return False
    me = await session.get(Resident, viewer.resident_id)
    if me is None or me.community_id != resident.community_id:
        return False
    return resident.guardian_id == me.id or (me.household_id is not None and resident.household_id == me.household_id)


async def reserve(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    meal_id: int,
    resident_id: int | None = None,
    delivery: bool = False,
    delivery_override: bool = False,
    note: str = "",
    now: datetime | None = None,
) -> CanteenReservation:
    """Reserve a portion of a meal for oneself, one's household or ward (staff: anyone of the community).

    The price is computed now and frozen. Raises Unauthenticated, NotFound, ValidationFailed,
    NotYourHousehold, AfterCutOff, NotEligibleForDelivery, AlreadyReserved, MealFull.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    meal = await uow.session.get(CanteenMeal, meal_id)
    if meal is None or meal.community_id not in viewer.community_ids:
        raise NotFound("No such meal.", field="mealId")
    who = resident_id if resident_id is not None else viewer.resident_id
    if who is None:
        raise ValidationFailed("Say who the meal is for.", field="residentId")
    resident = await uow.session.get(Resident, who)
    if resident is None or resident.community_id != meal.community_id:
        raise NotFound("No such resident in this community.", field="residentId")
    if not await _may_act_for(uow.session, viewer, resident):
        raise NotYourHousehold(
            "You can reserve for yourself, your household and the people in your care.", field="residentId"
        )
    if meal.closed_at is not None or meal.cutoff_at <= now:
        raise AfterCutOff(f"Reservations closed at {meal.cutoff_at.astimezone(CHINA_TZ):%m-%d %H:%M}.", field="mealId")
    manager = is_manager(viewer, meal.community_id)
    if delivery_override and not manager:
        raise ValidationFailed("Only canteen staff can allow a delivery.", field="deliveryOverride")
    tags = (await tags_of(uow.session, [resident.id])).get(resident.id, set())
    age = age_on(resident.birth_date, meal.served_on)
    if delivery:
        if resident.household_id is None:
            raise ValidationFailed("A delivery needs the resident's home address in the registry.", field="delivery")
        if not (housebound(age=age, tags=tags) or delivery_override):
            raise NotEligibleForDelivery(
                "Delivery is for residents who are disabled or 80 and over; please pick the meal up.", field="delivery"
            )
    clean_note = _text(note, field="note", limit=MAX_NOTE, what="note", required=False)
    already = await uow.session.scalar(
        select(CanteenReservation.id).where(
            CanteenReservation.meal_id == meal.id,
            CanteenReservation.resident_id == resident.id,
            CanteenReservation.status == ReservationStatus.ACTIVE.value,
        )
    )
    if already is not None:
        raise AlreadyReserved(f"{resident.name} has a reservation for this meal already.", field="residentId")
    rules = (await price_rules(uow.session, canteen_ids=[meal.canteen_id])).get(meal.canteen_id, [])
    price = best_price(base_price_fen=meal.base_price_fen, kind=MealKind(meal.kind), age=age, tags=tags, rules=rules)
    # Take a portion: the counter's conditional UPDATE holds the meal's row lock until commit.
    taken = await uow.session.scalar(
        update(CanteenMeal)
        .where(
            CanteenMeal.id == meal.id,
            CanteenMeal.closed_at.is_(None),
            CanteenMeal.cutoff_at > now,
            CanteenMeal.reserved < CanteenMeal.capacity,
        )
        .values(reserved=CanteenMeal.reserved + 1)
        .returning(CanteenMeal.reserved)
        .execution_options(synchronize_session=False)
    )
    if taken is None:
        await uow.session.refresh(meal)
        if meal.closed_at is not None or meal.cutoff_at <= now:
            raise AfterCutOff("Reservations for this meal have closed.", field="mealId")
        raise MealFull(f"All {meal.capacity} portions are reserved.", field="mealId")
    row = CanteenReservation(
        community_id=meal.community_id, meal_id=meal.id, resident_id=resident.id,
        reserved_by_account_id=viewer.account_id, status=ReservationStatus.ACTIVE.value, price_fen=price.price_fen,
        price_rule_id=price.rule_id, price_rule_name=price.rule_name, delivery=delivery,
        delivery_override=delivery and delivery_override, note=clean_note, created_at=now,
    )  # fmt: skip
    # From here the meal's row is locked until commit: one INSERT and done (no savepoint, no re-read).
    # A unique violation can only be a concurrent reservation for the same resident; the whole
    # unit of work rolls back with the error, the counter's increment included.
    # (A failed flush expires the session's objects, so the name is read before it.)
    name = resident.name
    uow.session.add(row)
    try:
        await uow.session.flush()
    except IntegrityError as exc:
        if RESERVATION_INDEX in _constraint_of(exc) or "canteen_reservation.meal_id" in _constraint_of(exc):
            raise AlreadyReserved(f"{name} has a reservation for this meal already.", field="residentId") from exc
        raise
    return row


def visible_reservations(viewer: Viewer) -> Select[CanteenReservation]:
    """Reservations that exist for the viewer: their own, their household's and wards', those they made, and staff's."""
    conds: list[Any] = [CanteenReservation.community_id.in_(viewer.communities_where(Permission.MANAGE_CANTEEN))]
    if viewer.account_id is not None:
        conds.append(CanteenReservation.reserved_by_account_id == viewer.account_id)
    if viewer.resident_id is not None:
        conds.append(CanteenReservation.resident_id.in_(_cared_for(viewer.resident_id)))
    return select(CanteenReservation).where(or_(*conds), CanteenReservation.community_id.in_(viewer.community_ids))


async def cancel_reservation(
    uow: UnitOfWork, *, viewer: Viewer, reservation_id: int, now: datetime | None = None
) -> CanteenReservation:
    """Cancel before the cut-off; the portion goes back. Raises NotFound, ReservationNotActive, AfterCutOff."""
    viewer.require_authenticated()
    now = now or utc_now()
    row = await uow.session.scalar(visible_reservations(viewer).where(CanteenReservation.id == reservation_id))
    if row is None:
        raise NotFound("No such reservation.", field="reservationId")
    if row.status != ReservationStatus.ACTIVE.value:
        raise ReservationNotActive("This reservation is cancelled already.", field="reservationId")
    # The meal's lock first (as reserve takes it), then the reservation's.
    back = await uow.session.execute(
        update(CanteenMeal)
        .where(
            CanteenMeal.id == row.meal_id,
            CanteenMeal.closed_at.is_(None),
            CanteenMeal.cutoff_at > now,
            CanteenMeal.reserved > 0,
        )
        .values(reserved=CanteenMeal.reserved - 1)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(back) == 0:
        raise AfterCutOff(
            "Reservations for this meal have closed; it can no longer be cancelled.", field="reservationId"
        )
    done = await uow.session.execute(
        update(CanteenReservation)
        .where(CanteenReservation.id == row.id, CanteenReservation.status == ReservationStatus.ACTIVE.value)
        .values(status=ReservationStatus.CANCELLED.value, cancelled_at=now, cancelled_by_account_id=viewer.account_id)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(done) == 0:
        raise ReservationNotActive("This reservation is cancelled already.", field="reservationId")
    await uow.session.refresh(row)
    return row


# -- cut-off and the count sheet ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleCount:
    rule: str
    price_fen: int
    portions: int


@dataclass(frozen=True, slots=True)
class DeliveryLine:
    reservation_id: int
    resident_id: int
    resident_name: str
    compound: str
    building: str
    unit: int
    room: str
    note: str


@dataclass(frozen=True, slots=True)
class CountSheet:
    meal: CanteenMeal
    final: bool  # made at the cut-off; otherwise the count so far
    portions: int
    pickup: int
    delivery: int
    takings_fen: int
    by_rule: list[RuleCount] = field(default_factory=list)
    deliveries: list[DeliveryLine] = field(default_factory=list)


async def _count(session: AsyncSession, meal: CanteenMeal) -> tuple[int, int, int, int, list[RuleCount]]:
    rows = (
        await session.execute(
            select(
                CanteenReservation.price_rule_name,
                CanteenReservation.price_fen,
                CanteenReservation.delivery,
                func.count(),
            )
            .where(CanteenReservation.meal_id == meal.id, CanteenReservation.status == ReservationStatus.ACTIVE.value)
            .group_by(CanteenReservation.price_rule_name, CanteenReservation.price_fen, CanteenReservation.delivery)
        )
    ).all()
    by_rule: dict[tuple[str, int], int] = defaultdict(int)
    pickup = delivery = takings = 0
    for name, price, is_delivery, n in rows:
        by_rule[(str(name), int(price))] += int(n)
        takings += int(price) * int(n)
        if is_delivery:
            delivery += int(n)
        else:
            pickup += int(n)
    lines = [
        RuleCount(name, price, n) for (name, price), n in sorted(by_rule.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
    return pickup + delivery, pickup, delivery, takings, lines


async def delivery_list(session: AsyncSession, meal_id: int) -> list[DeliveryLine]:
    """The meal's deliveries, ordered for the round: by compound, building, unit and room."""
    rows = (
        await session.execute(
            select(CanteenReservation, Resident.name, Compound.name, Building.name, Household.unit, Household.room)
            .join(Resident, Resident.id == CanteenReservation.resident_id)
            .join(Household, Household.id == Resident.household_id)
            .join(Building, Building.id == Household.building_id)
            .join(Compound, Compound.id == Building.compound_id)
            .where(
                CanteenReservation.meal_id == meal_id,
                CanteenReservation.status == ReservationStatus.ACTIVE.value,
                CanteenReservation.delivery.is_(True),
            )
            .order_by(Compound.name, Building.name, Household.unit, Household.room, CanteenReservation.id)
        )
    ).all()
    return [
        DeliveryLine(r.id, r.resident_id, str(name), str(compound), str(building), int(unit), str(room), r.note)
        for r, name, compound, building, unit, room in rows
    ]


async def count_sheet(session: AsyncSession, *, meal: CanteenMeal) -> CountSheet:
    """The kitchen's sheet: the one made at the cut-off, or the count so far while reservations are open."""
    stored = await session.scalar(select(CanteenCountSheet).where(CanteenCountSheet.meal_id == meal.id))
    deliveries = await delivery_list(session, meal.id)
    if stored is not None:
        return CountSheet(
            meal=meal, final=True, portions=stored.portions, pickup=stored.pickup, delivery=stored.delivery,
            takings_fen=stored.takings_fen,
            by_rule=[RuleCount(str(x["rule"]), int(x["price_fen"]), int(x["portions"])) for x in stored.by_rule],
            deliveries=deliveries,
        )  # fmt: skip
    portions, pickup, delivery, takings, lines = await _count(session, meal)
    return CountSheet(meal, False, portions, pickup, delivery, takings, lines, deliveries)


async def _managers(session: AsyncSession, community_id: int) -> list[int]:
    roles = [r.value for r in Role if Permission.MANAGE_CANTEEN in ROLE_PERMISSIONS[r] and r is not Role.DISTRICT_ADMIN]
    rows = await session.scalars(
        select(RoleGrant.account_id).where(RoleGrant.community_id == community_id, RoleGrant.role.in_(roles))
    )
    return sorted(set(rows.all()))


async def close_meal(uow: UnitOfWork, *, meal_id: int, now: datetime | None = None) -> CountSheet | None:
    """Close a meal's reservations at its cut-off and make its count sheet; None when not due or done already.

    Idempotent: the conditional UPDATE on ``closed_at`` lets one run win. It waits for reservations
    in flight on the meal's row lock, so the sheet counts every reservation that got in. Each
    delivery becomes a ``canteen.delivery_requested`` job, and canteen staff are told.
    """
    now = now or utc_now()
    closed = await uow.session.scalar(
        update(CanteenMeal)
        .where(CanteenMeal.id == meal_id, CanteenMeal.closed_at.is_(None), CanteenMeal.cutoff_at <= now)
        .values(closed_at=now, updated_at=now)
        .returning(CanteenMeal.id)
        .execution_options(synchronize_session=False)
    )
    if closed is None:
        return None
    meal = await uow.session.get(CanteenMeal, meal_id, populate_existing=True)
    assert meal is not None
    portions, pickup, delivery, takings, lines = await _count(uow.session, meal)
    values = {
        "community_id": meal.community_id, "meal_id": meal.id, "portions": portions, "pickup": pickup,
        "delivery": delivery, "takings_fen": takings,
        "by_rule": [{"rule": x.rule, "price_fen": x.price_fen, "portions": x.portions} for x in lines],
        "made_at": now,
    }  # fmt: skip
    insert = postgresql.insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await uow.session.execute(
        insert(CanteenCountSheet).values(values).on_conflict_do_nothing(index_elements=["meal_id"])
    )
    deliveries = await delivery_list(uow.session, meal.id)
    for line in deliveries:
        uow.enqueue(jobs.delivery_requested(line.reservation_id))
    canteen = await uow.session.get(Canteen, meal.canteen_id)
    title = meal_title(canteen.name if canteen else "", meal)
    await notifications.notify(
        uow,
        recipients=await _managers(uow.session, meal.community_id),
        message=notifications.Message(
            community_id=meal.community_id,
            event_key=f"canteen-meal:{meal.id}:count-sheet",
            subject_kind="canteen_meal",
            subject_id=meal.id,
            title=f"备餐统计：{title}",
            body=f"共{portions}份（自取{pickup}份，送餐{delivery}份），应收{yuan(takings)}元。",
        ),
    )
    return CountSheet(meal, True, portions, pickup, delivery, takings, lines, deliveries)


async def due_meals(session: AsyncSession, *, now: datetime | None = None) -> list[int]:
    """Meals whose cut-off has passed and that are still open, oldest cut-off first."""
    now = now or utc_now()
    rows = await session.scalars(
        select(CanteenMeal.id)
        .where(CanteenMeal.closed_at.is_(None), CanteenMeal.cutoff_at <= now)
        .order_by(CanteenMeal.cutoff_at, CanteenMeal.id)
        .limit(SCAN_BATCH)
    )
    return list(rows.all())


async def scan(uow: UnitOfWork, *, now: datetime | None = None) -> list[int]:
    """Enqueue the closing of every meal past its cut-off (each close is idempotent). Returns their ids."""
    due = await due_meals(uow.session, now=now)
    for meal_id in due:
        uow.enqueue(jobs.close_meal(meal_id))
    return due


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """What the elder-care domain needs to plan a meal delivery."""

    community_id: int
    resident_id: int
    starts_at: datetime
    ends_at: datetime
    source_key: str
    note: str


async def delivery_request(session: AsyncSession, *, reservation_id: int) -> DeliveryRequest | None:
    """The visit to ask for, for an active delivery reservation of a closed meal; None otherwise."""
    row = await session.get(CanteenReservation, reservation_id)
    if row is None or row.status != ReservationStatus.ACTIVE.value or not row.delivery:
        return None
    meal = await session.get(CanteenMeal, row.meal_id)
    if meal is None or meal.closed_at is None:
        return None
    canteen = await session.get(Canteen, meal.canteen_id)
    dishes = "、".join(meal.dishes or [])
    note = f"{meal_title(canteen.name if canteen else '', meal)}送餐：{dishes}"
    if row.note:
        note += f"（{row.note}）"
    return DeliveryRequest(
        community_id=row.community_id, resident_id=row.resident_id, starts_at=meal.serves_from,
        ends_at=meal.serves_until, source_key=f"canteen-reservation:{row.id}", note=note,
    )  # fmt: skip


# -- reads ------------------------------------------------------------------------------------------


async def list_canteens(session: AsyncSession, *, viewer: Viewer, community_id: int) -> list[Canteen]:
    if community_id not in viewer.community_ids:
        return []
    rows = await session.scalars(
        select(Canteen).where(Canteen.community_id == community_id, Canteen.active.is_(True)).order_by(Canteen.id)
    )
    return list(rows.all())


async def meals_between(
    session: AsyncSession, *, viewer: Viewer, canteen_id: int, start: date, end: date
) -> list[CanteenMeal]:
    """The canteen's meals from `start` to `end` (inclusive, at most 31 days), by day and meal."""
    canteen = await _canteen(session, viewer, canteen_id)
    if end < start or (end - start).days >= MAX_RANGE_DAYS:
        raise ValidationFailed(f"Ask for 1 to {MAX_RANGE_DAYS} days.", field="to")
    order = {MealKind.BREAKFAST.value: 0, MealKind.LUNCH.value: 1, MealKind.DINNER.value: 2}
    rows = (
        await session.scalars(
            select(CanteenMeal).where(
                CanteenMeal.canteen_id == canteen.id, CanteenMeal.served_on >= start, CanteenMeal.served_on <= end
            )
        )
    ).all()
    return sorted(rows, key=lambda m: (m.served_on, order[m.kind]))


def my_reservations_query(viewer: Viewer, *, include_past: bool, today: date) -> Select[CanteenReservation]:
    """The viewer's own reservations and those they made or that are for the people in their care."""
    conds: list[Any] = []
    if viewer.account_id is not None:
        conds.append(CanteenReservation.reserved_by_account_id == viewer.account_id)
    if viewer.resident_id is not None:
        conds.append(CanteenReservation.resident_id.in_(_cared_for(viewer.resident_id)))
    stmt = select(CanteenReservation).where(
        or_(*conds) if conds else CanteenReservation.id < 0, CanteenReservation.community_id.in_(viewer.community_ids)
    )
    if not include_past:
        stmt = stmt.where(CanteenReservation.meal_id.in_(select(CanteenMeal.id).where(CanteenMeal.served_on >= today)))
    return stmt
