# Tessera: `make run` starts the whole stack on the embedded defaults,
# `make run CONFIG=path/to/file.conf` with a config file, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
CONFIG ?=
# make test: test modules spread over this many processes (pytest-xdist, one module per
# process at a time, so module fixtures stay shared); the tests mostly wait on the stacks
# they start, so 3 suits 2 cores. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 3

.PHONY: run run-cluster test lint format bench bench-compare bench-import constraints clean system-deps sample-config

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: $(PY) requirements.in constraints.txt pyproject.toml
	$(PIP) -r requirements.in -c constraints.txt
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements-test.in
	$(PIP) -r requirements-test.in -c constraints.txt
	touch $@

# Debian packages the tests use: qemu-img builds the disk images the format checks read;
# memcached is the token cache of the install guides' [keystone_authtoken] memcached_servers;
# docker-compose (1.x, Python: no Docker engine needed) checks docker-compose.yml.
system-deps:
	@command -v qemu-img >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq qemu-utils; \
	  else echo "qemu-img is missing (apt-get install qemu-utils): its tests will skip"; fi; }
	@command -v memcached >/dev/null || [ -x /usr/bin/memcached ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq memcached; \
	  else echo "memcached is missing (apt-get install memcached): its tests will skip"; fi; }
	@command -v docker-compose >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq docker-compose; \
	  else echo "docker-compose is missing (apt-get install docker-compose): its test will skip"; fi; }

run: $(VENV)/.runtime
	$(PY) -m services.stack $(if $(CONFIG),--config-file $(CONFIG))

# docker-compose.yml's topology as local processes: 2 gateways (bind_port and bind_port+1),
# 2 registries, 3 store replicas, a cache service per gateway, on MariaDB ([database]
# connection, else 127.0.0.1:3306 root's tessera_cluster, created if missing).
run-cluster: $(VENV)/.runtime
	$(PY) -m services.stack --cluster $(if $(CONFIG),--config-file $(CONFIG))

test: $(VENV)/.test system-deps
	$(PY) -m ruff check services tests bench
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(PY) -m ruff check services tests bench
	$(PY) -m ruff format --check services tests bench

format: $(VENV)/.test
	$(PY) -m ruff format services tests bench

bench: $(VENV)/.test
	$(PY) bench/run_bench.py $(BENCH_ARGS)

# Tessera and the real Glance 33.0.0 (installed once into /tmp/tessera-bench/glance-venv)
# with the same client, one after the other; prints figure | Tessera | Glance | ratio.
bench-compare: $(VENV)/.test
	$(PY) bench/side_by_side.py $(BENCH_ARGS)

# A 1 GiB web-download import, Tessera then Glance 33: seconds to active, RSS.
bench-import: $(VENV)/.test
	$(PY) bench/import_bench.py $(BENCH_ARGS)

# deploy/tessera.conf.sample from the options the code registers (services/common/opts.py,
# the oslo.config.opts entry point); tests/unit/common/test_sample_config.py checks it.
sample-config: $(VENV)/.runtime
	$(VENV)/bin/oslo-config-generator --config-file deploy/tessera-config-generator.conf

# Re-pin every dependency from a fresh venv (after changing requirements*.in).
constraints:
	rm -rf /tmp/tessera-pin && $(PYTHON) -m venv /tmp/tessera-pin
	/tmp/tessera-pin/bin/pip install --quiet -r requirements.in -r requirements-test.in
	( echo "# Every package of requirements.in + requirements-test.in, pinned (pip freeze of a fresh"; \
	  echo "# venv on Python 3.11). Regenerate with: make constraints"; \
	  /tmp/tessera-pin/bin/pip freeze; echo "setuptools==80.10.2" ) > constraints.txt

clean:
	rm -rf $(VENV) var
