"""Demo data of the canteen domain (runs after the registry seed)."""

from __future__ import annotations

from api.core.database import Database


async def seed_demo(db: Database) -> None:
    """Create the demo data; safe to call on a database that already has it."""
    return
