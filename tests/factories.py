"""Plain async factories: each writes through a unit of work and returns the ORM row."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta

from api.accounts import service as accounts_service
from api.accounts.models import Account
from api.core.database import Database
from api.core.viewer import Role
from api.graphql.context import Services
from api.registry.models import Building, Community, Compound, Household, Resident, ResidentTag, ResidentTagLink
from api.registry.validation import check_char

_seq = itertools.count(1)
_phones = itertools.count(13_800_000_000 + 1)
PASSWORD = "correct horse battery staple"


def national_id(born: date, *, male: bool = True, region: str = "130105", seq: int | None = None) -> str:
    """A valid GB 11643 ID number (unique per call unless `seq` is given)."""
    n = next(_seq) if seq is None else seq
    order = (n % 500) * 2 + (1 if male else 0)
    first17 = f"{region}{born:%Y%m%d}{order:03d}"
    return first17 + check_char(first17)


def fresh_phone() -> str:
    return str(next(_phones))


def born_years_ago(today: date, years: int, days: int = 10) -> date:
    """A birth date that makes someone `years` old today (a few days past the birthday)."""
    return date(today.year - years, today.month, min(today.day, 28)) - timedelta(days=days)


async def make_community(
    db: Database, *, code: str | None = None, name: str = "测试社区", district: str = "新华区"
) -> Community:
    async with db.unit_of_work() as uow:
        c = Community(
            code=code or f"c{next(_seq)}",
            name=name,
            city="石家庄市",
            district=district,
            street="测试街道",
            address="测试路1号",
        )
        uow.session.add(c)
    return c


async def make_compound(db: Database, community: Community, *, name: str | None = None) -> Compound:
    async with db.unit_of_work() as uow:
        c = Compound(community_id=community.id, name=name or f"小区{next(_seq)}")
        uow.session.add(c)
    return c


async def make_building(db: Database, compound: Compound, *, name: str | None = None, units: int = 3) -> Building:
    async with db.unit_of_work() as uow:
        b = Building(
            community_id=compound.community_id,
            compound_id=compound.id,
            name=name or f"{next(_seq)}号楼",
            floors=6,
            units=units,
        )
        uow.session.add(b)
    return b


async def make_household(db: Database, building: Building, *, unit: int = 1, room: str | None = None) -> Household:
    async with db.unit_of_work() as uow:
        h = Household(
            community_id=building.community_id, building_id=building.id, unit=unit, room=room or str(100 + next(_seq))
        )
        uow.session.add(h)
    return h


async def make_resident(
    services: Services,
    household: Household,
    *,
    name: str = "张三",
    born: date = date(1980, 5, 17),
    male: bool = True,
    phone: str | None = None,
    tags: tuple[ResidentTag, ...] = (),
    guardian: Resident | None = None,
) -> Resident:
    from api.core.crypto import mask_national_id, mask_phone

    cipher = services.cipher
    nid = national_id(born, male=male)
    async with services.db.unit_of_work() as uow:
        r = Resident(
            community_id=household.community_id,
            household_id=household.id,
            name=name,
            gender="male" if male else "female",
            birth_date=born,
            national_id_encrypted=cipher.encrypt(nid),
            national_id_hash=cipher.lookup_hash(nid),
            national_id_masked=mask_national_id(nid),
            phone_encrypted=cipher.encrypt(phone) if phone else None,
            phone_hash=cipher.lookup_hash(phone) if phone else None,
            phone_masked=mask_phone(phone) if phone else None,
            guardian_id=guardian.id if guardian else None,
        )
        uow.session.add(r)
        await uow.session.flush()
        uow.session.add_all(ResidentTagLink(community_id=r.community_id, resident_id=r.id, tag=t.value) for t in tags)
    return r


@dataclass
class Login:
    account: Account
    token: str
    phone: str


async def make_login(
    services: Services,
    *,
    role: Role,
    community: Community | None = None,
    district: str | None = None,
    resident: Resident | None = None,
) -> Login:
    """An account with one role, logged in; returns its bearer token."""
    phone = fresh_phone()
    async with services.db.unit_of_work() as uow:
        account = await accounts_service.create_account(
            uow,
            cipher=services.cipher,
            passwords=services.passwords,
            phone=phone,
            password=PASSWORD,
            display_name=f"{role.value} {phone[-4:]}",
            resident_id=resident.id if resident else None,
        )
        await accounts_service.grant_role(
            uow, account_id=account.id, role=role, community_id=community.id if community else None, district=district
        )
    async with services.db.unit_of_work() as uow:
        _, token, _ = await accounts_service.log_in(
            uow,
            cipher=services.cipher,
            passwords=services.passwords,
            phone=phone,
            password=PASSWORD,
            ttl=timedelta(hours=1),
        )
    return Login(account=account, token=token, phone=phone)


@dataclass
class Estate:
    """A small community: one compound, two buildings, households and residents."""

    community: Community
    compound: Compound
    buildings: list[Building]
    households: list[Household]
    residents: list[Resident]


async def make_estate(services: Services, *, households: int = 4, members: int = 2, code: str | None = None) -> Estate:
    db = services.db
    community = await make_community(db, code=code)
    compound = await make_compound(db, community)
    buildings = [await make_building(db, compound) for _ in range(2)]
    hh: list[Household] = []
    people: list[Resident] = []
    for i in range(households):
        h = await make_household(db, buildings[i % 2], unit=1 + i % 3)
        hh.append(h)
        for j in range(members):
            people.append(
                await make_resident(services, h, name=f"居民{i}-{j}", born=date(1950 + 10 * j, 1 + i % 12, 3))
            )
    return Estate(community, compound, buildings, hh, people)
