"""What actors share inside one worker process: settings, database and job sender."""

from __future__ import annotations

import asyncio

import dramatiq

from api.core.broker import DramatiqJobSender
from api.core.crypto import PersonalDataCipher
from api.core.database import Database
from api.core.jobs import JobSender
from api.core.pubsub import PubSub, build_pubsub
from api.settings import Settings

_settings: Settings | None = None
_broker: dramatiq.Broker | None = None
_sender: JobSender | None = None
_pubsub: PubSub | None = None
# Async engines belong to the event loop that made them; actors run in Dramatiq's loop thread.
_databases: dict[int, Database] = {}


def configure(
    settings: Settings, broker: dramatiq.Broker, *, sender: JobSender | None = None, pubsub: PubSub | None = None
) -> None:
    """Set what actors use; `sender` replaces the broker's sender (tests record jobs instead), `pubsub` the pushes."""
    global _settings, _broker, _sender, _pubsub
    _settings, _broker, _sender, _pubsub = settings, broker, sender, pubsub
    _databases.clear()


def settings() -> Settings:
    if _settings is None:
        raise RuntimeError("worker runtime is not configured; import worker.main first")
    return _settings


def database() -> Database:
    """The Database of the running event loop (created on first use)."""
    key = id(asyncio.get_running_loop())
    db = _databases.get(key)
    if db is None:
        s = settings()
        db = _databases[key] = Database(s.database_url, pool_size=s.db_pool_size)
    return db


def job_sender() -> JobSender:
    if _sender is not None:
        return _sender
    if _broker is None:
        raise RuntimeError("worker runtime is not configured")
    return DramatiqJobSender(_broker)


def cipher() -> PersonalDataCipher:
    """Decrypts what was stored encrypted (e.g. webhook secrets) with the settings' secret key."""
    return PersonalDataCipher(settings().secret_key.get_secret_value())


def pubsub() -> PubSub:
    """Where live pushes go: Redis pub/sub, or the in-process one the embedded server listens on."""
    global _pubsub
    if _pubsub is None:
        _pubsub = build_pubsub(settings())
    return _pubsub


async def dispose() -> None:
    for db in list(_databases.values()):
        await db.dispose()
    _databases.clear()
    if _pubsub is not None:
        await _pubsub.close()
