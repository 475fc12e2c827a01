"""scoring: accounts, their domain map, and each lead's account with what it brings to the roll-up.

Revision ID: scoring_0005_accounts
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "scoring_0005_accounts"
down_revision = "scoring_0004"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("external_id", sa.Text, unique=True, nullable=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_normalized", sa.Text, nullable=True),
        sa.Column("name_block", sa.Text, nullable=True),
        sa.Column("domains", JSONB, nullable=False, server_default="[]"),
        sa.Column("owner", sa.Text, nullable=True),
        sa.Column("tier", sa.Text, nullable=True),
        sa.Column("industry", sa.Text, nullable=True),
        sa.Column("size", sa.Integer, nullable=True),
        sa.Column("country", sa.Text, nullable=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("engagement", sa.Float, nullable=False, server_default="0"),
        sa.Column("engagement_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("members", sa.Integer, nullable=False, server_default="0"),
        sa.Column("engaged_people", sa.Integer, nullable=False, server_default="0"),
        sa.Column("departments", JSONB, nullable=False, server_default="{}"),
        sa.Column("seniorities", JSONB, nullable=False, server_default="{}"),
        sa.Column("score", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fit_points", sa.Integer, nullable=False, server_default="0"),
        sa.Column("grade", sa.Text, nullable=False, server_default="D"),
        sa.Column("mqa", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("mqa_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("explanation", JSONB, nullable=False, server_default="[]"),
        sa.Column("model_version", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_index("ix_accounts_name_normalized", "accounts", ["name_normalized"], schema=schema)
    op.create_index("ix_accounts_name_block", "accounts", ["name_block"], schema=schema)
    op.create_index("ix_accounts_score", "accounts", ["score"], schema=schema)
    op.create_table(
        "account_domains",
        sa.Column("domain", sa.Text, primary_key=True),
        sa.Column(
            "account_id",
            sa.Text,
            sa.ForeignKey(f"{schema}.accounts.account_id", ondelete="CASCADE"),
            nullable=False,
        ),
        schema=schema,
    )
    op.create_index("ix_account_domains_account", "account_domains", ["account_id"], schema=schema)
    op.create_table(
        "account_members",
        sa.Column(
            "lead_id", sa.Text, sa.ForeignKey(f"{schema}.leads.lead_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "account_id",
            sa.Text,
            sa.ForeignKey(f"{schema}.accounts.account_id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("matched_by", sa.Text, nullable=True),
        sa.Column("confidence", sa.Float, nullable=False, server_default="0"),
        sa.Column("evidence", sa.Text, nullable=True),
        sa.Column("facts_digest", sa.Text, nullable=False),
        sa.Column("engagement", sa.Float, nullable=False, server_default="0"),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("engaged", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("department", sa.Text, nullable=True),
        sa.Column("seniority", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_index("ix_account_members_account", "account_members", ["account_id"], schema=schema)


def downgrade(schema: str) -> None:
    op.drop_table("account_members", schema=schema)
    op.drop_table("account_domains", schema=schema)
    op.drop_table("accounts", schema=schema)
