#!/usr/bin/env python3
"""Tessera's own benchmark client for any OpenStack Image API v2 endpoint (Tessera, Glance).

Standard library only. It talks to the --url given (use loopback), bounds every request
by --timeout, and measures, in this order (--only picks some):

  upload      POST /v2/images + PUT …/file of a --size-mib file streamed from disk; the
              image must then be active with the locally computed md5 and sha512.
  download    GET …/file of that image, --download-runs times, read in 1 MiB blocks.
  create      --create-n create+delete pairs of metadata-only images (p50/p99 of each).
  list        a population of --list-population tagged images (reused across runs), then
              p50/p99 of limit=20, limit=1000, name=, sort_key=name, tag=, <property>=,
              and the full paginated walk.
  show        p50/p99 of GET /v2/images/{id} over the population.
  concurrent  --concurrency clients upload --concurrent-mib MiB each at the same moment:
              aggregate MB/s, every image verified.

With --server-pid it reads the CPU (utime+stime) and RSS of that process and all its
descendants from /proc for each phase, giving CPU-normalised figures (server CPU per
request, per GiB) that stay steady on a shared machine, and noise_frac_<phase>: the share
of the machine's CPU used by neither the server nor this client. MB/s = 10^6 bytes/s.

Prints "# …" progress lines, then one JSON object (also written to --out) whose
``summary`` holds the headline figures under the names bench/side_by_side.py reads, so
any client that writes them can be swapped in with --client.
Exit status 1 with the reason on any unexpected status, timeout or failed verification.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import resource
import sys
import threading
import time
import urllib.parse
import uuid

MiB = 1 << 20
POP_TAG = "image-api-bench-pop"
TMP_TAG = "image-api-bench-tmp"
PHASES = ["upload", "download", "create", "list", "show", "concurrent", "idle"]


class BenchError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def log(message: str) -> None:
    print(f"# {message}", flush=True)


def latencies(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {"n": 0}

    def pct(q):
        k = (len(ms) - 1) * q / 100
        lo = int(k)
        hi = min(lo + 1, len(ms) - 1)
        return round(ms[lo] + (ms[hi] - ms[lo]) * (k - lo), 3)

    return {
        "n": len(ms),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "max_ms": round(ms[-1], 3),
    }


def rate(nbytes: int, seconds: float) -> dict:
    if seconds <= 0:
        return {"MBps": None, "MiBps": None}
    return {"MBps": round(nbytes / seconds / 1e6, 2), "MiBps": round(nbytes / seconds / MiB, 2)}


class Http:
    """One kept-alive connection per thread; a stale kept-alive socket is retried once."""

    def __init__(self, url: str, headers: dict, timeout: float):
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        if parts.scheme != "http":
            raise BenchError(f"--url must be http://host:port, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path
        self.headers, self.timeout = headers, timeout
        self.local = threading.local()
        self.lock = threading.Lock()
        self.requests = self.connections = 0
        self.keepalive = False

    def close(self) -> None:
        conn = getattr(self.local, "conn", None)
        self.local.conn = None
        if conn is not None:
            conn.close()

    def request(self, method, path, body=None, headers=None, expect=(200,), stream=False):
        """(status, headers, bytes), or with ``stream`` the open response to read."""
        if path.startswith("http"):  # a `next` link may be absolute
            split = urllib.parse.urlsplit(path)
            path = split.path + (f"?{split.query}" if split.query else "")
        elif self.prefix and not path.startswith(self.prefix):
            path = self.prefix + path
        all_headers = {**self.headers, **(headers or {})}
        start = body.tell() if hasattr(body, "seek") else None
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=self.timeout, blocksize=MiB
                )
                with self.lock:
                    self.connections += 1
            try:
                conn.request(method, path, body=body, headers=all_headers)
                resp = conn.getresponse()
                break
            except (ConnectionError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 1:
                    if start is not None:
                        body.seek(start)
                    continue
                raise BenchError(f"{method} {path}: {exc!r}") from exc
            except OSError as exc:  # timeouts included
                self.close()
                raise BenchError(f"{method} {path}: {exc!r}") from exc
        with self.lock:
            self.requests += 1
            self.keepalive |= not resp.will_close
        if resp.status not in expect:
            text = resp.read(2000).decode("utf-8", "replace")
            self.close()
            raise BenchError(
                f"{method} {path} -> HTTP {resp.status}: {' '.join(text.split())[:500]}",
                resp.status,
            )
        if stream:
            return resp.status, resp.headers, resp
        try:
            data = resp.read()
        except OSError as exc:
            self.close()
            raise BenchError(f"{method} {path}: reading the body: {exc!r}") from exc
        if resp.will_close:
            self.close()
        return resp.status, resp.headers, data

    def json(self, method, path, obj=None, expect=(200,)):
        headers = {"Accept": "application/json"}
        body = None
        if obj is not None:
            body = json.dumps(obj).encode()
            headers["Content-Type"] = "application/json"
        data = self.request(method, path, body, headers, expect)[2]
        return json.loads(data) if data else None


class Sampler:
    """CPU seconds and RSS of --server-pid and its descendants, from /proc."""

    def __init__(self, pid: int, interval: float):
        self.pid, self.interval = pid, interval
        self.tick = os.sysconf("SC_CLK_TCK")
        self.pids: list[int] = []
        self.peak_kb = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    @staticmethod
    def _stat(pid) -> list[str] | None:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                text = f.read().decode("latin-1")
        except OSError:
            return None
        return text[text.rindex(")") + 2 :].split()

    def discover(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and (fields := self._stat(name)):
                children.setdefault(int(fields[1]), []).append(int(name))
        self.pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            self.pids.append(pid)
            todo.extend(children.get(pid, []))
        return self.pids

    def cpu_s(self) -> float:
        fields = [f for f in map(self._stat, self.pids) if f]
        return sum(int(f[11]) + int(f[12]) for f in fields) / self.tick

    @staticmethod
    def rss_kb(pid) -> dict:
        out = {}
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(("VmRSS:", "VmHWM:")):
                        out[line[:5]] = int(line.split()[1])
        except OSError:
            pass
        return out

    def snapshot(self) -> dict:
        sizes = [s for s in map(self.rss_kb, self.pids) if s]
        return {
            "n_procs": len(sizes),
            "rss_sum_kb": sum(s.get("VmRSS", 0) for s in sizes),
            "hwm_sum_kb": sum(s.get("VmHWM", 0) for s in sizes),
        }

    def _watch(self) -> None:
        while not self.stop.wait(self.interval):
            total = sum(self.rss_kb(p).get("VmRSS", 0) for p in self.pids)
            self.peak_kb = max(self.peak_kb, total)

    def start_phase(self) -> float:
        self.discover()
        self.peak_kb = self.snapshot()["rss_sum_kb"]
        self.stop.clear()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self.cpu_s()

    def end_phase(self, cpu0: float) -> float:
        self.stop.set()
        self.thread.join()
        self.peak_kb = max(self.peak_kb, self.snapshot()["rss_sum_kb"])
        return self.cpu_s() - cpu0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / tick, sum(ticks) / tick


def test_file(workdir: str, size_mib: int, seed: int) -> tuple[str, str, str]:
    """A file of pseudo-random bytes (reused when its recorded hashes still match):
    (path, md5, sha512)."""
    path = os.path.join(workdir, f"bench-{size_mib}MiB-{seed}.bin")
    sidecar = path + ".json"
    try:
        with open(sidecar) as f:
            meta = json.load(f)
        if os.stat(path).st_mtime_ns == meta["mtime"] and meta["size"] == size_mib * MiB:
            return path, meta["md5"], meta["sha512"]
    except (OSError, ValueError, KeyError):
        pass
    os.makedirs(workdir, exist_ok=True)
    rnd, md5, sha = random.Random(seed), hashlib.md5(), hashlib.sha512()
    with open(path, "wb") as f:
        for _ in range(size_mib):
            block = rnd.randbytes(MiB)
            md5.update(block)
            sha.update(block)
            f.write(block)
        f.flush()
        os.fsync(f.fileno())  # no write-back of this file during the measured upload
    meta = {
        "size": size_mib * MiB,
        "mtime": os.stat(path).st_mtime_ns,
        "md5": md5.hexdigest(),
        "sha512": sha.hexdigest(),
    }
    with open(sidecar, "w") as f:
        json.dump(meta, f)
    return path, meta["md5"], meta["sha512"]


def timed(fn, reps: int, warmup: int = 0) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


class Bench:
    def __init__(self, args, http: Http, sampler: Sampler | None):
        self.a, self.http, self.sampler = args, http, sampler
        self.results: dict = {}
        self.summary: dict = {}
        self.uploaded: tuple | None = None  # (image_id, md5, size)
        self.temporary: list[str] = []
        self.population: list[str] = []

    def cpu(self) -> float | None:
        return self.sampler.cpu_s() if self.sampler else None

    @staticmethod
    def per(c0, c1, n, scale=1000.0):
        return None if c0 is None or c1 is None or not n else round((c1 - c0) * scale / n, 3)

    def create(self, name: str, **extra) -> str:
        body = {"name": name, "disk_format": "raw", "container_format": "bare", **extra}
        return self.http.json("POST", "/v2/images", body, expect=(201, 200))["id"]

    def delete(self, image_id: str) -> None:
        self.http.request("DELETE", f"/v2/images/{image_id}", expect=(204, 200, 404))

    def upload(self, image_id: str, path: str) -> float:
        size = os.path.getsize(path)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        with open(path, "rb") as f:
            t0 = time.perf_counter()
            self.http.request("PUT", f"/v2/images/{image_id}/file", f, headers, (204, 200, 201))
            return time.perf_counter() - t0

    def walk(self, path: str, max_pages: int = 100000) -> tuple[int, list[str]]:
        pages, ids = 0, []
        while path and pages < max_pages:
            doc = self.http.json("GET", path)
            pages += 1
            ids += [image["id"] for image in doc.get("images", [])]
            path = doc.get("next")
        return pages, ids

    # --- phases

    def phase_upload(self):
        path, md5, sha = test_file(self.a.workdir, self.a.size_mib, 1234)
        image_id = self.create(f"bench-upload-{uuid.uuid4().hex[:8]}", tags=[TMP_TAG])
        self.temporary.append(image_id)
        c0 = self.cpu()
        seconds = self.upload(image_id, path)
        c1 = self.cpu()
        size = self.a.size_mib * MiB
        image = self.http.json("GET", f"/v2/images/{image_id}")
        verified = (
            image.get("status"),
            image.get("size"),
            image.get("checksum"),
            image.get("os_hash_value"),
        ) == ("active", size, md5, sha)
        r = {
            "image_id": image_id,
            "seconds": round(seconds, 4),
            **rate(size, seconds),
            "status": image.get("status"),
            "verified": verified,
            "server_cpu_s_per_GiB": self.per(c0, c1, size / (1 << 30), 1),
        }
        log(
            f"upload {self.a.size_mib} MiB in {seconds:.2f}s = {r['MBps']} MB/s, "
            f"verified={verified}"
        )
        self.results["upload"] = r
        self.summary.update(
            upload_MBps=r["MBps"], upload_MiBps=r["MiBps"], upload_verified=verified
        )
        if r["server_cpu_s_per_GiB"] is not None:
            self.summary["upload_server_cpu_s_per_GiB"] = r["server_cpu_s_per_GiB"]
        if not verified:
            raise BenchError(f"upload not verified: {json.dumps(image)[:500]}")
        self.uploaded = (image_id, md5, size)

    def phase_download(self):
        if self.a.image_id:
            image_id, md5, size = self.a.image_id, None, None
        else:
            if not self.uploaded:
                log("download: uploading an image first")
                self.phase_upload()
            image_id, md5, size = self.uploaded
        runs = []
        for i in range(1, self.a.download_runs + 1):
            digest = hashlib.md5() if self.a.verify_download and md5 else None
            c0 = self.cpu()
            t0 = time.perf_counter()
            _, _, resp = self.http.request("GET", f"/v2/images/{image_id}/file", stream=True)
            n = 0
            try:
                while block := resp.read(MiB):
                    n += len(block)
                    if digest:
                        digest.update(block)
            except OSError as exc:
                self.http.close()
                raise BenchError(f"download broke after {n} bytes: {exc!r}") from exc
            seconds = time.perf_counter() - t0
            if resp.will_close:
                self.http.close()
            r = {
                "seconds": round(seconds, 4),
                "bytes": n,
                **rate(n, seconds),
                "server_cpu_s_per_GiB": self.per(c0, self.cpu(), n / (1 << 30), 1),
            }
            if size is not None and n != size:
                raise BenchError(f"download returned {n} bytes, expected {size}")
            if digest and digest.hexdigest() != md5:
                raise BenchError("downloaded bytes do not match the upload's md5")
            log(f"download run {i}: {n / MiB:.0f} MiB in {seconds:.2f}s = {r['MBps']} MB/s")
            runs.append(r)
            self.summary[f"download_run{i}_MBps"] = r["MBps"]
            if r["server_cpu_s_per_GiB"] is not None:
                self.summary[f"download_run{i}_server_cpu_s_per_GiB"] = r["server_cpu_s_per_GiB"]
        self.results["download"] = {"image_id": image_id, "runs": runs}

    def phase_create(self):
        n = self.a.create_n
        for _ in range(min(5, n)):
            self.delete(self.create("bench-warm"))
        posts, deletes = [], []
        c0 = self.cpu()
        t0 = time.perf_counter()
        for i in range(n):
            a = time.perf_counter()
            image_id = self.create(f"bench-create-{i}")
            b = time.perf_counter()
            self.delete(image_id)
            posts.append(b - a)
            deletes.append(time.perf_counter() - b)
        wall = time.perf_counter() - t0
        r = {
            "n": n,
            "pairs_per_s": round(n / wall, 2),
            "post": latencies(posts),
            "delete": latencies(deletes),
            "server_cpu_ms_per_pair": self.per(c0, self.cpu(), n),
        }
        log(
            f"create+delete x{n}: {r['pairs_per_s']} pairs/s, POST p50 {r['post']['p50_ms']} ms, "
            f"DELETE p50 {r['delete']['p50_ms']} ms"
        )
        self.results["create"] = r
        self.summary.update(
            create_delete_pairs_per_s=r["pairs_per_s"],
            create_post_p50_ms=r["post"]["p50_ms"],
            create_post_p99_ms=r["post"]["p99_ms"],
            delete_p50_ms=r["delete"]["p50_ms"],
        )
        if r["server_cpu_ms_per_pair"] is not None:
            self.summary["create_server_cpu_ms_per_pair"] = r["server_cpu_ms_per_pair"]

    def ensure_population(self) -> None:
        _, ids = self.walk(f"/v2/images?tag={POP_TAG}&limit=1000")
        missing = range(len(ids), self.a.list_population)
        if missing:
            log(f"population: {len(ids)} exist, creating {len(missing)}")
            t0 = time.perf_counter()
            for i in missing:
                props = {"bench_group": f"g{i % 10}", "os_distro": "ubuntu", "bench_index": str(i)}
                tags = [POP_TAG, f"grp{i % 10}", "bench"]
                ids.append(self.create(f"bench-pop-{i:06d}", tags=tags, **props))
            log(f"population: created {len(missing)} in {time.perf_counter() - t0:.1f}s")
        self.population = ids

    def phase_list(self):
        self.ensure_population()
        name = f"bench-pop-{min(42, max(0, self.a.list_population - 1)):06d}"
        queries = {
            "limit20": "/v2/images?limit=20",
            "limit1000": "/v2/images?limit=1000",
            "filter_name": f"/v2/images?name={name}",
            "sort_name": "/v2/images?sort_key=name&sort_dir=asc&limit=20",
            "filter_tag": "/v2/images?tag=grp3&limit=20",
            "filter_property": "/v2/images?bench_group=g7&limit=20",
        }
        self.results["list"] = {"queries": {}}
        for key, query in queries.items():
            reps = self.a.reps_big if key == "limit1000" else self.a.reps
            returned = len(self.http.json("GET", query)["images"])
            if key == "filter_name" and not returned:
                raise BenchError(f"{query} found no image")
            for _ in range(self.a.warmup):
                self.http.request("GET", query)
            c0 = self.cpu()
            st = latencies(timed(lambda q=query: self.http.request("GET", q), reps))
            st.update(images=returned, server_cpu_ms_per_req=self.per(c0, self.cpu(), reps))
            log(
                f"list {key:16s} p50 {st['p50_ms']:8.2f} ms  p99 {st['p99_ms']:8.2f} ms  "
                f"({returned} images)"
            )
            self.results["list"]["queries"][key] = st
            self.summary[f"list_{key}_p50_ms"] = st["p50_ms"]
            self.summary[f"list_{key}_p99_ms"] = st["p99_ms"]
            if st["server_cpu_ms_per_req"] is not None:
                self.summary[f"list_{key}_server_cpu_ms_per_req"] = st["server_cpu_ms_per_req"]
        walks = []
        for _ in range(self.a.walk_reps):
            t0 = time.perf_counter()
            pages, ids = self.walk("/v2/images")
            walks.append((time.perf_counter() - t0, pages, len(ids)))
            log(f"list full walk: {len(ids)} images in {pages} pages, {walks[-1][0]:.2f}s")
        if walks:
            self.results["list"]["walk_seconds"] = [round(w[0], 3) for w in walks]
            self.summary.update(
                list_walk_seconds=round(min(walks)[0], 3),
                list_walk_images=walks[0][2],
                list_walk_pages=walks[0][1],
            )

    def phase_show(self):
        ids = self.population or self.walk(f"/v2/images?tag={POP_TAG}&limit=1000", 1)[1]
        made = []
        if not ids:
            log("show: no population, creating 20 temporary images")
            made = ids = [self.create(f"bench-show-{i}", tags=[TMP_TAG]) for i in range(20)]
        picks = iter(random.Random(7).choices(ids, k=self.a.show_reps + self.a.warmup))
        for _ in range(self.a.warmup):
            self.http.request("GET", f"/v2/images/{next(picks)}")
        c0 = self.cpu()
        st = latencies(
            timed(lambda: self.http.request("GET", f"/v2/images/{next(picks)}"), self.a.show_reps)
        )
        st["server_cpu_ms_per_req"] = self.per(c0, self.cpu(), self.a.show_reps)
        log(f"show n={st['n']} p50 {st['p50_ms']} ms p99 {st['p99_ms']} ms")
        self.results["show"] = st
        self.summary.update(show_p50_ms=st["p50_ms"], show_p99_ms=st["p99_ms"])
        if st["server_cpu_ms_per_req"] is not None:
            self.summary["show_server_cpu_ms_per_req"] = st["server_cpu_ms_per_req"]
        for image_id in made:
            self.delete(image_id)

    def phase_idle(self):
        """No request for ``--idle-seconds``: what the server's timers, consumers and
        collector cost with nothing to do (server CPU ms per second)."""
        c0 = self.cpu()
        time.sleep(self.a.idle_seconds)
        cpu = self.per(c0, self.cpu(), self.a.idle_seconds)
        log(f"idle {self.a.idle_seconds:.0f}s: server CPU {cpu} ms/s")
        self.results["idle"] = {"seconds": self.a.idle_seconds, "server_cpu_ms_per_s": cpu}
        if cpu is not None:
            self.summary["idle_server_cpu_ms_per_s"] = cpu

    def phase_concurrent(self):
        clients, mib = self.a.concurrency, self.a.concurrent_mib
        path, md5, sha = test_file(self.a.workdir, mib, 4321)
        ids = [self.create(f"bench-conc-{i}", tags=[TMP_TAG]) for i in range(clients)]
        self.temporary += ids
        barrier = threading.Barrier(clients + 1)
        seconds: list = [None] * clients
        errors: list = [None] * clients
        ends = [0.0] * clients

        def client(i):
            try:
                barrier.wait(timeout=60)
                seconds[i] = self.upload(ids[i], path)
            except (BenchError, threading.BrokenBarrierError) as exc:
                errors[i] = str(exc)[:400]
            finally:
                ends[i] = time.perf_counter()
                self.http.close()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        c0 = self.cpu()
        barrier.wait(timeout=60)
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        c1 = self.cpu()
        ok = [s for s in seconds if s is not None]
        total, wall = len(ok) * mib * MiB, max(ends) - t0
        bad = []
        for image_id in ids:
            image = self.http.json("GET", f"/v2/images/{image_id}")
            if (image["status"], image["checksum"], image["os_hash_value"]) != ("active", md5, sha):
                bad.append(image_id)
        failed = sum(1 for e in errors if e)
        r = {
            "clients": clients,
            "mib_each": mib,
            "wall_seconds": round(wall, 3),
            **rate(total, wall),
            "failed_clients": failed,
            "errors": [e for e in errors if e],
            "per_client_seconds": latencies(ok),
            "all_verified": not bad,
            "bad": bad,
            "server_cpu_s_per_GiB": self.per(c0, c1, total / (1 << 30), 1),
        }
        log(
            f"concurrent {clients}x{mib} MiB: {wall:.2f}s, {r['MBps']} MB/s, "
            f"{clients - failed}/{clients} succeeded, verified={not bad}"
        )
        for error in r["errors"]:
            log(f"concurrent client error: {error}")
        self.results["concurrent"] = r
        self.summary.update(
            concurrent_upload_MBps=r["MBps"],
            concurrent_failed_clients=failed,
            concurrent_verified=not bad,
        )
        if r["server_cpu_s_per_GiB"] is not None:
            self.summary["concurrent_server_cpu_s_per_GiB"] = r["server_cpu_s_per_GiB"]

    def run_phase(self, phase: str) -> dict:
        """One phase with its CPU accounting: server, this client, everyone else."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy0, total0 = machine_cpu()
        t0 = time.perf_counter()
        cpu0 = self.sampler.start_phase() if self.sampler else None
        try:
            getattr(self, f"phase_{phase}")()
        finally:
            meta = {"seconds": round(time.perf_counter() - t0, 2)}
            after = resource.getrusage(resource.RUSAGE_SELF)
            client = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
            busy1, total1 = machine_cpu()
            meta["client_cpu_s"] = round(client, 2)
            if self.sampler:
                server = self.sampler.end_phase(cpu0)
                other = (busy1 - busy0) - server - client
                meta.update(server_cpu_s=round(server, 2), other_cpu_s=round(other, 2))
                self.summary[f"server_rss_peak_MiB_{phase}"] = round(self.sampler.peak_kb / 1024, 1)
                self.summary[f"server_cpu_s_{phase}"] = round(server, 2)
                if total1 > total0:
                    self.summary[f"noise_frac_{phase}"] = round(other / (total1 - total0), 3)
        return meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", required=True)
    p.add_argument("--token", help="sent as X-Auth-Token")
    p.add_argument("--header", action="append", default=[], metavar="K:V")
    p.add_argument("--only", default=",".join(PHASES))
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--download-runs", type=int, default=2)
    p.add_argument("--verify-download", action="store_true", help="md5 the downloaded bytes")
    p.add_argument("--image-id", help="download this image instead of the uploaded one")
    p.add_argument("--create-n", type=int, default=200)
    p.add_argument("--list-population", type=int, default=2000)
    p.add_argument("--reps", type=int, default=100, help="samples per list query")
    p.add_argument("--reps-big", type=int, default=20, help="samples of ?limit=1000")
    p.add_argument("--walk-reps", type=int, default=2)
    p.add_argument("--show-reps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--concurrent-mib", type=int, default=64)
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--cleanup", action="store_true", help="delete the list population at the end")
    p.add_argument("--keep-images", action="store_true", help="keep the uploaded images")
    p.add_argument("--workdir", default="/tmp/tessera-bench-client")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--server-pid", type=int, help="measure this process and its descendants")
    p.add_argument("--sample-interval", type=float, default=0.5)
    p.add_argument("--label", default="")
    p.add_argument("--out", help="also write the JSON result here")
    a = p.parse_args(argv)
    wanted = {x.strip() for x in a.only.split(",") if x.strip()}
    if wanted - set(PHASES):
        p.error(f"--only takes phases from {PHASES}")
    headers = {"User-Agent": "tessera-bench/1", **({"X-Auth-Token": a.token} if a.token else {})}
    for header in a.header:
        key, sep, value = header.partition(":")
        if not sep:
            p.error(f"--header takes K:V, not {header!r}")
        headers[key.strip()] = value.strip()
    if a.server_pid and not os.path.exists(f"/proc/{a.server_pid}"):
        p.error(f"--server-pid {a.server_pid} does not exist")

    http = Http(a.url, headers, a.timeout)
    sampler = Sampler(a.server_pid, a.sample_interval) if a.server_pid else None
    bench = Bench(a, http, sampler)
    phases = [ph for ph in PHASES if ph in wanted]
    out: dict = {
        "meta": {
            "url": a.url,
            "label": a.label,
            "phases": phases,
            "client": "tessera",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "nproc": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
        }
    }
    out["phase_meta"] = {}
    rc = 0
    try:
        try:
            http.request("GET", "/v2/images?limit=1")
        except BenchError as exc:
            raise BenchError(f"endpoint check failed (wrong --url or headers?): {exc}") from exc
        for phase in phases:
            log(f"--- phase {phase}")
            out["phase_meta"][phase] = bench.run_phase(phase)
        if a.cleanup:
            for image_id in bench.walk(f"/v2/images?tag={POP_TAG}&limit=1000")[1]:
                bench.delete(image_id)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        out["error"], rc = str(exc), 1
    finally:
        if not a.keep_images:
            for image_id in bench.temporary:
                try:
                    bench.delete(image_id)
                except BenchError as exc:
                    log(f"cleanup: {exc}")
    out["meta"].update(
        http_requests=http.requests,
        tcp_connections=http.connections,
        server_keepalive=http.keepalive,
        loadavg_end=os.getloadavg(),
    )
    out.update(bench.results)
    if sampler:
        sampler.discover()
        end = out["server_end"] = sampler.snapshot()
        bench.summary.update(
            server_procs=end["n_procs"], server_rss_MiB_end=round(end["rss_sum_kb"] / 1024, 1)
        )
    out["summary"] = bench.summary
    text = json.dumps(out, indent=2)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(text, flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
