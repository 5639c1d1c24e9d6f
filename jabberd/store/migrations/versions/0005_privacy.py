"""Privacy lists (XEP-0016), which also hold the blocklist (XEP-0191).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_lists",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(1023), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_privacy_lists_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_privacy_lists")),
    )
    op.create_table(
        "privacy_items",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(1023), nullable=False),
        sa.Column("item_order", sa.BigInteger(), nullable=False),
        sa.Column("item_type", sa.String(12), nullable=True),
        sa.Column("item_value", sa.String(3071), nullable=True),
        sa.Column("action", sa.String(5), nullable=False),
        sa.Column("kinds", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "list_name"],
            ["privacy_lists.account_id", "privacy_lists.name"],
            name=op.f("fk_privacy_items_account_id_privacy_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "list_name", "item_order", name=op.f("pk_privacy_items")),
    )
    op.create_table(
        "privacy_defaults",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(1023), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "list_name"],
            ["privacy_lists.account_id", "privacy_lists.name"],
            name=op.f("fk_privacy_defaults_account_id_privacy_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_privacy_defaults")),
    )


def downgrade() -> None:
    op.drop_table("privacy_defaults")
    op.drop_table("privacy_items")
    op.drop_table("privacy_lists")
