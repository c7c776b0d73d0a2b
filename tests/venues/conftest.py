"""Venue fixtures: 智汇城-like rooms, a parent with children, neighbours, and crowds of residents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from api.accounts.models import Account, AccountSession, RoleGrant
from api.core.clock import CHINA_TZ, local_today, utc_now
from api.core.crypto import mask_national_id, mask_phone, new_token, token_hash
from api.core.viewer import Role, Viewer
from api.graphql.context import Services
from api.registry.models import Community, Resident
from api.venues import service as venues
from api.venues.models import ActivityKind, Venue, VenueActivity, VenueKind
from tests.factories import (
    Estate,
    Login,
    born_years_ago,
    fresh_phone,
    make_estate,
    make_login,
    make_resident,
    national_id,
)
from tests.jobs import JobRunner
from tests.tickets.conftest import viewer_of

OPEN_ALL_WEEK = [venues.OpeningSpan(day, 9 * 60, 17 * 60) for day in range(6)]  # Monday to Saturday 9:00–17:00


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


def db_id(global_id: str) -> int:
    return int(GlobalID.from_id(global_id).node_id)


def next_weekday(weekday: int, *, after: date | None = None, weeks: int = 0) -> date:
    """The next `weekday` (0 Monday) strictly after `after` (default today, China time), plus `weeks`."""
    day = after or local_today()
    return day + timedelta(days=(weekday - day.weekday()) % 7 or 7) + timedelta(weeks=weeks)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A China-time wall clock time as an aware UTC datetime."""
    return datetime.combine(day, time(hour, minute), CHINA_TZ).astimezone(UTC)


@dataclass
class Hall:
    """A community with a children's room and a bookable meeting room, staff, a parent and neighbours."""

    estate: Estate
    staff: Login
    staff_viewer: Viewer
    parent: Login
    parent_resident: Resident
    kids: list[Resident]  # 7 and 10 years old, the parent is their guardian
    toddler: Resident  # 4 years old, the parent's
    grandpa: Resident  # 70, same household as the parent
    neighbour: Login
    neighbour_resident: Resident
    neighbour_kid: Resident  # 8, the neighbour's
    children_room: Venue
    meeting_room: Venue

    @property
    def cid(self) -> int:
        return self.estate.community.id

    @property
    def community_gid(self) -> str:
        return gid("Community", self.cid)


async def make_hall(services: Services) -> Hall:
    estate = await make_estate(services, households=2, members=1)
    today = local_today()
    home, next_door = estate.households
    parent_resident = estate.residents[0]
    neighbour_resident = estate.residents[1]
    kids = [
        await make_resident(services, home, name="小明", born=born_years_ago(today, 7), guardian=parent_resident),
        await make_resident(services, home, name="小红", born=born_years_ago(today, 10), male=False,
                            guardian=parent_resident),
    ]  # fmt: skip
    toddler = await make_resident(services, home, name="小宝", born=born_years_ago(today, 4), guardian=parent_resident)
    grandpa = await make_resident(services, home, name="王爷爷", born=born_years_ago(today, 70))
    neighbour_kid = await make_resident(
        services, next_door, name="小刚", born=born_years_ago(today, 8), guardian=neighbour_resident
    )
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    parent = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=parent_resident)
    neighbour = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=neighbour_resident)
    staff_viewer = await viewer_of(services, staff)
    async with services.db.unit_of_work() as uow:
        children_room = await venues.create_venue(
            uow, viewer=staff_viewer,
            draft=venues.VenueDraft(community_id=estate.community.id, kind=VenueKind.CHILDREN, name="儿童活动室",
                                    capacity=30, location="四楼"),
        )  # fmt: skip
        meeting_room = await venues.create_venue(
            uow, viewer=staff_viewer,
            draft=venues.VenueDraft(community_id=estate.community.id, kind=VenueKind.MEETING, name="会议室",
                                    capacity=20, location="四楼", bookable=True, min_notice_hours=2,
                                    max_booking_minutes=180, weekly_quota=2),
        )  # fmt: skip
        for venue in (children_room, meeting_room):
            await venues.set_opening_hours(uow, viewer=staff_viewer, venue_id=venue.id, spans=OPEN_ALL_WEEK)
    return Hall(
        estate, staff, staff_viewer, parent, parent_resident, kids, toddler, grandpa, neighbour, neighbour_resident,
        neighbour_kid, children_room, meeting_room,
    )  # fmt: skip


