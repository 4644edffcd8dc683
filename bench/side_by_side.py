#!/usr/bin/env python3
"""Tessera next to the real Glance 33.0.0 on this machine, with the same client, phases
and sizes.

    python bench/side_by_side.py                      # what `make bench-compare` runs
    python bench/side_by_side.py --size-mib 256 --only upload,download,create,show \\
        --create-n 50 --show-reps 100
    python bench/side_by_side.py --servers glance     # one side only

First bench/machine_limits.py measures what this machine can do (hashing, disk).
Then each server in turn: Tessera as bench/run_bench.py starts it (a
throw-away data directory and RabbitMQ vhost, 2 gateway workers x 16 threads), Glance as
bench/glance_anchor.py starts it (uWSGI, 4 processes x 1 thread, SQLite, file store), and
bench/image_client.py runs against it with --server-pid (tessera-run / the
uWSGI master) so that CPU and memory of every server process are counted. The upload and
download phases run in one client invocation, every other phase in one of its own, so a
phase that fails (Glance on SQLite loses concurrent uploads) is recorded as failed and the
other phases still run. --client PATH and --limits PATH run another client and limits
script with the same command line and summary names instead (a cross-check).

Options the script does not know go to the client (e.g. --create-n 50 --show-reps 100
--list-population 500 --reps 50). It prints one table, figure | Tessera | Glance | ratio,
and writes under bench/results/: compare-<time>.json (limits, every raw client result, the
merged summaries and the table), compare-<time>.txt (the table) and the raw per-run JSON
files compare-<time>-<server>-<phases>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import glance_anchor  # noqa: E402
from harness import (  # noqa: E402
    DEFAULT_CLIENT,
    LIMITS,
    ROOT,
    TESSERA_HEADERS,
    check_free_space,
    glance_stack,
    result_path,
    run_client,
    tessera_stack,
)

# the client's own order: show picks images of the list population; concurrent goes last
# because Glance on SQLite may leave failed uploads behind
PHASES = ["upload", "download", "create", "list", "show", "concurrent", "idle"]
SERVERS = ["tessera", "glance"]
NAMES = {"tessera": "Tessera", "glance": "Glance"}


# ---------------------------------------------------------------- servers
@contextmanager
def tessera_server(args) -> Iterator[tuple[str, int, list[str]]]:
    with tessera_stack(workers=args.workers, threads=16) as stack:
        yield stack.url, stack.process.pid, TESSERA_HEADERS


@contextmanager
def glance_server(args, workdir: Path) -> Iterator[tuple[str, int, list[str]]]:
    with glance_stack(workdir / "glance", venv=args.glance_venv) as (url, pid):
        yield url, pid, glance_anchor.CLIENT_HEADERS


def phase_groups(phases: list[str]) -> list[list[str]]:
    """upload and download share an invocation (download reads the uploaded image)."""
    groups, data = [], [p for p in phases if p in ("upload", "download")]
    if data:
        groups.append(data)
    groups += [[p] for p in phases if p not in data]
    return groups


# ---------------------------------------------------------------- the table
def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return (
            f"{value:.0f}"
            if abs(value) >= 1000
            else f"{value:.3g}"
            if abs(value) < 1
            else (f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}")
        )
    return str(value)


def ratio(a, b) -> str:
    if isinstance(a, bool) or isinstance(b, bool):
        return ""
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return ""
    return f"{a / b:.2f}x"


def concurrent_cell(run: dict | None, summary: dict, clients: int) -> str:
    """'yes', or 'failed (k/n)' / 'failed (error)' / '-' when it did not run."""
    if run is None:
        return "-"
    failed = summary.get("concurrent_failed_clients")
    if failed is None:
        return "failed (client error)" if run["exit"] else "-"
    if failed or not summary.get("concurrent_verified", False) or run["exit"]:
        return f"failed ({failed}/{clients} uploads)" if failed else "failed (not verified)"
    return f"yes ({clients}/{clients})"


def upload_bound(limits: dict | None) -> float | None:
    """The fastest any file-store upload computing both hashes can go on this machine,
    from limits.py: its CPUs shared by the three jobs every such upload does to each
    byte (MD5, SHA-512, copying it into the page cache), none faster than its own
    one-thread speed. It leaves out the network copies and the client, so no server
    reaches it. On a VM whose fresh memory is slow to touch, the page-cache write costs
    as much CPU as a hash, which is why 80% of the two-thread hash speed is out of reach
    for any image service there."""
    limits = limits or {}
    speeds = [
        limits.get(key) for key in ("hash_md5_MBps", "hash_sha512_MBps", "disk_write_nofsync_MBps")
    ]
    if not all(speeds):
        return None
    cpu_seconds_per_mb = sum(1 / speed for speed in speeds)
    return min(min(speeds), (os.cpu_count() or 1) / cpu_seconds_per_mb)


def table_rows(args, limits: dict | None, summaries: dict, runs: dict) -> list[tuple]:
    """(figure, better, {server: value}) rows; better is '↑', '↓' or '' (information)."""
    rows: list[tuple] = []

    def add(label, key, better):
        values = {
            s: (key(summaries[s]) if callable(key) else summaries[s].get(key)) for s in summaries
        }
        if any(v is not None for v in values.values()):
            rows.append((label, better, values))

    def upload_share(limit):
        return lambda s: round(100 * s["upload_MBps"] / limit, 1) if s.get("upload_MBps") else None

    add("upload MB/s", "upload_MBps", "↑")
    hash_limit = (limits or {}).get("hash_par_md5_sha512_MBps")
    if hash_limit:
        add(
            f"upload, % of 2-thread md5+sha512 ({hash_limit:.0f} MB/s)",
            upload_share(hash_limit),
            "↑",
        )
    store_bound = upload_bound(limits)
    if store_bound:
        add(
            f"upload, % of the machine's bound for a file store ({store_bound:.0f} MB/s)",
            upload_share(store_bound),
            "↑",
        )
    add("upload server CPU s/GiB", "upload_server_cpu_s_per_GiB", "↓")
    for i in range(1, args.download_runs + 1):
        add(f"download run {i} MB/s", f"download_run{i}_MBps", "↑")
    add("download run 1 server CPU s/GiB", "download_run1_server_cpu_s_per_GiB", "↓")

    def concurrent_mbps(s):
        # over the successful clients only: with failures it is not comparable (no ratio)
        mbps, failed = s.get("concurrent_upload_MBps"), s.get("concurrent_failed_clients")
        if mbps is None or not failed:
            return mbps
        return f"{fmt(mbps)} ({args.concurrency - failed}/{args.concurrency} ok)"

    add(
        f"concurrent {args.concurrency}x{args.concurrent_mib} MiB upload MB/s", concurrent_mbps, "↑"
    )
    if "concurrent" in args.phases:
        rows.append(
            (
                f"concurrent: all {args.concurrency} uploads succeeded",
                "",
                {
                    s: concurrent_cell(
                        phase_run(runs[s], "concurrent"), summaries[s], args.concurrency
                    )
                    for s in summaries
                },
            )
        )
    add("concurrent server CPU s/GiB", "concurrent_server_cpu_s_per_GiB", "↓")
    add("create POST p50 ms", "create_post_p50_ms", "↓")
    add("delete p50 ms", "delete_p50_ms", "↓")
    add("create+delete server CPU ms/pair", "create_server_cpu_ms_per_pair", "↓")
    add("show p50 ms", "show_p50_ms", "↓")
    add("show server CPU ms/req", "show_server_cpu_ms_per_req", "↓")
    add("idle server CPU ms/s", "idle_server_cpu_ms_per_s", "↓")
    for query in (
        "limit20",
        "limit1000",
        "filter_name",
        "filter_tag",
        "filter_property",
        "sort_name",
    ):
        add(f"list {query} p50 ms", f"list_{query}_p50_ms", "↓")
        add(f"list {query} server CPU ms/req", f"list_{query}_server_cpu_ms_per_req", "↓")
    add("list full walk s", "list_walk_seconds", "↓")
    for phase in ("create", "show", "list"):
        add(f"RabbitMQ CPU ms/req, {phase}", f"broker_cpu_ms_per_req_{phase}", "*")

    def peak(s):
        peaks = [v for k, v in s.items() if k.startswith("server_rss_peak_MiB_")]
        return max(peaks) if peaks else None

    add("peak RSS MiB, all server processes", peak, "↓")
    add("server processes", "server_procs", "")

    def noise(s):
        fracs = [v for k, v in s.items() if k.startswith("noise_frac_")]
        return round(100 * max(fracs), 1) if fracs else None

    add("machine CPU used by others, worst phase %", noise, "")
    return rows


def render(rows: list[tuple], servers: list[str]) -> str:
    header = ["figure", *(NAMES[s] for s in servers)]
    both = len(servers) == 2 and servers == SERVERS
    if both:
        header.append("ratio")
    body = []
    for label, better, values in rows:
        line = [f"{label} {better}".rstrip(), *(fmt(values.get(s)) for s in servers)]
        if both:
            line.append(
                ratio(values.get("tessera"), values.get("glance")) if better in ("↑", "↓") else ""
            )
        body.append(line)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    out = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    out.append("  ".join("-" * w for w in widths))
    for line in body:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    legend = "↑ higher is better, ↓ lower is better"
    if both:
        legend = "ratio = Tessera / Glance; " + legend
    if any(r[1] == "*" for r in rows):
        legend += (
            "\n* CPU of the whole local RabbitMQ during the phase / requests: Tessera's "
            "RPCs cost it and --server-pid\n  does not count it; Glance does not use "
            "RabbitMQ, so its column is what other users of the broker cost"
        )
    return "\n".join(out) + "\n" + legend + "\n"


# ---------------------------------------------------------------- running
def run_limits(args, workdir: Path, out: Path) -> dict | None:
    mib = str(args.limits_mib)
    cmd = [
        sys.executable,
        str(args.limits),
        "--hash-mib",
        mib,
        "--disk-mib",
        mib,
        "--http-mib",
        mib,
        "--dir",
        str(workdir),
        "--out",
        str(out),
    ]
    print(f"== limits of this machine ({Path(args.limits).name}, {mib} MiB)", flush=True)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            if line.startswith("#"):
                print("[limits] " + line[2:], end="", flush=True)
        code = proc.wait()
    if code:
        print(f"[limits] exited with {code}; the table has no hash limit", flush=True)
        return None
    return json.loads(out.read_text())


def broker_cpu_s() -> float | None:
    """CPU seconds used so far by the local RabbitMQ (beam.smp); None if not found. Tessera's
    RPCs cost broker CPU that --server-pid does not count."""
    total, found = 0.0, False
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        if proc.info["name"] == "beam.smp" and "rabbit" in " ".join(proc.info["cmdline"] or []):
            times = proc.info["cpu_times"]
            total += times.user + times.system
            found = True
    return total if found else None


def run_server(name: str, args, workdir: Path, stamp: str, extra: list[str]) -> dict:
    """Every phase group against one server: {"groups": {"upload,download": {"exit", "out",
    "error"?, "broker_cpu_s", "result"}, ...}, "error": why it did not run, or None}."""
    runs: dict = {"groups": {}, "error": None}
    cm = tessera_server(args) if name == "tessera" else glance_server(args, workdir)
    print(f"== {NAMES[name]}: starting", flush=True)
    t0 = time.monotonic()
    try:
        with cm as (url, pid, headers):
            print(
                f"== {NAMES[name]} on {url} (server pid {pid}) after {time.monotonic() - t0:.0f}s",
                flush=True,
            )
            for group in phase_groups(args.phases):
                only = ",".join(group)
                out = result_path("compare", stamp=f"{stamp}-{name}-{'-'.join(group)}")
                cpu0 = broker_cpu_s()
                code, result = run_client(
                    url,
                    only=only,
                    server_pid=pid,
                    headers=headers,
                    label=name,
                    out=out,
                    extra=[
                        "--size-mib",
                        str(args.size_mib),
                        "--download-runs",
                        str(args.download_runs),
                        "--concurrency",
                        str(args.concurrency),
                        "--concurrent-mib",
                        str(args.concurrent_mib),
                        "--workdir",
                        str(workdir / "client"),
                        *extra,
                    ],
                    client=args.client,
                    echo=f"[{name}]",
                )
                cpu1 = broker_cpu_s()
                entry = {
                    "exit": code,
                    "out": str(out),
                    "broker_cpu_s": round(cpu1 - cpu0, 3) if cpu0 is not None else None,
                }
                if code:
                    entry["error"] = (result or {}).get("error", f"client exited with {code}")
                    print(f"[{name}] {only}: FAILED ({entry['error'][:300]})", flush=True)
                entry["result"] = result
                runs["groups"][only] = entry
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"== {NAMES[name]} did not start or stop cleanly: {exc}", flush=True)
        runs["error"] = str(exc)
    return runs


def phase_run(runs: dict, phase: str) -> dict | None:
    for only, entry in runs["groups"].items():
        if phase in only.split(","):
            return entry
    return None


def merged_summary(runs: dict) -> dict:
    """The client summaries of every group, plus broker_cpu_ms_per_req_<phase>."""
    summary: dict = {}
    for only, entry in runs["groups"].items():
        result = entry["result"] or {}
        summary.update(result.get("summary", {}))
        requests = result.get("meta", {}).get("http_requests")
        if entry["broker_cpu_s"] is not None and requests and only in ("create", "show", "list"):
            summary[f"broker_cpu_ms_per_req_{only}"] = round(
                1000 * entry["broker_cpu_s"] / requests, 3
            )
    return summary


def git_state() -> dict:
    def git(*a):
        done = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma separated phases from {PHASES} (default all)",
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="upload/download size")
    parser.add_argument("--download-runs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--concurrent-mib", type=int, default=64)
    parser.add_argument(
        "--servers",
        default="tessera,glance",
        help="which servers, in this order (default tessera,glance)",
    )
    parser.add_argument("--workers", type=int, default=2, help="Tessera API worker processes")
    parser.add_argument("--glance-venv", default=str(glance_anchor.DEFAULT_VENV))
    parser.add_argument(
        "--limits-mib",
        type=int,
        default=1024,
        help="MiB hashed, written and sent by limits.py (default 1024)",
    )
    parser.add_argument("--no-limits", action="store_true", help="skip limits.py")
    parser.add_argument(
        "--workdir",
        default="/tmp/tessera-bench",
        help="where the run's files go (removed at the end)",
    )
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument("--client", default=str(DEFAULT_CLIENT))
    parser.add_argument(
        "--limits", default=str(LIMITS), help="machine limits script (bench/machine_limits.py)"
    )
    args, extra = parser.parse_known_args()
    args.phases = [p for p in PHASES if p in {x.strip() for x in args.only.split(",")}]
    unknown = {x.strip() for x in args.only.split(",") if x.strip()} - set(PHASES)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if unknown or not args.phases:
        parser.error(f"--only takes phases from {PHASES}")
    if not servers or set(servers) - set(SERVERS):
        parser.error(f"--servers takes names from {SERVERS}")
    for path in (args.client, args.limits):
        if not Path(path).exists():
            sys.exit(f"not found: {path}")

    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    need = 512 + (0 if args.no_limits else args.limits_mib)
    if {"upload", "download"} & set(args.phases):
        need += 2 * args.size_mib  # the client's file + the stored image
    if "concurrent" in args.phases:
        need += (args.concurrency + 1) * args.concurrent_mib
    check_free_space(args.workdir, need)

    if "glance" in servers:  # install (once) before anything is measured
        glance_anchor.ensure_venv(Path(args.glance_venv))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix=f"compare-{stamp}-", dir=args.workdir))
    combined = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_start": os.getloadavg(),
            "nproc": os.cpu_count(),
            "phases": args.phases,
            "size_mib": args.size_mib,
            "servers": servers,
            "client_extra_args": extra,
            "tessera_workers": args.workers,
            "tessera_threads": 16,
            "glance": {
                "version": glance_anchor.GLANCE_VERSION,
                "uwsgi_processes": 4,
                "uwsgi_threads": 1,
                "database": "sqlite",
                "store": "file",
            },
            "tessera_git": git_state(),
        }
    }
    runs: dict = {}
    try:
        limits = None
        if not args.no_limits:
            limits = run_limits(args, workdir, result_path("compare", stamp=f"{stamp}-limits"))
        for name in servers:
            runs[name] = run_server(name, args, workdir, stamp, extra)
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    summaries = {name: merged_summary(runs[name]) for name in servers}
    rows = table_rows(args, limits, summaries, runs)
    table = render(rows, servers)
    notes = []
    for name in servers:
        if runs[name]["error"]:
            notes.append(f"{NAMES[name]} did not run: {runs[name]['error'][:300]}")
        for only, entry in runs[name]["groups"].items():
            if entry["exit"]:
                notes.append(f"{NAMES[name]} {only}: {entry['error'][:300]}")
            errors = ((entry["result"] or {}).get("concurrent") or {}).get("errors") or []
            if errors:
                notes.append(
                    f"{NAMES[name]} concurrent: {len(errors)} uploads failed, "
                    f"e.g. {errors[0][:300]}"
                )
    notes = list(dict.fromkeys(notes))
    load = os.getloadavg()
    text = (
        f"Tessera vs Glance {glance_anchor.GLANCE_VERSION}: phases {','.join(args.phases)}, "
        f"{args.size_mib} MiB image, {os.cpu_count()} CPUs, load average "
        f"{combined['meta']['loadavg_start'][0]:.2f} at start, {load[0]:.2f} at end\n\n"
        + table
        + "".join(f"note: {n}\n" for n in notes)
    )
    combined["meta"].update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), loadavg_end=load)
    combined.update(
        limits=limits,
        runs=runs,
        summary=summaries,
        table=[{"figure": r[0], "better": r[1], **r[2]} for r in rows],
        notes=notes,
    )
    out = result_path("compare", stamp=stamp)
    out.write_text(json.dumps(combined, indent=2) + "\n")
    out.with_suffix(".txt").write_text(text)
    print("\n" + text + f"\nresults: {out} and {out.with_suffix('.txt').name}")
    tessera = runs.get("tessera")
    failed = tessera is not None and (
        tessera["error"] or any(e["exit"] for e in tessera["groups"].values())
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
