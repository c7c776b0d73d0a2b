"""A broker that restarted empty: the relay sees the new run id and sends recent jobs again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from api.core.broker import DramatiqJobSender, build_broker
from api.core.clock import utc_now
from api.core.jobs import OutboxMessage
from api.core.outbox import BrokerEpoch, broker_run_id, relay_pending, replay_if_broker_restarted
from tests.conftest import make_settings

WINDOW = timedelta(minutes=15)


async def _add(db, sender, *, sent_ago: timedelta, delay_ms: int | None = None) -> int:
    async with db.unit_of_work() as uow:
        row = OutboxMessage(
            actor_name="accounts.purge_expired_sessions",
            queue_name="maintenance",
            kwargs={"period_key": "x"},
            delay_ms=delay_ms,
            created_at=utc_now() - sent_ago,
            sent_at=utc_now() - sent_ago,
            attempts=1,
        )
        uow.session.add(row)
        await uow.session.flush()
        return row.id


async def test_a_new_run_id_sends_recent_and_still_delayed_jobs_again(
    pg_url, db, redis_url, redis_namespace, redis_client
) -> None:
    settings = make_settings(pg_url, redis_url=redis_url, redis_namespace=redis_namespace)
    sender = DramatiqJobSender(build_broker(settings))
    recent = await _add(db, sender, sent_ago=timedelta(minutes=2))
    old = await _add(db, sender, sent_ago=timedelta(hours=2))
    delayed = await _add(db, sender, sent_ago=timedelta(hours=1), delay_ms=90 * 60 * 1000)  # due in 30 minutes

    # the first look only records the run id
    assert await replay_if_broker_restarted(db, sender, window=WINDOW) == 0
    assert await replay_if_broker_restarted(db, sender, window=WINDOW) == 0
    # when: the broker's run id changes (as after a restart)
    async with db.unit_of_work() as uow:
        await uow.session.execute(update(BrokerEpoch).values(run_id="an-earlier-run"))
    replayed = await replay_if_broker_restarted(db, sender, window=WINDOW)
    sent = await relay_pending(db, sender, older_than=timedelta(0))

    # then: the recent and the still-delayed job are published again, the old one is not
    assert replayed == 2
    assert sent == 2
    async with db.read_session() as session:
        rows = {r.id: r for r in (await session.scalars(select(OutboxMessage))).all()}
        epoch = await session.get(BrokerEpoch, 1)
    assert rows[recent].attempts == rows[delayed].attempts == 2
    assert rows[old].attempts == 1
    assert rows[delayed].delay_ms is not None
    assert 29 * 60_000 < rows[delayed].delay_ms <= 30 * 60_000
    assert epoch is not None
    assert epoch.run_id == broker_run_id(sender)
    assert int(redis_client.llen(f"{redis_namespace}:maintenance")) == 1  # the recent one, ready now
    assert int(redis_client.llen(f"{redis_namespace}:maintenance.DQ")) == 1  # the delayed one
