"""venue photos

Revision ID: 0005_venue_photos
Revises: 0004
Create Date: 2026-11-30 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_venue_photos"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "venue_photo",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("venue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_venue_photo_community_id_community"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venue.id"], name=op.f("fk_venue_photo_venue_id_venue"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_venue_photo")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_venue_photo_storage_key")),
    )
    op.create_index(op.f("ix_venue_photo_community_id"), "venue_photo", ["community_id"], unique=False)
    op.create_index(op.f("ix_venue_photo_venue_id"), "venue_photo", ["venue_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_venue_photo_venue_id"), table_name="venue_photo")
    op.drop_index(op.f("ix_venue_photo_community_id"), table_name="venue_photo")
    op.drop_table("venue_photo")
