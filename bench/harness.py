"""What the benchmark scripts share: Tessera started on a throw-away data directory and
RabbitMQ vhost, the benchmark client (bench/image_client.py) and how to run it, where
results go. ``--client PATH`` (and ``--limits PATH`` in side_by_side.py) run another client
with the same command line instead, as a cross-check of the in-repository ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.stack import Stack, free_port  # noqa: E402

DEFAULT_CLIENT = ROOT / "bench" / "image_client.py"
LIMITS = ROOT / "bench" / "machine_limits.py"
RESULTS = ROOT / "bench" / "results"

# No Keystone: Tessera's development auth reads the caller from these headers.
TESSERA_HEADERS = ["X-Project-Id:bench", "X-User-Id:bench", "X-Roles:member,reader"]

__all__ = [
    "DEFAULT_CLIENT",
    "LIMITS",
    "RESULTS",
    "ROOT",
    "TESSERA_HEADERS",
    "check_free_space",
    "free_port",
    "result_path",
    "run_client",
    "tessera_stack",
]


@contextmanager
def tessera_stack(workers: int = 2, threads: int = 16) -> Iterator[Stack]:
    """``tessera-run`` on a fresh data directory (SQLite, file store) and a RabbitMQ vhost
    of its own; both are removed on exit. ``stack.process.pid`` is the tessera-run pid."""
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as workdir:
        stack = Stack(Path(workdir), workers=workers, threads=threads)
        try:
            stack.start()
            yield stack
        finally:
            stack.cleanup()


def result_path(prefix: str, stamp: str | None = None, suffix: str = ".json") -> Path:
    """bench/results/<prefix>-<stamp or now><suffix>"""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{prefix}-{stamp or time.strftime('%Y%m%d-%H%M%S')}{suffix}"


def run_client(
    url: str,
    *,
    only: str,
    server_pid: int,
    headers: list[str],
    label: str,
    out: Path,
    extra: list[str] | tuple[str, ...] = (),
    client: Path | str = DEFAULT_CLIENT,
    echo: str | None = None,
) -> tuple[int, dict | None]:
    """Run the benchmark client once; returns (exit status, its JSON result or None).

    With ``echo`` the client's progress lines ("# ...") are printed with that prefix; its
    closing JSON goes to ``out`` only."""
    cmd = [
        sys.executable,
        str(client),
        "--url",
        url,
        "--only",
        only,
        "--server-pid",
        str(server_pid),
        "--label",
        label,
        "--out",
        str(out),
    ]
    for header in headers:
        cmd += ["--header", header]
    cmd += list(extra)
    if echo is None:
        code = subprocess.call(cmd, stdout=subprocess.DEVNULL)
    else:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
            for line in proc.stdout:
                if line.startswith("#"):
                    print(f"{echo} {line[2:]}", end="", flush=True)
            code = proc.wait()
    try:
        result = json.loads(out.read_text())
    except (OSError, ValueError):
        result = None
    return code, result


def check_free_space(directory: str | Path, need_mib: int) -> None:
    free_mib = shutil.disk_usage(directory).free // (1 << 20)
    if free_mib < need_mib:
        sys.exit(
            f"not enough free space in {directory}: {free_mib} MiB free, "
            f"this run needs about {need_mib} MiB"
        )
