"""The metadata definition catalogue as files: ``tessera-manage db load_metadefs``,
``db unload_metadefs`` and ``db export_metadefs``, reading and writing the JSON files of
Glance's ``etc/metadefs/`` (one namespace per file), with glance-manage's semantics
(glance/db/sqlalchemy/metadata.py):

- load: every ``*.json`` file of ``--path`` (default ``metadata_source_path``), or one
  file. A namespace already in the database is skipped, unless ``--merge``: then what
  the file adds (resource type associations, properties, objects, tags) is added;
  with ``--prefer_new`` what both hold is also updated from the file; with
  ``--overwrite`` the namespace is first removed with everything in it. The owner is
  the file's ``owner``, else ``admin``; resource types new to the database are
  protected (seeded system types).
- unload: every metadef row goes.
- export: one ``<display_name without punctuation>.json`` per namespace in ``--path``.
  Glance writes every key, null or empty ones too; Tessera leaves those out (and writes
  ``owner`` when it is not ``admin``, and an object's ``required``, which Glance loses),
  so that loading a directory and exporting it gives back the same JSON.

Each file is loaded in a transaction of its own; a file that cannot be read is reported
and skipped, as by Glance."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from services.registry.db import make_engine
from services.registry.metadefs.contents import resource_type
from services.registry.metadefs.models import (
    CONTENTS,
    MetadefNamespace,
    MetadefNamespaceResourceType,
    MetadefObject,
    MetadefProperty,
    MetadefResourceType,
    MetadefTag,
)
from services.registry.models import utcnow

log = logging.getLogger(__name__)

DEFAULT_OWNER = "admin"


class LoadError(Exception):
    """The options or the path cannot be used (nothing was loaded)."""


def _dumps(document) -> str:
    return json.dumps(document, separators=(",", ":"))


def definition_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    try:
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(".json"))
    except OSError as exc:
        raise LoadError(str(exc)) from None
    if not files:
        raise LoadError(f"Json schema files not found in {path}. Aborting.")
    return files


def load(
    session_factory: sessionmaker,
    path: Path,
    merge: bool = False,
    prefer_new: bool = False,
    overwrite: bool = False,
) -> list[str]:
    """Load the definitions under ``path``; returns the namespaces written."""
    if not merge and (prefer_new or overwrite):
        raise LoadError(
            "To use --prefer_new or --overwrite you need to combine of these options with "
            "--merge option."
        )
    if prefer_new and overwrite:
        raise LoadError(
            "Please provide no more than one option from this list: --prefer_new, --overwrite"
        )
    written = []
    for file in definition_files(path):
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(document, dict) or not isinstance(document.get("namespace"), str):
                raise ValueError("not a namespace document (no 'namespace' string)")
        except (OSError, ValueError) as exc:
            log.error(
                "Failed to parse json file %s while populating metadata due to: %s", file, exc
            )
            continue
        with session_factory.begin() as session:
            if _load_namespace(session, document, merge, prefer_new, overwrite):
                written.append(document["namespace"])
    return written


def _load_namespace(
    session: Session, document: dict, merge: bool, prefer_new: bool, overwrite: bool
) -> bool:
    values = {
        "namespace": document["namespace"],
        "display_name": document.get("display_name"),
        "description": document.get("description"),
        "visibility": document.get("visibility"),
        "protected": document.get("protected"),
        "owner": document.get("owner", DEFAULT_OWNER),
    }
    ns = session.scalar(
        select(MetadefNamespace).where(MetadefNamespace.namespace == values["namespace"])
    )
    if ns is not None and overwrite:
        _remove_namespaces(session, [ns.id])
        ns = None
    if ns is None:
        ns = MetadefNamespace(**values)
        session.add(ns)
        session.flush()
    elif not merge:
        log.info("Skipping namespace %s. It already exists in the database.", ns.namespace)
        return False
    elif prefer_new:
        for key, value in values.items():
            setattr(ns, key, value)
    for association in document.get("resource_type_associations") or []:
        _load_association(session, ns, association, prefer_new)
    for name, schema in (document.get("properties") or {}).items():
        _upsert(
            session,
            MetadefProperty,
            ns,
            name,
            {"json_schema": _dumps(schema)},
            prefer_new,
        )
    for obj in document.get("objects") or []:
        required = obj.get("required") or None
        columns = {
            "description": obj.get("description"),
            "required": ",".join(required) if required else None,
            "json_schema": _dumps(obj.get("properties") or {}),
        }
        _upsert(session, MetadefObject, ns, obj["name"], columns, prefer_new)
    for tag in document.get("tags") or []:
        _upsert(session, MetadefTag, ns, tag["name"], {}, prefer_new)
    return True


def _upsert(session, model, ns, name: str, columns: dict, prefer_new: bool) -> None:
    row = session.scalar(select(model).where(model.namespace_id == ns.id, model.name == name))
    if row is None:
        session.add(model(namespace_id=ns.id, name=name, **columns))
        session.flush()
    elif prefer_new:
        for key, value in columns.items():
            setattr(row, key, value)
        row.updated_at = utcnow()


def _load_association(session, ns, association: dict, prefer_new: bool) -> None:
    rt = resource_type(session, association["name"], create=True, protected=True)
    link = session.get(MetadefNamespaceResourceType, (rt.id, ns.id))
    if link is None:
        session.add(
            MetadefNamespaceResourceType(
                resource_type_id=rt.id,
                namespace_id=ns.id,
                prefix=association.get("prefix"),
                properties_target=association.get("properties_target"),
            )
        )
        session.flush()
    elif prefer_new:
        link.prefix = association.get("prefix")
        link.properties_target = association.get("properties_target")


def _remove_namespaces(session: Session, namespace_ids: list[int]) -> None:
    for model in CONTENTS:
        session.execute(delete(model).where(model.namespace_id.in_(namespace_ids)))
    session.execute(delete(MetadefNamespace).where(MetadefNamespace.id.in_(namespace_ids)))


def unload(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        for model in (*CONTENTS, MetadefNamespace, MetadefResourceType):
            session.execute(delete(model))


def _compact(document: dict) -> dict:
    return {k: v for k, v in document.items() if v is not None and v != [] and v != {}}


def namespace_document(session: Session, ns: MetadefNamespace) -> dict:
    """A namespace as a definition file holds it."""
    associations = session.execute(
        select(
            MetadefResourceType.name,
            MetadefNamespaceResourceType.prefix,
            MetadefNamespaceResourceType.properties_target,
        )
        .join(MetadefResourceType)
        .where(MetadefNamespaceResourceType.namespace_id == ns.id)
        .order_by(MetadefNamespaceResourceType.created_at, MetadefResourceType.id)
    ).all()

    def rows(model):
        return session.scalars(select(model).where(model.namespace_id == ns.id).order_by(model.id))

    return _compact(
        {
            "namespace": ns.namespace,
            "display_name": ns.display_name,
            "description": ns.description,
            "visibility": ns.visibility,
            "protected": ns.protected,
            "owner": ns.owner if ns.owner != DEFAULT_OWNER else None,
            "resource_type_associations": [
                _compact({"name": name, "prefix": prefix, "properties_target": target})
                for name, prefix, target in associations
            ],
            "properties": {p.name: json.loads(p.json_schema) for p in rows(MetadefProperty)},
            "objects": [
                _compact(
                    {
                        "name": o.name,
                        "description": o.description,
                        "required": o.required.split(",") if o.required else None,
                        "properties": json.loads(o.json_schema or "{}"),
                    }
                )
                for o in rows(MetadefObject)
            ],
            "tags": [{"name": t.name} for t in rows(MetadefTag)],
        }
    )


def file_name(ns: MetadefNamespace) -> str:
    """Glance's: the display name without its non-word characters (the namespace name
    when there is no display name), ``.json``."""
    return re.sub(r"[\W_]+", "", ns.display_name or ns.namespace) + ".json"


def export(session_factory: sessionmaker, path: Path) -> list[Path]:
    path.mkdir(parents=True, exist_ok=True)
    written = []
    with session_factory.begin() as session:
        for ns in session.scalars(select(MetadefNamespace).order_by(MetadefNamespace.id)):
            target = path / file_name(ns)
            if target.exists():
                log.info("Overwriting: %s", target)
            target.write_text(
                json.dumps(namespace_document(session, ns), indent=4, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
            written.append(target)
    return written


# --- tessera-manage db load_metadefs | unload_metadefs | export_metadefs


def _with_sessions(conf, action):
    if not logging.getLogger().handlers:  # the files skipped and why, on stderr
        logging.basicConfig(level=logging.INFO, format="tessera-manage: %(message)s")
    engine = make_engine(conf, pool_size=1)
    try:
        return action(sessionmaker(engine, expire_on_commit=False))
    finally:
        engine.dispose()


def _load_command(conf, args) -> None:
    path = Path(args.path or conf.metadata_source_path)
    try:
        written = _with_sessions(
            conf, lambda s: load(s, path, args.merge, args.prefer_new, args.overwrite)
        )
    except LoadError as exc:
        sys.exit(f"tessera-manage: {exc}")
    print(f"loaded {len(written)} namespace(s) from {path}")


def _unload_command(conf, _args) -> None:
    _with_sessions(conf, unload)
    print("metadata definitions removed")


def _export_command(conf, args) -> None:
    path = Path(args.path or conf.metadata_source_path)
    written = _with_sessions(conf, lambda s: export(s, path))
    print(f"exported {len(written)} namespace(s) to {path}")


def add_db_actions(db) -> None:
    """Add the metadef actions to the ``db`` group's subparsers (services/registry/manage.py)."""
    load_parser = db.add_parser("load_metadefs", help="load metadata definitions from JSON files")
    load_parser.add_argument("--path", help="a directory of *.json files, or one file")
    load_parser.add_argument(
        "--merge", action="store_true", help="add to namespaces already in the database"
    )
    load_parser.add_argument(
        "--prefer_new", action="store_true", help="with --merge: the file wins where both hold"
    )
    load_parser.add_argument(
        "--overwrite", action="store_true", help="with --merge: replace existing namespaces"
    )
    load_parser.set_defaults(run=_load_command)
    db.add_parser("unload_metadefs", help="remove every metadata definition").set_defaults(
        run=_unload_command
    )
    export_parser = db.add_parser("export_metadefs", help="write each namespace to a JSON file")
    export_parser.add_argument("--path", help="the directory to write to")
    export_parser.set_defaults(run=_export_command)
