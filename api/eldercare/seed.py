"""Demo data of the eldercare domain (runs after the registry seed).

Per community: every resident aged 60 or more becomes an elder (living alone when tagged so), with
the ability levels of the 爱心敲门 team's survey; 低龄 residents (60–75) volunteer, one for every five
elders, in the 爱心敲门 team; each elder is paired with a volunteer from the same building where
possible (then the compound, then anyone with room); the default tier table is saved. The demo
resident login volunteers too, so offers can be answered from the demo. Visits are planned by the
scheduler (or `planVisits`), not here.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import case, exists, insert, literal, select, update

from api.accounts.models import Account
from api.core.clock import local_today, utc_now, years_before
from api.core.database import Database, UnitOfWork
from api.dispatch.models import Responder, ResponderKind
from api.eldercare.models import (
    CarePair,
    ElderProfile,
    TimeAccount,
    Volunteer,
    VolunteerTeam,
    VolunteerTeamMember,
)
from api.eldercare.people import ensure_tier_table
from api.registry.models import Building, Community, Household, Resident, ResidentTag, ResidentTagLink

ELDERS_PER_VOLUNTEER = 5
MIN_VOLUNTEERS = 3
SKILL_SETS = (
    ("companionship", "electrical"),
    ("companionship", "haircut"),
    ("companionship", "escort"),
    ("companionship",),
)
# Survey levels by resident id (mod 20): mostly intact or mildly impaired, a few severe.
LEVEL_OF = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4)


async def seed_demo(db: Database) -> None:
    """Create the demo data; safe to call on a database that already has it."""
    today = local_today()
    async with db.read_session() as session:
        communities = list((await session.scalars(select(Community.id).order_by(Community.id))).all())
    for community_id in communities:
        async with db.unit_of_work() as uow:
            if await uow.session.scalar(
                select(ElderProfile.id).where(ElderProfile.community_id == community_id).limit(1)
            ):
                continue
            await seed_community(uow, community_id=community_id, today=today)


async def seed_community(uow: UnitOfWork, *, community_id: int, today: date) -> tuple[int, int, int]:
    """Elders, volunteers, the team, pairs and the tier table of one community. Returns (elders, volunteers, pairs)."""
    session = uow.session
    now = utc_now()
    born_60 = years_before(today, 60)
    born_75 = years_before(today, 76)
    alone = exists().where(
        ResidentTagLink.resident_id == Resident.id, ResidentTagLink.tag == ResidentTag.LIVES_ALONE.value
    )
    await session.execute(
        insert(ElderProfile).from_select(
            ["community_id", "resident_id", "living_situation", "care_flags", "emergency_contacts_masked", "active",
             "created_at", "updated_at"],
            select(
                Resident.community_id, Resident.id, case((alone, "alone"), else_="with_family"),
                literal([], ElderProfile.care_flags.type), literal([], ElderProfile.emergency_contacts_masked.type),
                literal(True), literal(now, ElderProfile.created_at.type), literal(now, ElderProfile.updated_at.type),
            ).where(
                Resident.community_id == community_id, Resident.birth_date <= born_60,
                Resident.household_id.is_not(None),
            ),
        )
    )  # fmt: skip
    elders = (
        await session.execute(
            select(ElderProfile.id, ElderProfile.resident_id, Household.building_id, Building.compound_id)
            .join(Resident, Resident.id == ElderProfile.resident_id)
            .join(Household, Household.id == Resident.household_id)
            .join(Building, Building.id == Household.building_id)
            .where(ElderProfile.community_id == community_id)
            .order_by(ElderProfile.id)
        )
    ).all()
    by_level: dict[int, list[int]] = defaultdict(list)
    for elder_id, resident_id, _b, _c in elders:
        by_level[LEVEL_OF[resident_id % len(LEVEL_OF)]].append(elder_id)
    for level, ids in by_level.items():
        for chunk in range(0, len(ids), 1000):
            await session.execute(
                update(ElderProfile)
                .where(ElderProfile.id.in_(ids[chunk : chunk + 1000]))
                .values(
                    current_level=level,
                    last_assessed_on=today - timedelta(days=30 + level * 20),
                    reassessment_due_on=today - timedelta(days=30 + level * 20) + timedelta(days=182),
                )
            )
    await ensure_tier_table(uow, community_id=community_id)

    # Volunteers: the demo resident login first, then 低龄 residents spread over the buildings.
    wanted = max(MIN_VOLUNTEERS, len(elders) // ELDERS_PER_VOLUNTEER)
    demo = (
        await session.execute(
            select(Account.id, Resident.id, Resident.name, Resident.household_id)
            .join(Resident, Resident.id == Account.resident_id)
            .where(Resident.community_id == community_id)
            .order_by(Account.id)
            .limit(1)
        )
    ).first()
    candidates = (
        await session.execute(
            select(Resident.id, Resident.name, Resident.household_id)
            .where(
                Resident.community_id == community_id,
                Resident.birth_date <= born_60,
                Resident.birth_date > born_75,
                Resident.household_id.is_not(None),
                ~exists().where(Account.resident_id == Resident.id),
            )
            .order_by(Resident.id)
        )
    ).all()
    step = max(1, len(candidates) // max(wanted, 1))
    chosen = list(candidates[::step][:wanted])
    accounts: list[tuple[int, int, str, int | None]] = []  # (account, resident, name, household)
    if demo is not None:
        accounts.append((int(demo[0]), int(demo[1]), str(demo[2]), demo[3]))
    if chosen:
        made = (
            await session.execute(
                insert(Account).returning(Account.id, Account.resident_id),
                [
                    {"phone_hash": f"seed-volunteer-{rid}", "phone_encrypted": "!", "phone_masked": "170****0000",
                     "password_hash": "!", "display_name": name, "resident_id": rid, "is_active": True,
                     "created_at": now}
                    for rid, name, _h in chosen
                ],
            )
        ).all()  # fmt: skip
        account_of = {int(r[1] or 0): int(r[0]) for r in made}
        accounts += [(account_of[int(rid)], int(rid), str(name), hh) for rid, name, hh in chosen]
    homes = dict(
        (await session.execute(
            select(Household.id, Household.building_id).where(Household.community_id == community_id)
        )).all()
    )  # fmt: skip
    compounds = dict(
        (
            await session.execute(
                select(Building.id, Building.compound_id).where(Building.community_id == community_id)
            )
        ).all()
    )
    volunteers: list[tuple[int, int | None, int | None]] = []  # (volunteer id, building, compound)
    resident_of: dict[int, int] = {}
    team = VolunteerTeam(community_id=community_id, name="爱心敲门", created_at=now)
    session.add(team)
    await session.flush()
    for i, (account_id, resident_id, name, household_id) in enumerate(accounts):
        building_id = homes.get(household_id) if household_id else None
        compound_id = compounds.get(building_id) if building_id else None
        responder = Responder(
            community_id=community_id, account_id=account_id, kind=ResponderKind.VOLUNTEER.value, display_name=name,
            skills=list(SKILL_SETS[i % len(SKILL_SETS)]), max_open=ELDERS_PER_VOLUNTEER * 8,
            home_building_id=building_id, home_compound_id=compound_id, grab_enabled=False, active=True,
            created_at=now,
        )  # fmt: skip
        session.add(responder)
        await session.flush()
        volunteer = Volunteer(
            community_id=community_id, resident_id=resident_id, responder_id=responder.id,
            max_elders=ELDERS_PER_VOLUNTEER + 1, active=True, created_at=now,
        )  # fmt: skip
        session.add(volunteer)
        await session.flush()
        session.add(TimeAccount(community_id=community_id, kind="volunteer", volunteer_id=volunteer.id,
                                balance_minutes=0, created_at=now))  # fmt: skip
        session.add(VolunteerTeamMember(team_id=team.id, volunteer_id=volunteer.id))
        volunteers.append((volunteer.id, building_id, compound_id))
        resident_of[volunteer.id] = resident_id
    await session.flush()

    # Pairs: same building first, then the compound, then anyone with room.
    load: dict[int, int] = dict.fromkeys((v for v, _b, _c in volunteers), 0)
    limit = ELDERS_PER_VOLUNTEER + 1
    pairs = []
    for elder_id, elder_resident_id, building_id, compound_id in elders:
        pick = None
        near = [v for v, b, _c in volunteers if b == building_id]
        compound = [v for v, _b, c in volunteers if c == compound_id]
        for group in (near, compound, list(load)):
            free = [v for v in group if load[v] < limit and resident_of[v] != elder_resident_id]
            if free:
                pick = min(free, key=lambda v: (load[v], v))
                break
        if pick is None:
            break
        load[pick] += 1
        pairs.append(
            {"community_id": community_id, "elder_id": elder_id, "volunteer_id": pick, "role": "primary",
             "reasons": [{"code": "seed", "detail": "爱心敲门 survey pairing"}], "started_at": now}
        )  # fmt: skip
    for chunk in range(0, len(pairs), 1000):
        await session.execute(insert(CarePair), pairs[chunk : chunk + 1000])
    return len(elders), len(volunteers), len(pairs)
