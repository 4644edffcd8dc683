"""metadata definitions: Glance's six metadef tables

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
OPTIONS = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def _timestamps():
    return [
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=True),
    ]


def _namespace_fk():
    return sa.ForeignKeyConstraint(
        ["namespace_id"], ["metadef_namespaces.id"], ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "metadef_namespaces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(length=80), nullable=False),
        sa.Column("display_name", sa.String(length=80), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(length=32), nullable=True),
        sa.Column("protected", sa.Boolean(), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace", name="uq_metadef_namespaces_namespace"),
        **OPTIONS,
    )
    op.create_index("ix_metadef_namespaces_owner", "metadef_namespaces", ["owner"])
    op.create_table(
        "metadef_resource_types",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("protected", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_metadef_resource_types_name"),
        **OPTIONS,
    )
    op.create_table(
        "metadef_namespace_resource_types",
        sa.Column("resource_type_id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("properties_target", sa.String(length=80), nullable=True),
        sa.Column("prefix", sa.String(length=80), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(["resource_type_id"], ["metadef_resource_types.id"]),
        _namespace_fk(),
        sa.PrimaryKeyConstraint("resource_type_id", "namespace_id"),
        **OPTIONS,
    )
    op.create_index(
        "ix_metadef_ns_res_types_namespace_id",
        "metadef_namespace_resource_types",
        ["namespace_id"],
    )
    for table, extra in (
        ("metadef_properties", [sa.Column("json_schema", sa.Text(), nullable=False)]),
        (
            "metadef_objects",
            [
                sa.Column("description", sa.Text(), nullable=True),
                sa.Column("required", sa.Text(), nullable=True),
                sa.Column("json_schema", sa.Text(), nullable=False),
            ],
        ),
        ("metadef_tags", []),
    ):
        op.create_table(
            table,
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("namespace_id", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(length=80), nullable=False),
            *extra,
            *_timestamps(),
            _namespace_fk(),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("namespace_id", "name", name=f"uq_{table}_namespace_id_name"),
            **OPTIONS,
        )
        op.create_index(f"ix_{table}_name", table, ["name"])


def downgrade() -> None:
    for table in ("metadef_tags", "metadef_objects", "metadef_properties"):
        op.drop_index(f"ix_{table}_name", table_name=table)
        op.drop_table(table)
    op.drop_index(
        "ix_metadef_ns_res_types_namespace_id", table_name="metadef_namespace_resource_types"
    )
    op.drop_table("metadef_namespace_resource_types")
    op.drop_table("metadef_resource_types")
    op.drop_index("ix_metadef_namespaces_owner", table_name="metadef_namespaces")
    op.drop_table("metadef_namespaces")
