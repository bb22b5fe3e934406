"""The pixel cache folder as a whole: its entries with their size and last use, a
bound on its size kept by evicting the least recently used entries, and clearing.

An entry (see :mod:`tvcore.data.cache`) is ``<key>.u8`` (the rows) and ``<key>.json``
(its metadata, written last). Beside them:

- ``<key>.use``: every process that has the entry open holds a shared ``flock`` on
  it for as long as the entry is open. Eviction and ``tvcore cache clear`` take an
  exclusive lock without waiting and skip the entry when they cannot: **an entry in
  use is never removed**. The kernel drops the lock of a process that dies.
- ``<key>.lock``: held exclusively while the entry is being built.

Removing an entry removes both lock files too, while it holds them exclusively, so
nothing is left behind. Every lock is therefore taken as open, lock, then check
that the path still names the file locked (:func:`lock_file`): a process that
opened a lock file just before it was removed finds it gone once it holds the lock,
and takes the lock again on the file now at that path.

Last use is the metadata file's modification time, set each time a process opens
the entry. The bound is ``TVCORE_CACHE_MAX`` (``20GB``, ``500MB``, ``1.5GiB``, a
number of bytes, or ``none``), default 20 GB: enough for the micro suites, the
rehearsal and a few real tasks; the paper's nine tasks at 224 px take about
60 GB (150,528 bytes an image), so raise it for a full real run, or their entries
are decoded again on each run. After a new entry is written, entries not in use
are removed, least recently used first, until the folder is within the bound.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

MAX_ENV = "TVCORE_CACHE_MAX"
DEFAULT_MAX_BYTES = 20 * 10**9
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]i?)?b?\s*", re.IGNORECASE)


def parse_size(text: str) -> float:
    """``"20GB"`` -> 2e10 bytes (``GiB``: powers of 2); ``"none"`` -> infinity."""
    if text.strip().lower() in ("none", "unlimited", "inf"):
        return float("inf")
    match = _SIZE.fullmatch(text)
    if not match:
        raise UsageError(f"{MAX_ENV}={text!r}: not a size; write e.g. 20GB, 500MB, 1.5GiB, a number of bytes, "
                         "or none")
    return float(match.group(1)) * _UNITS[(match.group(2) or "").lower()]


def max_bytes(value: float | str | None = None) -> float:
    """The bound: ``value`` if given, else ``TVCORE_CACHE_MAX``, else 20 GB."""
    if value is None:
        value = os.environ.get(MAX_ENV) or DEFAULT_MAX_BYTES
    return parse_size(value) if isinstance(value, str) else float(value)


def human(n: float) -> str:
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


# ----------------------------------------------------------------------- locks

def _flock(fd: int, exclusive: bool, wait: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # no advisory locks here: every entry counts as free
        return True
    flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, flags)
        return True
    except BlockingIOError:
        return False


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed, not replaced)."""
    try:
        held, now = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def lock_file(path: Path, exclusive: bool, wait: bool) -> int | None:
    """An open descriptor holding a lock on the file at ``path`` (created if missing),
    or None when ``wait`` is False and another process holds it. The lock is taken on
    the file the path names once it is held: a file removed (by :func:`_remove`) between
    this process's open and its lock is opened again."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _flock(fd, exclusive=exclusive, wait=wait):
            os.close(fd)
            return None
        if _same_file(fd, path):
            return fd
        os.close(fd)  # removed while this process waited: lock the one there now


class InUse:
    """A shared lock on ``<key>.use`` held while a process has the entry open."""

    def __init__(self, root: Path, key: str):
        self.pid = os.getpid()
        try:
            self.fd: int | None = lock_file(root / f"{key}.use", exclusive=False, wait=True)
        except OSError:  # a cache folder shared read-only: nothing here can evict the entry
            self.fd = None

    def release(self) -> None:
        if self.fd is not None and self.pid == os.getpid():
            os.close(self.fd)  # closing releases the flock
        self.fd = None


def _try_exclusive(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on ``path``, or None if someone holds it."""
    return lock_file(path, exclusive=True, wait=False)


# ----------------------------------------------------------------------- entries

@dataclass(frozen=True)
class Entry:
    key: str
    bytes: int  # rows and metadata
    last_used: float  # seconds since the epoch
    split: str
    images: int


