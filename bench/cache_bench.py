#!/usr/bin/env python3
"""Image cache downloads: Tessera next to Glance 33 with its image cache on, in one run,
against this machine's loopback HTTP limit.

    .venv/bin/python bench/cache_bench.py                  # 256 MiB image, 5 hits each
    .venv/bin/python bench/cache_bench.py --size-mib 1024 --reps 3 --servers tessera

Both servers run at once. For each: one image is uploaded, then downloaded
- uncached: ``Range: bytes=0-`` (the whole image; a range is never cached, by Tessera nor
  Glance, so this is the store relay),
- first: the download that fills the cache on its way,
- hit: served from the cache (after the fill is published), in ``--reps`` rounds of one
  hit from each server, so both meet the same machine load.
The limit is a trivial stdlib HTTP server in its own process sending 1 MiB blocks from
one buffer in memory (as ../shared/bench/limits.py measures it), read by the same client;
the same server also sends a file as large as the image with sendfile (a file is read
from memory that is not in the CPU's caches, unlike one 1 MiB buffer sent again and
again). Each round starts with one download of each from it, so that the limits and
the hits are measured under the same machine load (this 2-core VM's throughput drifts by
tens of percent between minutes); medians and best runs are reported. Tessera runs as
bench/run_bench.py starts it (cache on, under its throw-away data directory); Glance as
bench/glance_anchor.py starts it (uWSGI, 4 processes, flavor keystone+caching minus
authtoken, the sqlite cache driver). The RSS of each server's process tree is sampled
before and after. MB/s = 10^6 bytes/s. Writes
bench/results/cache-<time>.json."""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    GLANCE_ADMIN,
    TESSERA_ADMIN,
    cell,
    create_image,
    figure_table,
    free_port,
    glance_stack,
    request,
    tessera_stack,
    write_results,
)

MiB = 1 << 20


def mbps(nbytes: int, seconds: float) -> float:
    return round(nbytes / seconds / 1e6, 1)


