"""image uploads in progress, with their leases

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    op.create_table(
        "image_uploads",
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("upload_id", sa.String(length=36), nullable=False),
        sa.Column("store", sa.String(length=255), nullable=False),
        sa.Column("lease_expires_at", Timestamp, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("image_id"),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_index("ix_image_uploads_lease_expires_at", "image_uploads",
                    ["lease_expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_image_uploads_lease_expires_at", table_name="image_uploads")
    op.drop_table("image_uploads")
