"""elder care

Revision ID: 0006_eldercare
Revises: 0005_venue_photos
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

revision: str = "0006_eldercare"
down_revision: str | None = "0005_venue_photos"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
