"""The cut-off through the worker's handlers: the scan closes due meals once, the count sheet, deliveries to elder care."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from api.canteen import service as canteen
from api.canteen.models import CanteenCountSheet, CanteenMeal, MealKind
from api.core.clock import utc_now
from api.eldercare.models import Visit
from api.notifications.models import Notification
from tests.canteen.conftest import Kitchen, gid, move_cutoff, reserve_as, resident_viewer
from tests.jobs import JobRunner
from worker.actors import canteen as canteen_actors

SHEET = """
query Sheet($id: ID!) {
  mealCountSheet(mealId: $id) {
    final portions pickup delivery takingsFen
    byRule { rule priceFen portions }
    deliveries { residentName compound building unit room note }
    meal { closedAt }
  }
}
"""
DAY_SHEETS = """
query Day($canteenId: ID!, $day: Date!) { canteenCountSheets(canteenId: $canteenId, day: $day) { final portions } }
"""
# Visits go on to dispatch; these tests stop at the visit.
SKIP = frozenset({"dispatch.assign", "dispatch.expire_offer", "visit.assignment_changed"})


async def lunch_for_everyone(services, kitchen: Kitchen) -> None:
    staff = kitchen.staff_viewer
    await reserve_as(services, staff, kitchen.lunch.id, resident_id=kitchen.adult.id)
    await reserve_as(services, staff, kitchen.lunch.id, resident_id=kitchen.grandma.id, delivery=True, note="软一点")
    await reserve_as(services, staff, kitchen.lunch.id, resident_id=kitchen.grandpa.id)
    await reserve_as(services, staff, kitchen.lunch.id, resident_id=kitchen.disabled.id, delivery=True)
    await reserve_as(services, staff, kitchen.lunch.id, resident_id=kitchen.poor.id)


async def test_the_scan_closes_due_meals_once_and_makes_the_count_sheet(
    services, gql, jobs, runner: JobRunner, kitchen
):
    # given: five reservations, two of them delivered, and a dinner whose cut-off is still ahead
    await lunch_for_everyone(services, kitchen)
    async with services.db.unit_of_work() as uow:
        [dinner] = await canteen.set_menu(
            uow, viewer=kitchen.staff_viewer, canteen_id=kitchen.canteen.id, served_on=kitchen.day,
            meals=[canteen.MealDraft(kind=MealKind.DINNER, dishes=("面条",), base_price_fen=1000)],
        )  # fmt: skip
    before = await gql(SHEET, {"id": gid("Meal", kitchen.lunch.id)}, token=kitchen.staff.token)
    assert (before["mealCountSheet"]["final"], before["mealCountSheet"]["portions"]) == (False, 5)
    # when: lunch's cut-off passes and the periodic scan runs (twice, as after a missed tick)
    await move_cutoff(services, kitchen.lunch.id)
    for key in ("1", "2"):
        await canteen_actors.handle_scan(key)
    ran = await runner.drain(skip=SKIP | {"canteen.delivery_requested"})
    # then: lunch closed once; dinner is still open
    assert ran.count("canteen.close_meal") == 2
    async with services.db.read_session() as session:
        lunch = await session.get(CanteenMeal, kitchen.lunch.id)
        still_open = await session.get(CanteenMeal, dinner.id)
        sheets = await session.scalar(select(func.count()).select_from(CanteenCountSheet))
    assert lunch is not None
    assert lunch.closed_at is not None
    assert still_open is not None
    assert still_open.closed_at is None
    assert sheets == 1
    # and the kitchen's sheet: by price rule, pick-up vs delivery, the round by building and unit
    sheet = (await gql(SHEET, {"id": gid("Meal", kitchen.lunch.id)}, token=kitchen.staff.token))["mealCountSheet"]
    assert (sheet["final"], sheet["portions"], sheet["pickup"], sheet["delivery"]) == (True, 5, 3, 2)
    assert sheet["takingsFen"] == 600 + 600 + 700 + 800 + 1500
    assert sheet["byRule"] == [
        {"rule": "80岁以上", "priceFen": 600, "portions": 1},
        {"rule": "低保", "priceFen": 600, "portions": 1},
        {"rule": "残疾", "priceFen": 700, "portions": 1},
        {"rule": "60岁以上", "priceFen": 800, "portions": 1},
        {"rule": "标准价", "priceFen": 1500, "portions": 1},
    ]
    building = kitchen.estate.buildings[0].name  # both live there: grandma in unit 1, 孙师傅 in unit 3
    assert [(d["residentName"], d["building"], d["unit"], d["note"]) for d in sheet["deliveries"]] == [
        ("王奶奶", building, 1, "软一点"),
        ("孙师傅", building, 3, ""),
    ]
    day = await gql(DAY_SHEETS, {"canteenId": gid("Canteen", kitchen.canteen.id), "day": kitchen.day.isoformat()},
                    token=kitchen.staff.token)  # fmt: skip
    assert day["canteenCountSheets"] == [{"final": True, "portions": 5}, {"final": False, "portions": 0}]
    # and each delivery became one job, and staff were told once
    delivery_jobs = [
        o.job.kwargs["reservation_id"] for o in jobs.sent if o.job.actor_name == "canteen.delivery_requested"
    ]
    assert len(delivery_jobs) == 2
    async with services.db.read_session() as session:
        told = (
            await session.scalars(select(Notification.title).where(Notification.subject_kind == "canteen_meal"))
        ).all()
    assert told == [f"备餐统计：幸福食堂 {kitchen.day:%m月%d日}午餐"]


async def test_after_closing_nothing_changes_the_meal(services, runner: JobRunner, kitchen):
    await lunch_for_everyone(services, kitchen)
    await move_cutoff(services, kitchen.lunch.id)
    await canteen_actors.handle_close_meal(kitchen.lunch.id)
    # a late reservation, a late close and a second close change nothing
    late = utc_now() + timedelta(days=3)
    async with services.db.unit_of_work() as uow:
        assert await canteen.close_meal(uow, meal_id=kitchen.lunch.id, now=late) is None
    async with services.db.read_session() as session:
        sheet = await session.scalar(select(CanteenCountSheet))
    assert sheet is not None
    assert sheet.portions == 5


async def test_a_meal_before_its_cut_off_is_not_closed(services, kitchen):
    async with services.db.unit_of_work(services.jobs) as uow:
        assert await canteen.close_meal(uow, meal_id=kitchen.lunch.id) is None
        assert await canteen.scan(uow) == []


async def test_deliveries_become_elder_care_visits_once(services, jobs, runner: JobRunner, kitchen):
    # given: grandma (85) and the disabled neighbour have lunch delivered; grandpa picks his up
    await lunch_for_everyone(services, kitchen)
    await move_cutoff(services, kitchen.lunch.id)
    # when: the meal closes and the worker handles the delivery jobs, and one is delivered twice
    await canteen_actors.handle_close_meal(kitchen.lunch.id)
    await runner.drain(skip=SKIP)
    first = next(o for o in jobs.sent if o.job.actor_name == "canteen.delivery_requested")
    await canteen_actors.handle_delivery_requested(**first.job.kwargs)
    # then: one meal-delivery visit per delivery, at serving time, keyed by the reservation
    async with services.db.read_session() as session:
        visits = (await session.scalars(select(Visit).order_by(Visit.id))).all()
    assert len(visits) == 2
    assert {v.visit_type for v in visits} == {"meal_delivery"}
    assert {v.resident_id for v in visits} == {kitchen.grandma.id, kitchen.disabled.id}
    assert all(v.starts_at == kitchen.lunch.serves_from and v.ends_at == kitchen.lunch.serves_until for v in visits)
    assert all((v.source_key or "").startswith("canteen-reservation:") for v in visits)
    grandma = next(v for v in visits if v.resident_id == kitchen.grandma.id)
    assert "软一点" in grandma.note


async def test_a_cancelled_delivery_asks_for_no_visit(services, kitchen):
    viewer = resident_viewer(kitchen.adult, kitchen.adult_login)
    row = await reserve_as(services, viewer, kitchen.lunch.id, resident_id=kitchen.grandma.id, delivery=True)
    async with services.db.unit_of_work() as uow:
        await canteen.cancel_reservation(uow, viewer=viewer, reservation_id=row.id)
    await move_cutoff(services, kitchen.lunch.id)
    async with services.db.unit_of_work(services.jobs) as uow:
        sheet = await canteen.close_meal(uow, meal_id=kitchen.lunch.id)
    assert sheet is not None
    assert (sheet.portions, sheet.delivery) == (0, 0)
    async with services.db.read_session() as session:
        assert await canteen.delivery_request(session, reservation_id=row.id) is None
