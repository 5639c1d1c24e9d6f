"""vcard-temp (XEP-0054), private XML storage (XEP-0049), last activity (XEP-0012).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vcards",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_vcards_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_vcards")),
    )
    op.create_table(
        "private_xml",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(1023), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_private_xml_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "namespace", name=op.f("pk_private_xml")),
    )
    op.create_table(
        "last_activity",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("logout", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_last_activity_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_last_activity")),
    )


def downgrade() -> None:
    op.drop_table("last_activity")
    op.drop_table("private_xml")
    op.drop_table("vcards")
