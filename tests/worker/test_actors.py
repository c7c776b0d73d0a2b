from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from api.accounts.models import AccountSession
from api.core.clock import utc_now
from api.core.crypto import token_hash
from api.core.database import Database
from api.core.viewer import Role
from api.graphql.context import Services
from api.settings import Settings
from tests.factories import make_community, make_login
from worker import runtime
from worker.actors.accounts import handle_purge_expired_sessions, purge_expired_sessions
from worker.main import actors, install


@pytest.fixture
async def installed(settings: Settings) -> AsyncIterator[StubBroker]:
    """The worker runtime on an in-process broker; the previous broker is put back afterwards."""
    previous = dramatiq.broker.global_broker
    broker = StubBroker()
    install(settings, broker)
    yield broker
    await runtime.dispose()
    broker.close()
    if previous is not None:
        dramatiq.set_broker(previous)
        for actor in actors():
            actor.broker = previous
    else:
        dramatiq.broker.global_broker = None


async def sessions_by_token(db: Database) -> dict[str, int]:
    """Session ids keyed by the label their token hash was made from."""
    labels = {token_hash(label): label for label in LABELS}
    async with db.read_session() as session:
        rows = (await session.execute(select(AccountSession.token_hash, AccountSession.id))).all()
    return {labels.get(h, "login"): i for h, i in rows}


LABELS = (
    "expired 31 days ago",
    "expired 29 days ago",
    "revoked 31 days ago",
    "revoked 29 days ago",
    "expired 40 days ago, revoked 35 days ago",
    "active",
    "active, expires in 40 days",
)


async def make_sessions(services: Services) -> None:
    login = await make_login(services, role=Role.RESIDENT, community=await make_community(services.db))
    now = utc_now()

    def ago(days: int) -> datetime:
        return now - timedelta(days=days)

    plan = {
        "expired 31 days ago": (ago(31), None),
        "expired 29 days ago": (ago(29), None),
        "revoked 31 days ago": (now + timedelta(days=1), ago(31)),
        "revoked 29 days ago": (now + timedelta(days=1), ago(29)),
        "expired 40 days ago, revoked 35 days ago": (ago(40), ago(35)),
        "active": (now + timedelta(hours=1), None),
        "active, expires in 40 days": (now + timedelta(days=40), None),
    }
    async with services.db.unit_of_work() as uow:
        uow.session.add_all(
            AccountSession(account_id=login.account.id, token_hash=token_hash(label), expires_at=e, revoked_at=r)
            for label, (e, r) in plan.items()
        )


async def test_purge_deletes_sessions_that_ended_more_than_30_days_ago(
    services: Services, installed: StubBroker
) -> None:
    # given
    await make_sessions(services)
    # when
    purged = await handle_purge_expired_sessions("1795996800")
    # then
    assert purged == 3
    assert sorted(await sessions_by_token(services.db)) == [
        "active",
        "active, expires in 40 days",
        "expired 29 days ago",
        "login",
        "revoked 29 days ago",
    ]


async def test_purging_twice_is_harmless(services: Services, installed: StubBroker) -> None:
    # given
    await make_sessions(services)
    await handle_purge_expired_sessions("1795996800")
    kept = await sessions_by_token(services.db)
    # when
    purged = await handle_purge_expired_sessions("1795996800")
    # then
    assert purged == 0
    assert await sessions_by_token(services.db) == kept
    assert len(kept) == 5


async def test_purge_with_nothing_to_do(services: Services, installed: StubBroker) -> None:
    assert await handle_purge_expired_sessions("1795996800") == 0


async def test_the_actor_is_declared_on_the_installed_broker(installed: StubBroker) -> None:
    # then
    assert purge_expired_sessions.actor_name == "accounts.purge_expired_sessions"
    assert purge_expired_sessions.queue_name == "maintenance"
    assert purge_expired_sessions.broker is installed
    assert installed.get_actor("accounts.purge_expired_sessions") is purge_expired_sessions
    assert "maintenance" in installed.get_declared_queues()
