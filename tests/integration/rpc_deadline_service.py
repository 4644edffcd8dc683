"""A tiny nameko service on Tessera's ``@rpc`` for the deadline tests (test_rpc_deadlines.py):
``python -m tests.integration.rpc_deadline_service --config-file PATH RECORD_FILE``.

One worker (``max_workers = 1``). ``hold(seconds)`` answers at once but keeps its worker
busy for ``seconds`` afterwards (a slow teardown), so the next request is delivered and
then waits in nameko's worker pool; ``record(token)`` appends the token to RECORD_FILE,
which is how a test proves whether a request ran."""

import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from nameko.extensions import DependencyProvider  # noqa: E402

from services.common.rpc import rpc  # noqa: E402


class SlowTeardown(DependencyProvider):
    def worker_teardown(self, worker_ctx):
        if worker_ctx.entrypoint.method_name == "hold":
            eventlet.sleep(worker_ctx.args[0] if worker_ctx.args else worker_ctx.kwargs["seconds"])


class DeadlineService:
    name = "deadline_test"
    slow = SlowTeardown()

    @rpc
    def hold(self, seconds: float) -> str:
        return "held"

    @rpc
    def record(self, token: str) -> str:
        with open(RECORD_FILE, "a") as f:
            f.write(token + "\n")
        return token


RECORD_FILE = Path("/dev/null")


def main() -> None:
    global RECORD_FILE
    from nameko.cli.run import run as run_services

    from services.common.config import load_config, nameko_config

    *argv, record_file = sys.argv[1:]
    RECORD_FILE = Path(record_file)
    config = nameko_config(load_config(argv))
    config["max_workers"] = 1
    run_services([DeadlineService], config)


if __name__ == "__main__":
    main()
