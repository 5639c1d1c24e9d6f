"""MUC rooms and affiliations (XEP-0045).

Revision ID: muc0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "muc0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "muc_rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(1023), nullable=False),
        sa.Column("name", sa.String(1023), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("subject_nick", sa.String(1023), nullable=True),
        sa.Column("subject_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_muc_rooms")),
        sa.UniqueConstraint("service", "name", name=op.f("uq_muc_rooms_service_name")),
    )
    op.create_table(
        "muc_affiliations",
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.Column("affiliation", sa.String(16), nullable=False),
        sa.Column("nick", sa.String(1023), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["room_id"], ["muc_rooms.id"],
            name=op.f("fk_muc_affiliations_room_id_muc_rooms"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("room_id", "jid", name=op.f("pk_muc_affiliations")),
    )


def downgrade() -> None:
    op.drop_table("muc_affiliations")
    op.drop_table("muc_rooms")