def download(url: str, path: str, headers: dict) -> tuple[int, float]:
    """GET ``path``, reading into one reusable buffer: (bytes, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300, blocksize=MiB)
    buffer = memoryview(bytearray(4 * MiB))
    try:
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        if resp.status not in (200, 206):
            raise RuntimeError(f"GET {path}: {resp.status} {resp.read(500)!r}")
        total = 0
        while n := resp.readinto(buffer):
            total += n
        return total, time.perf_counter() - started
    finally:
        conn.close()


def upload_image(url: str, headers: dict, size_mib: int) -> str:
    image = create_image(url, headers, "cache-bench")
    block = os.urandom(MiB)
    request(
        url,
        "PUT",
        f"/v2/images/{image['id']}/file",
        {**headers, "Content-Type": "application/octet-stream"},
        (block for _ in range(size_mib)),
        size_mib * MiB,
    )
    return image["id"]


def tree_rss_mib(pid: int) -> float:
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return round(total / MiB, 1)


def fill(url: str, pid: int, headers: dict, size_mib: int) -> dict:
    """Upload one image, download it uncached and then once more to fill the cache, and
    wait until the cache lists it: the path to download it from and the first figures."""
    image_id = upload_image(url, headers, size_mib)
    path = f"/v2/images/{image_id}/file"
    rss_before = tree_rss_mib(pid)
    size, secs = download(url, path, {**headers, "Range": "bytes=0-"})
    uncached = mbps(size, secs)
    size, secs = download(url, path, headers)
    first = mbps(size, secs)
    deadline = time.monotonic() + 300
    while image_id not in {
        e["image_id"] for e in request(url, "GET", "/v2/cache", headers)["cached_images"]
    }:
        if time.monotonic() > deadline:
            raise RuntimeError("the image was not cached")
        time.sleep(0.2)
    return {
        "path": path,
        "uncached_MBps": uncached,
        "first_fill_MBps": first,
        "rss_before_MiB": rss_before,
    }


def summary(figures: list[float], name: str) -> dict:
    return {
        f"{name}_MBps": figures,
        f"{name}_median_MBps": statistics.median(figures),
        f"{name}_best_MBps": max(figures),
    }


def measure_hits(servers: dict, size_mib: int, reps: int, limit_url: str) -> dict:
    """``reps`` rounds, each one download of each limit, then one cache hit from each
    server (``servers``: name -> (url, pid, headers, fill's result))."""
    figures: dict[str, list[float]] = {"loopback": [], "loopback_file": []}
    for _ in range(reps):
        figures["loopback"].append(mbps(*download(limit_url, f"/{size_mib}", {})))
        figures["loopback_file"].append(mbps(*download(limit_url, "/file", {})))
        for name, (url, _pid, headers, filled) in servers.items():
            size, secs = download(url, filled["path"], headers)
            assert size == size_mib * MiB
            figures.setdefault(name, []).append(mbps(size, secs))
    results: dict = {}
    for name, (_url, pid, _headers, filled) in servers.items():
        results[name] = {**filled, **summary(figures[name], "hit")}
        results[name]["rss_after_MiB"] = tree_rss_mib(pid)
        del results[name]["path"]
    results.update(summary(figures["loopback"], "loopback"))
    results.update(summary(figures["loopback_file"], "loopback_file"))
    return results


# A trivial sender, run in a process of its own: ``/<n>``, n MiB sent in 1 MiB blocks
# from one buffer in memory (../shared/bench/limits.py's loopback limit); ``/file``, the
# file named on its command line (as large as the image, in the page cache as a cached
# image is) sent with sendfile, the same system call that serves a Tessera cache hit.
SENDER = """
import http.server, os, sys
class Sender(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    block = bytes(1 << 20)
    def log_message(self, *args):
        pass
    def do_GET(self):
        path = sys.argv[2]
        size = os.path.getsize(path) if self.path == "/file" else int(self.path[1:]) << 20
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.path != "/file":
            for _ in range(size >> 20):
                self.wfile.write(self.block)
            return
        fd, offset = os.open(path, os.O_RDONLY), 0
        try:
            while offset < size:
                offset += os.sendfile(self.connection.fileno(), fd, offset, size - offset)
        finally:
            os.close(fd)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sender).serve_forever()
"""


@contextmanager
def loopback_server(size_mib: int) -> Iterator[str]:
    """The trivial sender started in a process of its own, with a file of ``size_mib``
    random MiB to send; its URL."""
    port = free_port()
    scratch = tempfile.NamedTemporaryFile(prefix="cache-bench-limit-")  # noqa: SIM115
    for _ in range(size_mib):
        scratch.write(os.urandom(MiB))
    scratch.flush()
    server = subprocess.Popen([sys.executable, "-c", SENDER, str(port), scratch.name])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                download(url, "/1", {})
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait()
        scratch.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--servers", default="tessera,glance")
    args = parser.parse_args()
    servers = args.servers.split(",")
    results: dict = {"size_mib": args.size_mib, "reps": args.reps}
    with loopback_server(args.size_mib) as limit_url, ExitStack() as running:
        started = {}
        if "tessera" in servers:
            stack = running.enter_context(
                tessera_stack(workers=2, threads=16, cache_max_size=4 * args.size_mib * MiB)
            )
            started["tessera"] = (stack.url, stack.process.pid, TESSERA_ADMIN)
        if "glance" in servers:
            started["glance"] = (*running.enter_context(glance_stack(cache=True)), GLANCE_ADMIN)
        filled = {}
        for name, (url, pid, headers) in started.items():
            filled[name] = (url, pid, headers, fill(url, pid, headers, args.size_mib))
            print(f"# {name}: {filled[name][3]}", flush=True)
        results.update(measure_hits(filled, args.size_mib, args.reps, limit_url))
    print(f"# {results}", flush=True)
    limits = [
        ("loopback HTTP limit, median (MB/s)", "loopback_median_MBps"),
        ("loopback HTTP limit, best (MB/s)", "loopback_best_MBps"),
        ("loopback limit, a file by sendfile (MB/s)", "loopback_file_median_MBps"),
    ]
    rows = [(figure, results[key], results[key]) for figure, key in limits]
    for figure, key in (
        ("uncached download (MB/s)", "uncached_MBps"),
        ("first download, filling (MB/s)", "first_fill_MBps"),
        ("cache hit, median (MB/s)", "hit_median_MBps"),
        ("cache hit, best (MB/s)", "hit_best_MBps"),
        ("RSS before (MiB)", "rss_before_MiB"),
        ("RSS after (MiB)", "rss_after_MiB"),
    ):
        rows.append((figure, cell(results, "tessera", key), cell(results, "glance", key)))
    table = figure_table(rows, width=42)
    if "tessera" in results:
        ours = results["tessera"]
        median = ours["hit_median_MBps"] / results["loopback_median_MBps"]
        best = ours["hit_best_MBps"] / results["loopback_best_MBps"]
        of_file = ours["hit_median_MBps"] / results["loopback_file_median_MBps"]
        table.append(
            f"Tessera cache hit / loopback limit: {median:.0%} (medians), {best:.0%} (best runs)"
        )
        table.append(f"Tessera cache hit / a file sent by sendfile: {of_file:.0%} (medians)")
        if "glance" in results:
            table.append(
                f"Tessera cache hit / Glance cache hit: "
                f"{ours['hit_median_MBps'] / results['glance']['hit_median_MBps']:.2f}x (medians)"
            )
    write_results("cache", results, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
