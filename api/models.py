"""Imports every table module so that Base.metadata is complete (for Alembic and tests)."""

from api.accounts import models as accounts_models
from api.core import jobs, scheduling
from api.core.db import Base
from api.registry import models as registry_models

metadata = Base.metadata

__all__ = ["Base", "accounts_models", "jobs", "metadata", "registry_models", "scheduling"]
