"""What the benchmark scripts share: Tessera started on a throw-away data directory and
RabbitMQ vhost, Glance 33 as bench/glance_anchor.py starts it, the benchmark client
(bench/image_client.py) and how to run it, plain HTTP calls for the scripts that make their
own, the Tessera | Glance table and where results go. ``--client PATH`` (and ``--limits
PATH`` in side_by_side.py) run another client with the same command line instead, as a
cross-check of the in-repository ones."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import glance_anchor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.stack import Stack, free_port  # noqa: E402

DEFAULT_CLIENT = ROOT / "bench" / "image_client.py"
LIMITS = ROOT / "bench" / "machine_limits.py"
RESULTS = ROOT / "bench" / "results"

# No Keystone: Tessera's development auth reads the caller from these headers.
TESSERA_HEADERS = ["X-Project-Id:bench", "X-User-Id:bench", "X-Roles:member,reader"]
# Callers as request() takes them, with admin (the cache API needs it): Tessera's as above,
# Glance's trusted headers with every role.
TESSERA_ADMIN = {"X-Project-Id": "bench", "X-User-Id": "bench", "X-Roles": "admin"}
GLANCE_ADMIN = {**glance_anchor.HEADERS, "X-Roles": "admin,member,reader"}

__all__ = [
    "DEFAULT_CLIENT",
    "GLANCE_ADMIN",
    "LIMITS",
    "RESULTS",
    "ROOT",
    "TESSERA_ADMIN",
    "TESSERA_HEADERS",
    "cell",
    "check_free_space",
    "create_image",
    "figure_table",
    "free_port",
    "glance_stack",
    "request",
    "result_path",
    "run_client",
    "tessera_stack",
    "write_results",
]

MiB = 1 << 20


@contextmanager
def tessera_stack(
    workers: int = 2, threads: int = 16, cache_max_size: int | None = None, **options
) -> Iterator[Stack]:
    """``tessera-run`` on a fresh data directory (SQLite, file store) and a RabbitMQ vhost
    of its own; both are removed on exit. ``stack.process.pid`` is the tessera-run pid.
    ``cache_max_size``: the image cache on (in the throw-away directory), pruned to that
    many bytes; ``options``: more Stack settings (e.g. ``sections``)."""
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as workdir:
        if cache_max_size is not None:
            options.update(
                image_cache_dir=Path(workdir) / "cache", image_cache_max_size=cache_max_size
            )
        stack = Stack(Path(workdir), workers=workers, threads=threads, **options)
        try:
            stack.start()
            yield stack
        finally:
            stack.cleanup()


@contextmanager
def glance_stack(workdir: str | Path | None = None, **options) -> Iterator[tuple[str, int]]:
    """Glance 33 as bench/glance_anchor.py starts it (``options`` go to its ``start``) on
    a free port, stopped on exit; without ``workdir`` in a temporary directory removed on
    exit. Yields (base URL, uWSGI master pid)."""
    with ExitStack() as scope:
        if workdir is None:
            workdir = scope.enter_context(tempfile.TemporaryDirectory(prefix="glance-bench-"))
        url, pid = glance_anchor.start(free_port(), workdir, **options)
        try:
            yield url, pid
        finally:
            glance_anchor.stop()


def request(url: str, method: str, path: str, headers: dict, body=None, length=None):
    """One HTTP request on a connection of its own; the JSON answer (None if empty).
    An answer of 300 or more raises RuntimeError."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300, blocksize=MiB)
    try:
        hdrs = dict(headers)
        if length is not None:
            hdrs["Content-Length"] = str(length)
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:500]!r}")
        return json.loads(data) if data else None
    finally:
        conn.close()


def create_image(url: str, headers: dict, name: str) -> dict:
    """``POST /v2/images``: a new raw/bare image record; the answer."""
    return request(
        url,
        "POST",
        "/v2/images",
        {**headers, "Content-Type": "application/json"},
        json.dumps({"name": name, "disk_format": "raw", "container_format": "bare"}),
    )


def cell(results: dict, side: str, *keys) -> str:
    """``results[side][keys[0]][keys[1]]...`` as text, "-" where it is missing."""
    value = results.get(side, {})
    for key in keys:
        value = value.get(key, {}) if isinstance(value, dict) else "-"
    return "-" if value == {} else str(value)


def figure_table(rows: list[tuple], width: int) -> list[str]:
    """Lines of ``figure | Tessera | Glance 33`` from rows of (figure, Tessera's, Glance's)."""
    table = [f"{'figure':{width}} {'Tessera':>10} {'Glance 33':>10}"]
    table += [f"{name:{width}} {t!s:>10} {g!s:>10}" for name, t, g in rows]
    return table


def write_results(prefix: str, results: dict, table: list[str]) -> Path:
    """Print ``table``; write ``results`` with it to bench/results/<prefix>-<now>.json."""
    results["table"] = table
    print("\n".join(table))
    out = result_path(prefix)
    out.write_text(json.dumps(results, indent=2))
    print(f"# results: {out}")
    return out


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
