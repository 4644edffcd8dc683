"""A real Keystone for Tessera's tests: ``keystone`` from PyPI under uWSGI on loopback, on a
SQLite database with fernet tokens, seeded the way the Glance install guide expects.

    ks = Keystone().start("http://127.0.0.1:9292")   # the image endpoint to register
    ks.token("demo"); ks.env("demo"); ks.keystone_authtoken_options()
    ks.stop()

Accounts (domain ``Default``, region ``RegionOne``; passwords in ``ACCOUNTS``):

    admin   project admin    admin (bootstrap; implies member and reader)
    glance  project service  admin (the service user of the install guide)
    demo    project demo     member, reader
    alt     project alt      member, reader
    viewer  project demo     reader only

Keystone gets a virtualenv of its own (its pins conflict with the project's), cached in
``/tmp/tessera-keystone-venv`` (``TESSERA_KEYSTONE_VENV`` overrides): ``pip install keystone
uWSGI`` as in shared/recipes/keystone, with gcc and the Python headers installed from Debian
first if missing (uWSGI is built from source). Beside it lies a database template: the output
of ``keystone-manage db_sync`` and ``bootstrap``, made once per Keystone version; each start
copies it, writes fresh fernet and credential keys itself (what ``keystone-manage fernet_setup``
writes: two ``Fernet.generate_key()`` files, 0 staged and 1 primary), starts uWSGI, and seeds
the rest over the API with the admin token, re-pointing the identity endpoints at the new port.
So a warm start runs no ``keystone-manage`` at all (each costs 3.5-5 s of imports here).

Keystone's in-process cache is on (one uWSGI process, so it stays coherent): without it each
authenticated request took 0.5-2 s here, SQLAlchemy-bound; with it token validation takes ~30 ms.

Times measured on this machine kind (2 cores, shared with other test runs: load 2-4),
Keystone 30.0.0 under uWSGI 2.0.31:
    cold start, empty pip cache (venv install with uWSGI compiled, db_sync, bootstrap,
    start, seed):                                    ~100 s
    warm start (venv and database template cached):  4-5.5 s, of which ~3.5 s is Keystone's
                                                     import in the uWSGI worker, ~1-2 s seeding
    stop:                                            ~1 s (uWSGI's graceful shutdown)
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from tests.stack import free_port

KEYSTONE_PACKAGES = ("keystone==30.0.0", "uWSGI==2.0.31")
VENV = Path(os.environ.get("TESSERA_KEYSTONE_VENV", "/tmp/tessera-keystone-venv"))
REGION = "RegionOne"
DOMAIN = "Default"
TEMPLATE_URL = "http://127.0.0.1:5000/v3"  # bootstrap's identity URL, re-pointed at each start


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    project: str
    roles: tuple[str, ...]


ACCOUNTS = {
    "admin": Account("admin", "admin-secret", "admin", ("admin",)),
    "glance": Account("glance", "glance-secret", "service", ("admin",)),
    "demo": Account("demo", "demo-secret", "demo", ("member", "reader")),
    "alt": Account("alt", "alt-secret", "alt", ("member", "reader")),
    "viewer": Account("viewer", "viewer-secret", "demo", ("reader",)),
}
PROJECTS = {"service": "Service project", "demo": "Demo project", "alt": "Alt demo project"}

KEYSTONE_CONF = """\
[DEFAULT]
log_file = {workdir}/keystone.log
debug = false

[database]
# one uWSGI process with one thread: SQLite writes are serialized anyway
connection = sqlite:///{database}?timeout=30

[token]
provider = fernet
expiration = 14400

[fernet_tokens]
key_repository = {workdir}/fernet-keys

[fernet_receipts]
key_repository = {workdir}/fernet-keys

[credential]
key_repository = {workdir}/credential-keys

[identity]
# bcrypt's minimum: password checks stay cheap for tests that authenticate often
password_hash_rounds = 4

[cache]
# In-process cache: coherent with one uWSGI process (the default), so only then.
enabled = {cache}
backend = dogpile.cache.memory
"""


class KeystoneError(RuntimeError):
    pass


def _run(cmd: list, what: str, env: dict | None = None, timeout: float = 900) -> None:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise KeystoneError(f"{what} failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")


def _clean_env(**extra: str) -> dict:
    """The environment without the project venv's Python settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONWARNINGS")
    }
    return {**env, **extra}


