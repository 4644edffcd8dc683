#!/usr/bin/env python3
"""Web-download import of one big image: Tessera next to Glance 33, in one run.

    .venv/bin/python bench/import_bench.py                 # 1 GiB, 3 imports each
    .venv/bin/python bench/import_bench.py --size-mib 256 --reps 1 --servers tessera

The source is a file generated once into --workdir (a 1 MiB random block repeated; kept for
later runs), served by a stdlib HTTP server in a process of its own on loopback (sendfile).
Each server is configured to allow web-download from 127.0.0.1 on that port only
([import_filtering_opts] allowed_hosts / allowed_ports, as an operator would). For each
import: a new image, ``POST /v2/images/{id}/import`` (web-download), then
``GET /v2/images/{id}`` every 0.1 s until ``active``; the figure is the time from the POST
to the first ``active``. Glance's import reads the whole image twice (into its staging
area, then from there into the store); Tessera's goes from the source to the store once.

Memory: psutil samples the RSS of every process of each server's tree every 0.2 s (as
bench/memory.py does): the whole tree (Tessera: tessera-run and its services, gateway
workers included; Glance: the uWSGI master and its 4 workers) and the process that moves
the bytes (Tessera: the store service(s); Glance: the uWSGI worker whose RSS grew most,
the one running the import task), before the first import, at its peak, and after the
last. Tessera runs as bench/run_bench.py starts it (2 gateway workers x 16 threads, SQLite,
file store), Glance as bench/glance_anchor.py starts it (uWSGI, 4 processes, SQLite, file
store). MB/s = 10^6 bytes/s. Writes bench/results/import-<time>.json."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    GLANCE_ADMIN,
    TESSERA_ADMIN,
    cell,
    check_free_space,
    create_image,
    figure_table,
    free_port,
    glance_stack,
    request,
    tessera_stack,
    write_results,
)
from memory import TreeSampler  # noqa: E402

MiB = 1 << 20

# The web-download source, run in a process of its own: GET/HEAD of /<name> in a directory.
SENDER = """
import http.server, os, sys
root = sys.argv[2]
class Sender(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def _head(self):
        path = os.path.join(root, os.path.basename(self.path))
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.end_headers()
        return path
    def do_HEAD(self):
        self._head()
    def do_GET(self):
        path = self._head()
        if path:
            with open(path, "rb") as f:
                self.connection.sendfile(f)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sender).serve_forever()
