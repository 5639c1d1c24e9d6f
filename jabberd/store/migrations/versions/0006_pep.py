"""Personal eventing (XEP-0163) nodes, items, affiliations, subscriptions; entity capabilities (XEP-0115) cache.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pep_nodes",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(1023), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_pep_nodes_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "node", name=op.f("pk_pep_nodes")),
    )
    op.create_table(
        "pep_items",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(1023), nullable=False),
        sa.Column("item_id", sa.String(1023), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("publisher", sa.String(3071), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "node"],
            ["pep_nodes.account_id", "pep_nodes.node"],
            name=op.f("fk_pep_items_account_id_pep_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "node", "item_id", name=op.f("pk_pep_items")),
    )
    op.create_index(op.f("ix_pep_items_account_id"), "pep_items", ["account_id", "node", "seq"])
    op.create_table(
        "pep_affiliations",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(1023), nullable=False),
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.Column("affiliation", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "node"],
            ["pep_nodes.account_id", "pep_nodes.node"],
            name=op.f("fk_pep_affiliations_account_id_pep_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "node", "jid", name=op.f("pk_pep_affiliations")),
    )
    op.create_table(
        "pep_subscriptions",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(1023), nullable=False),
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "node"],
            ["pep_nodes.account_id", "pep_nodes.node"],
            name=op.f("fk_pep_subscriptions_account_id_pep_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "node", "jid", name=op.f("pk_pep_subscriptions")),
    )
    op.create_table(
        "caps_info",
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("ver", sa.String(255), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("verified", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("algorithm", "ver", name=op.f("pk_caps_info")),
    )


def downgrade() -> None:
    op.drop_table("caps_info")
    op.drop_table("pep_subscriptions")
    op.drop_table("pep_affiliations")
    op.drop_index(op.f("ix_pep_items_account_id"), table_name="pep_items")
    op.drop_table("pep_items")
    op.drop_table("pep_nodes")
