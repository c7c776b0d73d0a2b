"""Service hall fixtures: a community with the common procedures, staff, an admin, residents, files."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from api.core.clock import local_today
from api.core.viewer import Role, Viewer
from api.graphql.context import Services
from api.hall import service as hall
from api.hall.models import HallApplication, HallProcedure, HallProcedureVersion, ParkingQuota, Vehicle
from api.hall.seed import seed_procedures, year_bounds
from api.registry.models import Community
from tests.conftest import make_settings
from tests.factories import Estate, Login, make_estate, make_login
from tests.jobs import JobRunner
from tests.tickets.conftest import viewer_of


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def settings(pg_url, media):
    return make_settings(pg_url, media_dir=str(media))


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


def db_id(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


def png(size: tuple[int, int] = (24, 16), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


@dataclass
class Desk:
    """A community with the five common procedures, a hall clerk, an admin, two households and an outsider."""

    estate: Estate
    community: Community
    staff: Login
    staff_viewer: Viewer
    admin: Login
    admin_viewer: Viewer
    resident: Login  # lives in households[0]
    resident_viewer: Viewer
    neighbour: Login  # lives in households[1]
    neighbour_viewer: Viewer
    outsider: Login  # a resident of another community
    procedures: dict[str, HallProcedure]

    @property
    def cid(self) -> int:
        return self.community.id

    @property
    def community_gid(self) -> str:
        return gid("Community", self.cid)

    def procedure_gid(self, code: str) -> str:
        return gid("HallProcedure", self.procedures[code].id)


async def make_desk(services: Services) -> Desk:
    estate = await make_estate(services, households=2, members=1)
    other = await make_estate(services, households=1, members=1)
    community = estate.community
    staff = await make_login(services, role=Role.STAFF, community=community)
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=community)
    resident = await make_login(services, role=Role.RESIDENT, community=community, resident=estate.residents[0])
    neighbour = await make_login(services, role=Role.RESIDENT, community=community, resident=estate.residents[1])
    outsider = await make_login(services, role=Role.RESIDENT, community=other.community, resident=other.residents[0])
    async with services.db.unit_of_work() as uow:
        await seed_procedures(uow, community.id)
        await seed_procedures(uow, other.community.id)
        rows = (
            await uow.session.scalars(select(HallProcedure).where(HallProcedure.community_id == community.id))
        ).all()
    return Desk(
        estate, community, staff, await viewer_of(services, staff), admin, await viewer_of(services, admin),
        resident, await viewer_of(services, resident), neighbour, await viewer_of(services, neighbour), outsider,
        {p.code: p for p in rows},
    )  # fmt: skip


@pytest.fixture
async def desk(services) -> Desk:
    return await make_desk(services)


ALL_DOCUMENTS = {
    "residence-certificate": ["id_card", "tenancy_or_deed"],
    "door-card": ["id_card", "residence_proof"],
    "vehicle": ["id_card", "vehicle_license", "residence_proof"],
    "parking-permit": ["id_card", "vehicle_license"],
    "rental-registration": ["owner_id_card", "deed", "lease", "tenant_id_card"],
}


def documents_for(code: str, *, leave_out: tuple[str, ...] = ()) -> list[hall.DocumentUpload]:
    return [hall.DocumentUpload(slot, png()) for slot in ALL_DOCUMENTS[code] if slot not in leave_out]


async def apply(
    services: Services, desk: Desk, code: str, *, viewer: Viewer | None = None, **draft: Any
) -> HallApplication:
    """Submit through the service as the desk's resident (or `viewer`), with every required document."""
    documents = draft.pop("documents", None)
    now = draft.pop("now", None)
    async with services.db.unit_of_work(services.jobs) as uow:
        return await hall.submit_application(
            uow, viewer=viewer or desk.resident_viewer, store=services.photos,
            draft=hall.ApplicationDraft(procedure_id=desk.procedures[code].id,
                                        documents=documents_for(code) if documents is None else documents, **draft),
            now=now,
        )  # fmt: skip


async def move(services: Services, verb: str, viewer: Viewer, application_id: int, **kwargs: Any) -> HallApplication:
    """Call accept/advance/approve/reject/request_documents as `viewer` in its own unit of work."""
    fn = getattr(hall, f"{verb}_application" if verb != "request_documents" else verb)
    async with services.db.unit_of_work(services.jobs) as uow:
        row: HallApplication = await fn(uow, viewer=viewer, application_id=application_id, **kwargs)
        return row


async def through_to_last_step(services: Services, desk: Desk, application_id: int) -> None:
    await move(services, "accept", desk.staff_viewer, application_id)
    while True:
        async with services.db.read_session() as session:
            app = await session.get(HallApplication, application_id)
            assert app is not None
            version = await session.get(HallProcedureVersion, app.version_id)
            assert version is not None
        if app.step_index >= len(version.steps) - 1:
            return
        await move(services, "advance", desk.staff_viewer, application_id)


async def registered_vehicle(services: Services, desk: Desk, plate: str = "冀A12345", kind: str = "car") -> Vehicle:
    """A vehicle of the resident's household, registered through the hall."""
    from api.hall.models import VehicleKind

    app = await apply(
        services, desk, "vehicle", vehicle=hall.VehicleRequest("register", plate=plate, kind=VehicleKind(kind))
    )
    await through_to_last_step(services, desk, app.id)
    done = await move(services, "approve", desk.staff_viewer, app.id)
    async with services.db.read_session() as session:
        vehicle = await session.get(Vehicle, done.vehicle_id)
    assert vehicle is not None
    return vehicle


async def quota_for(services: Services, desk: Desk, quota: int) -> ParkingQuota:
    starts_on, ends_on = year_bounds(local_today())
    async with services.db.unit_of_work() as uow:
        return await hall.set_parking_quota(
            uow, viewer=desk.staff_viewer, compound_id=desk.estate.compound.id, starts_on=starts_on, ends_on=ends_on,
            quota=quota,
        )  # fmt: skip


async def count(services: Services, model: Any, *conds: Any) -> int:
    async with services.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*conds)) or 0)


async def multipart(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], files: dict[str, bytes], *, token: str | None
) -> dict[str, Any]:
    """POST a multipart request; `files` maps a variables path (e.g. input.documents.0.file) to the bytes."""
    operations = json.dumps({"query": query, "variables": variables})
    paths = list(files)
    file_map = json.dumps({str(i): [f"variables.{p}"] for i, p in enumerate(paths)})
    response = await client.post(
        "/graphql",
        data={"operations": operations, "map": file_map},
        files=[(str(i), (f"f{i}.png", files[p], "image/png")) for i, p in enumerate(paths)],
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert not body.get("errors"), body["errors"]
    data: dict[str, Any] = body["data"]
    return data
