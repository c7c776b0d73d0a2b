"""Builds the broker, installs it, and declares every actor on it."""

from __future__ import annotations

import importlib

import dramatiq

from api.core.broker import build_broker
from api.settings import Settings
from worker import runtime

ACTOR_MODULES = (
    "worker.actors.accounts",
    "worker.actors.canteen",
    "worker.actors.dispatch",
    "worker.actors.eldercare",
    "worker.actors.hall",
    "worker.actors.library",
    "worker.actors.listings",
    "worker.actors.notices",
    "worker.actors.notifications",
    "worker.actors.tickets",
    "worker.actors.venues",
)


def actors() -> list[dramatiq.Actor[..., object]]:
    """Every actor of the product (importing the modules declares them on the current broker)."""
    modules = [importlib.import_module(name) for name in ACTOR_MODULES]
    return [value for module in modules for value in vars(module).values() if isinstance(value, dramatiq.Actor)]


def install(settings: Settings, broker: dramatiq.Broker | None = None) -> dramatiq.Broker:
    """Install `broker` (built from settings when None) as the global broker with every actor."""
    broker = broker or build_broker(settings)
    dramatiq.set_broker(broker)
    runtime.configure(settings, broker)
    for actor in actors():
        actor.broker = broker
        broker.declare_actor(actor)
    return broker
