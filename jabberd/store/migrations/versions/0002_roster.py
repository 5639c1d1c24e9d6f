"""Roster items and pending subscription requests (RFC 6121).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "roster_items",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.Column("name", sa.String(1023), nullable=True),
        sa.Column("subscription", sa.String(4), nullable=False),
        sa.Column("ask", sa.Boolean(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_roster_items_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "jid", name=op.f("pk_roster_items")),
    )
    op.create_table(
        "roster_groups",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.Column("name", sa.String(1023), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "jid"],
            ["roster_items.account_id", "roster_items.jid"],
            name=op.f("fk_roster_groups_account_id_roster_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "jid", "name", name=op.f("pk_roster_groups")),
    )
    op.create_table(
        "roster_pending",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.Column("stanza", sa.Text(), nullable=False),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_roster_pending_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "jid", name=op.f("pk_roster_pending")),
    )
    op.create_table(
        "roster_versions",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("floor", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_roster_versions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_roster_versions")),
    )
    op.create_table(
        "roster_tombstones",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_roster_tombstones_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "jid", name=op.f("pk_roster_tombstones")),
    )


def downgrade() -> None:
    op.drop_table("roster_tombstones")
    op.drop_table("roster_versions")
    op.drop_table("roster_pending")
    op.drop_table("roster_groups")
    op.drop_table("roster_items")
