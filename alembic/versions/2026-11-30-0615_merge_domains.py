"""merge the calendar, library and venues branches

Revision ID: 0004
Revises: 0003_calendar, 0003_library, 0003_venues
Create Date: 2026-11-30 06:15:00
"""

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | Sequence[str] | None = ("0003_calendar", "0003_library", "0003_venues")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
