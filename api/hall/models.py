"""Tables of the hall domain."""

from __future__ import annotations

from api.core.db import Base

__all__ = ["Base"]
