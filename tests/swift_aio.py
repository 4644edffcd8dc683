"""A real all-in-one OpenStack Swift on loopback, for tests.

The recipe, in Python: the ``swift`` package from PyPI in
a venv of its own (cached between runs), one replica on one device, tempauth users
(``test:tester`` / ``testing``), the proxy and the account, container and object servers
(plus a private memcached when one can be had) bound to 127.0.0.1 on free ports, with
configs, rings, objects and logs in a fresh directory that ``stop()`` removes.

    swift = SwiftAIO().start()       # cold (venv to build): ~30-60 s; warm: a few seconds
    Connection(swift.auth_url, swift.user, swift.key, auth_version="1")
    swift.stop()

Settings (environment): ``TESSERA_SWIFT_VENV`` (default /tmp/tessera-swift-venv),
``TESSERA_SWIFT_DATA_PARENT`` (where the per-run data directory goes; default /dev/shm
when it has user xattrs and room, else the temp dir), ``TESSERA_SWIFT_MEMCACHED``
(``auto``: use memcached, apt-get installing it when missing and possible; ``yes``: must
have it; ``no``: never).

Nothing is printed; a failure raises ``SwiftStartError`` with the tail of the logs.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

VENV = Path(os.environ.get("TESSERA_SWIFT_VENV", "/tmp/tessera-swift-venv"))
BIND_IP = "127.0.0.1"
SERVERS = ("account", "container", "object", "proxy")  # start order: backends first

# Swift as the recipe proved it, and the rest of its venv pinned to what that resolved to
# here, so that every machine runs the same Swift. Change them together (a new pin set
# rebuilds the cached venv).
SWIFT_REQUIREMENTS = (
    "swift==2.38.3",
    "certifi==2026.10.18",
    "cffi==2.1.1",
    "charset-normalizer==3.5.2",
    "cryptography==50.0.2",
    "dnspython==2.9.2",
    "eventlet==0.41.3",
    "greenlet==3.5.6",
    "idna==3.20",
    "lxml==6.1.3",
    "PasteDeploy==3.1.0",
    "pycparser==3.12",
    "pyeclib==1.8.0",
    "requests==2.34.2",
    "urllib3==2.8.0",
    "xattr==1.3.0",
)

TEMPAUTH_USERS = {
    # user_<account>_<user> = <key> [groups]; test:tester is the admin of AUTH_test
    "user_admin_admin": "admin .admin .reseller_admin",
    "user_test_tester": "testing .admin",
    "user_test2_tester2": "testing2 .admin",
    "user_test_tester3": "testing3",
}


class SwiftStartError(RuntimeError):
    """Swift could not be installed or started; the message ends with the logs' tail."""


class SwiftNotInstallable(SwiftStartError):
    """The venv could not be built (no PyPI, no compiler for a missing wheel, ...)."""


# ---------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((BIND_IP, 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"--- {path}: (no log)"
    return "\n".join([f"--- {path.name}"] + text[-lines:])


def _has_user_xattrs(directory: Path) -> bool:
    try:
        fd, path = tempfile.mkstemp(prefix=".xattr-probe-", dir=directory)
    except OSError:
        return False
    try:
        for i in range(4):  # Swift's metadata: several xattrs of up to 254 bytes each
            os.setxattr(fd, f"user.swift.probe{i}", b"x" * 254)
        return os.getxattr(fd, "user.swift.probe3") == b"x" * 254
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


def _data_parent() -> Path:
    configured = os.environ.get("TESSERA_SWIFT_DATA_PARENT")
    if configured:
        return Path(configured)
    shm = Path("/dev/shm")  # tmpfs: no fsync cost; user xattrs since Linux 6.6
    with contextlib.suppress(OSError):
        if shutil.disk_usage(shm).free > 1 << 30 and _has_user_xattrs(shm):
            return shm
    return Path(tempfile.gettempdir())


def _run(cmd: list[str], log: Path, timeout: float) -> None:
    with open(log, "ab") as out:
        subprocess.run(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=True,
            timeout=timeout,
        )


# ------------------------------------------------------------------------- the venv


