#!/usr/bin/env python3
"""Start Tessera on its embedded defaults (a throw-away data directory and RabbitMQ vhost)
and run the shared benchmark client against it, sampling the CPU and memory of every
Tessera process.

    python bench/run_bench.py                          # create,show,list
    python bench/run_bench.py --only create,show --show-reps 500
    python bench/run_bench.py --client ../shared/bench/image_api_bench.py

Any option the script does not know is passed to the benchmark client. The JSON result
is written to bench/results/tessera-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.stack import Stack, Vhost  # noqa: E402

DEFAULT_CLIENT = ROOT.parent / "shared" / "bench" / "image_api_bench.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", default=str(DEFAULT_CLIENT),
                        help="image_api_bench.py to run (default: ../shared/bench/)")
    parser.add_argument("--only", default="create,show,list")
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    args, passthrough = parser.parse_known_args()
    if not Path(args.client).exists():
        sys.exit(f"benchmark client not found: {args.client} (pass --client)")

    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"tessera-{time.strftime('%Y%m%d-%H%M%S')}.json"
    vhost = Vhost()
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as workdir:
        stack = Stack(Path(workdir), vhost.transport_url, workers=args.workers, threads=16)
        stack.start()
        try:
            cmd = [sys.executable, args.client, "--url", stack.url, "--only", args.only,
                   "--server-pid", str(stack.process.pid), "--label", "tessera",
                   "--header", "X-Project-Id:bench", "--header", "X-User-Id:bench",
                   "--header", "X-Roles:member,reader", "--out", str(out), *passthrough]
            code = subprocess.call(cmd, stdout=subprocess.DEVNULL)
        finally:
            stack.cleanup()
            vhost.delete()
    if code != 0:
        return code
    summary = json.loads(out.read_text())["summary"]
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    print(f"\nfull result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