@pytest.fixture
async def hall(services) -> Hall:
    return await make_hall(services)


async def make_activity(services: Services, hall: Hall, **overrides: Any) -> VenueActivity:
    """An activity in the children's room next Saturday 9:00–10:30 (ages 6–12, 12 places), open for sign-up now."""
    saturday = next_weekday(5)
    values: dict[str, Any] = {
        "venue_id": hall.children_room.id,
        "title": "剪纸",
        "starts_at": at(saturday, 9),
        "ends_at": at(saturday, 10, 30),
        "capacity": 12,
        "kind": ActivityKind.CRAFT,
        "min_age": 6,
        "max_age": 12,
    }
    values.update(overrides)
    now = values.pop("now", None)
    async with services.db.unit_of_work(services.jobs) as uow:
        return await venues.create_activity(
            uow, viewer=hall.staff_viewer, draft=venues.ActivityDraft(**values), now=now
        )


async def sign_up_as(
    services: Services, viewer: Viewer, activity_id: int, *participants: int, now: datetime | None = None
) -> list[Any]:
    async with services.db.unit_of_work(services.jobs) as uow:
        return await venues.sign_up(
            uow, viewer=viewer, activity_id=activity_id, participant_ids=list(participants), now=now
        )


async def count(services: Services, model: Any, *conds: Any) -> int:
    async with services.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*conds)) or 0)


@dataclass
class Member:
    resident_id: int
    account_id: int
    token: str

    def viewer(self, community_id: int) -> Viewer:
        return Viewer(
            account_id=self.account_id, resident_id=self.resident_id, roles={community_id: frozenset({Role.RESIDENT})}
        )


async def crowd(services: Services, community: Community, n: int, *, age: int = 35) -> list[Member]:
    """`n` adult residents of the community, each with a login and a bearer token (bulk inserted)."""
    born = born_years_ago(local_today(), age)
    cipher = services.cipher
    tokens = [new_token() for _ in range(n)]
    async with services.db.unit_of_work() as uow:
        residents = []
        for i in range(n):
            nid = national_id(born)
            residents.append(
                Resident(
                    community_id=community.id, household_id=None, name=f"居民{i:03d}", gender="male", birth_date=born,
                    national_id_encrypted=cipher.encrypt(nid), national_id_hash=cipher.lookup_hash(nid),
                    national_id_masked=mask_national_id(nid),
                )
            )  # fmt: skip
        uow.session.add_all(residents)
        await uow.session.flush()
        accounts = []
        for r in residents:
            phone = fresh_phone()
            accounts.append(
                Account(
                    phone_hash=cipher.lookup_hash(phone), phone_encrypted=cipher.encrypt(phone),
                    phone_masked=mask_phone(phone), password_hash="!", display_name=r.name, resident_id=r.id,
                )
            )  # fmt: skip
        uow.session.add_all(accounts)
        await uow.session.flush()
        uow.session.add_all(
            RoleGrant(account_id=a.id, role=Role.RESIDENT.value, community_id=community.id) for a in accounts
        )
        uow.session.add_all(
            AccountSession(account_id=a.id, token_hash=token_hash(t), expires_at=utc_now() + timedelta(hours=2))
            for a, t in zip(accounts, tokens, strict=True)
        )
        await uow.session.flush()
        return [Member(r.id, a.id, t) for r, a, t in zip(residents, accounts, tokens, strict=True)]
