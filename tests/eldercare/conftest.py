"""Elder-care fixtures: a community with elders in two buildings, a family member, volunteers and staff."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from api.core.clock import CHINA_TZ, local_today
from api.core.viewer import Role, Viewer
from api.eldercare import abilities, people, rules
from api.eldercare.models import LivingSituation
from api.graphql.context import Services
from api.registry import service as registry_service
from api.registry.models import Building, Community, ConsentPurpose, Household, Resident, ResidentTag
from api.tickets.categories import default_categories
from tests.factories import (
    Login,
    born_years_ago,
    make_building,
    make_community,
    make_compound,
    make_household,
    make_login,
    make_resident,
)
from tests.jobs import JobRunner
from tests.tickets.conftest import viewer_of

FULL_SCORES = {i.code: i.max_score for i in abilities.ITEMS}


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


def db_id(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A China-time wall clock time as an aware UTC datetime."""
    return datetime.combine(day, time(hour, minute), CHINA_TZ).astimezone(UTC)


def next_month() -> str:
    return rules.next_period(rules.period_of(local_today()))


@dataclass
class VolunteerLogin:
    login: Login
    resident: Resident
    volunteer_id: int
    responder_id: int
    viewer: Viewer


@dataclass
class Care:
    """One community: elders in two buildings, a daughter, two volunteers, staff and an admin."""

    community: Community
    buildings: list[Building]
    homes: list[Household]
    staff: Login
    staff_viewer: Viewer
    admin: Login
    admin_viewer: Viewer
    grandma: Resident  # 82, lives alone, building 1 unit 1
    grandpa: Resident  # 76, building 1 unit 2, lives with his daughter
    daughter: Login
    daughter_resident: Resident
    uncle: Resident  # 88, building 2 unit 1, 孤寡
    young: Resident  # 45, not an elder
    near: VolunteerLogin  # 65, female, building 1 unit 1: companionship, electrical
    far: VolunteerLogin  # 70, male, building 2 unit 3: haircut, escort
    elder_ids: dict[int, int]  # resident id → elder profile id

    @property
    def cid(self) -> int:
        return self.community.id


async def add_volunteer(
    services: Services, staff_viewer: Viewer, resident: Resident, community: Community, skills: tuple[str, ...],
    max_elders: int = 3,
) -> VolunteerLogin:  # fmt: skip
    login = await make_login(services, role=Role.RESIDENT, community=community, resident=resident)
    async with services.db.unit_of_work(services.jobs) as uow:
        volunteer = await people.register_volunteer(
            uow, viewer=staff_viewer,
            draft=people.VolunteerDraft(resident_id=resident.id, skills=skills, max_elders=max_elders),
        )  # fmt: skip
    return VolunteerLogin(login, resident, volunteer.id, volunteer.responder_id, await viewer_of(services, login))


async def register_elder(
    services: Services, viewer: Viewer, resident: Resident, situation: LivingSituation, **kw: Any
) -> int:
    async with services.db.unit_of_work(services.jobs) as uow:
        elder = await people.save_elder(
            uow, viewer=viewer, cipher=services.cipher,
            draft=people.ElderDraft(resident_id=resident.id, living_situation=situation, **kw),
        )  # fmt: skip
    return elder.id


async def consent(services: Services, viewer: Viewer, resident: Resident, granted: bool = True) -> None:
    async with services.db.unit_of_work(services.jobs) as uow:
        await registry_service.record_consent(
            uow, viewer=viewer, resident_id=resident.id, purpose=ConsentPurpose.HEALTH_DATA, granted=granted
        )


async def make_care(services: Services, *, code: str | None = None) -> Care:
    db = services.db
    today = local_today()
    community = await make_community(db, code=code)
    compound = await make_compound(db, community)
    b1 = await make_building(db, compound, name="3号楼", units=3)
    b2 = await make_building(db, compound, name="5号楼", units=3)
    homes = [
        await make_household(db, b1, unit=1, room="101"),
        await make_household(db, b1, unit=2, room="201"),
        await make_household(db, b2, unit=1, room="102"),
        await make_household(db, b1, unit=1, room="302"),
        await make_household(db, b2, unit=3, room="501"),
    ]
    grandma = await make_resident(services, homes[0], name="王奶奶", born=born_years_ago(today, 82), male=False,
                                  tags=(ResidentTag.LIVES_ALONE,))  # fmt: skip
    grandpa = await make_resident(services, homes[1], name="李爷爷", born=born_years_ago(today, 76))
    daughter_resident = await make_resident(
        services, homes[1], name="李女士", born=born_years_ago(today, 45), male=False
    )
    uncle = await make_resident(services, homes[2], name="赵大爷", born=born_years_ago(today, 88),
                                tags=(ResidentTag.NO_FAMILY_SUPPORT, ResidentTag.LIVES_ALONE))  # fmt: skip
    young = await make_resident(services, homes[3], name="孙先生", born=born_years_ago(today, 45))
    near_resident = await make_resident(services, homes[3], name="陈阿姨", born=born_years_ago(today, 65), male=False)
    far_resident = await make_resident(services, homes[4], name="刘师傅", born=born_years_ago(today, 70))
    staff = await make_login(services, role=Role.STAFF, community=community)
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=community)
    daughter = await make_login(services, role=Role.RESIDENT, community=community, resident=daughter_resident)
    staff_viewer = await viewer_of(services, staff)
    near = await add_volunteer(services, staff_viewer, near_resident, community, ("companionship", "electrical"))
    far = await add_volunteer(services, staff_viewer, far_resident, community, ("haircut", "escort"))
    elder_ids = {
        grandma.id: await register_elder(services, staff_viewer, grandma, LivingSituation.ALONE),
        grandpa.id: await register_elder(services, staff_viewer, grandpa, LivingSituation.WITH_FAMILY),
        uncle.id: await register_elder(services, staff_viewer, uncle, LivingSituation.ALONE),
    }
    async with db.unit_of_work() as uow:
        uow.session.add_all(default_categories(community.id))
    return Care(
        community, [b1, b2], homes, staff, staff_viewer, admin, await viewer_of(services, admin), grandma, grandpa,
        daughter, daughter_resident, uncle, young, near, far, elder_ids,
    )  # fmt: skip


@pytest.fixture
async def care(services) -> Care:
    return await make_care(services)


async def count(services: Services, model: Any, *conds: Any) -> int:
    async with services.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*conds)) or 0)


def tomorrow_at(hour: int, days: int = 1) -> datetime:
    return at(local_today() + timedelta(days=days), hour)
