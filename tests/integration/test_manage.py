"""``tessera-manage db sync`` creates the schema on SQLite and MariaDB and is idempotent."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from services.common.config import database_url, load_config
from services.registry.manage import MIGRATIONS
from tests.stack import ROOT, MysqlDatabase, write_config

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()
TABLES = {
    "images",
    "image_properties",
    "image_tags",
    "image_locations",
    "image_members",
    "image_uploads",
    "tasks",
    "metadef_namespaces",
    "metadef_resource_types",
    "metadef_namespace_resource_types",
    "metadef_properties",
    "metadef_objects",
    "metadef_tags",
    "alembic_version",
}


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_db_sync(tmp_path, backend):
    database = MysqlDatabase() if backend == "mysql" else None
    config = write_config(
        tmp_path / "t.conf",
        DEFAULT={"data_dir": tmp_path / "data"},
        database={"connection": database.url if database else None},
    )
    try:
        for _ in range(2):  # the second run finds the schema current
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "services.registry.manage",
                    "--config-file",
                    str(config),
                    "db",
                    "sync",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert f"database at revision {HEAD}" in out
        engine = create_engine(database_url(load_config(["--config-file", str(config)])))
        assert TABLES <= set(inspect(engine).get_table_names())
        engine.dispose()
    finally:
        if database:
            database.delete()
