"""Who is asking: the viewer, their roles per community, and what those roles allow."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from api.core.errors import Forbidden, Unauthenticated


class Role(StrEnum):
    RESIDENT = "resident"
    VOLUNTEER = "volunteer"
    CRAFTSPERSON = "craftsperson"
    STAFF = "staff"
    COMMUNITY_ADMIN = "community_admin"
    DISTRICT_ADMIN = "district_admin"


class Permission(StrEnum):
    """What a role allows inside one community."""

    VIEW_REGISTRY = "view_registry"
    MANAGE_REGISTRY = "manage_registry"
    VIEW_PERSONAL_DATA = "view_personal_data"
    VIEW_SURVEY = "view_survey"
    MANAGE_ROLES = "manage_roles"
    MANAGE_TICKETS = "manage_tickets"
    DISPATCH = "dispatch"
    MANAGE_LIBRARY = "manage_library"
    MANAGE_ELDER_CARE = "manage_elder_care"
    VIEW_HEALTH_DATA = "view_health_data"
    MANAGE_HALL = "manage_hall"
    MODERATE_LISTINGS = "moderate_listings"
    MANAGE_CANTEEN = "manage_canteen"
    PUBLISH_NOTICES = "publish_notices"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.RESIDENT: frozenset(),
    Role.VOLUNTEER: frozenset(),
    Role.CRAFTSPERSON: frozenset(),
    Role.STAFF: frozenset(
        {
            Permission.VIEW_REGISTRY,
            Permission.MANAGE_REGISTRY,
            Permission.VIEW_SURVEY,
            Permission.MANAGE_TICKETS,
            Permission.DISPATCH,
            Permission.MANAGE_LIBRARY,
            Permission.MANAGE_ELDER_CARE,
            Permission.MANAGE_HALL,
            Permission.MODERATE_LISTINGS,
            Permission.MANAGE_CANTEEN,
            Permission.PUBLISH_NOTICES,
        }
    ),
    Role.COMMUNITY_ADMIN: frozenset(Permission),
    # A district admin holds, in each community of the district, what a community admin holds.
    Role.DISTRICT_ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated account (or anonymous) and its roles, keyed by community id."""

    account_id: int | None = None
    resident_id: int | None = None
    session_id: int | None = None
    roles: dict[int, frozenset[Role]] = field(default_factory=dict)

    @classmethod
    def anonymous(cls) -> Viewer:
        return cls()

    @property
    def is_authenticated(self) -> bool:
        return self.account_id is not None

    @property
    def community_ids(self) -> frozenset[int]:
        """Every community the viewer has any role in: the limit of what exists for them."""
        return frozenset(self.roles)

    def roles_in(self, community_id: int) -> frozenset[Role]:
        return self.roles.get(community_id, frozenset())

    def can(self, permission: Permission, community_id: int) -> bool:
        return any(permission in ROLE_PERMISSIONS[r] for r in self.roles_in(community_id))

    def communities_where(self, permission: Permission) -> frozenset[int]:
        return frozenset(cid for cid in self.roles if self.can(permission, cid))

    def require_authenticated(self) -> None:
        if not self.is_authenticated:
            raise Unauthenticated("Log in first.")

    def require(self, permission: Permission, community_id: int) -> None:
        """Raise Forbidden unless the viewer holds `permission` in the community."""
        self.require_authenticated()
        if not self.can(permission, community_id):
            raise Forbidden(f"You may not do this here ({permission.value}).")

    def permissions_in(self, community_id: int) -> frozenset[Permission]:
        return frozenset(p for r in self.roles_in(community_id) for p in ROLE_PERMISSIONS[r])


def merge_roles(pairs: Iterable[tuple[int, Role]]) -> dict[int, frozenset[Role]]:
    out: dict[int, set[Role]] = {}
    for community_id, role in pairs:
        out.setdefault(community_id, set()).add(role)
    return {k: frozenset(v) for k, v in out.items()}