@contextlib.contextmanager
def _locked():
    """One installer at a time, across processes."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{VENV}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise KeystoneError(f"missing Debian packages {packages}: install them as root")
    env = _clean_env(DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-qq"], "apt-get update", env=env)
    _run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        "apt-get install",
        env=env,
    )


def _ensure_build_tools() -> None:
    """uWSGI has no wheel on PyPI: pip compiles it with gcc against the Python headers."""
    missing = [] if shutil.which("gcc") else ["gcc", "libc6-dev"]
    include = sysconfig.get_config_var("INCLUDEPY") or ""
    if not Path(include, "Python.h").exists():
        missing.append(f"python{sys.version_info.major}.{sys.version_info.minor}-dev")
    if missing:
        _apt_install(*missing)


def _venv_ready() -> bool:
    marker = VENV / ".tessera-installed"
    return (
        marker.exists()
        and marker.read_text() == " ".join(KEYSTONE_PACKAGES)
        and (VENV / "bin" / "keystone-manage").exists()
        and (VENV / "bin" / "uwsgi").exists()
    )


def ensure_venv() -> Path:
    """Keystone's virtualenv, installed once (pip from PyPI) and reused afterwards."""
    with _locked():
        if not _venv_ready():
            _ensure_build_tools()
            shutil.rmtree(VENV, ignore_errors=True)
            _run([_base_python(), "-m", "venv", VENV], "python -m venv", env=_clean_env())
            _run(
                [
                    VENV / "bin" / "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    *KEYSTONE_PACKAGES,
                ],
                "pip install keystone",
                env=_clean_env(),
            )
            (VENV / ".tessera-installed").write_text(" ".join(KEYSTONE_PACKAGES))
    return VENV


