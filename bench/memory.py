#!/usr/bin/env python3
"""Memory of every Tessera process while one big image goes in and out.

    python bench/memory.py                    # 4 GiB up and down, limit 150 MB per process
    python bench/memory.py --size-mib 1024 --download-runs 2

Starts Tessera as bench/run_bench.py does (a throw-away data directory and RabbitMQ vhost),
then runs bench/image_client.py --only upload,download --size-mib N (the client streams the
image from a file it generates; --client PATH runs another one) while psutil
samples the RSS of every process of the tessera-run tree separately, every 0.2 s: tessera-run
itself, the registry, store and cache services, the gateway's gunicorn master and each
of its workers. Prints the highest RSS of each process with PASS/FAIL against the limit
(150 MB = 150,000,000 bytes by default) and exits 1 if any process went over it or the
transfer failed. Needs about 2 x N MiB free in /tmp (the client's file and the stored
image), checks that first, and removes both at the end. The result (per-process maxima and
the sampled series) goes to bench/results/memory-<time>.json, the client's own to
memory-<time>-client.json."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    DEFAULT_CLIENT,
    TESSERA_HEADERS,
    check_free_space,
    result_path,
    run_client,
    tessera_stack,
)

MiB = 1 << 20


def role_of(pid: int, procs: dict[int, dict]) -> str:
    """What a process of the tessera-run tree is, from its command line or its parent's."""
    cmdline = procs[pid]["cmdline"]
    ppid = procs[pid]["ppid"]
    parent = role_of(ppid, procs) if ppid in procs else ""
    if parent == "gateway master":  # forked, so the same command line as the master
        return "gateway worker"
    if "services.stack" in cmdline:
        return "tessera-run"
    if "services.launch" in cmdline:
        i = cmdline.index("services.launch")
        return cmdline[i + 1] if i + 1 < len(cmdline) else "service"
    if "services.api.server" in cmdline:
        return "gateway master"
    return f"{parent or 'other'} child: {' '.join(cmdline)[:60]}"


class TreeSampler:
    """RSS of each process under ``root_pid`` (and itself), sampled every ``interval`` s."""

    def __init__(self, root_pid: int, interval: float):
        self.root = psutil.Process(root_pid)
        self.interval = interval
        self.procs: dict[int, dict] = {}
        self.t0 = time.monotonic()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        now = round(time.monotonic() - self.t0, 2)
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in tree:
            try:
                rss = proc.memory_info().rss
                if proc.pid not in self.procs:
                    self.procs[proc.pid] = {
                        "pid": proc.pid,
                        "ppid": proc.ppid(),
                        "cmdline": proc.cmdline(),
                        "rss_start": rss,
                        "rss_max": 0,
                        "t_max": None,
                        "series": [],
                    }
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            entry = self.procs[proc.pid]
            if rss > entry["rss_max"]:
                entry["rss_max"], entry["t_max"] = rss, now
            entry["series"].append((now, round(rss / MiB, 1)))
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def report(self) -> list[dict]:
        """One row per process, in a stable order, gateway workers numbered."""
        order = ["tessera-run", "registry", "store", "cache", "gateway master", "gateway worker"]
        for pid, e in self.procs.items():
            e["role"] = role_of(pid, self.procs)
        rows = sorted(
            self.procs.values(),
            key=lambda e: (order.index(e["role"]) if e["role"] in order else 99, e["pid"]),
        )
        n = 0
        for e in rows:
            if e["role"] == "gateway worker":
                n += 1
                e["name"] = f"gateway worker {n}"
            else:
                e["name"] = e["role"]
        return rows


