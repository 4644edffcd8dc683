"""Run one nameko service: ``python -m services.launch registry|store|cache
[--config-file PATH]`` (or the ``tessera-registry`` … console scripts).

eventlet must patch the standard library before SQLAlchemy, PyMySQL or nameko are
imported, so this module patches first and imports the service afterwards."""

import eventlet

eventlet.monkey_patch()

import importlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

SERVICES = {
    "registry": "services.registry.service:RegistryService",
    "store": "services.store.service:StoreService",
    "cache": "services.cache.service:CacheService",
}


def run(name: str, argv: list[str]) -> None:
    from nameko.cli.run import run as run_services

    from services.common.broker import unhonoured_options
    from services.common.config import load_config, nameko_config
    from services.common.logs import setup_logging

    module, _, cls = SERVICES[name].partition(":")
    service_cls = getattr(importlib.import_module(module), cls)
    conf = load_config(argv, prog=f"tessera-{name}")
    setup_logging(conf, name)
    log = logging.getLogger(__name__)
    for warning in unhonoured_options(conf):
        log.warning("%s", warning)
    log.info("starting the %s service", name)
    run_services([service_cls], nameko_config(conf))


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