def _write_keys(directory: Path) -> None:
    """Two fernet keys, as ``keystone-manage fernet_setup`` writes them: 0 staged, 1 primary."""
    directory.mkdir(mode=0o700)
    for index in (0, 1):
        fd = os.open(directory / str(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as key:
            key.write(base64.urlsafe_b64encode(os.urandom(32)))


def _manage(conf: Path, *args: str) -> None:
    _run(
        [VENV / "bin" / "keystone-manage", "--config-file", conf, *args],
        f"keystone-manage {args[0]}",
        env=_clean_env(PYTHONWARNINGS="ignore"),
        timeout=300,
    )


def database_template() -> Path:
    """A SQLite database after ``db_sync`` and ``bootstrap``, made once per Keystone version."""
    admin = ACCOUNTS["admin"]
    key = hashlib.sha256(repr((KEYSTONE_PACKAGES, admin, REGION, TEMPLATE_URL)).encode())
    template = VENV / "db-templates" / f"keystone-{key.hexdigest()[:16]}.sqlite"
    with _locked():
        if template.exists():
            return template
        template.parent.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=template.parent) as tmp:
            database = Path(tmp, "keystone.sqlite")
            conf = Path(tmp, "keystone.conf")
            conf.write_text(KEYSTONE_CONF.format(workdir=tmp, database=database, cache=False))
            _write_keys(Path(tmp, "fernet-keys"))  # bootstrap checks the key repository
            _manage(conf, "db_sync")
            _manage(
                conf,
                "bootstrap",
                "--bootstrap-password",
                admin.password,
                "--bootstrap-username",
                admin.username,
                "--bootstrap-project-name",
                admin.project,
                "--bootstrap-role-name",
                "admin",
                "--bootstrap-service-name",
                "keystone",
                "--bootstrap-region-id",
                REGION,
                "--bootstrap-admin-url",
                TEMPLATE_URL,
                "--bootstrap-internal-url",
                TEMPLATE_URL,
                "--bootstrap-public-url",
                TEMPLATE_URL,
            )
            os.replace(database, template)
    return template


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM uWSGI (--die-on-term) if the tests die."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Keystone:
    """One Keystone (uWSGI, SQLite, fernet) on a free loopback port, seeded for Glance."""

    def __init__(
        self, basedir: Path | str | None = None, processes: int = 1, domain_name: str = DOMAIN
    ):
        """``domain_name``: the name of the default domain (id ``default``), e.g. the
        install guides' ``default``: Keystone on SQLite compares names case-sensitively."""
        self.basedir = basedir
        self.processes = processes
        self.domain_name = domain_name
        self.workdir: Path | None = None
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.image_url: str | None = None
        self._project_ids: dict[str, str] = {}
        self._user_ids: dict[str, str] = {}
        self._sessions: dict[str, ks_session.Session] = {}

    # --- addresses and credentials -------------------------------------------------------

    @property
    def url(self) -> str:
        """The service root (what the install guide writes as http://controller:5000)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    def credentials(self, name: str) -> dict:
        """``openstack.connect(**ks.credentials("demo"))`` / keystoneauth-style values."""
        account = ACCOUNTS[name]
        return {
            "auth_url": self.auth_url,
            "username": account.username,
            "password": account.password,
            "project_name": account.project,
            "user_domain_name": self.domain_name,
            "project_domain_name": self.domain_name,
            "region_name": REGION,
            "identity_api_version": "3",
        }

    def env(self, name: str) -> dict:
        """OS_* variables for the ``openstack`` CLI, to merge into a process environment."""
        env = {f"OS_{key.upper()}": value for key, value in self.credentials(name).items()}
        return {
            **env,
            "OS_AUTH_TYPE": "password",
            "OS_INTERFACE": "public",
            "OS_IMAGE_API_VERSION": "2",
        }

    def project_id(self, name: str) -> str:
        """The id of a project (admin, service, demo, alt) or of a user's project."""
        return self._project_ids[ACCOUNTS[name].project if name in ACCOUNTS else name]

    def user_id(self, name: str) -> str:
        return self._user_ids[name]

    def session(self, name: str) -> ks_session.Session:
        """A keystoneauth1 session scoped to ``name``'s project (cached; re-auths by itself)."""
        if name not in self._sessions:
            creds = self.credentials(name)
            auth = v3.Password(
                auth_url=creds["auth_url"],
                username=creds["username"],
                password=creds["password"],
                project_name=creds["project_name"],
                user_domain_id="default",  # the id: a renamed domain keeps it
                project_domain_id="default",
            )
            self._sessions[name] = ks_session.Session(auth=auth)
        return self._sessions[name]

    def token(self, name: str) -> str:
        """A project-scoped token for ``name`` (reused until it nears expiry)."""
        return self.session(name).get_token()

    def keystone_authtoken_options(self) -> dict:
        """``[keystone_authtoken]`` as the Glance install guide writes it (no memcached)."""
        glance = ACCOUNTS["glance"]
        return {
            "www_authenticate_uri": self.url,
            "auth_url": self.url,
            "auth_type": "password",
            "project_domain_name": self.domain_name,
            "user_domain_name": self.domain_name,
            "project_name": glance.project,
            "username": glance.username,
            "password": glance.password,
        }

    # --- life cycle ----------------------------------------------------------------------

    def start(self, image_url: str = "http://127.0.0.1:9292", timeout: float = 120) -> Keystone:
        if self.process is not None:
            raise KeystoneError("Keystone is already started")
        ensure_venv()
        template = database_template()
        self.workdir = Path(tempfile.mkdtemp(prefix="keystone-", dir=self.basedir))
        try:
            database = self.workdir / "keystone.sqlite"
            shutil.copyfile(template, database)
            _write_keys(self.workdir / "fernet-keys")
            _write_keys(self.workdir / "credential-keys")
            (self.workdir / "keystone.conf").write_text(
                KEYSTONE_CONF.format(
                    workdir=self.workdir, database=database, cache=self.processes == 1
                )
            )
            self.port = free_port()
            self._serve(timeout)
            self._seed(image_url)
        except Exception as exc:
            logs = self.logs()
            self.stop()
            raise KeystoneError(f"Keystone did not start: {exc}\n{logs}") from exc
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def _serve(self, timeout: float) -> None:
        cmd = [
            VENV / "bin" / "uwsgi",
            "--http-socket",
            f"127.0.0.1:{self.port}",
            "--module",
            "keystone.wsgi.api:application",
            "--virtualenv",
            VENV,
            "--master",
            "--processes",
            self.processes,
            "--threads",
            1,
            "--enable-threads",
            "--lazy-apps",
            "--listen",
            256,
            "--die-on-term",
            "--buffer-size",
            65535,
            "--add-header",
            "Connection: close",
            "--http-raw-body",
            "--http-chunked-input",
            "--http-auto-chunked",
        ]
        env = _clean_env(OS_KEYSTONE_CONFIG_DIR=str(self.workdir))
        with open(self.workdir / "uwsgi.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(c) for c in cmd],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise KeystoneError(f"uwsgi exited with {self.process.returncode}")
            try:
                if requests.get(self.auth_url, timeout=10).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise KeystoneError(f"no answer from {self.auth_url} within {timeout:.0f}s")

    def _admin(self, method: str, path: str, **json) -> dict:
        resp = self.session("admin").request(
            self.auth_url + path, method, json=json or None, raise_exc=False
        )
        if resp.status_code >= 400:
            raise KeystoneError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else {}

    def _seed(self, image_url: str) -> None:
        if self.domain_name != DOMAIN:
            self._admin("PATCH", "/domains/default", domain={"name": self.domain_name})
        roles = {r["name"]: r["id"] for r in self._admin("GET", "/roles")["roles"]}
        for role in ("admin", "member", "reader"):
            if role not in roles:
                roles[role] = self._admin("POST", "/roles", role={"name": role})["role"]["id"]
        projects = {p["name"]: p["id"] for p in self._admin("GET", "/projects")["projects"]}
        for name, description in PROJECTS.items():
            if name not in projects:
                projects[name] = self._admin(
                    "POST",
                    "/projects",
                    project={"name": name, "domain_id": "default", "description": description},
                )["project"]["id"]
        users = {u["name"]: u["id"] for u in self._admin("GET", "/users")["users"]}
        for name, account in ACCOUNTS.items():
            if name not in users:
                users[name] = self._admin(
                    "POST",
                    "/users",
                    user={
                        "name": account.username,
                        "domain_id": "default",
                        "password": account.password,
                        "default_project_id": projects[account.project],
                    },
                )["user"]["id"]
            for role in account.roles:  # PUT: idempotent
                self._admin(
                    "PUT",
                    f"/projects/{projects[account.project]}/users/"
                    f"{users[name]}/roles/{roles[role]}",
                )
        self._project_ids, self._user_ids = projects, users
        self._set_endpoints(self._service("identity", "keystone", "Identity"), self.auth_url)
        self.set_image_endpoint(image_url)

    def _service(self, service_type: str, name: str, description: str) -> str:
        services = self._admin("GET", f"/services?type={service_type}")["services"]
        if services:
            return services[0]["id"]
        return self._admin(
            "POST",
            "/services",
            service={
                "name": name,
                "type": service_type,
                "enabled": True,
                "description": description,
            },
        )["service"]["id"]

    def _set_endpoints(self, service_id: str, url: str) -> None:
        endpoints = self._admin("GET", f"/endpoints?service_id={service_id}")["endpoints"]
        for interface in ("public", "internal", "admin"):
            mine = [e for e in endpoints if e["interface"] == interface]
            for extra in mine[1:]:
                self._admin("DELETE", f"/endpoints/{extra['id']}")
            if not mine:
                self._admin(
                    "POST",
                    "/endpoints",
                    endpoint={
                        "service_id": service_id,
                        "interface": interface,
                        "url": url,
                        "region_id": REGION,
                        "enabled": True,
                    },
                )
            elif mine[0]["url"] != url or mine[0]["region_id"] != REGION:
                self._admin(
                    "PATCH",
                    f"/endpoints/{mine[0]['id']}",
                    endpoint={"url": url, "region_id": REGION},
                )

    def set_image_endpoint(self, url: str) -> None:
        """Register (or re-point) the ``image`` service's public/internal/admin endpoints."""
        url = url.rstrip("/")
        self._set_endpoints(self._service("image", "glance", "OpenStack Image"), url)
        self.image_url = url

    def logs(self, chars: int = 4000) -> str:
        if self.workdir is None:
            return ""
        text = []
        for name in ("uwsgi.log", "keystone.log"):
            path = self.workdir / name
            if path.exists():
                text.append(f"--- {name} ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(text)

    def stop(self) -> None:
        """Stop uWSGI (by its pid) and remove the database, keys and logs."""
        atexit.unregister(self.stop)
        for session in self._sessions.values():
            session.session.close()
        self._sessions.clear()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Keystone:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
