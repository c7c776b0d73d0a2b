"""Demo set-up for tickets: the default categories, a responder profile for demo workers, and their pop-ups."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from api.accounts import service as accounts_service
from api.accounts.models import Account
from api.core.clock import CHINA_TZ, local_today
from api.core.database import Database, UnitOfWork
from api.core.viewer import Role
from api.dispatch.models import AvailabilityWindow, Responder, ResponderKind
from api.registry.models import Community
from api.tickets.models import TicketCategory, TicketKind, WorkshopSession
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
            await seed_workshop_sessions(uow, community_id=community_id)
    return categories, responders


async def seed_workshop_sessions(uow: UnitOfWork, *, community_id: int, today: date | None = None) -> int:
    """Next Saturday's pop-up in the square for each craftsperson; returns how many were added.

    9:00–12:00 China time, 20-minute slots, 2 seats each, free; a craftsperson who already has it is skipped.
    """
    today = today or local_today()
    saturday = today + timedelta(days=(5 - today.weekday()) % 7 or 7)
    starts_at = datetime.combine(saturday, time(9, 0), CHINA_TZ).astimezone(UTC)
    categories = (
        await uow.session.scalars(
            select(TicketCategory)
            .where(TicketCategory.community_id == community_id, TicketCategory.kind == TicketKind.WORKSHOP.value)
            .order_by(TicketCategory.id)
        )
    ).all()
    craftspeople = (
        await uow.session.scalars(
            select(Responder)
            .where(Responder.community_id == community_id, Responder.kind == ResponderKind.CRAFTSPERSON.value)
            .order_by(Responder.id)
        )
    ).all()
    added = 0
    for responder in craftspeople:
        category = next((c for c in categories if c.skill in (responder.skills or ())), None)
        exists = await uow.session.scalar(
            select(WorkshopSession.id).where(
                WorkshopSession.responder_id == responder.id, WorkshopSession.starts_at == starts_at
            )
        )
        if category is None or exists is not None:
            continue
        uow.session.add(
            WorkshopSession(
                community_id=community_id,
                responder_id=responder.id,
                category_id=category.id,
                title=f"周六广场便民服务：{category.name}",
                location="社区文化广场",
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=3),
                slot_minutes=20,
                seats_per_slot=2,
                price_cents=0,
            )
        )
        added += 1
    await uow.session.flush()
    return added