def ensure_venv(venv: Path = VENV) -> Path:
    """The venv with Swift, built once per machine (under a lock: pytest sessions may run
    side by side) and marked ready only after a successful import check."""
    marker = venv / ".tessera-ready"
    # rebuilt for other pins, or when the interpreter it was made from changed
    wanted = "\n".join([os.path.realpath(sys.executable), sys.version, *SWIFT_REQUIREMENTS])
    if marker.is_file() and marker.read_text() == wanted:
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == wanted:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        log = Path(tempfile.gettempdir()) / f"{venv.name}-install.log"
        log.unlink(missing_ok=True)
        python = venv / "bin" / "python"
        pip_args = [
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--prefer-binary",
            *SWIFT_REQUIREMENTS,
        ]
        try:
            if _have_pip():
                # No pip inside the new venv: this interpreter's pip installs into it
                # (pip >= 22.3), which skips bootstrapping pip there.
                _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], log, 120)
                _run([sys.executable, "-m", "pip", "--python", str(python), *pip_args], log, 900)
            else:
                _run([sys.executable, "-m", "venv", str(venv)], log, 300)
                _run([str(python), "-m", "pip", *pip_args], log, 900)
            _run(
                [
                    str(python),
                    "-c",
                    "import swift.proxy.server, swift.obj.server, swift.common.ring",
                ],
                log,
                120,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            shutil.rmtree(venv, ignore_errors=True)
            raise SwiftNotInstallable(
                f"could not install Swift into {venv}: {exc}\n{_tail(log)}"
            ) from exc
        marker.write_text(wanted)
        log.unlink(missing_ok=True)
    return venv


def _have_pip() -> bool:
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        major, minor = (int(x) for x in out.split()[1].split(".")[:2])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return False
    return (major, minor) >= (22, 3)


# -------------------------------------------------------------------------- memcached


def find_memcached(policy: str) -> str | None:
    """memcached's path: optional (``auto``), required (``yes``) or unused (``no``).
    ``auto``/``yes`` apt-get install it when it is missing and we are root."""
    if policy == "no":
        return None
    found = shutil.which("memcached")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        if not found and policy == "yes":
            raise SwiftStartError("memcached is not installed and apt-get cannot be used")
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=120"]
    install = [*apt, "install", "-y", "--no-install-recommends", "memcached"]
    error = ""
    for cmd in (install, [*apt, "update"], install):  # fresh images have no package lists
        try:
            done = subprocess.run(cmd, capture_output=True, env=env, timeout=600, check=True)
        except subprocess.CalledProcessError as exc:
            error = exc.stderr.decode(errors="replace")[-2000:]
            continue
        except (subprocess.SubprocessError, OSError) as exc:
            error = str(exc)
            break
        if cmd is install and done.returncode == 0:
            break
    found = shutil.which("memcached")
    if not found and policy == "yes":
        raise SwiftStartError(f"apt-get install memcached failed: {error}")
    return found


# ----------------------------------------------------------------------------- Swift


class SwiftAIO:
    """One all-in-one Swift; ``start()`` is idempotent, ``stop()`` removes its data."""

    user = "test:tester"
    key = "testing"
    account = "AUTH_test"

    _shared: SwiftAIO | None = None

    def __init__(self, venv: Path = VENV, memcached: str | None = None, wait_seconds: float = 60):
        self.venv = Path(venv)
        self.memcached_policy = memcached or os.environ.get("TESSERA_SWIFT_MEMCACHED", "auto")
        self.wait_seconds = wait_seconds
        self.data: Path | None = None
        self.ports: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._atexit = False

    @classmethod
    def shared(cls) -> SwiftAIO:
        """The one Swift of this process (a pytest session), started on first use and
        stopped when the interpreter exits (or by an explicit ``stop()``)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared.start()

    # -- addresses
    @property
    def proxy_url(self) -> str:
        return f"http://{BIND_IP}:{self.ports['proxy']}"

    @property
    def auth_url(self) -> str:
        """The v1 (tempauth) auth URL."""
        return f"{self.proxy_url}/auth/v1.0"

    @property
    def storage_url(self) -> str:
        return f"{self.proxy_url}/v1/{self.account}"

    def glance_store_options(self, container: str, **more) -> dict:
        """A stack's ``[glance_store]`` with this Swift (v1 auth) as the default store,
        images in ``container`` (made on the first put); ``more``: further options."""
        return {
            "stores": "file,http,swift",
            "default_store": "swift",
            "swift_store_auth_address": self.auth_url,
            "swift_store_user": self.user,
            "swift_store_key": self.key,
            "swift_store_auth_version": "1",
            "swift_store_container": container,
            "swift_store_create_container_on_put": True,
            **more,
        }

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    # -- lifecycle
    def start(self) -> SwiftAIO:
        with self._lock:
            if self.running:
                return self
            if self._procs:  # a server died: start afresh
                self._stop()
            memcached: list[str | None] = [None]
            memcached_error: list[BaseException] = []

            def look_for_memcached():  # apt-get runs while pip does
                try:
                    memcached[0] = find_memcached(self.memcached_policy)
                except BaseException as exc:  # noqa: BLE001 - re-raised below
                    memcached_error.append(exc)

            finder = threading.Thread(target=look_for_memcached, daemon=True)
            finder.start()
            ensure_venv(self.venv)
            finder.join()
            if memcached_error:
                raise memcached_error[0]
            if not self._atexit:
                atexit.register(self.stop)
                self._atexit = True
            try:
                self._start(memcached[0])
            except BaseException:
                self._stop()
                raise
            return self

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._procs = {}
        if self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)
            self.data = None

    @contextlib.contextmanager
    def paused(self, name: str = "proxy"):
        """``name``'s server stopped (SIGSTOP) inside the block: requests to it hang, as
        to a Swift that stalls, until the block ends (SIGCONT)."""
        proc = self._procs[name]
        proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            proc.send_signal(signal.SIGCONT)

    # -- the work
    def _start(self, memcached: str | None) -> None:
        parent = _data_parent()
        parent.mkdir(parents=True, exist_ok=True)
        self.data = Path(tempfile.mkdtemp(prefix="tessera-swift-", dir=parent))
        etc, logs, devices = self.data / "etc", self.data / "log", self.data / "srv"
        for d in (etc, logs, devices / "d1", self.data / "cache"):
            d.mkdir(parents=True)
        if not _has_user_xattrs(devices / "d1"):
            raise SwiftStartError(
                f"{devices} has no user xattrs, which Swift needs: set "
                "TESSERA_SWIFT_DATA_PARENT to a directory on ext4, xfs, "
                "btrfs or tmpfs (Linux >= 6.6)"
            )
        names = [*SERVERS, *(["memcached"] if memcached else [])]
        self.ports = {name: _free_port() for name in names}
        self._write_configs(etc, devices, memcached is not None)
        try:
            _run(
                [
                    str(self.venv / "bin" / "python"),
                    "-c",
                    _BUILD_RINGS,
                    str(etc),
                    BIND_IP,
                    *(str(self.ports[s]) for s in ("account", "container", "object")),
                ],
                logs / "rings.log",
                120,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise SwiftStartError(
                f"building the rings failed: {exc}\n{_tail(logs / 'rings.log')}"
            ) from exc
        if memcached:
            self._launch(
                "memcached",
                logs,
                [
                    memcached,
                    "-l",
                    BIND_IP,
                    "-p",
                    str(self.ports["memcached"]),
                    "-U",
                    "0",
                    "-m",
                    "64",
                    "-c",
                    "1024",
                    "-u",
                    getpass.getuser(),
                ],
            )
        for server in SERVERS:
            # -v: log to stderr (our log file), not to syslog
            self._launch(
                server,
                logs,
                [
                    str(self.venv / "bin" / f"swift-{server}-server"),
                    str(etc / f"{server}-server.conf"),
                    "-v",
                ],
            )
        try:
            self._wait_until_up()
        except SwiftStartError as exc:
            tails = "\n".join(_tail(logs / f"{name}.log") for name in self._procs)
            raise SwiftStartError(f"{exc}\n{tails}") from None

    def _launch(self, name: str, logs: Path, cmd: list[str]) -> None:
        with open(logs / f"{name}.log", "ab") as out:
            self._procs[name] = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + self.wait_seconds
        pending = dict.fromkeys(SERVERS)
        while pending:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise SwiftStartError(f"{name} exited with status {proc.returncode}")
            for server in list(pending):
                with contextlib.suppress(OSError):
                    url = f"http://{BIND_IP}:{self.ports[server]}/healthcheck"
                    with urllib.request.urlopen(url, timeout=2) as resp:
                        if resp.status == 200:
                            del pending[server]
            if pending:
                if time.monotonic() > deadline:
                    raise SwiftStartError(
                        f"no answer from {', '.join(pending)} in {self.wait_seconds:.0f} s"
                    )
                time.sleep(0.05)
        # end to end: a tempauth token, then the account through the proxy
        try:
            req = urllib.request.Request(
                self.auth_url, headers={"X-Auth-User": self.user, "X-Auth-Key": self.key}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                token = resp.headers["X-Auth-Token"]
            req = urllib.request.Request(
                self.storage_url, method="HEAD", headers={"X-Auth-Token": token}
            )
            with urllib.request.urlopen(req, timeout=10):
                pass
        except (OSError, urllib.error.HTTPError) as exc:
            raise SwiftStartError(f"Swift is up but does not work: {exc}") from exc

    def _write_configs(self, etc: Path, devices: Path, with_memcached: bool) -> None:
        prefix, suffix = os.urandom(8).hex(), os.urandom(8).hex()
        (etc / "swift.conf").write_text(
            f"[swift-hash]\nswift_hash_path_prefix = {prefix}\n"
            f"swift_hash_path_suffix = {suffix}\n\n"
            "[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
        )
        user = getpass.getuser()  # servers setuid() to it; 'swift' rarely exists
        common = (
            f"[DEFAULT]\nbind_ip = {BIND_IP}\nworkers = 0\nuser = {user}\n"
            f"swift_dir = {etc}\nlog_level = INFO\n"
        )
        for server in ("account", "container", "object"):
            (etc / f"{server}-server.conf").write_text(
                f"{common}bind_port = {self.ports[server]}\ndevices = {devices}\n"
                f"mount_check = false\nrecon_cache_path = {self.data / 'cache'}\n"
                f"log_name = {server}-server\n\n"
                f"[pipeline:main]\npipeline = healthcheck {server}-server\n\n"
                f"[filter:healthcheck]\nuse = egg:swift#healthcheck\n\n"
                f"[app:{server}-server]\nuse = egg:swift#{server}\n"
            )
        cache = "cache " if with_memcached else ""
        fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        users = "".join(f"{k} = {v}\n" for k, v in TEMPAUTH_USERS.items())
        filters = "".join(
            f"\n[filter:{name}]\nuse = egg:swift#{egg}\n"
            for name, egg in (
                ("catch_errors", "catch_errors"),
                ("gatekeeper", "gatekeeper"),
                ("healthcheck", "healthcheck"),
                ("proxy-logging", "proxy_logging"),
                ("listing_formats", "listing_formats"),
                ("bulk", "bulk"),
                ("tempurl", "tempurl"),
                ("copy", "copy"),
                ("container-quotas", "container_quotas"),
                ("account-quotas", "account_quotas"),
                ("slo", "slo"),
                ("dlo", "dlo"),
                ("versioned_writes", "versioned_writes"),
                ("symlink", "symlink"),
            )
        )
        (etc / "proxy-server.conf").write_text(
            f"{common}bind_port = {self.ports['proxy']}\nlog_name = proxy-server\n\n"
            "[pipeline:main]\n"
            "pipeline = catch_errors gatekeeper healthcheck proxy-logging "
            f"{cache}listing_formats bulk tempurl tempauth copy container-quotas "
            "account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server\n\n"
            "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n"
            "allow_account_management = true\nconn_timeout = 5\nnode_timeout = 30\n"
            "client_timeout = 120\n"
            # one device: never "error limit" it after a 507, let each request see the
            # real error (recipe, pitfall 2)
            "error_suppression_interval = 0\n\n"
            "[filter:tempauth]\nuse = egg:swift#tempauth\n"
            f"{users}token_life = 86400\n"
            # Fernet tokens: tempauth needs no memcached to keep them
            f"fernet_key_k1 = {fernet_key}\nactive_fernet_key_id = k1\n\n"
            "[filter:cache]\nuse = egg:swift#memcache\n"
            f"memcache_servers = {BIND_IP}:{self.ports.get('memcached', 11211)}\n"
            f"{filters}"
        )


# Runs in the Swift venv: the three rings (part power 8, 1 replica, 1 device) in one
# interpreter instead of nine swift-ring-builder calls.
_BUILD_RINGS = """
import sys
from swift.common.ring import RingBuilder
etc, ip = sys.argv[1], sys.argv[2]
for name, port in zip(("account", "container", "object"), sys.argv[3:6]):
    builder = RingBuilder(8, 1, 1)
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": ip, "port": int(port),
                     "device": "d1", "weight": 100})
    builder.rebalance()
    builder.get_ring().save("%s/%s.ring.gz" % (etc, name))
"""
