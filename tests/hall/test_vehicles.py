"""Vehicles and parking permits through the service hall: typed refusals, history, quota bookkeeping."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from strawberry.relay import GlobalID

from api.core.errors import Conflict, NotFound
from api.hall import service as hall
from api.hall.models import HallApplication, ParkingPermit, ParkingQuota, Vehicle, VehicleEvent, VehicleKind
from tests.hall.conftest import (
    Desk,
    apply,
    count,
    gid,
    move,
    multipart,
    png,
    quota_for,
    registered_vehicle,
    through_to_last_step,
)

SUBMIT = """
mutation Submit($input: SubmitHallApplicationInput!) {
  submitHallApplication(input: $input) {
    __typename
    ... on HallApplicationSuccess { application { id vehicleRequest { action plate kind } parkingRequest { plate } } }
    ... on QuotaFullError { quota }
    ... on UserError { message field code }
  }
}
"""
VEHICLES = """
query V {
  vehicles {
    id plate kind
    history { kind beforePlate afterPlate afterKind applicationId }
    permits { slot compoundName plate }
  }
}
"""
APPROVE = """
mutation A($input: MoveHallApplicationInput!) {
  approveHallApplication(input: $input) {
    __typename
    ... on HallApplicationSuccess { application { state vehicle { plate } permit { slot plate } } }
    ... on QuotaFullError { quota }
    ... on UserError { code message }
  }
}
"""
CHECK = "query C($p: String!, $k: VehicleKind!) { checkPlate(plate: $p, kind: $k) { plate valid plateKind message } }"
QUOTAS = "query Q($c: ID!) { parkingQuotas(communityId: $c) { quota issued left compoundName } }"
SET_QUOTA = """
mutation S($input: SetParkingQuotaInput!) {
  setParkingQuota(input: $input) { __typename ... on ParkingQuotaSuccess { quota { quota issued } } ... on UserError { code } }
}
"""

VEHICLE_DOCS = ["id_card", "vehicle_license", "residence_proof"]


def vehicle_vars(desk: Desk, vehicle: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    documents = [{"slot": s, "file": None} for s in VEHICLE_DOCS]
    files = {f"input.documents.{i}.file": png() for i in range(len(VEHICLE_DOCS))}
    return {"input": {"procedureId": desk.procedure_gid("vehicle"), "documents": documents, "vehicle": vehicle}}, files


async def test_an_invalid_plate_is_a_typed_error(client, services, desk: Desk):
    for plate, kind in (("冀I12345", "CAR"), ("冀A12345", "NEW_ENERGY_CAR"), ("AB12345", "CAR"), ("冀AD12345", "CAR")):
        variables, files = vehicle_vars(desk, {"action": "register", "plate": plate, "kind": kind})
        result = (await multipart(client, SUBMIT, variables, files, token=desk.resident.token))["submitHallApplication"]
        assert (result["__typename"], result["field"], result["code"]) == (
            "InvalidPlateError",
            "plate",
            "INVALID_PLATE",
        )
    assert await count(services, HallApplication) == 0


async def test_check_plate_normalises(gql, desk: Desk):
    ok = (await gql(CHECK, {"p": " 冀a·d1 2345 ", "k": "NEW_ENERGY_CAR"}, token=desk.resident.token))["checkPlate"]
    assert ok == {"plate": "冀AD12345", "valid": True, "plateKind": "NEW_ENERGY", "message": None}
    bad = (await gql(CHECK, {"p": "冀A1234", "k": "CAR"}, token=desk.resident.token))["checkPlate"]
    assert bad["valid"] is False
    assert "7" in bad["message"]


async def test_registration_change_and_removal_go_through_the_hall_with_history(client, gql, services, desk: Desk):
    # given: a registration applied for with a messy plate
    variables, files = vehicle_vars(desk, {"action": "register", "plate": "冀a·12345", "kind": "CAR",
                                           "description": "白色大众朗逸"})  # fmt: skip
    result = (await multipart(client, SUBMIT, variables, files, token=desk.resident.token))["submitHallApplication"]
    assert result["application"]["vehicleRequest"] == {"action": "register", "plate": "冀A12345", "kind": "CAR"}
    app_gid = result["application"]["id"]
    # nothing is registered before approval
    assert (await gql(VEHICLES, token=desk.resident.token))["vehicles"] == []
    # when: approved at its last step
    app_id = _id(app_gid)
    await through_to_last_step(services, desk, app_id)
    approved = await gql(APPROVE, {"input": {"applicationId": app_gid}}, token=desk.staff.token)
    assert approved["approveHallApplication"]["application"]["vehicle"] == {"plate": "冀A12345"}
    [vehicle] = (await gql(VEHICLES, token=desk.resident.token))["vehicles"]
    assert (vehicle["plate"], vehicle["kind"]) == ("冀A12345", "CAR")
    # a second household cannot register the same plate: refused at once
    variables, files = vehicle_vars(desk, {"action": "register", "plate": "冀A12345", "kind": "CAR"})
    taken = (await multipart(client, SUBMIT, variables, files, token=desk.neighbour.token))["submitHallApplication"]
    assert taken["__typename"] == "PlateTakenError"
    # a change to a new-energy plate
    change = await apply(
        services, desk, "vehicle",
        vehicle=hall.VehicleRequest("change", vehicle_id=_id(vehicle["id"]), plate="冀AD12345",
                                    kind=VehicleKind.NEW_ENERGY_CAR),
    )  # fmt: skip
    await through_to_last_step(services, desk, change.id)
    await move(services, "approve", desk.staff_viewer, change.id)
    [vehicle] = (await gql(VEHICLES, token=desk.resident.token))["vehicles"]
    assert [(h["kind"], h["beforePlate"], h["afterPlate"], h["afterKind"]) for h in vehicle["history"]] == [
        ("REGISTERED", None, "冀A12345", "CAR"), ("CHANGED", "冀A12345", "冀AD12345", "NEW_ENERGY_CAR"),
    ]  # fmt: skip
    assert vehicle["history"][1]["applicationId"] == gid("HallApplication", change.id)
    # the old plate is free again for the neighbour
    freed = await apply(services, desk, "vehicle", viewer=desk.neighbour_viewer,
                        vehicle=hall.VehicleRequest("register", plate="冀A12345", kind=VehicleKind.CAR))  # fmt: skip
    assert freed.details["plate"] == "冀A12345"
    # the neighbour cannot change the resident's vehicle
    with pytest.raises(NotFound):
        await apply(services, desk, "vehicle", viewer=desk.neighbour_viewer,
                    vehicle=hall.VehicleRequest("remove", vehicle_id=_id(vehicle["id"])))  # fmt: skip
    # removal
    removal = await apply(
        services, desk, "vehicle", vehicle=hall.VehicleRequest("remove", vehicle_id=_id(vehicle["id"]))
    )
    await through_to_last_step(services, desk, removal.id)
    await move(services, "approve", desk.staff_viewer, removal.id)
    assert (await gql(VEHICLES, token=desk.resident.token))["vehicles"] == []
    async with services.db.read_session() as session:
        kinds = (await session.scalars(select(VehicleEvent.kind).order_by(VehicleEvent.id))).all()
    assert kinds == ["registered", "changed", "removed"]


async def test_approving_a_plate_taken_meanwhile_changes_nothing(gql, services, desk: Desk):
    # given: two households apply for the same plate before either is approved
    first = await apply(services, desk, "vehicle", vehicle=hall.VehicleRequest("register", plate="京B88888",
                                                                                kind=VehicleKind.CAR))  # fmt: skip
    second = await apply(services, desk, "vehicle", viewer=desk.neighbour_viewer,
                         vehicle=hall.VehicleRequest("register", plate="京B88888", kind=VehicleKind.CAR))  # fmt: skip
    for app in (first, second):
        await through_to_last_step(services, desk, app.id)
    await move(services, "approve", desk.staff_viewer, first.id)
    # when
    result = await gql(APPROVE, {"input": {"applicationId": gid("HallApplication", second.id)}}, token=desk.staff.token)
    # then: typed error, and the second application is still open at its last step
    assert result["approveHallApplication"]["__typename"] == "PlateTakenError"
    async with services.db.read_session() as session:
        row = await session.get(HallApplication, second.id)
        assert row is not None
        assert (row.state, row.closed_at, row.vehicle_id) == ("in_progress", None, None)
    assert await count(services, Vehicle) == 1


async def test_the_database_refuses_a_second_active_plate(services, desk: Desk):
    vehicle = await registered_vehicle(services, desk)
    with pytest.raises(IntegrityError) as refused:
        async with services.db.unit_of_work() as uow:
            uow.session.add(Vehicle(community_id=desk.cid, household_id=desk.estate.households[1].id,
                                    plate=vehicle.plate, kind="car", description=""))  # fmt: skip
    assert "uq_hall_vehicle_community_id_plate_active" in str(refused.value)


async def test_parking_permits_under_the_quota(client, gql, services, desk: Desk):
    # given: a quota of 1 and two registered vehicles
    await quota_for(services, desk, 1)
    mine = await registered_vehicle(services, desk, "冀A11111")
    other = await registered_vehicle(services, desk, "冀A22222")
    files = {"input.documents.0.file": png(), "input.documents.1.file": png()}

    def permit_for(vehicle: Vehicle) -> dict[str, Any]:
        documents = [{"slot": "id_card", "file": None}, {"slot": "vehicle_license", "file": None}]
        parking = {"vehicleId": gid("Vehicle", vehicle.id), "compoundId": gid("Compound", desk.estate.compound.id)}
        return {
            "input": {"procedureId": desk.procedure_gid("parking-permit"), "parking": parking, "documents": documents}
        }

    async def submit(vehicle: Vehicle) -> dict[str, Any]:
        data = await multipart(client, SUBMIT, permit_for(vehicle), files, token=desk.resident.token)
        result: dict[str, Any] = data["submitHallApplication"]
        return result

    applied = await submit(mine)
    assert applied["application"]["parkingRequest"] == {"plate": "冀A11111"}
    competing = await submit(other)
    first_id, competing_id = _id(applied["application"]["id"]), _id(competing["application"]["id"])
    for app_id in (first_id, competing_id):
        await through_to_last_step(services, desk, app_id)
    # when: the first is approved, the quota is full
    done = await gql(APPROVE, {"input": {"applicationId": applied["application"]["id"]}}, token=desk.staff.token)
    assert done["approveHallApplication"]["application"]["permit"] == {"slot": 1, "plate": "冀A11111"}
    full = await gql(APPROVE, {"input": {"applicationId": competing["application"]["id"]}}, token=desk.staff.token)
    # then: the second approval is a typed refusal, and a new application is refused up front
    result = full["approveHallApplication"]
    assert (result["__typename"], result["quota"], result["code"]) == ("QuotaFullError", 1, "QUOTA_FULL")
    assert (await submit(mine))["__typename"] == "AlreadyHasPermitError"  # it has one now
    third = await registered_vehicle(services, desk, "冀A33333")
    up_front = await submit(third)
    assert (up_front["__typename"], up_front["quota"]) == ("QuotaFullError", 1)
    quotas = (await gql(QUOTAS, {"c": desk.community_gid}, token=desk.resident.token))["parkingQuotas"]
    assert [(q["quota"], q["issued"], q["left"]) for q in quotas] == [(1, 1, 0)]
    # lowering the quota below what is out is refused; revoking frees the place
    starts = (await _quota(services)).starts_on
    lower = await gql(SET_QUOTA, {"input": {"compoundId": gid("Compound", desk.estate.compound.id),
                                            "startsOn": str(starts), "endsOn": str((await _quota(services)).ends_on),
                                            "quota": 0}}, token=desk.staff.token)  # fmt: skip
    assert lower["setParkingQuota"] == {"__typename": "ConflictError", "code": "CONFLICT"}
    async with services.db.unit_of_work() as uow:
        permit = await uow.session.scalar(select(ParkingPermit))
        assert permit is not None
        await hall.revoke_permit(uow, viewer=desk.staff_viewer, permit_id=permit.id, reason="车辆出售")
    await move(services, "approve", desk.staff_viewer, competing_id)
    assert (await _quota(services)).issued == 1
    # removing a vehicle through the hall revokes its permit and frees the place
    removal = await apply(services, desk, "vehicle", vehicle=hall.VehicleRequest("remove", vehicle_id=other.id))
    await through_to_last_step(services, desk, removal.id)
    await move(services, "approve", desk.staff_viewer, removal.id)
    assert (await _quota(services)).issued == 0


async def test_no_quota_and_quota_overlap(services, desk: Desk):
    vehicle = await registered_vehicle(services, desk)
    with pytest.raises(hall.NoParkingQuota):
        await apply(services, desk, "parking-permit",
                    parking=hall.ParkingRequest(vehicle_id=vehicle.id, compound_id=desk.estate.compound.id))  # fmt: skip
    quota = await quota_for(services, desk, 5)
    with pytest.raises(Conflict):
        async with services.db.unit_of_work() as uow:
            await hall.set_parking_quota(uow, viewer=desk.staff_viewer, compound_id=desk.estate.compound.id,
                                         starts_on=quota.ends_on - timedelta(days=3),
                                         ends_on=quota.ends_on + timedelta(days=30), quota=3)  # fmt: skip
    # the exclusion constraint backs the check
    with pytest.raises(IntegrityError):
        async with services.db.unit_of_work() as uow:
            uow.session.add(ParkingQuota(community_id=desk.cid, compound_id=desk.estate.compound.id,
                                         starts_on=quota.ends_on, ends_on=quota.ends_on + timedelta(days=10), quota=1))  # fmt: skip


async def _quota(services) -> ParkingQuota:
    async with services.db.read_session() as session:
        row = await session.scalar(select(ParkingQuota))
    assert isinstance(row, ParkingQuota)
    return row


def _id(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)
