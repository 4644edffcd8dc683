"""One API node's image cache: a directory of complete image files and a small SQLite
index beside them, shared by the node's gateway processes and its cache service.

Layout of the cache directory (Glance's, plus the index):

    <dir>/<image_id>             complete, verified images (served)
    <dir>/incomplete/<image_id>  fills in progress, each locked (flock) by its filler
    <dir>/invalid/<image_id>     files that failed a check, kept for the cleaner
    <dir>/cache.db               the index (SQLite, WAL): what each file must be
    <dir>/node-id                this node's identity (its event queues are named by it)

A file is served only when its index row matches the image record the registry has just
given (status active, same size and hashes) and the file itself is the one that was
verified (same inode, size and modification time): a file truncated or rewritten on disk,
or one whose image was deleted or changed while this node was down, is never served.
Nothing here imports eventlet: the gateway (threads) and the cache service (green
threads) both use it, one SQLite connection per operation."""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS cached_images (
    image_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    checksum TEXT,
    os_hash_algo TEXT,
    os_hash_value TEXT,
    inode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    last_accessed REAL NOT NULL,
    last_modified REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS queued_images (
    image_id TEXT PRIMARY KEY,
    queued_at REAL NOT NULL
);
"""
#: Seconds a complete file may exist without its index row (a filler between its rename
#: and its commit) before the cleaner removes it.
ORPHAN_GRACE = 60
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def node_id(directory: Path) -> str:
    """The identity of the node whose cache directory this is, made once and kept there
    (a new directory is a new node)."""
    path = Path(directory) / "node-id"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(uuid.uuid4().hex)
    return path.read_text().strip()


def cacheable_id(image_id: str) -> bool:
    """Whether ``image_id`` can name a file in the cache directory (no path tricks)."""
    return bool(_SAFE_ID.fullmatch(image_id))


@dataclass(frozen=True)
class Entry:
    image_id: str
    size: int
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    inode: int
    mtime_ns: int

    def describes(self, image: dict) -> bool:
        """Whether this entry holds the data of the image record ``image``."""
        return (
            image.get("status") == "active"
            and image.get("size") == self.size
            and (image.get("checksum") or None) == self.checksum
            and (image.get("os_hash_value") or None) == self.os_hash_value
        )


class ImageCache:
    def __init__(self, directory: Path, max_size: int, stall_time: int):
        self.directory = Path(directory)
        self.incomplete = self.directory / "incomplete"
        self.invalid = self.directory / "invalid"
        self.db_path = self.directory / "cache.db"
        self.max_size = max_size
        self.stall_time = stall_time
        for path in (self.directory, self.incomplete, self.invalid):
            path.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @classmethod
    def from_settings(cls, settings) -> ImageCache:
        return cls(settings.directory, settings.max_size, settings.stall_time)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def path(self, image_id: str) -> Path:
        return self.directory / image_id

    # --- serving

    def entry(self, image_id: str) -> Entry | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT image_id, size, checksum, os_hash_algo, os_hash_value, inode, mtime_ns "
                "FROM cached_images WHERE image_id = ?",
                (image_id,),
            ).fetchone()
        return Entry(*row) if row else None

    def open_for(self, image: dict) -> int | None:
        """An open descriptor of the cached data of the image record ``image``, or None
        when it is not cached or what is cached is not (any more) that image's data, in
        which case the entry is dropped."""
        image_id = image["id"]
        if not cacheable_id(image_id):
            return None
        entry = self.entry(image_id)
        if entry is None:
            return None
        if not entry.describes(image):
            self._forget(entry)
            return None
        try:
            fd = os.open(self.path(image_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._forget(entry)
            return None
        stat = os.fstat(fd)
        if (stat.st_ino, stat.st_size, stat.st_mtime_ns) != (
            entry.inode,
            entry.size,
            entry.mtime_ns,
        ):
            # truncated, rewritten or replaced on disk since it was verified
            self._forget(entry, fd)
            os.close(fd)
            return None
        with closing(self._connect()) as db:
            db.execute(
                "UPDATE cached_images SET hits = hits + 1, last_accessed = ? WHERE image_id = ?",
                (time.time(), image_id),
            )
        return fd

    def _forget(self, entry: Entry, fd: int | None = None) -> None:
        """Drop ``entry`` (only if the index still holds that same file) and move its
        file aside (only if it is the file ``fd`` has open, when given)."""
        with closing(self._connect()) as db:
            db.execute(
                "DELETE FROM cached_images WHERE image_id = ? AND inode = ? AND mtime_ns = ?",
                (entry.image_id, entry.inode, entry.mtime_ns),
            )
        path = self.path(entry.image_id)
        try:
            if fd is None or os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.replace(path, self.invalid / entry.image_id)
        except FileNotFoundError:
            pass

    # --- filling (services/cache/fill.py)

    def commit(self, image: dict, path: Path) -> None:
        """Record the verified file just renamed to ``path`` as the image's data."""
        stat = os.stat(path)
        now = time.time()
        with closing(self._connect()) as db:
            db.execute(
                "INSERT OR REPLACE INTO cached_images (image_id, size, checksum, os_hash_algo, "
                "os_hash_value, inode, mtime_ns, hits, last_accessed, last_modified) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    image["id"],
                    stat.st_size,
                    image.get("checksum") or None,
                    image.get("os_hash_algo") or None,
                    image.get("os_hash_value") or None,
                    stat.st_ino,
                    stat.st_mtime_ns,
                    now,
                    now,
                ),
            )
            db.execute("DELETE FROM queued_images WHERE image_id = ?", (image["id"],))

    # --- what the cache API and tessera-manage show and do

    def cached_images(self) -> list[dict]:
        """Glance's records: image_id, hits, last_accessed, last_modified, size."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT image_id, hits, last_accessed, last_modified, size "
                "FROM cached_images ORDER BY image_id"
            ).fetchall()
        keys = ("image_id", "hits", "last_accessed", "last_modified", "size")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def is_cached(self, image_id: str) -> bool:
        return self.entry(image_id) is not None

    def total_size(self) -> int:
        with closing(self._connect()) as db:
            return db.execute("SELECT COALESCE(SUM(size), 0) FROM cached_images").fetchone()[0]

    def evict(self, image_id: str) -> bool:
        """Remove the image from the cache (not from the queue); whether it was cached."""
        if not cacheable_id(image_id):
            return False
        with closing(self._connect()) as db:
            removed = db.execute(
                "DELETE FROM cached_images WHERE image_id = ?", (image_id,)
            ).rowcount
        try:
            os.unlink(self.path(image_id))
        except FileNotFoundError:
            pass
        return bool(removed)

    def evict_all(self) -> int:
        return sum(self.evict(entry["image_id"]) for entry in self.cached_images())

    def queue(self, image_id: str) -> bool:
        """Queue the image for the prefetcher; False if it is cached already."""
        if not cacheable_id(image_id) or self.is_cached(image_id):
            return False
        with closing(self._connect()) as db:
            db.execute(
                "INSERT OR IGNORE INTO queued_images (image_id, queued_at) VALUES (?, ?)",
                (image_id, time.time()),
            )
        return True

    def queued_images(self) -> list[str]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT image_id FROM queued_images ORDER BY queued_at").fetchall()
        return [row[0] for row in rows]

    def dequeue(self, image_id: str) -> bool:
        with closing(self._connect()) as db:
            return bool(
                db.execute("DELETE FROM queued_images WHERE image_id = ?", (image_id,)).rowcount
            )

    def dequeue_all(self) -> int:
        with closing(self._connect()) as db:
            return db.execute("DELETE FROM queued_images").rowcount

    def prune(self, max_size: int | None = None) -> tuple[int, int]:
        """Evict the least recently used images until the cache holds at most
        ``max_size`` bytes (image_cache_max_size by default): (files, bytes) removed."""
        limit = self.max_size if max_size is None else max_size
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT image_id, size FROM cached_images ORDER BY last_accessed, image_id"
            ).fetchall()
        total = sum(size for _, size in rows)
        files = removed = 0
        for image_id, size in rows:
            if total <= limit:
                break
            if self.evict(image_id):
                files, removed, total = files + 1, removed + size, total - size
        return files, removed

    def clean(self, stall_time: int | None = None) -> int:
        """Remove abandoned and stalled fills, invalid files older than the stall time,
        files without an index row and rows without a file; the number of files removed."""
        stall = self.stall_time if stall_time is None else stall_time
        now, removed = time.time(), 0
        for path in self.incomplete.iterdir():
            if _abandoned(path) or _older_than(path, now - stall):
                removed += _unlink(path)
        for path in self.invalid.iterdir():
            if _older_than(path, now - stall):
                removed += _unlink(path)
        entries = {e["image_id"] for e in self.cached_images()}
        for path in self.directory.iterdir():
            if (
                path.is_file()
                and cacheable_id(path.name)
                and path.name not in entries
                and path.name not in ("cache.db", "node-id")
                and not path.name.startswith("cache.db-")
                and _older_than(path, now - ORPHAN_GRACE)
            ):
                removed += _unlink(path)
        for image_id in entries:
            if not self.path(image_id).exists():
                with closing(self._connect()) as db:
                    db.execute("DELETE FROM cached_images WHERE image_id = ?", (image_id,))
        return removed


def _abandoned(path: Path) -> bool:
    """Whether nobody holds the fill lock of this incomplete file (its filler died)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _older_than(path: Path, moment: float) -> bool:
    try:
        return path.stat().st_mtime < moment
    except FileNotFoundError:
        return False


def _unlink(path: Path) -> int:
    try:
        path.unlink()
        return 1
    except FileNotFoundError:
        return 0
