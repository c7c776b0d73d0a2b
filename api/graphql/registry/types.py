"""Registry types: communities down to residents, as Relay nodes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Annotated, Any, Self, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry import relay

from api.core.clock import age_on
from api.core.errors import DomainError, Forbidden
from api.core.pagination import PageArgs
from api.core.viewer import Permission
from api.graphql.context import Info
from api.graphql.loaders import ChildKey
from api.graphql.pagination import Connection, connection, page_args
from api.graphql.prefetch import Relation, loaded, rules
from api.registry import models
from api.registry.personal_data import PersonalField, RevealRequest
from api.registry.repository import ResidentFilter

R = TypeVar("R")


def _required(convert: Callable[[Any], R]) -> Callable[[Any], R]:
    def run(row: Any) -> R:
        assert row is not None
        return convert(row)

    return run


def _optional(convert: Callable[[Any], R]) -> Callable[[Any], R | None]:
    return lambda row: convert(row) if row is not None else None


@strawberry.enum(description="Gender as recorded in the national ID number.")
class Gender(Enum):
    MALE = "male"
    FEMALE = "female"


ResidentTagEnum = strawberry.enum(
    models.ResidentTag,
    name="ResidentTag",
    description="Circumstances that change how the community serves a person.",
)

ConsentPurposeEnum = strawberry.enum(models.ConsentPurpose, name="ConsentPurpose", description="What a consent covers.")


@strawberry.input(description="Filters for residents; every given condition must hold.")
class ResidentFilterInput:
    min_age: int | None = strawberry.field(default=None, description="Aged at least this many whole years.")
    max_age: int | None = strawberry.field(default=None, description="Aged at most this many whole years.")
    tags: list[models.ResidentTag] | None = strawberry.field(
        default=None, description="Has every one of these tags (at most 10)."
    )
    compound_id: relay.GlobalID | None = strawberry.field(default=None, description="Lives in this compound.")
    building_id: relay.GlobalID | None = strawberry.field(default=None, description="Lives in this building.")
    unit: int | None = strawberry.field(default=None, description="Lives in this unit number (with any building).")
    name: str | None = strawberry.field(default=None, description="Name contains this text.")

    def to_filter(self) -> ResidentFilter:
        from api.graphql.pagination import decode_id

        if self.tags is not None and len(self.tags) > 10:
            raise GraphQLError("At most 10 tags.", extensions={"code": "BAD_USER_INPUT"})
        for age in (self.min_age, self.max_age):
            if age is not None and not 0 <= age <= 150:
                raise GraphQLError("Ages are between 0 and 150.", extensions={"code": "BAD_USER_INPUT"})
        return ResidentFilter(
            min_age=self.min_age,
            max_age=self.max_age,
            tags=tuple(sorted(set(self.tags or ()))),
            compound_id=decode_id(self.compound_id, "Compound") if self.compound_id else None,
            building_id=decode_id(self.building_id, "Building") if self.building_id else None,
            unit=self.unit,
            name=(self.name or "").strip()[:50] or None,
        )


async def _nodes(loader: Any, ids: Iterable[str], required: bool) -> list[Any]:
    keys = []
    for raw in ids:
        try:
            keys.append(int(raw))
        except ValueError:
            keys.append(-1)
    return list(await loader.load_many(keys))


def _child_page(info: Info, relation: str, parent_id: int, first: int | None, after: str | None,
                filt: ResidentFilter | None = None) -> tuple[ChildKey, ChildKey]:  # fmt: skip
    args = page_args(first, after)
    f = filt or ResidentFilter()
    return ChildKey(relation, parent_id, args, f), ChildKey(relation, parent_id, PageArgs(), f)


async def _children(info: Info, relation: str, parent_id: int, first: int | None, after: str | None,
                    to_node: Any, filt: ResidentFilter | None = None) -> Connection[Any]:  # fmt: skip
    key, count_key = _child_page(info, relation, parent_id, first, after, filt)
    page = await info.context.loaders.children.load(key)
    return connection(page, to_node, lambda: info.context.loaders.child_count.load(count_key))


FirstArg = Annotated[int | None, strawberry.argument(description="Page size, 1 to 100 (default 20).")]
AfterArg = Annotated[str | None, strawberry.argument(description="Return results after this cursor.")]


@strawberry.type(description="A residents' committee (社区居委会): the tenant every record belongs to.")
class Community(relay.Node):
    db_id: relay.NodeID[int]
    code: str = strawberry.field(description="Short unique code.")
    name: str = strawberry.field(description="Name, e.g. 明珠花苑社区.")
    city: str = strawberry.field(description="City.")
    district: str = strawberry.field(description="District (区).")
    street: str = strawberry.field(description="Sub-district (街道).")
    address: str = strawberry.field(description="Office address.")

    @classmethod
    def from_model(cls, m: models.Community) -> Self:
        return cls(db_id=m.id, code=m.code, name=m.name, city=m.city, district=m.district, street=m.street,
                   address=m.address)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _nodes(info.context.loaders.community, node_ids, required)
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="Residential estates (小区) of the community.")
    async def compounds(self, info: Info, first: FirstArg = None, after: AfterArg = None) -> Connection[Compound]:
        return await _children(info, "community.compounds", self.db_id, first, after, Compound.from_model)

    @strawberry.field(description="Residents of the community, filtered (staff only).")
    async def residents(
        self,
        info: Info,
        filter: Annotated[
            ResidentFilterInput | None, strawberry.argument(description="Conditions residents must meet.")
        ] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Resident]:
        if not info.context.viewer.can(Permission.VIEW_REGISTRY, self.db_id):
            raise GraphQLError("You may not list this community's residents.", extensions={"code": "FORBIDDEN"})
        filt = filter.to_filter() if filter else ResidentFilter()
        return await _children(info, "community.residents", self.db_id, first, after, Resident.from_model, filt)

    @strawberry.field(description="The viewer's roles in this community.")
    def my_roles(self, info: Info) -> list[str]:
        return sorted(r.value for r in info.context.viewer.roles_in(self.db_id))


@strawberry.type(description="A residential estate (小区) inside a community.")
class Compound(relay.Node):
    db_id: relay.NodeID[int]
    name: str = strawberry.field(description="Name, e.g. 明珠花苑南区.")
    community_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: models.Compound) -> Self:
        return cls(db_id=m.id, name=m.name, community_id=m.community_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _nodes(info.context.loaders.compound, node_ids, required)
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="The community the compound belongs to.")
    def community(self, info: Info) -> Community:
        return loaded(info.context.loaders.community, self.community_id, _required(Community.from_model))

    @strawberry.field(description="Buildings of the compound.")
    async def buildings(self, info: Info, first: FirstArg = None, after: AfterArg = None) -> Connection[Building]:
        return await _children(info, "compound.buildings", self.db_id, first, after, Building.from_model)


@strawberry.type(description="A building (楼栋); households are numbered by unit and room.")
class Building(relay.Node):
    db_id: relay.NodeID[int]
    name: str = strawberry.field(description="Name, e.g. 3号楼.")
    floors: int = strawberry.field(description="Number of floors.")
    units: int = strawberry.field(description="Number of units (单元), numbered from 1.")
    community_id: strawberry.Private[int]
    compound_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: models.Building) -> Self:
        return cls(db_id=m.id, name=m.name, floors=m.floors, units=m.units, community_id=m.community_id,
                   compound_id=m.compound_id)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _nodes(info.context.loaders.building, node_ids, required)
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="The compound the building stands in.")
    def compound(self, info: Info) -> Compound:
        return loaded(info.context.loaders.compound, self.compound_id, _required(Compound.from_model))

    @strawberry.field(description="Households in the building (staff only; empty for others).")
    async def households(
        self,
        info: Info,
        unit: Annotated[int | None, strawberry.argument(description="Only this unit.")] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Household]:
        return await _children(
            info, "building.households", self.db_id, first, after, Household.from_model, ResidentFilter(unit=unit)
        )


@strawberry.type(description="A household (户): one dwelling and the people registered in it.")
class Household(relay.Node):
    db_id: relay.NodeID[int]
    unit: int = strawberry.field(description="Unit number (单元) in the building.")
    room: str = strawberry.field(description="Room number, e.g. 502.")
    community_id: strawberry.Private[int]
    building_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: models.Household) -> Self:
        return cls(db_id=m.id, unit=m.unit, room=m.room, community_id=m.community_id, building_id=m.building_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _nodes(info.context.loaders.household, node_ids, required)
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="The building of the household.")
    def building(self, info: Info) -> Building:
        return loaded(info.context.loaders.building, self.building_id, _required(Building.from_model))

    @strawberry.field(description="The address as people write it: building, unit and room.")
    def address(self, info: Info) -> str:
        unit, room = self.unit, self.room
        return loaded(
            info.context.loaders.building, self.building_id, lambda row: f"{row.name if row else '?'}{unit}单元{room}"
        )

    @strawberry.field(description="People registered in the household.")
    async def members(self, info: Info, first: FirstArg = None, after: AfterArg = None) -> Connection[Resident]:
        return await _children(info, "household.members", self.db_id, first, after, Resident.from_model)


@strawberry.type(description="A consent decision (PIPL); the newest record per purpose is in force.")
class ConsentRecord:
    purpose: models.ConsentPurpose = strawberry.field(description="What the consent covers.")
    granted: bool = strawberry.field(description="Whether consent was given (false: refused or withdrawn).")
    note: str | None = strawberry.field(description="Note by the staff member who recorded it.")
    recorded_at: dt.datetime = strawberry.field(description="When it was recorded.")
    given_by_guardian: bool = strawberry.field(description="True when a guardian gave it for the resident.")

    @classmethod
    def from_model(cls, m: models.ConsentRecord) -> Self:
        return cls(purpose=models.ConsentPurpose(m.purpose), granted=m.granted, note=m.note,
                   recorded_at=m.recorded_at, given_by_guardian=m.given_by_resident_id not in (None, m.resident_id))  # fmt: skip


PurposeArg = Annotated[
    str | None, strawberry.argument(description="Why the unmasked value is needed; written to the access log.")
]
RevealArg = Annotated[
    bool,
    strawberry.argument(description="Show the full value (needs the right; every unmasked read is logged)."),
]


@strawberry.type(description="A person registered in the community (居民).")
class Resident(relay.Node):
    db_id: relay.NodeID[int]
    name: str = strawberry.field(description="Full name.")
    gender: Gender = strawberry.field(description="Gender.")
    birth_date: dt.date = strawberry.field(description="Date of birth.")
    relation_to_head: str | None = strawberry.field(description="Relation to the head of household, e.g. 配偶.")
    community_id: strawberry.Private[int]
    household_id: strawberry.Private[int | None]
    guardian_id: strawberry.Private[int | None]
    national_id_masked: strawberry.Private[str]
    phone_masked: strawberry.Private[str | None]

    @classmethod
    def from_model(cls, m: models.Resident) -> Self:
        return cls(
            db_id=m.id, name=m.name, gender=Gender(m.gender), birth_date=m.birth_date,
            relation_to_head=m.relation_to_head, community_id=m.community_id, household_id=m.household_id,
            guardian_id=m.guardian_id, national_id_masked=m.national_id_masked, phone_masked=m.phone_masked,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _nodes(info.context.loaders.resident, node_ids, required)
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="Age in whole years today (China Standard Time).")
    def age(self, info: Info) -> int:
        return age_on(self.birth_date, info.context.today)

    @strawberry.field(description="True when under 18.")
    def is_minor(self, info: Info) -> bool:
        return age_on(self.birth_date, info.context.today) < 18

    async def _reveal(self, info: Info, field: PersonalField, purpose: str | None) -> str | None:
        try:
            return await info.context.loaders.reveal.load(RevealRequest(self.db_id, field, purpose or ""))
        except Forbidden as exc:
            raise GraphQLError(exc.message, extensions={"code": exc.code}) from exc
        except DomainError as exc:
            raise GraphQLError(exc.message, extensions={"code": "BAD_USER_INPUT"}) from exc

    @strawberry.field(description="National ID number, masked (first 4 and last 4) unless revealed.")
    async def national_id(self, info: Info, reveal: RevealArg = False, purpose: PurposeArg = None) -> str:
        if not reveal:
            return self.national_id_masked
        return await self._reveal(info, PersonalField.NATIONAL_ID, purpose) or ""

    @strawberry.field(description="Mobile number, masked (138****1234) unless revealed.")
    async def phone(self, info: Info, reveal: RevealArg = False, purpose: PurposeArg = None) -> str | None:
        if not reveal or self.phone_masked is None:
            return self.phone_masked
        return await self._reveal(info, PersonalField.PHONE, purpose)

    @strawberry.field(description="Circumstances recorded for the resident.")
    def tags(self, info: Info) -> list[models.ResidentTag]:
        return loaded(info.context.loaders.resident_tags, self.db_id, list)

    @strawberry.field(description="The household the resident is registered in.")
    def household(self, info: Info) -> Household | None:
        if self.household_id is None:
            return None
        return loaded(info.context.loaders.household, self.household_id, _optional(Household.from_model))

    @strawberry.field(description="The guardian of a child (required under 14).")
    def guardian(self, info: Info) -> Resident | None:
        if self.guardian_id is None:
            return None
        return loaded(info.context.loaders.resident, self.guardian_id, _optional(Resident.from_model))

    @strawberry.field(description="Consent records, newest first.")
    async def consents(self, info: Info) -> list[ConsentRecord]:
        return [ConsentRecord.from_model(c) for c in await info.context.loaders.consents.load(self.db_id)]


# -- look-ahead loading (api/graphql/prefetch.py): a page's relations, one batch per level ----------


def _ids(objects: Any, attr: str) -> list[int]:
    return list(dict.fromkeys(v for o in objects if (v := getattr(o, attr)) is not None))


def _own_ids(objects: Any) -> list[int]:
    return list(dict.fromkeys(getattr(o, "db_id", None) or o.id for o in objects))


async def _load(loader: Any, ids: list[int]) -> list[Any]:
    return [row for row in await loader.load_many(ids) if row is not None] if ids else []


rules(
    "Resident",
    {
        "household": Relation(lambda c, objs, _f: _load(c.loaders.household, _ids(objs, "household_id")), "Household"),
        "guardian": Relation(lambda c, objs, _f: _load(c.loaders.resident, _ids(objs, "guardian_id")), "Resident"),
        "tags": Relation(lambda c, objs, _f: c.loaders.resident_tags.load_many(_own_ids(objs))),
    },
)
rules(
    "Household",
    {
        "building": Relation(lambda c, objs, _f: _load(c.loaders.building, _ids(objs, "building_id")), "Building"),
        "address": Relation(lambda c, objs, _f: _load(c.loaders.building, _ids(objs, "building_id"))),
    },
)
rules(
    "Building",
    {"compound": Relation(lambda c, objs, _f: _load(c.loaders.compound, _ids(objs, "compound_id")), "Compound")},
)
rules(
    "Compound",
    {"community": Relation(lambda c, objs, _f: _load(c.loaders.community, _ids(objs, "community_id")))},
)
