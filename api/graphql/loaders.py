"""Per-request dataloaders: every relation is batched, every batch opens its own short session."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, or_, select
from strawberry.dataloader import DataLoader

from api.core.database import Database
from api.core.db import Base, any_of, read_plain
from api.core.pagination import Page, PageArgs, count_by_parent, fetch_pages_by_parent
from api.core.viewer import Permission, Viewer
from api.graphql.tickets.loaders import TicketLoaders
from api.registry import repository
from api.registry.models import (
    Building,
    Community,
    Compound,
    ConsentRecord,
    Household,
    Resident,
    ResidentTag,
)
from api.registry.personal_data import RevealRequest, reveal
from api.registry.repository import ResidentFilter, resident_conditions

M = TypeVar("M", bound=Base)


@dataclass(frozen=True, slots=True)
class ChildKey:
    """One parent's page of one relation; keys equal but for `parent_id` batch together."""

    relation: str
    parent_id: int
    args: PageArgs = field(default_factory=PageArgs)
    filter: ResidentFilter = field(default_factory=ResidentFilter)


class Loaders:
    def __init__(self, db: Database, viewer: Viewer, today: date, *, cipher: Any = None, request_id: str = "") -> None:
        self.db = db
        self.viewer = viewer
        self.today = today
        self.cipher = cipher
        self.request_id = request_id
        self.visible = viewer.community_ids
        self.registry_scope = viewer.communities_where(Permission.VIEW_REGISTRY)

    # Each loader is made on first use: a request uses a few of them.

    @cached_property
    def community(self) -> DataLoader[int, Community | None]:
        return DataLoader(self._rows(Community, self._community_where))

    @cached_property
    def compound(self) -> DataLoader[int, Compound | None]:
        return DataLoader(self._rows(Compound, self._tenant_where(Compound)))

    @cached_property
    def building(self) -> DataLoader[int, Building | None]:
        return DataLoader(self._rows(Building, self._tenant_where(Building)))

    @cached_property
    def household(self) -> DataLoader[int, Household | None]:
        return DataLoader(self._rows(Household, self._household_where))

    @cached_property
    def resident(self) -> DataLoader[int, Resident | None]:
        return DataLoader(self._rows(Resident, self._resident_where))

    @cached_property
    def resident_tags(self) -> DataLoader[int, list[ResidentTag]]:
        return DataLoader(self._load_tags)

    @cached_property
    def consents(self) -> DataLoader[int, list[ConsentRecord]]:
        return DataLoader(self._load_consents)

    @cached_property
    def children(self) -> DataLoader[ChildKey, Page[Any]]:
        return DataLoader(self._load_children)

    @cached_property
    def child_count(self) -> DataLoader[ChildKey, int]:
        return DataLoader(self._load_child_counts)

    @cached_property
    def reveal(self) -> DataLoader[RevealRequest, str | None]:
        return DataLoader(self._load_reveal)

    @cached_property
    def tickets(self) -> TicketLoaders:
        return TicketLoaders(self.db, self.viewer)

    # -- scoping: what exists for this viewer -------------------------------------------------

    def _community_where(self) -> Any:
        return Community.id.in_(self.visible)

    def _tenant_where(self, model: Any) -> Callable[[], Any]:
        return lambda: model.community_id.in_(self.visible)

    def _own_household_id(self) -> Any:
        return select(Resident.household_id).where(Resident.id == self.viewer.resident_id).scalar_subquery()

    def _household_where(self) -> Any:
        cond: ColumnElement[bool] = Household.community_id.in_(self.registry_scope)
        if self.viewer.resident_id is not None:
            cond = or_(cond, Household.id == self._own_household_id())
        return cond

    def _resident_where(self) -> Any:
        cond: ColumnElement[bool] = Resident.community_id.in_(self.registry_scope)
        if self.viewer.resident_id is not None:
            cond = or_(cond, Resident.id == self.viewer.resident_id)
        return cond

    def _rows(self, model: type[M], where: Callable[[], Any]) -> Callable[[list[int]], Any]:
        async def load(ids: list[int]) -> list[M | None]:
            async with self.db.read_session() as session:
                id_col = model.id  # type: ignore[attr-defined]
                cond = any_of(id_col, ids, sqlite=self.db.is_sqlite)
                rows = await read_plain(session, select(model).where(cond, where()))
            by_id = {row.id: row for row in rows}  # type: ignore[attr-defined]
            return [by_id.get(i) for i in ids]

        return load

    async def _load_tags(self, ids: list[int]) -> list[list[ResidentTag]]:
        async with self.db.read_session() as session:
            tags = await repository.tags_for(session, ids)
        return [tags[i] for i in ids]

    async def _load_consents(self, ids: list[int]) -> list[list[ConsentRecord]]:
        async with self.db.read_session() as session:
            consents = await repository.latest_consents(session, ids)
        return [consents[i] for i in ids]

    # -- relations ------------------------------------------------------------------------------

    def _relation(self, key: ChildKey) -> tuple[type[Base], Any, list[Any]]:
        """(child model, parent column, scope conditions) for a relation name."""
        if key.relation == "community.compounds":
            return Compound, Compound.community_id, [Compound.community_id.in_(self.visible)]
        if key.relation == "compound.buildings":
            return Building, Building.compound_id, [Building.community_id.in_(self.visible)]
        if key.relation == "building.households":
            conds: list[ColumnElement[bool]] = [Household.community_id.in_(self.registry_scope)]
            if key.filter.unit is not None:
                conds.append(Household.unit == key.filter.unit)
            return Household, Household.building_id, conds
        if key.relation == "household.members":
            return Resident, Resident.household_id, [self._resident_where()]
        if key.relation == "community.residents":
            conds = [Resident.community_id.in_(self.registry_scope), *resident_conditions(key.filter, today=self.today)]
            return Resident, Resident.community_id, conds
        raise ValueError(f"unknown relation {key.relation}")

    @staticmethod
    def _group(keys: Sequence[ChildKey]) -> dict[tuple[str, PageArgs, ResidentFilter], list[int]]:
        groups: dict[tuple[str, PageArgs, ResidentFilter], list[int]] = defaultdict(list)
        for key in keys:
            groups[(key.relation, key.args, key.filter)].append(key.parent_id)
        return groups

    async def _load_children(self, keys: list[ChildKey]) -> list[Page[Any]]:
        results: dict[ChildKey, Page[Any]] = {}
        async with self.db.read_session() as session:
            for (relation, args, filt), parent_ids in self._group(keys).items():
                sample = ChildKey(relation, parent_ids[0], args, filt)
                model, parent_col, conds = self._relation(sample)
                pages = await fetch_pages_by_parent(session, model, parent_col, sorted(set(parent_ids)), args, *conds)
                for pid in parent_ids:
                    results[ChildKey(relation, pid, args, filt)] = pages[pid]
        return [results[k] for k in keys]

    async def _load_child_counts(self, keys: list[ChildKey]) -> list[int]:
        results: dict[ChildKey, int] = {}
        async with self.db.read_session() as session:
            for (relation, args, filt), parent_ids in self._group(keys).items():
                sample = ChildKey(relation, parent_ids[0], args, filt)
                _model, parent_col, conds = self._relation(sample)
                counts = await count_by_parent(session, parent_col, sorted(set(parent_ids)), *conds)
                for pid in parent_ids:
                    results[ChildKey(relation, pid, args, filt)] = counts[pid]
        return [results[k] for k in keys]

    async def _load_reveal(self, keys: list[RevealRequest]) -> list[str | None]:
        async with self.db.unit_of_work() as uow:
            return await reveal(uow, viewer=self.viewer, cipher=self.cipher, requests=keys, request_id=self.request_id)


def request_loader(info: Any, key: str, load: Any) -> DataLoader[Any, Any]:
    """The request's dataloader named `key`, made from `load` on first use (one per request and key)."""
    loaders = info.context.extra
    if key not in loaders:
        loaders[key] = DataLoader(load)
    loader: DataLoader[Any, Any] = loaders[key]
    return loader