def same_device(a: str | Path, b: str | Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=4096, help="image size (4096)")
    parser.add_argument("--download-runs", type=int, default=1)
    parser.add_argument(
        "--limit-mb",
        type=float,
        default=150,
        help="RSS limit per process in MB of 10^6 bytes (150)",
    )
    parser.add_argument("--interval", type=float, default=0.2, help="sampling period (0.2 s)")
    parser.add_argument("--workers", type=int, default=2, help="Tessera API worker processes")
    parser.add_argument(
        "--workdir",
        default="/tmp/tessera-bench",
        help="where the client's file goes (removed at the end)",
    )
    parser.add_argument("--client", default=str(DEFAULT_CLIENT))
    args, extra = parser.parse_known_args()

    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    stack_tmp = tempfile.gettempdir()  # tessera_stack keeps its data there
    margin = 512
    if same_device(args.workdir, stack_tmp):
        check_free_space(args.workdir, 2 * args.size_mib + margin)
    else:
        check_free_space(args.workdir, args.size_mib + margin)
        check_free_space(stack_tmp, args.size_mib + margin)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    client_out = result_path("memory", stamp=f"{stamp}-client")
    workdir = Path(tempfile.mkdtemp(prefix=f"memory-{stamp}-", dir=args.workdir))
    limit = args.limit_mb * 1e6
    try:
        with tessera_stack(workers=args.workers, threads=16) as stack:
            pid = stack.process.pid
            print(
                f"== Tessera on {stack.url} (tessera-run pid {pid}); "
                f"{args.size_mib} MiB up, {args.download_runs} download(s)",
                flush=True,
            )
            sampler = TreeSampler(pid, args.interval)
            sampler.start()
            try:
                code, result = run_client(
                    stack.url,
                    only="upload,download",
                    server_pid=pid,
                    headers=TESSERA_HEADERS,
                    label="tessera-memory",
                    out=client_out,
                    extra=[
                        "--size-mib",
                        str(args.size_mib),
                        "--download-runs",
                        str(args.download_runs),
                        "--workdir",
                        str(workdir),
                        *extra,
                    ],
                    client=args.client,
                    echo="[client]",
                )
            finally:
                sampler.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = sampler.report()
    summary = (result or {}).get("summary", {})
    lines = [
        f"max RSS per Tessera process, {args.size_mib} MiB upload + "
        f"{args.download_runs} download(s), sampled every {args.interval} s "
        f"({sampler.samples} samples); limit {args.limit_mb:g} MB "
        f"({limit / MiB:.1f} MiB)",
        "",
    ]
    lines.append(
        f"{'process':<18} {'pid':>7} {'start MiB':>10} {'max MiB':>9} {'max MB':>8}  result"
    )
    for e in rows:
        e["pass"] = e["rss_max"] < limit
        lines.append(
            f"{e['name']:<18} {e['pid']:>7} {e['rss_start'] / MiB:>10.1f} "
            f"{e['rss_max'] / MiB:>9.1f} {e['rss_max'] / 1e6:>8.1f}  "
            f"{'PASS' if e['pass'] else 'FAIL'}"
        )
    total_max = sum(e["rss_max"] for e in rows)
    lines.append(
        f"{'sum of maxima':<18} {'':>7} {'':>10} {total_max / MiB:>9.1f} {total_max / 1e6:>8.1f}"
    )
    lines.append("")
    lines.append(
        f"upload {summary.get('upload_MBps')} MB/s (verified "
        f"{summary.get('upload_verified')}); download "
        + ", ".join(
            f"{summary.get(f'download_run{i}_MBps')} MB/s" for i in range(1, args.download_runs + 1)
        )
    )
    ok = code == 0 and all(e["pass"] for e in rows)
    if code:
        lines.append(f"the client failed: {(result or {}).get('error', f'exit {code}')}")
    lines.append("memory check: " + ("PASS" if ok else "FAIL"))
    text = "\n".join(lines) + "\n"
    out = result_path("memory", stamp=stamp)
    out.write_text(
        json.dumps(
            {
                "meta": {
                    "size_mib": args.size_mib,
                    "download_runs": args.download_runs,
                    "limit_mb": args.limit_mb,
                    "interval_s": args.interval,
                    "workers": args.workers,
                    "loadavg_end": os.getloadavg(),
                    "client_exit": code,
                    "client_result": str(client_out),
                },
                "processes": [
                    {
                        k: e[k]
                        for k in (
                            "name",
                            "pid",
                            "cmdline",
                            "rss_start",
                            "rss_max",
                            "t_max",
                            "pass",
                            "series",
                        )
                    }
                    for e in rows
                ],
                "client_summary": summary,
                "pass": ok,
                "table": text,
            },
            indent=1,
        )
        + "\n"
    )
    print("\n" + text + f"\nresults: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
