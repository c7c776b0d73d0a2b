"""dispatch requests remember whether the preferred responder goes first

Revision ID: 0010_preferred_first
Revises: 0009_hardening
Create Date: 2026-11-30 08:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_preferred_first"
down_revision: str | None = "0009_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dispatch_request") as batch:
        batch.add_column(sa.Column("preferred_first", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("dispatch_request") as batch:
        batch.drop_column("preferred_first")
