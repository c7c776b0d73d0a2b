"""Per-request context: viewer, database, loaders, and the services' collaborators."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import strawberry

from api.accounts.service import Passwords
from api.core.crypto import PersonalDataCipher
from api.core.database import Database
from api.core.jobs import JobSender
from api.core.pubsub import PubSub
from api.core.ratelimit import MemoryRateLimiter, RateLimiter
from api.core.viewer import Viewer
from api.settings import Settings
from api.tickets.photos import PhotoStore

if TYPE_CHECKING:
    from api.graphql.loaders import Loaders


@dataclass
class Services:
    """Process-wide collaborators built once at startup."""

    settings: Settings
    db: Database
    jobs: JobSender
    cipher: PersonalDataCipher
    passwords: Passwords
    pubsub: PubSub
    photos: PhotoStore
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)


@dataclass
class Context:
    services: Services
    viewer: Viewer
    loaders: Loaders
    today: date
    request_id: str
    request: Any = None
    response: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The graphql-transport-ws `connection_init` payload (set by strawberry on websockets).
    connection_params: dict[str, Any] | None = None

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def jobs(self) -> JobSender:
        return self.services.jobs

    @property
    def cipher(self) -> PersonalDataCipher:
        return self.services.cipher


Info = strawberry.Info[Context, None]
