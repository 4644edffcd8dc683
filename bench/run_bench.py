#!/usr/bin/env python3
"""Start Tessera on its embedded defaults (a throw-away data directory and RabbitMQ vhost)
and run the benchmark client (bench/image_client.py) against it, sampling the CPU and
memory of every Tessera process.

    python bench/run_bench.py                          # create,show,list
    python bench/run_bench.py --only create,show --show-reps 500
    python bench/run_bench.py --client OTHER_CLIENT.py # cross-check with another client

Any option the script does not know is passed to the benchmark client. The JSON result
is written to bench/results/tessera-<time>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    DEFAULT_CLIENT,
    TESSERA_HEADERS,
    result_path,
    run_client,
    tessera_stack,
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--client",
        default=str(DEFAULT_CLIENT),
        help="benchmark client to run (default: bench/image_client.py)",
    )
    parser.add_argument("--only", default="create,show,list")
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    args, passthrough = parser.parse_known_args()
    if not Path(args.client).exists():
        sys.exit(f"benchmark client not found: {args.client} (pass --client)")

    out = result_path("tessera")
    with tessera_stack(workers=args.workers, threads=16) as stack:
        code, result = run_client(
            stack.url,
            only=args.only,
            server_pid=stack.process.pid,
            headers=TESSERA_HEADERS,
            label="tessera",
            out=out,
            extra=passthrough,
            client=args.client,
        )
    if code != 0:
        return code
    summary = result["summary"]
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    print(f"\nfull result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