"""


def source_file(workdir: Path, size_mib: int) -> Path:
    """``workdir``/import-<size>MiB.bin: a 1 MiB random block repeated, made once."""
    path = workdir / f"import-{size_mib}MiB.bin"
    if path.exists() and path.stat().st_size == size_mib * MiB:
        return path
    check_free_space(workdir, size_mib + 256)
    block = os.urandom(MiB)
    part = path.with_suffix(".part")
    with open(part, "wb") as f:
        for _ in range(size_mib):
            f.write(block)
    part.rename(path)
    return path


def start_sender(directory: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SENDER, str(port), str(directory)])
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(
                urllib.request.Request(f"http://127.0.0.1:{port}/none", method="HEAD"), timeout=2
            )
        except urllib.error.HTTPError:
            return proc, port  # 404: it answers
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the web-download source did not start") from None
            time.sleep(0.1)


def import_once(url: str, headers: dict, source: str, size: int, timeout: float) -> float:
    """One web-download import into a new image; seconds from the POST to ``active``."""
    image = create_image(url, headers, "import-bench")
    path = f"/v2/images/{image['id']}"
    body = json.dumps({"method": {"name": "web-download", "uri": source}})
    started = time.perf_counter()
    request(url, "POST", f"{path}/import", {**headers, "Content-Type": "application/json"}, body)
    deadline = time.monotonic() + timeout
    while True:
        shown = request(url, "GET", path, headers)
        if shown["status"] == "active":
            seconds = time.perf_counter() - started
            break
        if shown.get("os_glance_failed_import") or shown["status"] in ("killed", "deleted"):
            raise RuntimeError(f"the import failed: {shown}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no active after {timeout} s: {shown}")
        time.sleep(0.1)
    if shown["size"] != size:
        raise RuntimeError(f"imported {shown['size']} bytes, expected {size}")
    request(url, "DELETE", path, headers)
    return seconds


def tree_totals(sampler: TreeSampler) -> tuple[float, float, float]:
    """(first, highest, last) of the summed RSS of the sampled processes, MiB."""
    by_time: dict[float, float] = {}
    for entry in sampler.procs.values():
        for t, mib in entry["series"]:
            by_time[t] = by_time.get(t, 0) + mib
    series = [by_time[t] for t in sorted(by_time)]
    return round(series[0], 1), round(max(series), 1), round(series[-1], 1)


def mover(rows: list[dict], tessera: bool) -> dict:
    """The RSS (first, highest, last; MiB) of the process(es) moving the bytes."""
    if tessera:
        chosen = [r for r in rows if r["role"] == "store"]
    else:
        chosen = [max(rows, key=lambda r: r["rss_max"] - r["rss_start"])]
    return {
        "processes": [r["name"] for r in chosen],
        "rss_before_MiB": round(sum(r["series"][0][1] for r in chosen), 1),
        "rss_peak_MiB": round(sum(r["rss_max"] for r in chosen) / MiB, 1),
        "rss_after_MiB": round(sum(r["series"][-1][1] for r in chosen), 1),
    }


def measure(
    url: str, pid: int, headers: dict, source: str, size: int, reps: int, tessera: bool
) -> dict:
    sampler = TreeSampler(pid, 0.2)
    sampler.start()
    try:
        times = []
        for i in range(reps):
            times.append(round(import_once(url, headers, source, size, timeout=900), 2))
            print(f"#   import {i + 1}/{reps}: {times[-1]} s", flush=True)
        time.sleep(1)
    finally:
        sampler.stop()
    rows = sampler.report()
    before, peak, after = tree_totals(sampler)
    median = statistics.median(times)
    return {
        "seconds": times,
        "median_s": median,
        "MBps": round(size / median / 1e6, 1),
        "tree_rss_before_MiB": before,
        "tree_rss_peak_MiB": peak,
        "tree_rss_after_MiB": after,
        "mover": mover(rows, tessera),
        "processes": [{k: e[k] for k in ("name", "pid", "rss_start", "rss_max")} for e in rows],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--servers", default="tessera,glance")
    parser.add_argument("--workdir", default="/tmp/tessera-bench", help="the source file's home")
    args = parser.parse_args()
    servers = args.servers.split(",")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MiB
    # the stored image, plus Glance's staged copy
    check_free_space(tempfile.gettempdir(), 2 * args.size_mib + 512)
    source = source_file(workdir, args.size_mib)
    sender, port = start_sender(source.parent)
    uri = f"http://127.0.0.1:{port}/{source.name}"
    results: dict = {
        "size_mib": args.size_mib,
        "reps": args.reps,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        if "tessera" in servers:
            allowed = {"allowed_hosts": "127.0.0.1", "allowed_ports": port}
            with tessera_stack(
                workers=2, threads=16, sections={"import_filtering_opts": allowed}
            ) as stack:
                print(f"# tessera on {stack.url}", flush=True)
                results["tessera"] = measure(
                    stack.url, stack.process.pid, TESSERA_ADMIN, uri, size, args.reps, True
                )
        if "glance" in servers:
            with glance_stack(web_download_port=port) as (url, pid):
                print(f"# glance 33 on {url}", flush=True)
                results["glance"] = measure(url, pid, GLANCE_ADMIN, uri, size, args.reps, False)
    finally:
        sender.terminate()
        sender.wait()
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    rows = [
        ("import to active, median (s)", ("median_s",)),
        ("import rate (MB/s)", ("MBps",)),
        ("byte mover RSS before (MiB)", ("mover", "rss_before_MiB")),
        ("byte mover RSS peak (MiB)", ("mover", "rss_peak_MiB")),
        ("byte mover RSS after (MiB)", ("mover", "rss_after_MiB")),
        ("whole tree RSS before (MiB)", ("tree_rss_before_MiB",)),
        ("whole tree RSS peak (MiB)", ("tree_rss_peak_MiB",)),
        ("whole tree RSS after (MiB)", ("tree_rss_after_MiB",)),
    ]
    table = figure_table(
        [(name, cell(results, "tessera", *k), cell(results, "glance", *k)) for name, k in rows],
        width=32,
    )
    if "tessera" in results and "glance" in results:
        ratio = results["tessera"]["median_s"] / results["glance"]["median_s"]
        results["time_ratio_tessera_over_glance"] = round(ratio, 3)
        table.append(f"Tessera time / Glance time: {ratio:.2f} (goal: at most 0.50)")
    table.append(
        f"load average (1/5/15 min): start {results['loadavg_start']}, end {results['loadavg_end']}"
    )
    write_results("import", results, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
