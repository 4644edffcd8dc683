#!/usr/bin/env python3
"""RSS of a store replica around N concurrent uploads (issue #13: 18 x 64 MiB).

    python bench/store_memory.py                 # 18 concurrent 64 MiB uploads
    python bench/store_memory.py --uploads 18 --size-mib 64 --rounds 2

Starts Tessera as bench/run_bench.py does (SQLite, file store, a vhost of its own; the
gateway with 2 workers x 16 threads, enough threads for the uploads), samples the store
process's RSS every 0.1 s with psutil, and prints its RSS before the load, the peak
during it, and 2 s and 10 s after the last upload ended (memory returned or not)."""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import tessera_stack  # noqa: E402

MiB = 1 << 20
HEADERS = {"X-Project-Id": "bench", "X-User-Id": "bench", "X-Roles": "member,reader"}


def store_process(stack) -> psutil.Process:
    for proc in psutil.Process(stack.process.pid).children(recursive=True):
        cmdline = proc.cmdline()
        if "services.launch" in cmdline and "store" in cmdline:
            return proc
    raise RuntimeError("no store process")


def upload(url: str, body: bytes) -> int:
    with requests.Session() as http:
        http.headers.update(HEADERS)
        image = http.post(
            f"{url}/v2/images", json={"disk_format": "raw", "container_format": "bare"}
        ).json()
        response = http.put(
            f"{url}/v2/images/{image['id']}/file",
            data=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        http.delete(f"{url}/v2/images/{image['id']}")
        if response.status_code != 204:
            print(f"  upload answered {response.status_code}: {response.text[:300]}")
        return response.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=18)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    body = os.urandom(args.size_mib * MiB)
    with tessera_stack(workers=2, threads=16) as stack:
        store = store_process(stack)
        mb = lambda: store.memory_info().rss / 1e6  # noqa: E731
        print(f"store RSS before: {mb():.0f} MB")
        peak, done = [0.0], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], mb())
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for round_no in range(args.rounds):
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.uploads) as pool:
                codes = list(pool.map(lambda _: upload(stack.url, body), range(args.uploads)))
            took = time.monotonic() - started
            rate = args.uploads * args.size_mib / took
            print(
                f"round {round_no + 1}: statuses {sorted(set(codes))}, {took:.1f} s, "
                f"{rate:.0f} MiB/s, store peak so far {peak[0]:.0f} MB"
            )
        done.set()
        time.sleep(2)
        print(f"store RSS 2 s after: {mb():.0f} MB")
        time.sleep(8)
        print(f"store RSS 10 s after: {mb():.0f} MB (peak {peak[0]:.0f} MB)")
        big = [m for m in store.memory_maps(grouped=False) if m.rss > 512 << 10]
        by_path: dict[str, list] = {}
        for m in big:
            by_path.setdefault(m.path or "[anon]", []).append(m.rss)
        print(
            "store mappings over 512 KiB resident: "
            + ", ".join(
                f"{path.rsplit('/', 1)[-1]} {len(sizes)} x, {sum(sizes) / 1e6:.0f} MB"
                for path, sizes in sorted(by_path.items(), key=lambda kv: -sum(kv[1]))[:5]
            )
        )


if __name__ == "__main__":
    main()
