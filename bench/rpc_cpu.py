"""Registry CPU per RPC: start a registry alone (its own vhost, SQLite or MariaDB), call it
through the gateway's RpcClient in a loop and read the registry process's CPU time from
/proc/<pid>/stat before and after.

    .venv/bin/python bench/rpc_cpu.py [--calls 2000] [--mysql] [--method get_image|health]

Prints CPU-ms per call (user + system) of the registry and of this client, and p50 latency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.api.rpc_client import RpcClient  # noqa: E402
from services.common.config import amqp_uri, load_config  # noqa: E402
from services.common.context import RequestContext  # noqa: E402
from services.registry.manage import db_sync  # noqa: E402
from tests.stack import MysqlDatabase, Vhost, write_config  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS  # utime, stime


def create_image(client: RpcClient, ctx: RequestContext) -> dict:
    attributes = {"name": "bench", "disk_format": "raw", "container_format": "bare"}
    try:  # the typed contract (services/common/contracts.py), if this tree has it
        from services.common.contracts import NewImage

        return client.call("registry", "create_image", ctx, NewImage(attributes).to_wire())
    except ImportError:
        return client.call("registry", "create_image", ctx, attributes, {}, [])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--mysql", action="store_true")
    parser.add_argument("--method", default="get_image", choices=["get_image", "health"])
    parser.add_argument(
        "--py-spy", metavar="PATH", help="also profile the registry with py-spy (collapsed stacks)"
    )
    args = parser.parse_args()

    vhost = Vhost()
    database = MysqlDatabase() if args.mysql else None
    workdir = Path(tempfile.mkdtemp(prefix="tessera-rpc-cpu-"))
    config = write_config(
        workdir / "tessera.conf",
        DEFAULT={"transport_url": vhost.transport_url, "data_dir": workdir / "data"},
        database={"connection": database.url if database else None},
    )
    conf = load_config(["--config-file", str(config)])
    db_sync(conf)
    registry = subprocess.Popen(
        [sys.executable, "-m", "services.launch", "registry", "--config-file", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = RpcClient(amqp_uri(conf), timeout=10)
    ctx = RequestContext(project_id="bench", roles=("member", "reader"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.call("registry", "health", ctx)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        image = create_image(client, ctx)
        call_args = (image["id"],) if args.method == "get_image" else ()
        for _ in range(200):  # warm up
            client.call("registry", args.method, ctx, *call_args)
        time.sleep(0.5)
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(
                ["py-spy", "record", "--pid", str(registry.pid), "--format", "raw"]
                + ["--rate", "500", "--output", args.py_spy, "--gil"]
            )
            time.sleep(1)
        latencies = []
        before, mine = cpu_times(registry.pid), time.process_time()
        for _ in range(args.calls):
            t0 = time.perf_counter()
            client.call("registry", args.method, ctx, *call_args)
            latencies.append(time.perf_counter() - t0)
        after, mine_after = cpu_times(registry.pid), time.process_time()
        if spy:
            spy.send_signal(2)
            spy.wait(timeout=30)
        print(
            f"{args.method} x{args.calls} ({'mysql' if args.mysql else 'sqlite'}): "
            f"registry {1000 * (sum(after) - sum(before)) / args.calls:.2f} CPU-ms/call "
            f"(system {1000 * (after[1] - before[1]) / args.calls:.2f}), "
            f"client {1000 * (mine_after - mine) / args.calls:.2f} CPU-ms/call, "
            f"p50 {1000 * statistics.median(latencies):.2f} ms"
        )
    finally:
        client.close()
        registry.terminate()
        registry.wait(timeout=15)
        vhost.delete()
        if database:
            database.delete()


if __name__ == "__main__":
    main()
