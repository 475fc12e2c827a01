"""scoring: each lead's running feature state (feature_state.FeatureState) beside its score state,
and the key of the engagement rules it was folded under.

Revision ID: scoring_0008_features
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "scoring_0008_features"
down_revision = "scoring_0007_engine"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    # Nullable: existing rows have none yet; each is built from the lead's history when next scored.
    op.add_column("lead_score_states", sa.Column("features_key", sa.Text, nullable=True), schema=schema)
    op.add_column("lead_score_states", sa.Column("features", JSONB, nullable=True), schema=schema)


def downgrade(schema: str) -> None:
    op.drop_column("lead_score_states", "features", schema=schema)
    op.drop_column("lead_score_states", "features_key", schema=schema)
