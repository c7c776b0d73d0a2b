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
    import sqlalchemy as sa
    from alembic import op
    from sqlalchemy.dialects import postgresql, sqlite

    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    json_doc = (
        sa.JSON()
        .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
        .with_variant(sqlite.JSON(), "sqlite")
    )
    kinds = "'rental', 'sale', 'job', 'rental_wanted', 'need'"
    statuses = "'draft', 'pending', 'published', 'rejected', 'expired', 'withdrawn', 'removed'"
    op.create_table(
        "listing",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("community_id", big_id, nullable=False),
        sa.Column("compound_id", big_id, nullable=True),
        sa.Column("poster_account_id", big_id, nullable=False),
        sa.Column("poster_resident_id", big_id, nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=True),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column("details", json_doc, nullable=False),
        sa.Column("revision", sa.Integer(), server_default="0", nullable=False),
        sa.Column("renewals", sa.Integer(), server_default="0", nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sort_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expiry_warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("moderated_by_account_id", big_id, nullable=True),
        sa.Column("moderated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reject_reason", sa.String(length=500), nullable=True),
        sa.Column("report_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("hidden_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hidden_reason", sa.String(length=20), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN ({kinds})", name=op.f("ck_listing_kind_known")),
        sa.CheckConstraint(f"status IN ({statuses})", name=op.f("ck_listing_status_known")),
        sa.CheckConstraint("price_cents IS NULL OR price_cents >= 0", name=op.f("ck_listing_price_not_negative")),
        sa.CheckConstraint("area_m2 IS NULL OR area_m2 > 0", name=op.f("ck_listing_area_positive")),
        sa.CheckConstraint(
            "status <> 'published' OR expires_at IS NOT NULL", name=op.f("ck_listing_published_expires")
        ),
        sa.CheckConstraint(
            "status <> 'rejected' OR reject_reason IS NOT NULL", name=op.f("ck_listing_rejected_has_reason")
        ),
        sa.CheckConstraint("report_count >= 0", name=op.f("ck_listing_report_count_not_negative")),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_listing_community_id_community"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["compound_id"], ["compound.id"], name=op.f("fk_listing_compound_id_compound"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["poster_account_id"], ["account.id"], name=op.f("fk_listing_poster_account_id_account"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["poster_resident_id"],
            ["resident.id"],
            name=op.f("fk_listing_poster_resident_id_resident"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["moderated_by_account_id"],
            ["account.id"],
            name=op.f("fk_listing_moderated_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing")),
    )
    op.create_index(op.f("ix_listing_compound_id"), "listing", ["compound_id"], unique=False)
    op.create_index(op.f("ix_listing_poster_resident_id"), "listing", ["poster_resident_id"], unique=False)
    op.create_index(
        "ix_listing_community_id_status_sort_at", "listing", ["community_id", "status", "sort_at"], unique=False
    )
    op.create_index(
        "ix_listing_public_feed",
        "listing",
        ["community_id", "sort_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'published' AND hidden_at IS NULL"),
        sqlite_where=sa.text("status = 'published' AND hidden_at IS NULL"),
        postgresql_include=["expires_at", "kind", "price_cents", "area_m2", "compound_id"],
    )
    op.create_index("ix_listing_status_expires_at", "listing", ["status", "expires_at"], unique=False)
    op.create_index("ix_listing_poster_account_id_status", "listing", ["poster_account_id", "status"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # Keyword search: ILIKE '%…%' with 3+ characters over title and description together uses this
        # trigram index (Chinese text included: the database's ctype is UTF-8). The service queries the
        # same expression. SQLite searches with a plain LIKE.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_listing_text_trgm ON listing USING gin ((title || ' ' || description) gin_trgm_ops)"
        )
    op.create_table(
        "listing_photo",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("community_id", big_id, nullable=False),
        sa.Column("listing_id", big_id, nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_listing_photo_community_id_community"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listing.id"], name=op.f("fk_listing_photo_listing_id_listing"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing_photo")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_listing_photo_storage_key")),
    )
    op.create_index(op.f("ix_listing_photo_community_id"), "listing_photo", ["community_id"], unique=False)
    op.create_index(op.f("ix_listing_photo_listing_id"), "listing_photo", ["listing_id"], unique=False)
    op.create_table(
        "listing_report",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("community_id", big_id, nullable=False),
        sa.Column("listing_id", big_id, nullable=False),
        sa.Column("reporter_account_id", big_id, nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("by_staff", sa.Boolean(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_listing_report_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listing.id"], name=op.f("fk_listing_report_listing_id_listing"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reporter_account_id"],
            ["account.id"],
            name=op.f("fk_listing_report_reporter_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing_report")),
        sa.UniqueConstraint(
            "listing_id", "reporter_account_id", name=op.f("uq_listing_report_listing_id_reporter_account_id")
        ),
    )
    op.create_index(op.f("ix_listing_report_community_id"), "listing_report", ["community_id"], unique=False)
    op.create_index(
        op.f("ix_listing_report_reporter_account_id"), "listing_report", ["reporter_account_id"], unique=False
    )
    op.create_table(
        "listing_conversation",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("community_id", big_id, nullable=False),
        sa.Column("listing_id", big_id, nullable=False),
        sa.Column("inquirer_account_id", big_id, nullable=False),
        sa.Column("poster_account_id", big_id, nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_listing_conversation_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listing.id"], name=op.f("fk_listing_conversation_listing_id_listing"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["inquirer_account_id"],
            ["account.id"],
            name=op.f("fk_listing_conversation_inquirer_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["poster_account_id"],
            ["account.id"],
            name=op.f("fk_listing_conversation_poster_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing_conversation")),
        sa.UniqueConstraint(
            "listing_id", "inquirer_account_id", name=op.f("uq_listing_conversation_listing_id_inquirer_account_id")
        ),
    )
    op.create_index(
        op.f("ix_listing_conversation_community_id"), "listing_conversation", ["community_id"], unique=False
    )
    op.create_index(
        op.f("ix_listing_conversation_inquirer_account_id"),
        "listing_conversation",
        ["inquirer_account_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_listing_conversation_poster_account_id"), "listing_conversation", ["poster_account_id"], unique=False
    )
    op.create_table(
        "listing_message",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("community_id", big_id, nullable=False),
        sa.Column("conversation_id", big_id, nullable=False),
        sa.Column("listing_id", big_id, nullable=False),
        sa.Column("sender_account_id", big_id, nullable=False),
        sa.Column("recipient_account_id", big_id, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_listing_message_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["listing_conversation.id"],
            name=op.f("fk_listing_message_conversation_id_listing_conversation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listing.id"], name=op.f("fk_listing_message_listing_id_listing"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sender_account_id"],
            ["account.id"],
            name=op.f("fk_listing_message_sender_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_account_id"],
            ["account.id"],
            name=op.f("fk_listing_message_recipient_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing_message")),
    )
    op.create_index(op.f("ix_listing_message_community_id"), "listing_message", ["community_id"], unique=False)
    op.create_index(op.f("ix_listing_message_listing_id"), "listing_message", ["listing_id"], unique=False)
    op.create_index(
        op.f("ix_listing_message_recipient_account_id"), "listing_message", ["recipient_account_id"], unique=False
    )
    op.create_index(
        "ix_listing_message_conversation_id_sender_sent_on",
        "listing_message",
        ["conversation_id", "sender_account_id", "sent_on"],
        unique=False,
    )
    # -- end listings --
    # -- canteen and notices --
    import sqlalchemy as sa
    from alembic import op
    from sqlalchemy.dialects import postgresql, sqlite

    op.create_table(
        "canteen",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column(
            "opening_days",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("default_capacity", sa.Integer(), nullable=False),
        sa.Column("breakfast_cutoff_minute", sa.Integer(), nullable=False),
        sa.Column("lunch_cutoff_minute", sa.Integer(), nullable=False),
        sa.Column("dinner_cutoff_minute", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "breakfast_cutoff_minute BETWEEN -2880 AND 1440 AND lunch_cutoff_minute BETWEEN -2880 AND 1440 AND dinner_cutoff_minute BETWEEN -2880 AND 1440",
            name=op.f("ck_canteen_cutoff_range"),
        ),
        sa.CheckConstraint("default_capacity >= 1", name=op.f("ck_canteen_capacity_positive")),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_canteen_community_id_community"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canteen")),
        sa.UniqueConstraint("community_id", "name", name=op.f("uq_canteen_community_id_name")),
    )
    op.create_index(op.f("ix_canteen_community_id"), "canteen", ["community_id"], unique=False)
    op.create_table(
        "canteen_meal",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("canteen_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("served_on", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column(
            "dishes",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("base_price_fen", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), server_default="0", nullable=False),
        sa.Column("serves_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("serves_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cutoff_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("base_price_fen >= 0", name=op.f("ck_canteen_meal_price_not_negative")),
        sa.CheckConstraint("capacity >= 1", name=op.f("ck_canteen_meal_capacity_positive")),
        sa.CheckConstraint("reserved >= 0 AND reserved <= capacity", name=op.f("ck_canteen_meal_within_capacity")),
        sa.CheckConstraint("serves_until > serves_from", name=op.f("ck_canteen_meal_serving_window")),
        sa.ForeignKeyConstraint(
            ["canteen_id"], ["canteen.id"], name=op.f("fk_canteen_meal_canteen_id_canteen"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_canteen_meal_community_id_community"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canteen_meal")),
        sa.UniqueConstraint("canteen_id", "served_on", "kind", name=op.f("uq_canteen_meal_canteen_id_served_on_kind")),
    )
    op.create_index(
        "ix_canteen_meal_community_id_served_on", "canteen_meal", ["community_id", "served_on"], unique=False
    )
    op.create_index(
        "ix_canteen_meal_open_cutoff",
        "canteen_meal",
        ["cutoff_at"],
        unique=False,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.create_table(
        "canteen_price_rule",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("canteen_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("min_age", sa.Integer(), nullable=True),
        sa.Column("tag", sa.String(length=32), nullable=True),
        sa.Column("meal_kind", sa.String(length=20), nullable=True),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("min_age IS NOT NULL OR tag IS NOT NULL", name=op.f("ck_canteen_price_rule_has_condition")),
        sa.CheckConstraint(
            "min_age IS NULL OR (min_age >= 0 AND min_age <= 150)", name=op.f("ck_canteen_price_rule_age_range")
        ),
        sa.CheckConstraint("price_fen >= 0", name=op.f("ck_canteen_price_rule_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["canteen_id"], ["canteen.id"], name=op.f("fk_canteen_price_rule_canteen_id_canteen"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_canteen_price_rule_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canteen_price_rule")),
        sa.UniqueConstraint("canteen_id", "name", name=op.f("uq_canteen_price_rule_canteen_id_name")),
    )
    op.create_index(op.f("ix_canteen_price_rule_canteen_id"), "canteen_price_rule", ["canteen_id"], unique=False)
    op.create_index(op.f("ix_canteen_price_rule_community_id"), "canteen_price_rule", ["community_id"], unique=False)
    op.create_table(
        "canteen_count_sheet",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("meal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("portions", sa.Integer(), nullable=False),
        sa.Column("pickup", sa.Integer(), nullable=False),
        sa.Column("delivery", sa.Integer(), nullable=False),
        sa.Column("takings_fen", sa.Integer(), nullable=False),
        sa.Column(
            "by_rule",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_canteen_count_sheet_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["meal_id"],
            ["canteen_meal.id"],
            name=op.f("fk_canteen_count_sheet_meal_id_canteen_meal"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canteen_count_sheet")),
        sa.UniqueConstraint("meal_id", name=op.f("uq_canteen_count_sheet_meal_id")),
    )
    op.create_index(op.f("ix_canteen_count_sheet_community_id"), "canteen_count_sheet", ["community_id"], unique=False)
    op.create_table(
        "canteen_reservation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("meal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reserved_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("price_rule_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("price_rule_name", sa.String(length=50), nullable=False),
        sa.Column("delivery", sa.Boolean(), nullable=False),
        sa.Column("delivery_override", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.CheckConstraint("status IN ('active', 'cancelled')", name=op.f("ck_canteen_reservation_status_known")),
        sa.CheckConstraint("price_fen >= 0", name=op.f("ck_canteen_reservation_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["cancelled_by_account_id"],
            ["account.id"],
            name=op.f("fk_canteen_reservation_cancelled_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_canteen_reservation_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["meal_id"],
            ["canteen_meal.id"],
            name=op.f("fk_canteen_reservation_meal_id_canteen_meal"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["price_rule_id"],
            ["canteen_price_rule.id"],
            name=op.f("fk_canteen_reservation_price_rule_id_canteen_price_rule"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reserved_by_account_id"],
            ["account.id"],
            name=op.f("fk_canteen_reservation_reserved_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["resident.id"],
            name=op.f("fk_canteen_reservation_resident_id_resident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canteen_reservation")),
    )
    op.create_index(op.f("ix_canteen_reservation_community_id"), "canteen_reservation", ["community_id"], unique=False)
    op.create_index("ix_canteen_reservation_meal_id_status", "canteen_reservation", ["meal_id", "status"], unique=False)
    op.create_index(
        op.f("ix_canteen_reservation_reserved_by_account_id"),
        "canteen_reservation",
        ["reserved_by_account_id"],
        unique=False,
    )
    op.create_index("ix_canteen_reservation_resident_id_id", "canteen_reservation", ["resident_id", "id"], unique=False)
    op.create_index(
        "uq_canteen_reservation_meal_id_resident_id",
        "canteen_reservation",
        ["meal_id", "resident_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "notice",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("whole_community", sa.Boolean(), nullable=False),
        sa.Column(
            "compound_ids",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "building_ids",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("author_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("publish_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status <> 'scheduled' OR publish_at IS NOT NULL", name=op.f("ck_notice_scheduled_has_time")
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'scheduled', 'published', 'withdrawn')", name=op.f("ck_notice_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["author_account_id"], ["account.id"], name=op.f("fk_notice_author_account_id_account"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_notice_community_id_community"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice")),
    )
    op.create_index("ix_notice_community_id_id", "notice", ["community_id", "id"], unique=False)
    op.create_index(
        "ix_notice_scheduled_publish_at",
        "notice",
        ["publish_at"],
        unique=False,
        postgresql_where=sa.text("status = 'scheduled'"),
        sqlite_where=sa.text("status = 'scheduled'"),
    )
    op.create_table(
        "notice_delivery",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("notice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_notice_delivery_account_id_account"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_notice_delivery_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notice.id"], name=op.f("fk_notice_delivery_notice_id_notice"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_notice_delivery_resident_id_resident"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_delivery")),
        sa.UniqueConstraint("notice_id", "account_id", name=op.f("uq_notice_delivery_notice_id_account_id")),
    )
    op.create_index("ix_notice_delivery_account_id_read_at", "notice_delivery", ["account_id", "read_at"], unique=False)
    op.create_index(op.f("ix_notice_delivery_community_id"), "notice_delivery", ["community_id"], unique=False)
    # -- end canteen and notices --


def downgrade() -> None:
    # -- canteen and notices --
    import sqlalchemy as sa
    from alembic import op

    op.drop_index(op.f("ix_notice_delivery_community_id"), table_name="notice_delivery")
    op.drop_index("ix_notice_delivery_account_id_read_at", table_name="notice_delivery")
    op.drop_table("notice_delivery")
    op.drop_index(
        "ix_notice_scheduled_publish_at",
        table_name="notice",
        postgresql_where=sa.text("status = 'scheduled'"),
        sqlite_where=sa.text("status = 'scheduled'"),
    )
    op.drop_index("ix_notice_community_id_id", table_name="notice")
    op.drop_table("notice")
    op.drop_index(
        "uq_canteen_reservation_meal_id_resident_id",
        table_name="canteen_reservation",
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.drop_index("ix_canteen_reservation_resident_id_id", table_name="canteen_reservation")
    op.drop_index(op.f("ix_canteen_reservation_reserved_by_account_id"), table_name="canteen_reservation")
    op.drop_index("ix_canteen_reservation_meal_id_status", table_name="canteen_reservation")
    op.drop_index(op.f("ix_canteen_reservation_community_id"), table_name="canteen_reservation")
    op.drop_table("canteen_reservation")
    op.drop_index(op.f("ix_canteen_count_sheet_community_id"), table_name="canteen_count_sheet")
    op.drop_table("canteen_count_sheet")
    op.drop_index(op.f("ix_canteen_price_rule_community_id"), table_name="canteen_price_rule")
    op.drop_index(op.f("ix_canteen_price_rule_canteen_id"), table_name="canteen_price_rule")
    op.drop_table("canteen_price_rule")
    op.drop_index(
        "ix_canteen_meal_open_cutoff",
        table_name="canteen_meal",
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.drop_index("ix_canteen_meal_community_id_served_on", table_name="canteen_meal")
    op.drop_table("canteen_meal")
    op.drop_index(op.f("ix_canteen_community_id"), table_name="canteen")
    op.drop_table("canteen")
    # -- end canteen and notices --
    # -- listings --
    from alembic import op

    op.drop_table("listing_message")
    op.drop_table("listing_conversation")
    op.drop_table("listing_report")
    op.drop_table("listing_photo")
    op.drop_table("listing")
    # -- end listings --
