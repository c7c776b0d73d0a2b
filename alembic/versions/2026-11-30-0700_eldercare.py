"""elder care: profiles, assessments, care tiers, volunteers, teams, pairs, visits, findings, campaigns, time bank

Revision ID: 0006_eldercare
Revises: 0005_venue_photos
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision: str = "0006_eldercare"
down_revision: str | None = "0005_venue_photos"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "elder_care_policy",
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("younger_elder_min_age", sa.Integer(), nullable=False),
        sa.Column("younger_elder_max_age", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "younger_elder_min_age >= 40 AND younger_elder_min_age <= younger_elder_max_age",
            name=op.f("ck_elder_care_policy_age_range"),
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_elder_care_policy_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("community_id", name=op.f("pk_elder_care_policy")),
    )
    op.create_table(
        "elder_volunteer_team",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_elder_volunteer_team_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_volunteer_team")),
        sa.UniqueConstraint("community_id", "name", name=op.f("uq_elder_volunteer_team_community_id_name")),
    )
    op.create_index(
        op.f("ix_elder_volunteer_team_community_id"), "elder_volunteer_team", ["community_id"], unique=False
    )
    op.create_table(
        "care_tier_version",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_care_tier_version_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_account_id"],
            ["account.id"],
            name=op.f("fk_care_tier_version_created_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_tier_version")),
        sa.UniqueConstraint("community_id", "version", name=op.f("uq_care_tier_version_community_id_version")),
    )
    op.create_index(op.f("ix_care_tier_version_community_id"), "care_tier_version", ["community_id"], unique=False)
    op.create_table(
        "elder_campaign",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "tags",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("min_age", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_elder_campaign_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_elder_campaign_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_account_id"],
            ["account.id"],
            name=op.f("fk_elder_campaign_created_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_campaign")),
    )
    op.create_index(op.f("ix_elder_campaign_community_id"), "elder_campaign", ["community_id"], unique=False)
    op.create_table(
        "care_tier_rule",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("min_level", sa.Integer(), nullable=False),
        sa.Column("max_level", sa.Integer(), nullable=False),
        sa.Column("lives_alone", sa.Boolean(), nullable=True),
        sa.Column(
            "required_flags",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("visits_per_month", sa.Integer(), nullable=False),
        sa.Column(
            "visit_types",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "min_level >= 0 AND min_level <= max_level AND max_level <= 4", name=op.f("ck_care_tier_rule_level_range")
        ),
        sa.CheckConstraint(
            "visits_per_month >= 0 AND visits_per_month <= 31", name=op.f("ck_care_tier_rule_visits_range")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["care_tier_version.id"],
            name=op.f("fk_care_tier_rule_version_id_care_tier_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_tier_rule")),
        sa.UniqueConstraint("version_id", "position", name=op.f("uq_care_tier_rule_version_id_position")),
    )
    op.create_table(
        "elder_volunteer",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("responder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("max_elders", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("max_elders >= 1 AND max_elders <= 50", name=op.f("ck_elder_volunteer_max_elders_range")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_elder_volunteer_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_elder_volunteer_resident_id_resident"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["responder_id"],
            ["responder.id"],
            name=op.f("fk_elder_volunteer_responder_id_responder"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_volunteer")),
        sa.UniqueConstraint("community_id", "resident_id", name=op.f("uq_elder_volunteer_community_id_resident_id")),
        sa.UniqueConstraint("responder_id", name=op.f("uq_elder_volunteer_responder_id")),
    )
    op.create_index(op.f("ix_elder_volunteer_community_id"), "elder_volunteer", ["community_id"], unique=False)
    op.create_table(
        "elder_profile",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("living_situation", sa.String(length=20), nullable=False),
        sa.Column(
            "care_flags",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("preferred_volunteer_gender", sa.String(length=10), nullable=True),
        sa.Column("emergency_contacts_encrypted", sa.Text(), nullable=True),
        sa.Column(
            "emergency_contacts_masked",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("conditions_encrypted", sa.Text(), nullable=True),
        sa.Column("current_level", sa.Integer(), nullable=True),
        sa.Column("current_tier_rule_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("last_assessed_on", sa.Date(), nullable=True),
        sa.Column("reassessment_due_on", sa.Date(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "current_level IS NULL OR (current_level >= 0 AND current_level <= 4)",
            name=op.f("ck_elder_profile_level_range"),
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_elder_profile_community_id_community"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["current_tier_rule_id"],
            ["care_tier_rule.id"],
            name=op.f("fk_elder_profile_current_tier_rule_id_care_tier_rule"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_elder_profile_resident_id_resident"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_profile")),
        sa.UniqueConstraint("resident_id", name=op.f("uq_elder_profile_resident_id")),
    )
    op.create_index("ix_elder_profile_community_id_active", "elder_profile", ["community_id", "active"], unique=False)
    op.create_index(
        op.f("ix_elder_profile_reassessment_due_on"), "elder_profile", ["reassessment_due_on"], unique=False
    )
    op.create_table(
        "elder_time_account",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("volunteer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("balance_minutes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind = 'pool') = (volunteer_id IS NULL)", name=op.f("ck_elder_time_account_pool_has_no_volunteer")
        ),
        sa.CheckConstraint("kind = 'pool' OR balance_minutes >= 0", name=op.f("ck_elder_time_account_never_negative")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_elder_time_account_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_id"],
            ["elder_volunteer.id"],
            name=op.f("fk_elder_time_account_volunteer_id_elder_volunteer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_time_account")),
        sa.UniqueConstraint("volunteer_id", name=op.f("uq_elder_time_account_volunteer_id")),
    )
    op.create_index(op.f("ix_elder_time_account_community_id"), "elder_time_account", ["community_id"], unique=False)
    op.create_index(
        "uq_elder_time_account_one_pool",
        "elder_time_account",
        ["community_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'pool'"),
        sqlite_where=sa.text("kind = 'pool'"),
    )
    op.create_table(
        "elder_visit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("household_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("visit_type", sa.String(length=30), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("plan_period", sa.String(length=7), nullable=True),
        sa.Column("plan_seq", sa.Integer(), nullable=True),
        sa.Column("tier_version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("tier_rule_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("source_key", sa.String(length=120), nullable=True),
        sa.Column("campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("requested_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("volunteer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("responder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "checklist",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "checked_out_at IS NULL OR (checked_in_at IS NOT NULL AND checked_out_at >= checked_in_at)",
            name=op.f("ck_elder_visit_check_out_after_check_in"),
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_elder_visit_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["elder_campaign.id"],
            name=op.f("fk_elder_visit_campaign_id_elder_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_elder_visit_community_id_community"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name=op.f("fk_elder_visit_household_id_household"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_account_id"],
            ["account.id"],
            name=op.f("fk_elder_visit_requested_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["resident.id"], name=op.f("fk_elder_visit_resident_id_resident"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["responder_id"], ["responder.id"], name=op.f("fk_elder_visit_responder_id_responder"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tier_rule_id"],
            ["care_tier_rule.id"],
            name=op.f("fk_elder_visit_tier_rule_id_care_tier_rule"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tier_version_id"],
            ["care_tier_version.id"],
            name=op.f("fk_elder_visit_tier_version_id_care_tier_version"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_id"],
            ["elder_volunteer.id"],
            name=op.f("fk_elder_visit_volunteer_id_elder_volunteer"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_visit")),
        sa.UniqueConstraint("campaign_id", "household_id", name=op.f("uq_elder_visit_campaign_id_household_id")),
        sa.UniqueConstraint(
            "resident_id", "plan_period", "plan_seq", name=op.f("uq_elder_visit_resident_id_plan_period_plan_seq")
        ),
        sa.UniqueConstraint("source_key", name=op.f("uq_elder_visit_source_key")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # A volunteer is never booked for two overlapping visits. SQLite has no exclusion
        # constraints: there writers are serialised and the service books conditionally.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE elder_visit ADD CONSTRAINT ex_elder_visit_no_double_booking "
            "EXCLUDE USING gist (responder_id WITH =, tstzrange(starts_at, ends_at) WITH &&) "
            "WHERE (responder_id IS NOT NULL AND state IN ('assigned', 'checked_in'))"
        )
    op.create_index("ix_elder_visit_community_id_starts_at", "elder_visit", ["community_id", "starts_at"], unique=False)
    op.create_index(op.f("ix_elder_visit_household_id"), "elder_visit", ["household_id"], unique=False)
    op.create_index(op.f("ix_elder_visit_resident_id"), "elder_visit", ["resident_id"], unique=False)
    op.create_index("ix_elder_visit_responder_id_starts_at", "elder_visit", ["responder_id", "starts_at"], unique=False)
    op.create_index("ix_elder_visit_state_ends_at", "elder_visit", ["state", "ends_at"], unique=False)
    op.create_index(op.f("ix_elder_visit_tier_version_id"), "elder_visit", ["tier_version_id"], unique=False)
    op.create_table(
        "elder_volunteer_team_member",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("volunteer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["elder_volunteer_team.id"],
            name=op.f("fk_elder_volunteer_team_member_team_id_elder_volunteer_team"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_id"],
            ["elder_volunteer.id"],
            name=op.f("fk_elder_volunteer_team_member_volunteer_id_elder_volunteer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_volunteer_team_member")),
        sa.UniqueConstraint(
            "team_id", "volunteer_id", name=op.f("uq_elder_volunteer_team_member_team_id_volunteer_id")
        ),
    )
    op.create_index(
        op.f("ix_elder_volunteer_team_member_volunteer_id"),
        "elder_volunteer_team_member",
        ["volunteer_id"],
        unique=False,
    )
    op.create_table(
        "elder_assessment",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("elder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("assessed_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("assessor_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("total_score", sa.Integer(), nullable=False),
        sa.Column("preliminary_level", sa.Integer(), nullable=False),
        sa.Column("final_level", sa.Integer(), nullable=False),
        sa.Column("details_encrypted", sa.Text(), nullable=False),
        sa.Column("next_due_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("final_level >= 0 AND final_level <= 4", name=op.f("ck_elder_assessment_final_range")),
        sa.CheckConstraint("final_level >= preliminary_level", name=op.f("ck_elder_assessment_raised_only")),
        sa.CheckConstraint(
            "preliminary_level >= 0 AND preliminary_level <= 4", name=op.f("ck_elder_assessment_preliminary_range")
        ),
        sa.CheckConstraint("total_score >= 0 AND total_score <= 90", name=op.f("ck_elder_assessment_total_range")),
        sa.ForeignKeyConstraint(
            ["assessor_account_id"],
            ["account.id"],
            name=op.f("fk_elder_assessment_assessor_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_elder_assessment_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["elder_id"],
            ["elder_profile.id"],
            name=op.f("fk_elder_assessment_elder_id_elder_profile"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_assessment")),
    )
    op.create_index(op.f("ix_elder_assessment_community_id"), "elder_assessment", ["community_id"], unique=False)
    op.create_index(
        "ix_elder_assessment_elder_id_assessed_on", "elder_assessment", ["elder_id", "assessed_on"], unique=False
    )
    op.create_table(
        "elder_care_pair",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("elder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("volunteer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column(
            "reasons",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=200), nullable=True),
        sa.Column("created_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_elder_care_pair_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_account_id"],
            ["account.id"],
            name=op.f("fk_elder_care_pair_created_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["elder_id"],
            ["elder_profile.id"],
            name=op.f("fk_elder_care_pair_elder_id_elder_profile"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_id"],
            ["elder_volunteer.id"],
            name=op.f("fk_elder_care_pair_volunteer_id_elder_volunteer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_care_pair")),
    )
    op.create_index(op.f("ix_elder_care_pair_community_id"), "elder_care_pair", ["community_id"], unique=False)
    op.create_index(
        "ix_elder_care_pair_volunteer_id_ended_at", "elder_care_pair", ["volunteer_id", "ended_at"], unique=False
    )
    op.create_index(
        "uq_elder_care_pair_elder_id_volunteer_id",
        "elder_care_pair",
        ["elder_id", "volunteer_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )
    op.create_index(
        "uq_elder_care_pair_one_primary",
        "elder_care_pair",
        ["elder_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL AND role = 'primary'"),
        sqlite_where=sa.text("ended_at IS NULL AND role = 'primary'"),
    )
    op.create_table(
        "elder_time_transaction",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("visit_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("redeem_visit_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_elder_time_transaction_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_account_id"],
            ["account.id"],
            name=op.f("fk_elder_time_transaction_created_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["redeem_visit_id"],
            ["elder_visit.id"],
            name=op.f("fk_elder_time_transaction_redeem_visit_id_elder_visit"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["elder_visit.id"],
            name=op.f("fk_elder_time_transaction_visit_id_elder_visit"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_time_transaction")),
        sa.UniqueConstraint("redeem_visit_id", name=op.f("uq_elder_time_transaction_redeem_visit_id")),
        sa.UniqueConstraint("visit_id", name=op.f("uq_elder_time_transaction_visit_id")),
    )
    op.create_index(
        op.f("ix_elder_time_transaction_community_id"), "elder_time_transaction", ["community_id"], unique=False
    )
    op.create_table(
        "elder_visit_finding",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("visit_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_code", sa.String(length=40), nullable=False),
        sa.Column("hazard_kind", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("staff_alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_elder_visit_finding_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_account_id"],
            ["account.id"],
            name=op.f("fk_elder_visit_finding_recorded_by_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_elder_visit_finding_ticket_id_ticket"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["elder_visit.id"],
            name=op.f("fk_elder_visit_finding_visit_id_elder_visit"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_visit_finding")),
    )
    op.create_index(op.f("ix_elder_visit_finding_community_id"), "elder_visit_finding", ["community_id"], unique=False)
    op.create_index(op.f("ix_elder_visit_finding_visit_id"), "elder_visit_finding", ["visit_id"], unique=False)
    op.create_table(
        "elder_time_entry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount_minutes", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minutes <> 0", name=op.f("ck_elder_time_entry_not_zero")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["elder_time_account.id"],
            name=op.f("fk_elder_time_entry_account_id_elder_time_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["elder_time_transaction.id"],
            name=op.f("fk_elder_time_entry_transaction_id_elder_time_transaction"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elder_time_entry")),
    )
    op.create_index("ix_elder_time_entry_account_id_id", "elder_time_entry", ["account_id", "id"], unique=False)
    op.create_index(op.f("ix_elder_time_entry_transaction_id"), "elder_time_entry", ["transaction_id"], unique=False)
    # ### end Alembic commands ###


def downgrade() -> None:
    op.drop_index(op.f("ix_elder_time_entry_transaction_id"), table_name="elder_time_entry")
    op.drop_index("ix_elder_time_entry_account_id_id", table_name="elder_time_entry")
    op.drop_table("elder_time_entry")
    op.drop_index(op.f("ix_elder_visit_finding_visit_id"), table_name="elder_visit_finding")
    op.drop_index(op.f("ix_elder_visit_finding_community_id"), table_name="elder_visit_finding")
    op.drop_table("elder_visit_finding")
    op.drop_index(op.f("ix_elder_time_transaction_community_id"), table_name="elder_time_transaction")
    op.drop_table("elder_time_transaction")
    op.drop_index(
        "uq_elder_care_pair_one_primary",
        table_name="elder_care_pair",
        postgresql_where=sa.text("ended_at IS NULL AND role = 'primary'"),
        sqlite_where=sa.text("ended_at IS NULL AND role = 'primary'"),
    )
    op.drop_index(
        "uq_elder_care_pair_elder_id_volunteer_id",
        table_name="elder_care_pair",
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )
    op.drop_index("ix_elder_care_pair_volunteer_id_ended_at", table_name="elder_care_pair")
    op.drop_index(op.f("ix_elder_care_pair_community_id"), table_name="elder_care_pair")
    op.drop_table("elder_care_pair")
    op.drop_index("ix_elder_assessment_elder_id_assessed_on", table_name="elder_assessment")
    op.drop_index(op.f("ix_elder_assessment_community_id"), table_name="elder_assessment")
    op.drop_table("elder_assessment")
    op.drop_index(op.f("ix_elder_volunteer_team_member_volunteer_id"), table_name="elder_volunteer_team_member")
    op.drop_table("elder_volunteer_team_member")
    op.drop_index(op.f("ix_elder_visit_tier_version_id"), table_name="elder_visit")
    op.drop_index("ix_elder_visit_state_ends_at", table_name="elder_visit")
    op.drop_index("ix_elder_visit_responder_id_starts_at", table_name="elder_visit")
    op.drop_index(op.f("ix_elder_visit_resident_id"), table_name="elder_visit")
    op.drop_index(op.f("ix_elder_visit_household_id"), table_name="elder_visit")
    op.drop_index("ix_elder_visit_community_id_starts_at", table_name="elder_visit")
    op.drop_table("elder_visit")  # and its exclusion constraint; btree_gist stays (others use it)
    op.drop_index(
        "uq_elder_time_account_one_pool",
        table_name="elder_time_account",
        postgresql_where=sa.text("kind = 'pool'"),
        sqlite_where=sa.text("kind = 'pool'"),
    )
    op.drop_index(op.f("ix_elder_time_account_community_id"), table_name="elder_time_account")
    op.drop_table("elder_time_account")
    op.drop_index(op.f("ix_elder_profile_reassessment_due_on"), table_name="elder_profile")
    op.drop_index("ix_elder_profile_community_id_active", table_name="elder_profile")
    op.drop_table("elder_profile")
    op.drop_index(op.f("ix_elder_volunteer_community_id"), table_name="elder_volunteer")
    op.drop_table("elder_volunteer")
    op.drop_table("care_tier_rule")
    op.drop_index(op.f("ix_elder_campaign_community_id"), table_name="elder_campaign")
    op.drop_table("elder_campaign")
    op.drop_index(op.f("ix_care_tier_version_community_id"), table_name="care_tier_version")
    op.drop_table("care_tier_version")
    op.drop_index(op.f("ix_elder_volunteer_team_community_id"), table_name="elder_volunteer_team")
    op.drop_table("elder_volunteer_team")
    op.drop_table("elder_care_policy")
