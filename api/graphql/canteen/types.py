"""Canteen types: canteens, price rules, meals, reservations and the kitchen's count sheet (Relay nodes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Self

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.dataloader import DataLoader

from api.canteen import models
from api.canteen import service as canteen_service
from api.core.clock import age_on, utc_now
from api.graphql.context import Info
from api.graphql.loaders import request_loader as _loader
from api.graphql.registry.types import ResidentTagEnum  # noqa: F401  (declares ResidentTag in the schema)
from api.registry.models import Resident as ResidentModel
from api.registry.models import ResidentTag

MealKindEnum = strawberry.enum(models.MealKind, name="MealKind", description="breakfast, lunch or dinner.")
ReservationStatusEnum = strawberry.enum(
    models.ReservationStatus, name="MealReservationStatus", description="active or cancelled."
)
CURRENCY = "CNY"


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1


def _clock(minute: int) -> str:
    sign = "-" if minute < 0 else ""
    minute = abs(minute)
    return f"{sign}{minute // 60:02d}:{minute % 60:02d}"


def canteens_loader(info: Info) -> DataLoader[int, models.Canteen | None]:
    async def load(ids: list[int]) -> list[models.Canteen | None]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.Canteen).where(
                        models.Canteen.id.in_(ids), models.Canteen.community_id.in_(info.context.viewer.community_ids)
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "canteen.canteen", load)


def meals_loader(info: Info) -> DataLoader[int, models.CanteenMeal | None]:
    async def load(ids: list[int]) -> list[models.CanteenMeal | None]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.CanteenMeal).where(
                        models.CanteenMeal.id.in_(ids),
                        models.CanteenMeal.community_id.in_(info.context.viewer.community_ids),
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "canteen.meal", load)


def _rules_loader(info: Info) -> DataLoader[int, list[models.CanteenPriceRule]]:
    async def load(ids: list[int]) -> list[list[models.CanteenPriceRule]]:
        async with info.context.db.read_session() as session:
            rules = await canteen_service.price_rules(session, canteen_ids=ids)
        return [rules.get(i, []) for i in ids]

    return _loader(info, "canteen.rules", load)


def _my_prices_loader(info: Info) -> DataLoader[int, canteen_service.Price | None]:
    """What the viewer (as a resident) pays for each meal; None without a resident in the meal's community."""

    async def load(ids: list[int]) -> list[canteen_service.Price | None]:
        resident_id = info.context.viewer.resident_id
        if resident_id is None:
            return [None] * len(ids)
        meals = await meals_loader(info).load_many(ids)
        async with info.context.db.read_session() as session:
            me = await session.get(ResidentModel, resident_id)
            if me is None:
                return [None] * len(ids)
            rules = await canteen_service.price_rules(session, canteen_ids=[m.canteen_id for m in meals if m])
            tags = (await canteen_service.tags_of(session, [me.id])).get(me.id, set())
        out: list[canteen_service.Price | None] = []
        for meal in meals:
            if meal is None or meal.community_id != me.community_id:
                out.append(None)
                continue
            out.append(
                canteen_service.best_price(
                    base_price_fen=meal.base_price_fen,
                    kind=models.MealKind(meal.kind),
                    age=age_on(me.birth_date, meal.served_on),
                    tags=tags,
                    rules=rules.get(meal.canteen_id, []),
                )
            )
        return out

    return _loader(info, "canteen.my_price", load)


def _names_loader(info: Info) -> DataLoader[int, str]:
    """Residents' names (only ever asked for through a reservation the viewer may see)."""

    async def load(ids: list[int]) -> list[str]:
        async with info.context.db.read_session() as session:
            result = await session.execute(
                select(ResidentModel.id, ResidentModel.name).where(ResidentModel.id.in_(ids))
            )
            rows: dict[int, str] = {int(row[0]): str(row[1]) for row in result.all()}
        return [rows.get(i, "") for i in ids]

    return _loader(info, "canteen.names", load)


def _price(fen: int) -> str:
    return canteen_service.yuan(fen)


@strawberry.type(description="A price for the eligible: the cheapest rule a resident matches wins.")
class PriceRule:
    name: str = strawberry.field(description="Name shown on the receipt and count sheet, e.g. 80岁以上.")
    min_age: int | None = strawberry.field(description="Matches residents at least this old on the meal's day.")
    tag: ResidentTag | None = strawberry.field(description="Matches residents with this registry tag.")
    meal_kind: models.MealKind | None = strawberry.field(description="Only for this meal; null for every meal.")
    price_fen: int = strawberry.field(description="The price in fen.")

    @classmethod
    def from_model(cls, m: models.CanteenPriceRule) -> Self:
        return cls(
            name=m.name,
            min_age=m.min_age,
            tag=ResidentTag(m.tag) if m.tag else None,
            meal_kind=models.MealKind(m.meal_kind) if m.meal_kind else None,
            price_fen=m.price_fen,
        )

    @strawberry.field(description="The price in yuan, e.g. 6.00.")
    def price(self) -> str:
        return _price(self.price_fen)


