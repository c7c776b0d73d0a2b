"""Actors of the notices domain; HANDLERS maps actor names to their plain handlers (for tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

HANDLERS: dict[str, Callable[..., Awaitable[Any]]] = {}
