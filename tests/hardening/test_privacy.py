"""The access log is append-only, and the retention job forgets what is past its policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from api.core.clock import utc_now
from api.registry.models import PersonalDataAccess
from tests.factories import make_estate
from tests.jobs import JobRunner


async def _log_row(services, estate, *, days_ago: int) -> None:
    resident = estate.residents[0]
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(
            insert(PersonalDataAccess).values(
                community_id=estate.community.id,
                subject_resident_id=resident.id,
                field="national_id",
                purpose="test",
                accessed_at=utc_now() - timedelta(days=days_ago),
            )
        )


async def test_the_access_log_cannot_be_rewritten_or_deleted(services) -> None:
    estate = await make_estate(services, households=1, members=1)
    await _log_row(services, estate, days_ago=0)
    with pytest.raises(DBAPIError, match="append-only"):
        async with services.db.unit_of_work() as uow:
            await uow.session.execute(update(PersonalDataAccess).values(purpose="nothing to see"))
    with pytest.raises(DBAPIError, match="append-only"):
        async with services.db.unit_of_work() as uow:
            await uow.session.execute(delete(PersonalDataAccess))
    async with services.db.read_session() as session:
        assert await session.scalar(select(PersonalDataAccess.purpose)) == "test"


async def test_retention_purges_only_what_is_past_its_policy(settings, services, jobs) -> None:
    estate = await make_estate(services, households=1, members=1)
    await _log_row(services, estate, days_ago=2000)
    await _log_row(services, estate, days_ago=10)
    runner = JobRunner(settings, jobs)
    try:
        from worker.actors.accounts import handle_retention

        first = await handle_retention("2026-11-30")
        second = await handle_retention("2026-11-30")
    finally:
        await runner.close()
    assert first["access_log_rows"] == 1
    assert second == {"idempotency_keys": 0, "ticket_contacts": 0, "access_log_rows": 0}
    async with services.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(PersonalDataAccess)) == 1
        # the purge switch was local to the retention transaction
        assert await session.scalar(text("SELECT current_setting('linli.audit_purge', true)")) in (None, "")