@strawberry.type(description="A community canteen (幸福食堂) with its opening days and reservation cut-offs.")
class Canteen(relay.Node):
    db_id: relay.NodeID[int]
    name: str = strawberry.field(description="Name, e.g. 幸福食堂.")
    location: str = strawberry.field(description="Where it is.")
    opening_days: list[int] = strawberry.field(description="Weekdays it serves on: 0 Monday … 6 Sunday.")
    default_capacity: int = strawberry.field(description="Portions per meal unless the menu says otherwise.")
    breakfast_cut_off: str = strawberry.field(
        description="Reservation cut-off for breakfast, HH:MM China time relative to the meal's day (-04:00 is 20:00 the day before)."
    )
    lunch_cut_off: str = strawberry.field(description="Reservation cut-off for lunch, HH:MM on the meal's day.")
    dinner_cut_off: str = strawberry.field(description="Reservation cut-off for dinner, HH:MM on the meal's day.")

    @classmethod
    def from_model(cls, m: models.Canteen) -> Self:
        return cls(
            db_id=m.id, name=m.name, location=m.location, opening_days=list(m.opening_days or []),
            default_capacity=m.default_capacity, breakfast_cut_off=_clock(m.breakfast_cutoff_minute),
            lunch_cut_off=_clock(m.lunch_cutoff_minute), dinner_cut_off=_clock(m.dinner_cutoff_minute),
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await canteens_loader(info).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="Its price rules, cheapest first.")
    async def price_rules(self, info: Info) -> list[PriceRule]:
        return [PriceRule.from_model(r) for r in await _rules_loader(info).load(self.db_id)]


@strawberry.type(description="One meal of a canteen on one day: the menu, the base price and the portions.")
class Meal(relay.Node):
    db_id: relay.NodeID[int]
    served_on: dt.date = strawberry.field(description="The day it is served.")
    kind: models.MealKind = strawberry.field(description="Breakfast, lunch or dinner.")
    dishes: list[str] = strawberry.field(description="The dishes, e.g. 红烧肉、清炒时蔬、米饭.")
    base_price_fen: int = strawberry.field(description="The price in fen for residents no rule covers.")
    currency: str = strawberry.field(description="Currency of the prices: CNY.")
    capacity: int = strawberry.field(description="Portions in all.")
    reserved: int = strawberry.field(description="Portions reserved.")
    serves_from: dt.datetime = strawberry.field(description="Serving (and delivery) starts.")
    serves_until: dt.datetime = strawberry.field(description="Serving (and delivery) ends.")
    cut_off_at: dt.datetime = strawberry.field(description="Reservations and cancellations close at this time.")
    closed_at: dt.datetime | None = strawberry.field(description="When reservations were closed and counted.")
    row: strawberry.Private[models.CanteenMeal]

    @classmethod
    def from_model(cls, m: models.CanteenMeal) -> Self:
        return cls(
            db_id=m.id, served_on=m.served_on, kind=models.MealKind(m.kind), dishes=list(m.dishes or []),
            base_price_fen=m.base_price_fen, currency=CURRENCY, capacity=m.capacity, reserved=m.reserved,
            serves_from=m.serves_from, serves_until=m.serves_until, cut_off_at=m.cutoff_at, closed_at=m.closed_at,
            row=m,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await meals_loader(info).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="Portions still free.")
    def portions_left(self) -> int:
        return self.capacity - self.reserved

    @strawberry.field(description="The base price in yuan, e.g. 15.00.")
    def base_price(self) -> str:
        return _price(self.base_price_fen)

    @strawberry.field(description="True while reservations are open (before the cut-off).")
    def open(self) -> bool:
        return self.closed_at is None and self.cut_off_at > utc_now()

    @strawberry.field(description="What you would pay (your best matching rule); null if you are not a resident here.")
    async def my_price_fen(self, info: Info) -> int | None:
        price = await _my_prices_loader(info).load(self.db_id)
        return price.price_fen if price else None

    @strawberry.field(description="The rule that gives you your price (标准价 when none does); null if not a resident.")
    async def my_price_rule(self, info: Info) -> str | None:
        price = await _my_prices_loader(info).load(self.db_id)
        return price.rule_name if price else None

    @strawberry.field(description="The canteen.")
    async def canteen(self, info: Info) -> Canteen | None:
        row = await canteens_loader(info).load(self.row.canteen_id)
        return Canteen.from_model(row) if row else None


