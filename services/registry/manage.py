"""``tessera-manage [--config-file PATH] GROUP ACTION [options]``: the operator's commands.

``db sync|version`` are the database steps (Glance's ``glance-manage db_sync``). Every other
command group lives in the module that owns its subject and is listed in ``COMMAND_GROUPS``:
that module's ``add_commands(subparsers)`` adds its group, and each action's parser sets
``run=function(conf, args)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from services.common.config import database_url, load_config, package_version
from services.registry.db import make_engine
from services.registry.metadefs import files as metadef_files

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def db_sync(conf) -> str:
    """Create or upgrade the schema to the newest revision; returns that revision."""
    url = database_url(conf)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(conf, pool_size=1)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        return db_version(engine)
    finally:
        engine.dispose()


def db_version(engine) -> str:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() or "none"


# modules with an ``add_commands(subparsers)`` of their own (besides ``db`` below)
COMMAND_GROUPS: list[str] = ["services.registry.scrubbing", "services.cache.manage"]


def _db_version(conf, _args) -> None:
    engine = make_engine(conf, pool_size=1)
    try:
        print(db_version(engine))
    finally:
        engine.dispose()


def add_commands(subparsers) -> None:
    """The ``db`` group; more actions join it as ``db.add_parser(...)`` with ``run=``."""
    db = subparsers.add_parser("db", help="the metadata database").add_subparsers(
        dest="action", required=True
    )
    db.add_parser("sync", help="create or upgrade the schema").set_defaults(
        run=lambda conf, _args: print(f"database at revision {db_sync(conf)}")
    )
    db.add_parser("version", help="print the schema revision").set_defaults(run=_db_version)
    metadef_files.add_db_actions(db)  # load_metadefs, unload_metadefs, export_metadefs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tessera-manage")
    parser.add_argument("--version", action="version", version=package_version())
    parser.add_argument("--config-file", action="append", default=[])
    groups = parser.add_subparsers(dest="group", required=True)
    add_commands(groups)
    for module in COMMAND_GROUPS:
        importlib.import_module(module).add_commands(groups)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    conf = load_config(
        [a for f in args.config_file for a in ("--config-file", f)], prog="tessera-manage"
    )
    args.run(conf, args)


if __name__ == "__main__":
    main()
