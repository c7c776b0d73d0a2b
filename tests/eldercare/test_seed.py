"""The demo seed: elders, 低龄 volunteers in the 爱心敲门 team, pairs and default tiers, once."""

from __future__ import annotations

from api.core.viewer import Role
from api.eldercare.models import CarePair, CareTierVersion, ElderProfile, Volunteer, VolunteerTeamMember
from api.eldercare.seed import seed_demo
from tests.eldercare.conftest import count
from tests.factories import make_estate, make_login


async def test_the_seed_registers_elders_volunteers_and_pairs_once(services):
    # given: 12 households of two (one aged 76, one 66), and a resident login
    estate = await make_estate(services, households=12, members=2)
    await make_login(services, role=Role.RESIDENT, community=estate.community, resident=estate.residents[1])
    # when: seeded twice
    await seed_demo(services.db)
    await seed_demo(services.db)
    # then: every resident aged 60+ is an elder, volunteers are in the team, everyone is paired once
    assert await count(services, ElderProfile) == 24
    volunteers = await count(services, Volunteer)
    assert volunteers == 1 + 24 // 5  # the demo login and one 低龄 resident per five elders
    assert await count(services, VolunteerTeamMember) == volunteers
    assert await count(services, CarePair) == 24
    assert await count(services, CareTierVersion) == 1
    async with services.db.read_session() as session:
        from sqlalchemy import select

        self_paired = await session.scalar(
            select(CarePair.id)
            .join(ElderProfile, ElderProfile.id == CarePair.elder_id)
            .join(Volunteer, Volunteer.id == CarePair.volunteer_id)
            .where(Volunteer.resident_id == ElderProfile.resident_id)
        )
    assert self_paired is None
