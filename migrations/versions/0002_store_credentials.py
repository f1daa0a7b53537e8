"""store credentials (API key and secret, a webhook secret), reconciliation time, estimated delivery rule

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.add_column(sa.Column("api_key", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("api_secret", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("webhook_secret", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("delivered_after_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.drop_column("delivered_after_days")
        batch.drop_column("reconciled_at")
        batch.drop_column("webhook_secret")
        batch.drop_column("api_secret")
        batch.drop_column("api_key")
