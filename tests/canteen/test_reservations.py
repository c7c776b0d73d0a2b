"""Reservations through GraphQL: prices by eligibility, delivery, and every typed refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api.canteen import service as canteen
from api.canteen.models import Canteen, CanteenMeal, CanteenPriceRule, CanteenReservation, MealKind
from api.core.clock import utc_now
from api.core.viewer import Role
from tests.canteen.conftest import (
    PUBLISHED_RULES,
    Kitchen,
    db_id,
    gid,
    make_kitchen,
    move_cutoff,
    reserve_as,
    resident_viewer,
)
from tests.factories import make_estate, make_login
from tests.graphql.test_statement_count import counting
from tests.venues.conftest import crowd

RESERVE = """
mutation Reserve($input: ReserveMealInput!) {
  reserveMeal(input: $input) {
    __typename
    ... on MealReservationSuccess { reservation { id status priceFen price priceRule delivery residentName } }
    ... on UserError { code field message }
  }
}
"""
CANCEL = """
mutation Cancel($input: CancelMealReservationInput!) {
  cancelMealReservation(input: $input) {
    __typename ... on MealReservationSuccess { reservation { status } } ... on UserError { code }
  }
}
"""
SET_MENU = """
mutation Menu($input: SetMenuInput!) {
  setCanteenMenu(input: $input) {
    __typename ... on SetMenuSuccess { meals { id kind capacity reserved dishes } } ... on UserError { code field }
  }
}
"""
MEALS = """
query Meals($canteenId: ID!, $from: Date) {
  meals(canteenId: $canteenId, from: $from) {
    id kind dishes basePriceFen capacity reserved portionsLeft myPriceFen myPriceRule open
    canteen { name priceRules { name priceFen price minAge tag } }
  }
}
"""
MINE = "{ myMealReservations(first: 10) { totalCount edges { node { id priceFen residentName meal { kind } } } } }"


async def reserve(gql, kitchen: Kitchen, token: str, resident=None, **extra):
    payload = {"mealId": gid("Meal", kitchen.lunch.id), **extra}
    if resident is not None:
        payload["residentId"] = gid("Resident", resident.id)
    return (await gql(RESERVE, {"input": payload}, token=token))["reserveMeal"]


async def test_each_resident_pays_the_most_favourable_published_price(gql, kitchen: Kitchen):
    # given: staff reserve for everyone (the canteen desk takes phone orders)
    token = kitchen.staff.token
    # when
    got = {
        person.name: await reserve(gql, kitchen, token, person)
        for person in (kitchen.adult, kitchen.grandma, kitchen.grandpa, kitchen.disabled, kitchen.poor)
    }
    # then: 80+ and low-income 6 yuan, disabled 7, 60+ 8, others the base 15
    prices = {name: (r["reservation"]["priceFen"], r["reservation"]["priceRule"]) for name, r in got.items()}
    assert prices == {
        "李建国": (1500, "标准价"),
        "王奶奶": (600, "80岁以上"),
        "赵爷爷": (800, "60岁以上"),
        "孙师傅": (700, "残疾"),
        "钱阿姨": (600, "低保"),
    }
    assert got["王奶奶"]["reservation"]["price"] == "6.00"


def test_the_cheapest_matching_rule_wins_and_never_more_than_the_base():
    rules = [
        CanteenPriceRule(
            id=i + 1, name=d.name, price_fen=d.price_fen, min_age=d.min_age, tag=d.tag.value if d.tag else None,
            meal_kind=None,
        )
        for i, d in enumerate(PUBLISHED_RULES)
    ]  # fmt: skip
    best = canteen.best_price
    assert best(base_price_fen=1500, kind=MealKind.LUNCH, age=81, tags={"low_income"}, rules=rules).price_fen == 600
    assert best(base_price_fen=1500, kind=MealKind.LUNCH, age=79, tags=set(), rules=rules).rule_name == "60岁以上"
    assert best(base_price_fen=1500, kind=MealKind.LUNCH, age=59, tags=set(), rules=rules).rule_name == "标准价"
    # a breakfast cheaper than the elders' price stays at its base price
    assert best(base_price_fen=500, kind=MealKind.BREAKFAST, age=90, tags=set(), rules=rules).price_fen == 500


async def test_the_price_is_frozen_on_the_reservation(services, gql, kitchen: Kitchen):
    # given: grandpa (65) reserved at 8 yuan
    first = await reserve(gql, kitchen, kitchen.grandpa_login.token)
    assert first["reservation"]["priceFen"] == 800
    # when: the rules change afterwards
    async with services.db.unit_of_work() as uow:
        await canteen.set_price_rules(
            uow, viewer=kitchen.staff_viewer, canteen_id=kitchen.canteen.id,
            rules=[canteen.PriceRuleDraft(name="60岁以上", price_fen=500, min_age=60)],
        )  # fmt: skip
    # then: his reservation keeps its price; his quote shows the new one
    async with services.db.read_session() as session:
        row = await session.get(CanteenReservation, db_id(first["reservation"]["id"]))
        assert row is not None
        assert (row.price_fen, row.price_rule_name) == (800, "60岁以上")
    meals = (await gql(MEALS, {"canteenId": gid("Canteen", kitchen.canteen.id), "from": kitchen.day.isoformat()},
                       token=kitchen.grandpa_login.token))["meals"]  # fmt: skip
    assert (meals[0]["myPriceFen"], meals[0]["myPriceRule"]) == (500, "60岁以上")


async def test_residents_see_the_menu_with_their_own_price(gql, kitchen: Kitchen):
    # when
    meals = (await gql(MEALS, {"canteenId": gid("Canteen", kitchen.canteen.id), "from": kitchen.day.isoformat()},
                       token=kitchen.adult_login.token))["meals"]  # fmt: skip
    # then
    [lunch] = meals
    assert lunch["kind"] == "LUNCH"
    assert lunch["dishes"] == ["红烧肉", "清炒时蔬", "米饭"]
    assert (lunch["basePriceFen"], lunch["myPriceFen"], lunch["myPriceRule"], lunch["open"]) == (
        1500,
        1500,
        "标准价",
        True,
    )
    assert [r["priceFen"] for r in lunch["canteen"]["priceRules"]] == [600, 600, 600, 700, 800]


async def test_a_resident_reserves_for_their_household_but_not_for_a_neighbour(gql, kitchen: Kitchen):
    # when: the adult reserves for grandma (same household), and for the neighbour
    for_grandma = await reserve(gql, kitchen, kitchen.adult_login.token, kitchen.grandma)
    for_neighbour = await reserve(gql, kitchen, kitchen.adult_login.token, kitchen.neighbour)
    # then
    assert for_grandma["__typename"] == "MealReservationSuccess"
    assert for_grandma["reservation"]["residentName"] == "王奶奶"
    assert for_neighbour == {
        "__typename": "NotYourHouseholdError", "code": "NOT_YOUR_HOUSEHOLD", "field": "residentId",
        "message": for_neighbour["message"],
    }  # fmt: skip
    mine = (await gql(MINE, token=kitchen.adult_login.token))["myMealReservations"]
    assert mine["totalCount"] == 1
    assert mine["edges"][0]["node"]["residentName"] == "王奶奶"


async def test_reserving_twice_is_a_typed_error(gql, kitchen: Kitchen):
    await reserve(gql, kitchen, kitchen.grandpa_login.token)
    again = await reserve(gql, kitchen, kitchen.grandpa_login.token)
    assert again["__typename"] == "AlreadyReservedError"
    assert again["code"] == "ALREADY_RESERVED"


async def test_a_full_meal_is_a_typed_error_and_nothing_is_half_written(services, gql):
    # given: a lunch of 2 portions
    kitchen = await make_kitchen(services, capacity=2)
    await reserve(gql, kitchen, kitchen.staff.token, kitchen.adult)
    await reserve(gql, kitchen, kitchen.staff.token, kitchen.grandma)
    # when
    full = await reserve(gql, kitchen, kitchen.grandpa_login.token)
    # then
    assert full["__typename"] == "MealFullError"
    assert full["code"] == "MEAL_FULL"
    async with services.db.read_session() as session:
        meal = await session.get(CanteenMeal, kitchen.lunch.id)
        assert meal is not None
        assert meal.reserved == 2
        assert await session.scalar(select(func.count()).select_from(CanteenReservation)) == 2


async def test_reserving_or_cancelling_after_the_cut_off_is_a_typed_error(services, gql, kitchen: Kitchen):
    # given: grandpa reserved; then the cut-off passes
    made = await reserve(gql, kitchen, kitchen.grandpa_login.token)
    await move_cutoff(services, kitchen.lunch.id)
    # when
    late = await reserve(gql, kitchen, kitchen.adult_login.token)
    late_cancel = (
        await gql(CANCEL, {"input": {"reservationId": made["reservation"]["id"]}}, token=kitchen.grandpa_login.token)
    )["cancelMealReservation"]
    # then
    assert (late["__typename"], late["code"], late["field"]) == ("AfterCutOffError", "AFTER_CUT_OFF", "mealId")
    assert late_cancel == {"__typename": "AfterCutOffError", "code": "AFTER_CUT_OFF"}
    async with services.db.read_session() as session:
        meal = await session.get(CanteenMeal, kitchen.lunch.id)
        assert meal is not None
        assert meal.reserved == 1


async def test_cancelling_gives_the_portion_back_once(services, gql, kitchen: Kitchen):
    made = await reserve(gql, kitchen, kitchen.grandpa_login.token)
    variables = {"input": {"reservationId": made["reservation"]["id"]}}
    first = (await gql(CANCEL, variables, token=kitchen.grandpa_login.token))["cancelMealReservation"]
    second = (await gql(CANCEL, variables, token=kitchen.grandpa_login.token))["cancelMealReservation"]
    stranger = (await gql(CANCEL, variables, token=kitchen.neighbour_login.token))["cancelMealReservation"]
    assert first == {"__typename": "MealReservationSuccess", "reservation": {"status": "CANCELLED"}}
    assert second == {"__typename": "ReservationNotActiveError", "code": "RESERVATION_NOT_ACTIVE"}
    assert stranger["__typename"] == "NotFoundError"
    async with services.db.read_session() as session:
        meal = await session.get(CanteenMeal, kitchen.lunch.id)
        assert meal is not None
        assert meal.reserved == 0
    # and grandpa can reserve again
    assert (await reserve(gql, kitchen, kitchen.grandpa_login.token))["__typename"] == "MealReservationSuccess"


async def test_delivery_is_for_the_housebound_unless_staff_allow_it(gql, kitchen: Kitchen):
    # grandma is 85: delivered; grandpa is 65 and walks: refused, unless staff allow it
    grandma = await reserve(gql, kitchen, kitchen.adult_login.token, kitchen.grandma, delivery=True)
    grandpa = await reserve(gql, kitchen, kitchen.grandpa_login.token, delivery=True)
    self_override = await reserve(gql, kitchen, kitchen.grandpa_login.token, delivery=True, deliveryOverride=True)
    staff = await reserve(gql, kitchen, kitchen.staff.token, kitchen.grandpa, delivery=True, deliveryOverride=True)
    disabled = await reserve(gql, kitchen, kitchen.staff.token, kitchen.disabled, delivery=True)
    assert grandma["reservation"]["delivery"] is True
    assert (grandpa["__typename"], grandpa["code"]) == ("NotEligibleForDeliveryError", "NOT_ELIGIBLE_FOR_DELIVERY")
    assert (self_override["__typename"], self_override["field"]) == ("ValidationError", "deliveryOverride")
    assert staff["reservation"]["delivery"] is True
    assert disabled["reservation"]["delivery"] is True


async def test_another_communitys_meal_does_not_exist_for_the_viewer(services, gql, kitchen: Kitchen):
    other = await make_estate(services, households=1, members=1)
    outsider = await make_login(services, role=Role.RESIDENT, community=other.community, resident=other.residents[0])
    refused = await reserve(gql, kitchen, outsider.token)
    assert refused["__typename"] == "NotFoundError"
    assert refused["field"] == "mealId"
    node = await gql("query N($id: ID!) { node(id: $id) { id } }", {"id": gid("Meal", kitchen.lunch.id)},
                     token=outsider.token)  # fmt: skip
    assert node == {"node": None}
    meals = await gql(MEALS, {"canteenId": gid("Canteen", kitchen.canteen.id)}, token=outsider.token)
    assert meals == {"meals": []}


async def test_menus_refuse_closed_days_lower_capacity_and_closed_meals(services, gql, kitchen: Kitchen):
    staff = kitchen.staff.token
    canteen_id = gid("Canteen", kitchen.canteen.id)
    lunch = {"kind": "LUNCH", "dishes": ["饺子"], "basePriceFen": 1200}
    # a capacity below what is reserved
    await reserve(gql, kitchen, staff, kitchen.adult)
    await reserve(gql, kitchen, staff, kitchen.grandma)
    low = (await gql(SET_MENU, {"input": {"canteenId": canteen_id, "servedOn": kitchen.day.isoformat(),
                                          "meals": [{**lunch, "capacity": 1}]}}, token=staff))["setCanteenMenu"]  # fmt: skip
    assert low == {"__typename": "CapacityBelowReservedError", "code": "CAPACITY_BELOW_RESERVED", "field": "meals"}
    ok = (await gql(SET_MENU, {"input": {"canteenId": canteen_id, "servedOn": kitchen.day.isoformat(),
                                         "meals": [{**lunch, "capacity": 2}]}}, token=staff))["setCanteenMenu"]  # fmt: skip
    assert ok["meals"][0] | {"id": None} == {
        "id": None,
        "kind": "LUNCH",
        "capacity": 2,
        "reserved": 2,
        "dishes": ["饺子"],
    }
    # a day the canteen does not open
    async with services.db.unit_of_work() as uow:
        row = await uow.session.get(Canteen, kitchen.canteen.id)
        assert row is not None
        row.opening_days = [d for d in range(7) if d != kitchen.day.weekday()]
    closed_day = (await gql(SET_MENU, {"input": {"canteenId": canteen_id, "servedOn": kitchen.day.isoformat(),
                                                 "meals": [lunch]}}, token=staff))["setCanteenMenu"]  # fmt: skip
    assert closed_day["__typename"] == "CanteenClosedError"
    # a meal past its cut-off
    async with services.db.unit_of_work() as uow:
        row = await uow.session.get(Canteen, kitchen.canteen.id)
        assert row is not None
        row.opening_days = list(range(7))
    await move_cutoff(services, kitchen.lunch.id)
    late = (await gql(SET_MENU, {"input": {"canteenId": canteen_id, "servedOn": kitchen.day.isoformat(),
                                           "meals": [lunch]}}, token=staff))["setCanteenMenu"]  # fmt: skip
    assert late["__typename"] == "AfterCutOffError"


async def test_only_canteen_staff_change_menus_and_see_count_sheets(gql_raw, kitchen: Kitchen):
    menu = await gql_raw(
        SET_MENU,
        {"input": {"canteenId": gid("Canteen", kitchen.canteen.id), "servedOn": kitchen.day.isoformat(),
                   "meals": [{"kind": "DINNER", "dishes": ["面条"], "basePriceFen": 1000}]}},
        token=kitchen.adult_login.token,
    )  # fmt: skip
    assert menu["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    sheet = await gql_raw(
        "query S($id: ID!) { mealCountSheet(mealId: $id) { portions } }",
        {"id": gid("Meal", kitchen.lunch.id)},
        token=kitchen.adult_login.token,
    )
    assert sheet["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    day_sheets = await gql_raw(
        "query D($id: ID!, $day: Date!) { canteenCountSheets(canteenId: $id, day: $day) { portions } }",
        {"id": gid("Canteen", kitchen.canteen.id), "day": (kitchen.day + timedelta(days=3)).isoformat()},
        token=kitchen.adult_login.token,
    )
    assert day_sheets["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_the_service_refuses_after_the_cut_off_by_the_clock_alone(services, kitchen: Kitchen):
    # the scan has not closed the meal yet, but the time has passed
    viewer = resident_viewer(kitchen.grandpa, kitchen.grandpa_login)
    late = kitchen.lunch.cutoff_at + timedelta(seconds=1)
    with pytest.raises(canteen.AfterCutOff):
        await reserve_as(services, viewer, kitchen.lunch.id, now=late)
    assert kitchen.lunch.cutoff_at > utc_now()


STAFF_LIST = """
query List($mealId: ID!) {
  mealReservations(mealId: $mealId, first: 50) {
    totalCount
    edges { node { residentName price priceRule meal { kind myPriceFen canteen { name priceRules { name } } } } }
  }
}
"""


async def test_a_page_of_reservations_costs_the_same_statements_for_5_or_40(services, gql, kitchen: Kitchen):
    people = await crowd(services, kitchen.estate.community, 40, age=70)
    variables = {"mealId": gid("Meal", kitchen.lunch.id)}
    counts = []
    for start, upto in ((0, 5), (5, 40)):
        for p in people[start:upto]:
            await reserve_as(services, kitchen.staff_viewer, kitchen.lunch.id, resident_id=p.resident_id)
        with counting(services) as statements:
            data = await gql(STAFF_LIST, variables, token=kitchen.staff.token)
        assert data["mealReservations"]["totalCount"] == upto
        counts.append(len(statements))
    assert counts[0] == counts[1]
