"""The six metadata definition tables, with Glance's table and column names (the
catalogue an operator loads with ``tessera-manage db load_metadefs``). JSON documents
(a property's schema, an object's properties) are stored as text, as Glance stores them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.models import Base, Timestamp, utcnow

TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _namespace_id() -> Mapped[int]:
    return mapped_column(ForeignKey("metadef_namespaces.id", ondelete="CASCADE"), nullable=False)


class _Timestamps:
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


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


class MetadefProperty(_Timestamps, Base):
    __tablename__ = "metadef_properties"
    __table_args__ = (
        UniqueConstraint("namespace_id", "name", name="uq_metadef_properties_namespace_id_name"),
        Index("ix_metadef_properties_name", "name"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace_id: Mapped[int] = _namespace_id()
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    json_schema: Mapped[str] = mapped_column(Text, nullable=False)


class MetadefObject(_Timestamps, Base):
    __tablename__ = "metadef_objects"
    __table_args__ = (
        UniqueConstraint("namespace_id", "name", name="uq_metadef_objects_namespace_id_name"),
        Index("ix_metadef_objects_name", "name"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace_id: Mapped[int] = _namespace_id()
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    required: Mapped[str | None] = mapped_column(Text)  # comma-separated, as Glance's
    json_schema: Mapped[str] = mapped_column(Text, nullable=False)


class MetadefTag(_Timestamps, Base):
    __tablename__ = "metadef_tags"
    __table_args__ = (
        UniqueConstraint("namespace_id", "name", name="uq_metadef_tags_namespace_id_name"),
        Index("ix_metadef_tags_name", "name"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace_id: Mapped[int] = _namespace_id()
    name: Mapped[str] = mapped_column(String(80), nullable=False)


#: Children of a namespace, in the order they are removed before it.
CONTENTS = (MetadefProperty, MetadefObject, MetadefTag, MetadefNamespaceResourceType)
