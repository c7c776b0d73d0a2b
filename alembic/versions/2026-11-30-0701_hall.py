"""service hall and vehicles

Revision ID: 0007_hall
Revises: 0006_eldercare
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

revision: str = "0007_hall"
down_revision: str | None = "0006_eldercare"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
