"""``tessera-manage [--config-file PATH] db sync|version``: the operator's database
steps (Glance's ``glance-manage db_sync``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from services.common.config import database_url, load_config, package_version
from services.registry.db import make_engine

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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="tessera-manage")
    parser.add_argument("--version", action="version", version=package_version())
    parser.add_argument("--config-file", action="append", default=[])
    parser.add_argument("group", choices=["db"])
    parser.add_argument("action", choices=["sync", "version"])
    args = parser.parse_args(argv)
    conf = load_config(
        [a for f in args.config_file for a in ("--config-file", f)], prog="tessera-manage"
    )
    if args.action == "sync":
        print(f"database at revision {db_sync(conf)}")
    else:
        engine = make_engine(conf, pool_size=1)
        print(db_version(engine))
        engine.dispose()


if __name__ == "__main__":
    main()
