"""service hall and vehicles

Revision ID: 0007_hall
Revises: 0006_eldercare
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision: str = "0007_hall"
down_revision: str | None = "0006_eldercare"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hall_procedure",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("latest_version >= 1", name=op.f("ck_hall_procedure_version_positive")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_hall_procedure_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_procedure")),
        sa.UniqueConstraint("community_id", "code", name=op.f("uq_hall_procedure_community_id_code")),
    )
    op.create_index(op.f("ix_hall_procedure_community_id"), "hall_procedure", ["community_id"], unique=False)
    op.create_table(
        "hall_parking_quota",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("compound_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("quota", sa.Integer(), nullable=False),
        sa.Column("issued", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_hall_parking_quota_period")),
        sa.CheckConstraint("issued >= 0 AND issued <= quota", name=op.f("ck_hall_parking_quota_issued_within_quota")),
        sa.CheckConstraint("quota >= 0", name=op.f("ck_hall_parking_quota_quota_not_negative")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_hall_parking_quota_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["compound_id"],
            ["compound.id"],
            name=op.f("fk_hall_parking_quota_compound_id_compound"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_parking_quota")),
        sa.UniqueConstraint("compound_id", "starts_on", name=op.f("uq_hall_parking_quota_compound_id_starts_on")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # A compound's quota periods never overlap. SQLite has no exclusion constraints: there
        # writers are serialised and the service checks for an overlap first.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE hall_parking_quota ADD CONSTRAINT ex_hall_parking_quota_no_overlap "
            "EXCLUDE USING gist (compound_id WITH =, daterange(starts_on, ends_on, '[]') WITH &&)"
        )
    op.create_index(op.f("ix_hall_parking_quota_community_id"), "hall_parking_quota", ["community_id"], unique=False)
    op.create_table(
        "hall_vehicle",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("household_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("description", sa.String(length=100), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_hall_vehicle_community_id_community"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name=op.f("fk_hall_vehicle_household_id_household"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_vehicle")),
    )
    op.create_index(op.f("ix_hall_vehicle_household_id"), "hall_vehicle", ["household_id"], unique=False)
    op.create_index(
        "uq_hall_vehicle_community_id_plate_active",
        "hall_vehicle",
        ["community_id", "plate"],
        unique=True,
        postgresql_where=sa.text("removed_at IS NULL"),
        sqlite_where=sa.text("removed_at IS NULL"),
    )
    op.create_table(
        "hall_parking_permit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quota_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("compound_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("vehicle_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("household_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.String(length=200), nullable=True),
        sa.CheckConstraint("slot >= 1", name=op.f("ck_hall_parking_permit_slot_positive")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_hall_parking_permit_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["compound_id"],
            ["compound.id"],
            name=op.f("fk_hall_parking_permit_compound_id_compound"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_hall_parking_permit_household_id_household"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["quota_id"],
            ["hall_parking_quota.id"],
            name=op.f("fk_hall_parking_permit_quota_id_hall_parking_quota"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["hall_vehicle.id"],
            name=op.f("fk_hall_parking_permit_vehicle_id_hall_vehicle"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_parking_permit")),
    )
    op.create_index(op.f("ix_hall_parking_permit_community_id"), "hall_parking_permit", ["community_id"], unique=False)
    op.create_index(op.f("ix_hall_parking_permit_household_id"), "hall_parking_permit", ["household_id"], unique=False)
    op.create_index(op.f("ix_hall_parking_permit_vehicle_id"), "hall_parking_permit", ["vehicle_id"], unique=False)
    op.create_index(
        "uq_hall_parking_permit_quota_id_slot_active",
        "hall_parking_permit",
        ["quota_id", "slot"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
        sqlite_where=sa.text("revoked_at IS NULL"),
    )
    op.create_index(
        "uq_hall_parking_permit_quota_id_vehicle_id_active",
        "hall_parking_permit",
        ["quota_id", "vehicle_id"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
        sqlite_where=sa.text("revoked_at IS NULL"),
    )
    op.create_table(
        "hall_procedure_version",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("procedure_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column(
            "documents",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "steps",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("time_limit_days", sa.Integer(), nullable=False),
        sa.Column("fee_cents", sa.Integer(), nullable=False),
        sa.Column("handled_by", sa.String(length=200), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("published_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("fee_cents >= 0", name=op.f("ck_hall_procedure_version_fee_not_negative")),
        sa.CheckConstraint("time_limit_days >= 1", name=op.f("ck_hall_procedure_version_limit_positive")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_hall_procedure_version_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["hall_procedure.id"],
            name=op.f("fk_hall_procedure_version_procedure_id_hall_procedure"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["published_by_account_id"],
            ["account.id"],
            name=op.f("fk_hall_procedure_version_published_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_procedure_version")),
        sa.UniqueConstraint("procedure_id", "version", name=op.f("uq_hall_procedure_version_procedure_id_version")),
    )
    op.create_index(
        op.f("ix_hall_procedure_version_community_id"), "hall_procedure_version", ["community_id"], unique=False
    )
    op.create_table(
        "hall_application",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("procedure_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("applicant_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("applicant_resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("household_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("assignee_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "details",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("warn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column(
            "requested_documents",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("clock_round", sa.Integer(), nullable=False),
        sa.Column("vehicle_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("permit_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(closed_at IS NULL) = (state IN ('submitted', 'in_progress', 'needs_documents'))",
            name=op.f("ck_hall_application_closed_iff_final"),
        ),
        sa.CheckConstraint("step_index >= 0", name=op.f("ck_hall_application_step_not_negative")),
        sa.ForeignKeyConstraint(
            ["applicant_account_id"],
            ["account.id"],
            name=op.f("fk_hall_application_applicant_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["applicant_resident_id"],
            ["resident.id"],
            name=op.f("fk_hall_application_applicant_resident_id_resident"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["assignee_account_id"],
            ["account.id"],
            name=op.f("fk_hall_application_assignee_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_hall_application_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_hall_application_household_id_household"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["permit_id"],
            ["hall_parking_permit.id"],
            name=op.f("fk_hall_application_permit_id_hall_parking_permit"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["procedure_id"],
            ["hall_procedure.id"],
            name=op.f("fk_hall_application_procedure_id_hall_procedure"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["hall_vehicle.id"],
            name=op.f("fk_hall_application_vehicle_id_hall_vehicle"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["hall_procedure_version.id"],
            name=op.f("fk_hall_application_version_id_hall_procedure_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_application")),
    )
    op.create_index(
        "ix_hall_application_applicant_account_id_id", "hall_application", ["applicant_account_id", "id"], unique=False
    )
    op.create_index(
        op.f("ix_hall_application_applicant_resident_id"), "hall_application", ["applicant_resident_id"], unique=False
    )
    op.create_index(
        "ix_hall_application_assignee_queue",
        "hall_application",
        ["assignee_account_id", "due_at", "id"],
        unique=False,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.create_index(
        "ix_hall_application_lapse",
        "hall_application",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("escalated_at IS NULL AND closed_at IS NULL"),
        sqlite_where=sa.text("escalated_at IS NULL AND closed_at IS NULL"),
    )
    op.create_index(op.f("ix_hall_application_procedure_id"), "hall_application", ["procedure_id"], unique=False)
    op.create_index(
        "ix_hall_application_queue",
        "hall_application",
        ["community_id", "due_at", "id"],
        unique=False,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.create_index(
        "ix_hall_application_warn",
        "hall_application",
        ["warn_at"],
        unique=False,
        postgresql_where=sa.text("warned_at IS NULL AND closed_at IS NULL"),
        sqlite_where=sa.text("warned_at IS NULL AND closed_at IS NULL"),
    )
    op.create_table(
        "hall_application_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("application_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=True),
        sa.Column("step_name", sa.String(length=100), nullable=False),
        sa.Column("actor_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("actor_role", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_account_id"],
            ["account.id"],
            name=op.f("fk_hall_application_event_actor_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["hall_application.id"],
            name=op.f("fk_hall_application_event_application_id_hall_application"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_hall_application_event_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_application_event")),
    )
    op.create_index(
        "ix_hall_application_event_application_id_id", "hall_application_event", ["application_id", "id"], unique=False
    )
    op.create_index(
        op.f("ix_hall_application_event_community_id"), "hall_application_event", ["community_id"], unique=False
    )
    op.create_table(
        "hall_attachment",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("application_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("slot", sa.String(length=50), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("uploaded_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["hall_application.id"],
            name=op.f("fk_hall_attachment_application_id_hall_application"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_hall_attachment_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_account_id"],
            ["account.id"],
            name=op.f("fk_hall_attachment_uploaded_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_attachment")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_hall_attachment_storage_key")),
    )
    op.create_index(op.f("ix_hall_attachment_application_id"), "hall_attachment", ["application_id"], unique=False)
    op.create_index(op.f("ix_hall_attachment_community_id"), "hall_attachment", ["community_id"], unique=False)
    op.create_table(
        "hall_vehicle_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("vehicle_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column(
            "before",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "after",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("application_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("actor_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_account_id"],
            ["account.id"],
            name=op.f("fk_hall_vehicle_event_actor_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["hall_application.id"],
            name=op.f("fk_hall_vehicle_event_application_id_hall_application"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_hall_vehicle_event_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"],
            ["hall_vehicle.id"],
            name=op.f("fk_hall_vehicle_event_vehicle_id_hall_vehicle"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hall_vehicle_event")),
    )
    op.create_index(op.f("ix_hall_vehicle_event_community_id"), "hall_vehicle_event", ["community_id"], unique=False)
    op.create_index("ix_hall_vehicle_event_vehicle_id_id", "hall_vehicle_event", ["vehicle_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_hall_vehicle_event_vehicle_id_id", table_name="hall_vehicle_event")
    op.drop_index(op.f("ix_hall_vehicle_event_community_id"), table_name="hall_vehicle_event")
    op.drop_table("hall_vehicle_event")
    op.drop_index(op.f("ix_hall_attachment_community_id"), table_name="hall_attachment")
    op.drop_index(op.f("ix_hall_attachment_application_id"), table_name="hall_attachment")
    op.drop_table("hall_attachment")
    op.drop_index(op.f("ix_hall_application_event_community_id"), table_name="hall_application_event")
    op.drop_index("ix_hall_application_event_application_id_id", table_name="hall_application_event")
    op.drop_table("hall_application_event")
    op.drop_index(
        "ix_hall_application_warn",
        table_name="hall_application",
        postgresql_where=sa.text("warned_at IS NULL AND closed_at IS NULL"),
        sqlite_where=sa.text("warned_at IS NULL AND closed_at IS NULL"),
    )
    op.drop_index(
        "ix_hall_application_queue",
        table_name="hall_application",
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.drop_index(op.f("ix_hall_application_procedure_id"), table_name="hall_application")
    op.drop_index(
        "ix_hall_application_lapse",
        table_name="hall_application",
        postgresql_where=sa.text("escalated_at IS NULL AND closed_at IS NULL"),
        sqlite_where=sa.text("escalated_at IS NULL AND closed_at IS NULL"),
    )
    op.drop_index(
        "ix_hall_application_assignee_queue",
        table_name="hall_application",
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.drop_index(op.f("ix_hall_application_applicant_resident_id"), table_name="hall_application")
    op.drop_index("ix_hall_application_applicant_account_id_id", table_name="hall_application")
    op.drop_table("hall_application")
    op.drop_index(op.f("ix_hall_procedure_version_community_id"), table_name="hall_procedure_version")
    op.drop_table("hall_procedure_version")
    op.drop_index(
        "uq_hall_parking_permit_quota_id_vehicle_id_active",
        table_name="hall_parking_permit",
        postgresql_where=sa.text("revoked_at IS NULL"),
        sqlite_where=sa.text("revoked_at IS NULL"),
    )
    op.drop_index(
        "uq_hall_parking_permit_quota_id_slot_active",
        table_name="hall_parking_permit",
        postgresql_where=sa.text("revoked_at IS NULL"),
        sqlite_where=sa.text("revoked_at IS NULL"),
    )
    op.drop_index(op.f("ix_hall_parking_permit_vehicle_id"), table_name="hall_parking_permit")
    op.drop_index(op.f("ix_hall_parking_permit_household_id"), table_name="hall_parking_permit")
    op.drop_index(op.f("ix_hall_parking_permit_community_id"), table_name="hall_parking_permit")
    op.drop_table("hall_parking_permit")
    op.drop_index(
        "uq_hall_vehicle_community_id_plate_active",
        table_name="hall_vehicle",
        postgresql_where=sa.text("removed_at IS NULL"),
        sqlite_where=sa.text("removed_at IS NULL"),
    )
    op.drop_index(op.f("ix_hall_vehicle_household_id"), table_name="hall_vehicle")
    op.drop_table("hall_vehicle")
    op.drop_index(op.f("ix_hall_parking_quota_community_id"), table_name="hall_parking_quota")
    op.drop_table("hall_parking_quota")
    op.drop_index(op.f("ix_hall_procedure_community_id"), table_name="hall_procedure")
    op.drop_table("hall_procedure")
