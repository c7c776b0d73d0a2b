"""Settings: the one reader of the process environment (LINLI_ prefix)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "linli-embedded-development-key-not-for-production"


class Environment(StrEnum):
    EMBEDDED = "embedded"
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Typed configuration; defaults give a working embedded setup."""

    model_config = SettingsConfigDict(env_prefix="LINLI_", env_file=".env", extra="ignore")

    environment: Environment = Environment.EMBEDDED
    database_url: str = "sqlite+aiosqlite:///./linli.db"
    # Empty means the in-process queue (the embedded default).
    redis_url: str = ""
    # Prefix of every Dramatiq key in Redis; hosts sharing a namespace share the queues.
    redis_namespace: str = "dramatiq"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    db_pool_size: int = 10
    db_echo: bool = False

    host: str = "127.0.0.1"
    port: int = 8000

    session_ttl_hours: int = 24 * 14
    # argon2id parameters (RFC 9106 second recommended option by default).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4

    graphql_ide: bool = True
    graphql_introspection: bool = True
    # Relay nesting costs two levels per list: communities → … → members is 15 deep.
    graphql_max_depth: int = 16
    graphql_max_aliases: int = 30
    graphql_max_tokens: int = 5000
    graphql_max_cost: int = 50_000  # about the number of objects a response may hold
    graphql_max_directives: int = 10
    # Rate limits (per minute) and the login lockout; counted in Redis when LINLI_REDIS_URL is set.
    rate_limit_per_address: int = Field(600, ge=1)
    rate_limit_per_account: int = Field(300, ge=1)
    login_attempts_per_address: int = Field(30, ge=1)
    login_max_failures: int = Field(5, ge=1)
    login_lockout_minutes: int = Field(15, ge=1)
    # How long an Idempotency-Key is remembered, and how long one may stay in progress.
    idempotency_hours: int = Field(24, ge=1)
    # A dispatch request or offer that has not moved for this long gets its job sent again.
    dispatch_sweep_stale_seconds: int = Field(120, ge=10)
    # After a broker restart, jobs published this recently (or still delayed) are sent again.
    broker_replay_window_minutes: int = Field(15, ge=1)
    # Retention: closed tickets lose contact name and exact place; the access log is kept 3 years (PIPL).
    ticket_contact_retention_days: int = Field(730, ge=30)
    access_log_retention_days: int = Field(1095, ge=365)
    # When set, GET /metrics needs `Authorization: Bearer <token>`.
    metrics_token: SecretStr = SecretStr("")
    # JSON log lines (production default) or text.
    log_json: bool | None = None

    outbox_relay_interval_seconds: float = 5.0
    outbox_relay_grace_seconds: float = 10.0
    scheduler_tick_seconds: float = 5.0
    # Dramatiq on Redis (README "Worker faults and recovery"). A worker process silent for the
    # heartbeat timeout is dead: the next maintenance pass (run by this many broker calls in a
    # million; idle consumers poll every queue about once a second) requeues its unacked messages.
    broker_heartbeat_timeout_ms: int = Field(5_000, ge=1_000)
    broker_maintenance_chance: int = Field(100_000, ge=0, le=1_000_000)
    # Failed jobs retry with exponential backoff within these bounds, up to each actor's max_retries;
    # a message whose worker process died during this many deliveries goes to the dead-letter queue.
    broker_retry_min_backoff_ms: int = Field(1_000, ge=1)
    broker_retry_max_backoff_ms: int = Field(300_000, ge=1)
    broker_max_deliveries: int = Field(3, ge=1)

    seed_on_start: bool = True

    # Ticket photos: files under media_dir, checked and re-encoded on upload.
    media_dir: str = "./media"
    photo_max_bytes: int = 8_000_000
    photo_max_count: int = 6
    photo_max_pixels: int = 40_000_000

    # Library: returned loans are unlinked from their reader after this many days (statistics stay).
    library_history_days: int = Field(180, ge=1)

    # Venues: how long a freed seat is held for the next on the waitlist; repeated no-shows block sign-ups.
    venues_offer_minutes: int = Field(720, ge=1)
    venues_no_show_limit: int = Field(3, ge=1)
    venues_no_show_window_days: int = Field(90, ge=1)
    venues_no_show_block_days: int = Field(30, ge=0)

    # Listings: published for this many days, the poster warned this many days before; a listing is
    # hidden pending review once this many residents report it; messages per sender, listing and day;
    # whether a renewal goes back to moderation; keywords of 1–2 characters scan at most this many listings.
    listings_publish_days: int = Field(30, ge=1)
    listings_expiry_warning_days: int = Field(3, ge=0)
    listings_report_threshold: int = Field(3, ge=1)
    listings_messages_per_day: int = Field(10, ge=1)
    listings_renewal_needs_review: bool = False
    listings_short_keyword_scan: int = Field(5000, ge=100)

    # Elder care: who counts as an elder, how long a visit offer waits, and when an unvisited elder is escalated.
    eldercare_min_age: int = Field(60, ge=40, le=100)
    eldercare_offer_hours: int = Field(24, ge=1)
    eldercare_grace_hours: int = Field(24, ge=1)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded_queue(self) -> bool:
        return not self.redis_url

    @model_validator(mode="after")
    def _production_needs_real_values(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            key = self.secret_key.get_secret_value()
            if key == DEV_SECRET_KEY or len(key) < 32:
                raise ValueError("LINLI_SECRET_KEY must be set to a random value of 32+ characters in production")
            if self.graphql_ide or self.graphql_introspection:
                # Production never exposes the console or introspection by accident.
                self.graphql_ide = False
                self.graphql_introspection = False
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the environment once per process."""
    return Settings()
