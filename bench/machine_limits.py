#!/usr/bin/env python3
"""What this machine allows an image service, for bench/side_by_side.py's table: MD5 and
SHA-512 in one thread each, both at once on two threads (an upload's ceiling: Tessera
hashes on two threads), and writing a file without fsync (the page-cache write every
file-store upload makes). Standard library only; MB/s = 10^6 bytes/s.

    python bench/machine_limits.py --hash-mib 1024 --disk-mib 1024 --dir /tmp --out l.json

Prints "# …" lines, then the JSON object (also written to --out) with the keys
side_by_side.py reads: hash_md5_MBps, hash_sha512_MBps, hash_par_md5_sha512_MBps,
disk_write_nofsync_MBps."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import threading
import time

MiB = 1 << 20


def mbps(nbytes: int, seconds: float) -> float:
    return round(nbytes / seconds / 1e6, 1)


def hashing(mib: int) -> dict:
    block = os.urandom(MiB)
    out = {}
    for name in ("md5", "sha512"):
        digest = hashlib.new(name)
        t0 = time.perf_counter()
        for _ in range(mib):
            digest.update(block)
        out[f"hash_{name}_MBps"] = mbps(mib * MiB, time.perf_counter() - t0)

    def run(name):
        digest = hashlib.new(name)
        for _ in range(mib):
            digest.update(block)  # hashlib releases the GIL for large blocks

    threads = [threading.Thread(target=run, args=(n,)) for n in ("md5", "sha512")]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["hash_par_md5_sha512_MBps"] = mbps(mib * MiB, time.perf_counter() - t0)
    return out


def disk(mib: int, directory: str) -> dict:
    block = os.urandom(MiB)
    with tempfile.NamedTemporaryFile(dir=directory, prefix="limits-") as f:
        t0 = time.perf_counter()
        for _ in range(mib):
            f.write(block)
        f.flush()
        written = time.perf_counter() - t0
        os.fsync(f.fileno())
        synced = time.perf_counter() - t0
    return {
        "disk_write_nofsync_MBps": mbps(mib * MiB, written),
        "disk_write_fsync_MBps": mbps(mib * MiB, synced),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hash-mib", type=int, default=1024)
    parser.add_argument("--disk-mib", type=int, default=1024)
    parser.add_argument(
        "--http-mib", type=int, help="accepted for compatibility with other limits scripts; unused"
    )
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    result = {"nproc": os.cpu_count(), **hashing(args.hash_mib)}
    print("# hash: " + ", ".join(f"{k}={v}" for k, v in result.items() if k != "nproc"))
    result.update(disk(args.disk_mib, args.dir))
    print(f"# disk: write {result['disk_write_nofsync_MBps']} MB/s without fsync", flush=True)
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
