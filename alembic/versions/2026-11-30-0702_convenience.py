"""listings, canteen and notices

Revision ID: 0008_convenience
Revises: 0007_hall
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

revision: str = "0008_convenience"
down_revision: str | None = "0007_hall"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # -- listings --
    # -- end listings --
    # -- canteen and notices --
    # -- end canteen and notices --
    pass


def downgrade() -> None:
    # -- canteen and notices --
    # -- end canteen and notices --
    # -- listings --
    # -- end listings --
    pass
