"""Imports every table module so that Base.metadata is complete (for Alembic and tests)."""

from api.accounts import models as accounts_models
from api.canteen import models as canteen_models
from api.core import idempotency, jobs, outbox, scheduling
from api.core.db import Base
from api.dispatch import models as dispatch_models
from api.eldercare import models as eldercare_models
from api.hall import models as hall_models
from api.library import models as library_models
from api.listings import models as listings_models
from api.notices import models as notices_models
from api.notifications import models as notifications_models
from api.registry import models as registry_models
from api.tickets import models as tickets_models
from api.venues import models as venues_models

metadata = Base.metadata

__all__ = [
    "Base",
    "accounts_models",
    "canteen_models",
    "dispatch_models",
    "eldercare_models",
    "hall_models",
    "idempotency",
    "jobs",
    "library_models",
    "listings_models",
    "metadata",
    "notices_models",
    "notifications_models",
    "outbox",
    "registry_models",
    "scheduling",
    "tickets_models",
    "venues_models",
]
