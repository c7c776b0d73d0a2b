"""Jobs of the hall domain, and its periodic jobs (name, period, job built from the period key)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from api.core.jobs import Job

PERIODIC: list[tuple[str, timedelta, Callable[[str], Job]]] = []
