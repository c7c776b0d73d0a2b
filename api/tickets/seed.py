"""Demo set-up for tickets: the default categories and a responder profile for demo workers."""

from __future__ import annotations

from sqlalchemy import select

from api.accounts import service as accounts_service
from api.accounts.models import Account
from api.core.database import Database
from api.core.viewer import Role
from api.dispatch.models import AvailabilityWindow, Responder, ResponderKind
from api.registry.models import Community
from api.tickets.service import ensure_categories

STAFF_SKILLS = ["municipal", "electrical", "plumbing", "lift", "gas"]
CRAFT_SKILLS = ["tailoring", "shoe_repair", "watch_repair", "appliance_repair", "haircut"]


async def seed_tickets_demo(db: Database) -> tuple[int, int]:
    """Categories for every community, and responders for its staff and craftspeople. Returns (categories, responders)."""
    async with db.unit_of_work() as uow:
        community_ids = list((await uow.session.scalars(select(Community.id))).all())
        categories = await ensure_categories(uow, community_ids=community_ids)
        responders = 0
        for community_id in community_ids:
            for role, kind, skills in (
                (Role.STAFF, ResponderKind.STAFF, STAFF_SKILLS),
                (Role.CRAFTSPERSON, ResponderKind.CRAFTSPERSON, CRAFT_SKILLS),
            ):
                for account_id in await accounts_service.accounts_with_roles(
                    uow.session, community_id=community_id, roles={role}
                ):
                    exists = await uow.session.scalar(
                        select(Responder.id).where(
                            Responder.community_id == community_id,
                            Responder.account_id == account_id,
                            Responder.kind == kind.value,
                        )
                    )
                    if exists is not None:
                        continue
                    account = await uow.session.get(Account, account_id)
                    responder = Responder(
                        community_id=community_id,
                        account_id=account_id,
                        kind=kind.value,
                        display_name=account.display_name if account else kind.value,
                        skills=list(skills),
                        max_open=10 if kind is ResponderKind.STAFF else 5,
                        grab_enabled=kind is ResponderKind.CRAFTSPERSON,
                        active=True,
                    )
                    uow.session.add(responder)
                    await uow.session.flush()
                    if kind is ResponderKind.CRAFTSPERSON:
                        # The Saturday pop-up in the square, 9:00–12:00.
                        uow.session.add(
                            AvailabilityWindow(responder_id=responder.id, weekday=5, start_minute=540, end_minute=720)
                        )
                    responders += 1
    return categories, responders
