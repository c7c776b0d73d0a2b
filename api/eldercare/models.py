"""Tables of the eldercare domain."""

from __future__ import annotations

from api.core.db import Base

__all__ = ["Base"]
