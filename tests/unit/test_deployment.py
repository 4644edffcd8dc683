"""The compose deployment: ``docker-compose config`` accepts it (Debian's docker-compose
needs no Docker engine), it keeps the rules of issue #13 (healthchecks, no root, pinned
base images, named volumes only, the migration first, dev auth on loopback, Keystone in
a profile), and README's Scaling section names the same services and replica counts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.stack import ROOT

COMPOSE = ROOT / "docker-compose.yml"
TESSERA_IMAGE = "tessera:latest"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def tessera_services() -> dict:
    return {n: s for n, s in compose()["services"].items() if s.get("image") == TESSERA_IMAGE}


@pytest.mark.parametrize(
    ("args", "env"),
    [([], {}), (["--profile", "keystone"], {"TESSERA_AUTH_FLAVOR": "keystone"})],
    ids=["default", "keystone"],
)
def test_docker_compose_config_accepts_the_file(args, env):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose is not installed (make system-deps: apt-get install docker-compose)"
        )
    done = subprocess.run(
        [binary, *args, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr


def test_every_tessera_service_has_a_healthcheck_and_waits_for_the_migration():
    services = tessera_services()
    assert {"migrate", "registry", "store", "cache-1", "cache-2", "api-1", "api-2"} <= set(services)
    assert services["migrate"]["command"] == ["tessera-manage", "db", "sync"]
    assert services["migrate"]["restart"] == "no"
    for name, service in services.items():
        if name == "migrate":
            continue
        test = service["healthcheck"]["test"]
        kind = "api" if name.startswith("api") else name.split("-")[0]
        assert test == ["CMD", "tessera-ping", kind], name
        assert service["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name
    for name in ("api-1", "api-2"):
        depends = tessera_services()[name]["depends_on"]
        assert depends["registry"] == depends["store"] == {"condition": "service_healthy"}


def test_replicas_and_a_cache_volume_per_gateway():
    services = compose()["services"]
    assert services["registry"]["deploy"]["replicas"] == 2
    assert services["store"]["deploy"]["replicas"] == 3
    for n in (1, 2):
        mount = f"cache-{n}:/var/lib/tessera/cache"
        assert services[f"api-{n}"]["volumes"] == services[f"cache-{n}"]["volumes"] == [mount]
    # the store replicas share their data
    assert "images:/var/lib/tessera/images" in services["store"]["volumes"]
    assert "staging:/var/lib/tessera/staging" in services["store"]["volumes"]


def test_named_volumes_only():
    data = compose()
    assert "VOLUME" not in (ROOT / "Dockerfile").read_text()  # anonymous, per container
    for name, service in data["services"].items():
        for mount in service.get("volumes", []):
            volume, _, target = mount.partition(":")
            assert volume in data["volumes"], (name, mount)  # not a bind or anonymous mount
            assert target.startswith("/"), (name, mount)
    # the images that declare VOLUME get a named volume there
    assert "rabbitmq:/var/lib/rabbitmq" in data["services"]["rabbitmq"]["volumes"]
    assert "db:/var/lib/mysql" in data["services"]["mariadb"]["volumes"]


def test_images_pinned_and_not_root():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", dockerfile, re.M)
    assert re.search(r"^USER tessera$", dockerfile, re.M)
    keystone = (ROOT / "deploy" / "keystone" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", keystone, re.M)
    assert re.search(r"^USER keystone$", keystone, re.M)
    services = compose()["services"]
    assert re.fullmatch(r"rabbitmq:3\.\d+\.\d+-management", services["rabbitmq"]["image"])
    assert re.fullmatch(r"mariadb:11\.\d+\.\d+", services["mariadb"]["image"])
    for name, service in services.items():
        assert service.get("user") in (None, "tessera"), name


def test_dev_auth_is_published_on_loopback_only():
    """The gateways allow dev auth on 0.0.0.0 inside their container explicitly, and
    their ports are published on the host's loopback."""
    for name in ("api-1", "api-2"):
        service = compose()["services"][name]
        env = service["environment"]
        assert env["OS_DEFAULT__ALLOW_INSECURE_DEV_AUTH"] == "true"
        assert env["OS_PASTE_DEPLOY__FLAVOR"] == "${TESSERA_AUTH_FLAVOR:-}"
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), name
    keystone = compose()["services"]["keystone"]
    assert keystone["profiles"] == ["keystone"]


def readme_scaling_services() -> dict[str, str]:
    """{service: replicas cell} from the table of README's Scaling section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Scaling\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 2:
            continue
        for name in re.findall(r"`([a-z0-9-]+)`", cells[0]):
            rows[name] = cells[1]
    return rows


def test_readme_scaling_section_names_the_compose_services():
    rows = readme_scaling_services()
    assert set(rows) == set(compose()["services"])
    services = compose()["services"]
    for name in ("registry", "store"):
        assert rows[name].startswith(str(services[name]["deploy"]["replicas"])), rows[name]
    section = (ROOT / "README.md").read_text().split("\n## Scaling\n", 1)[1]
    for name in ("rabbitmq", "mariadb"):  # the pinned versions
        assert f"`{services[name]['image']}`" in section, name
