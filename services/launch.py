"""Run one nameko service: ``python -m services.launch registry|store|cache
[--config-file PATH]`` (or the ``tessera-registry`` … console scripts).

eventlet must patch the standard library before SQLAlchemy, PyMySQL or nameko are
imported, so this module patches first and imports the service afterwards.

SIGTERM or Ctrl-C stops the service gracefully (no new messages, running workers
finish) within STOP_TIMEOUT seconds, then kills what is left; a second signal kills at
once. A stop is logged in one line, never with nameko's traceback."""

import eventlet

eventlet.monkey_patch()

import atexit  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

#: Seconds a graceful stop may take before the running workers are killed (their
#: unacknowledged RPC messages go back to the queue for another replica).
STOP_TIMEOUT = 1.5
#: How often nameko's consumer loop wakes up to notice a stop (kombu's default is 1 s,
#: and a stop takes two wake-ups).
CONSUMER_POLL = 0.2
#: Seconds between attempts to reach a broker that went away (first, added each time,
#: most), kombu's are 2, 2 and 30.
RECONNECT_INTERVAL = (0.5, 0.5, 2.0)

SERVICES = {
    "registry": "services.registry.service:RegistryService",
    "store": "services.store.service:StoreService",
    "cache": "services.cache.service:CacheService",
}


def run(name: str, argv: list[str]) -> None:
    from services.common.broker import unhonoured_options
    from services.common.config import load_config, nameko_config
    from services.common.config_check import log_config_warnings
    from services.common.logs import setup_logging
    from services.common.property_protections import check_at_start

    module, _, cls = SERVICES[name].partition(":")
    service_cls = getattr(importlib.import_module(module), cls)
    conf = load_config(argv, prog=f"tessera-{name}")
    check_at_start(conf, f"tessera-{name}")
    setup_logging(conf, name)
    log = logging.getLogger(__name__)
    for warning in unhonoured_options(conf):
        log.warning("%s", warning)
    log_config_warnings(conf)
    log.info("starting the %s service", name)
    quicken_consumer_stop()
    quicken_reconnect()
    serve(name, service_cls, nameko_config(conf))


def quicken_consumer_stop(poll: float = CONSUMER_POLL) -> None:
    """nameko's QueueConsumer runs kombu's ``ConsumerMixin.consume``, which blocks in
    ``drain_events(timeout=safety_interval)`` (1 s) and only notices a stop between two
    waits: cancelling the consumers and leaving the loop cost up to 2 s per service.
    A shorter wait makes a stop take a few tenths of a second. Tripwire:
    tests/integration/test_services.py::test_consumer_stop_adapter."""
    from kombu.mixins import ConsumerMixin
    from nameko.messaging import QueueConsumer

    def consume(self, *args, safety_interval=poll, **kwargs):
        return ConsumerMixin.consume(self, *args, safety_interval=safety_interval, **kwargs)

    QueueConsumer.consume = consume


def quicken_reconnect(interval: tuple[float, float, float] = RECONNECT_INTERVAL) -> None:
    """nameko's QueueConsumer reconnects through kombu's ``ConsumerMixin``, whose
    ``ensure_connection`` waits 2, 4, 6 ... seconds (up to 30) between attempts: a broker
    back from a 5 s restart was found up to 12 s after it went away. Try again every
    ``interval`` (start, step, max) seconds instead. Tripwire:
    tests/unit/common/test_launch_adapters.py."""
    from contextlib import contextmanager

    from nameko.messaging import QueueConsumer

    start, step, most = interval

    @contextmanager
    def establish_connection(self):
        with self.create_connection() as conn:
            conn.ensure_connection(
                self.on_connection_error,
                self.connect_max_retries,
                interval_start=start,
                interval_step=step,
                interval_max=most,
            )
            yield conn

    QueueConsumer.establish_connection = establish_connection


def serve(name: str, service_cls, config: dict, stop_timeout: float = STOP_TIMEOUT) -> None:
    """nameko's ``run`` without its rough edges: it handles SIGTERM only (Ctrl-C is a
    KeyboardInterrupt in whichever greenlet runs), a second signal stops the container
    twice (a traceback from the timers), and a stop waits for workers without bound."""
    import errno

    import eventlet
    from nameko.runners import ServiceRunner

    log = logging.getLogger(__name__)
    runner = ServiceRunner(config)
    runner.add_service(service_cls)
    signals: list[int] = []

    def stop() -> None:
        stopping = eventlet.spawn(runner.stop)
        with eventlet.Timeout(stop_timeout, False):
            stopping.wait()
            return
        log.warning("the %s service did not stop in %.1f s; killing it", name, stop_timeout)
        runner.kill()

    def on_signal(signum, _frame) -> None:
        # a signal handler runs in whichever greenlet the hub was in: act in a new one
        signals.append(signum)
        if len(signals) == 1:
            log.info("stopping the %s service (%s)", name, signal.Signals(signum).name)
            eventlet.spawn_n(stop)
        elif len(signals) == 2:
            eventlet.spawn_n(runner.kill)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner.start()
    # What start-up built (modules, config, mappers, connections) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks it. Idle,
    # the registry burned 78 ms of CPU a second on those walks (its one-second lease
    # check allocates enough to set them off), 10 ms with this; store and cache alike.
    gc.freeze()
    waiting = eventlet.spawn(runner.wait)
    while True:
        try:
            waiting.wait()
            break
        except OSError as exc:  # a signal interrupting the hub's wait, as in nameko's run
            if exc.errno != errno.EINTR:
                raise
    log.info("stopped the %s service", name)
    # Interpreter finalisation after eventlet and kombu takes most of a second (greenlets
    # and connections torn down one by one): run the exit handlers and leave.
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in SERVICES:
        sys.exit(f"usage: python -m services.launch {{{'|'.join(SERVICES)}}} [--config-file PATH]")
    run(sys.argv[1], sys.argv[2:])


def registry() -> None:
    run("registry", sys.argv[1:])


def store() -> None:
    run("store", sys.argv[1:])


def cache() -> None:
    run("cache", sys.argv[1:])


if __name__ == "__main__":
    main()
