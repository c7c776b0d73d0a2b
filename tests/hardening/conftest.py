"""Fixtures for the hardening tests: a staff login in a community with one building."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from api.core.viewer import Role
from api.graphql.context import Services
from api.registry.models import Building, Community
from tests.factories import Login, make_building, make_community, make_compound, make_login


@dataclass
class Office:
    community: Community
    building: Building
    staff: Login

    @property
    def building_gid(self) -> str:
        return base64.b64encode(f"Building:{self.building.id}".encode()).decode()


@pytest.fixture
async def office(services: Services) -> Office:
    community = await make_community(services.db)
    building = await make_building(services.db, await make_compound(services.db, community))
    return Office(community, building, await make_login(services, role=Role.STAFF, community=community))