@strawberry.type(description="A resident's portion of a meal, with the price frozen when it was made.")
class MealReservation(relay.Node):
    db_id: relay.NodeID[int]
    status: models.ReservationStatus = strawberry.field(description="active or cancelled.")
    price_fen: int = strawberry.field(description="The price in fen, fixed when reserved.")
    price_rule: str = strawberry.field(description="The rule that gave the price (标准价 for the base price).")
    delivery: bool = strawberry.field(description="Delivered to the resident's home instead of picked up.")
    note: str = strawberry.field(description="A note for the kitchen, e.g. 少盐.")
    created_at: dt.datetime = strawberry.field(description="When it was made.")
    cancelled_at: dt.datetime | None = strawberry.field(description="When it was cancelled.")
    row: strawberry.Private[models.CanteenReservation]

    @classmethod
    def from_model(cls, m: models.CanteenReservation) -> Self:
        return cls(
            db_id=m.id, status=models.ReservationStatus(m.status), price_fen=m.price_fen,
            price_rule=m.price_rule_name, delivery=m.delivery, note=m.note, created_at=m.created_at,
            cancelled_at=m.cancelled_at, row=m,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    canteen_service.visible_reservations(info.context.viewer).where(
                        models.CanteenReservation.id.in_(ids)
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="The price in yuan, e.g. 6.00.")
    def price(self) -> str:
        return _price(self.price_fen)

    @strawberry.field(description="Who eats: the resident's global id.")
    def resident_id(self) -> relay.GlobalID:
        return relay.GlobalID("Resident", str(self.row.resident_id))

    @strawberry.field(description="Who eats: their name.")
    async def resident_name(self, info: Info) -> str:
        return await _names_loader(info).load(self.row.resident_id)

    @strawberry.field(description="The meal.")
    async def meal(self, info: Info) -> Meal | None:
        row = await meals_loader(info).load(self.row.meal_id)
        return Meal.from_model(row) if row else None


@strawberry.type(description="Portions at one price, under one rule.")
class CountSheetLine:
    rule: str = strawberry.field(description="The price rule (标准价 for the base price).")
    price_fen: int = strawberry.field(description="The price in fen.")
    portions: int = strawberry.field(description="Portions at this price.")


@strawberry.type(description="One delivery on the round (names are shown to canteen staff only).")
class DeliveryStop:
    reservation_id: relay.GlobalID = strawberry.field(description="The reservation (a MealReservation id).")
    resident_name: str = strawberry.field(description="Who the meal is for.")
    compound: str = strawberry.field(description="Compound (小区).")
    building: str = strawberry.field(description="Building (楼栋).")
    unit: int = strawberry.field(description="Unit (单元).")
    room: str = strawberry.field(description="Room.")
    note: str = strawberry.field(description="The resident's note for the kitchen.")


@strawberry.type(description="The kitchen's count for a meal: final once reservations close at the cut-off.")
class CountSheet:
    meal: Meal = strawberry.field(description="The meal.")
    final: bool = strawberry.field(description="True once made at the cut-off; before that, the count so far.")
    portions: int = strawberry.field(description="Portions to cook.")
    pickup: int = strawberry.field(description="Portions picked up at the canteen.")
    delivery: int = strawberry.field(description="Portions delivered.")
    takings_fen: int = strawberry.field(description="What the reservations pay in all, in fen.")
    by_rule: list[CountSheetLine] = strawberry.field(description="Portions per price rule, cheapest first.")
    deliveries: list[DeliveryStop] = strawberry.field(
        description="The delivery round, by compound, building, unit, room."
    )

    @classmethod
    def from_sheet(cls, sheet: canteen_service.CountSheet) -> Self:
        return cls(
            meal=Meal.from_model(sheet.meal), final=sheet.final, portions=sheet.portions, pickup=sheet.pickup,
            delivery=sheet.delivery, takings_fen=sheet.takings_fen,
            by_rule=[CountSheetLine(rule=x.rule, price_fen=x.price_fen, portions=x.portions) for x in sheet.by_rule],
            deliveries=[
                DeliveryStop(
                    reservation_id=relay.GlobalID("MealReservation", str(d.reservation_id)),
                    resident_name=d.resident_name, compound=d.compound, building=d.building, unit=d.unit, room=d.room,
                    note=d.note,
                )
                for d in sheet.deliveries
            ],
        )  # fmt: skip
