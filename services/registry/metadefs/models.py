"""The six metadata definition tables, with Glance's table and column names (the
catalogue an operator loads with ``tessera-manage db load_metadefs``). JSON documents
(a property's schema, an object's properties) are stored as text, as Glance stores them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from services.registry.models import Base, Timestamp, utcnow

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


class _Timestamps:
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class _NamespaceContent(_Timestamps):
    """What a namespace's properties, objects and tags have alike: an id, the namespace
    they go with (removed with it), and a name unique in it, with Glance's constraint and
    index names made from the table's."""

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        table = cls.__tablename__
        return (
            UniqueConstraint("namespace_id", "name", name=f"uq_{table}_namespace_id_name"),
            Index(f"ix_{table}_name", "name"),
            TABLE_OPTIONS,
        )

    # sort_order: these columns first, as the tables were made (migration 0003)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, sort_order=-1)
    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("metadef_namespaces.id", ondelete="CASCADE"), nullable=False, sort_order=-1
    )
    name: Mapped[str] = mapped_column(String(80), nullable=False, sort_order=-1)


class MetadefNamespace(_Timestamps, Base):
    __tablename__ = "metadef_namespaces"
    __table_args__ = (
        UniqueConstraint("namespace", name="uq_metadef_namespaces_namespace"),
        Index("ix_metadef_namespaces_owner", "owner"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(80), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(80))
    description: Mapped[str | None] = mapped_column(Text)
    visibility: Mapped[str | None] = mapped_column(String(32))
    protected: Mapped[bool | None] = mapped_column(Boolean)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)


class MetadefResourceType(_Timestamps, Base):
    __tablename__ = "metadef_resource_types"
    __table_args__ = (
        UniqueConstraint("name", name="uq_metadef_resource_types_name"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    protected: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class MetadefNamespaceResourceType(_Timestamps, Base):
    __tablename__ = "metadef_namespace_resource_types"
    __table_args__ = (
        Index("ix_metadef_ns_res_types_namespace_id", "namespace_id"),
        TABLE_OPTIONS,
    )

    resource_type_id: Mapped[int] = mapped_column(
        ForeignKey("metadef_resource_types.id"), primary_key=True
    )
    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("metadef_namespaces.id", ondelete="CASCADE"), primary_key=True
    )
    properties_target: Mapped[str | None] = mapped_column(String(80))
    prefix: Mapped[str | None] = mapped_column(String(80))


class MetadefProperty(_NamespaceContent, Base):
    __tablename__ = "metadef_properties"
    json_schema: Mapped[str] = mapped_column(Text, nullable=False)


class MetadefObject(_NamespaceContent, Base):
    __tablename__ = "metadef_objects"
    description: Mapped[str | None] = mapped_column(Text)
    required: Mapped[str | None] = mapped_column(Text)  # comma-separated, as Glance's
    json_schema: Mapped[str] = mapped_column(Text, nullable=False)


class MetadefTag(_NamespaceContent, Base):
    __tablename__ = "metadef_tags"


#: Children of a namespace, in the order they are removed before it.
CONTENTS = (MetadefProperty, MetadefObject, MetadefTag, MetadefNamespaceResourceType)