def entries(root: str | Path) -> list[Entry]:
    """The complete entries under ``root``, least recently used first."""
    root = Path(root)
    out = []
    for meta in root.glob("*.json") if root.is_dir() else ():
        data = meta.with_suffix(".u8")
        try:
            info = json.loads(meta.read_text())
            stat_meta, stat_data = meta.stat(), data.stat()
        except (OSError, ValueError):
            continue
        shape = info.get("shape") or [0]
        out.append(Entry(meta.stem, stat_meta.st_size + stat_data.st_size, stat_meta.st_mtime,
                         str(info.get("split", "?")), int(shape[0])))
    return sorted(out, key=lambda e: (e.last_used, e.key))


def folder_bytes(root: str | Path) -> int:
    """Every file under ``root``: entries, and the temporary files of unfinished writes."""
    root = Path(root)
    total = 0
    for path in root.iterdir() if root.is_dir() else ():
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            pass
    return total


def touch(root: Path, key: str) -> None:
    """Record a use of the entry (its metadata's modification time)."""
    try:
        os.utime(root / f"{key}.json")
    except OSError:
        pass


def _remove(root: Path, key: str) -> bool:
    """Remove an entry unless it is open or being built somewhere; True if removed."""
    use = _try_exclusive(root / f"{key}.use")
    if use is None:
        return False
    try:
        build = _try_exclusive(root / f"{key}.lock")
        if build is None:
            return False
        try:
            # The metadata first: without it the entry is no longer read, whatever happens
            # next. The lock files last, while held: a process waiting on either finds it
            # gone when its turn comes, and locks the file then at that path (lock_file).
            for suffix in (".json", ".u8", ".lock", ".use"):
                (root / f"{key}{suffix}").unlink(missing_ok=True)
        finally:
            os.close(build)
    finally:
        os.close(use)
    return True


def _dead_writer_temps(root: Path) -> list[Path]:
    """Temporary files (``.<key>.<u8|json>.<pid>.<tag>.tmp``) whose writer process is gone."""
    out = []
    for path in root.glob(".*.tmp"):
        parts = path.name.split(".")
        try:
            pid = int(parts[-3])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            out.append(path)
        except OSError:
            pass  # alive, owned by another user
    return out


def enforce_bound(root: str | Path, limit: float | str | None = None, keep: str | None = None) -> list[Entry]:
    """Remove entries not in use (never ``keep``), least recently used first, until the
    folder is within ``limit`` (see :func:`max_bytes`); return those removed."""
    root, bound = Path(root), max_bytes(limit)
    total = folder_bytes(root)
    removed = []
    for entry in entries(root):
        if total <= bound:
            break
        if entry.key != keep and _remove(root, entry.key):
            removed.append(entry)
            total -= entry.bytes
    return removed


def clear(root: str | Path, keys: list[str] | None = None) -> tuple[list[Entry], list[Entry]]:
    """Remove the entries named by ``keys`` (full keys or unique prefixes), or all of them and
    the temporary files of dead writers; return (removed, skipped because in use)."""
    root = Path(root)
    found = entries(root)
    if keys:
        chosen = []
        for prefix in keys:
            hits = [e for e in found if e.key.startswith(prefix)]
            if len(hits) != 1:
                raise UsageError(f"cache key {prefix!r} matches {len(hits)} entries under {root}; "
                                 "give a key from 'tvcore cache list'")
            chosen.append(hits[0])
    else:
        chosen = found
        for temp in _dead_writer_temps(root):
            temp.unlink(missing_ok=True)
    removed, busy = [], []
    for entry in chosen:
        (removed if _remove(root, entry.key) else busy).append(entry)
    if not keys:
        _remove_orphan_locks(root)
    return removed, busy


def _remove_orphan_locks(root: Path) -> None:
    """Lock files of entries that are not there (left by a build that failed, or by
    versions of tvcore that kept them), unless a process holds them."""
    complete = {e.key for e in entries(root)}
    for path in sorted(root.glob("*.lock")) + sorted(root.glob("*.use")) if root.is_dir() else ():
        if path.stem in complete or (root / f"{path.stem}.u8").exists():
            continue
        fd = _try_exclusive(path)
        if fd is not None:
            try:
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)


def when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))
