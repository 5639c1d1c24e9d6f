"""Offline messages (XEP-0160).

Revision ID: 0003
Revises: 0002

Independent of 0002 (roster): it only refers to accounts (0001).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offline_messages",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stanza", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_offline_messages_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offline_messages")),
    )
    op.create_index(op.f("ix_offline_messages_account_id"), "offline_messages", ["account_id", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_offline_messages_account_id"), table_name="offline_messages")
    op.drop_table("offline_messages")
