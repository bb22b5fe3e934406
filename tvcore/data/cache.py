"""The on-disk pixel cache: each split decoded once, at the model's resolution, into
a file of uint8 pixels that every later pass reads instead of decoding again.

A model's eval transform is a chain of PIL steps (resize, centre crop, RGB), then
``ToTensor`` (/255) and ``Normalize``. The PIL steps are the costly part and do not
depend on the weights, so they run once, in DataLoader workers, and their output is
stored as uint8 CHW rows: 150 KB per 224-px image, a quarter of float32. The cheap
arithmetic steps run on the device per batch (:class:`PixelTransform.normalize`).

An entry lives under ``<cache root>/pixels/`` (``TVCORE_CACHE``, default
``~/.cache/tvcore``), named by a hash of the split's fingerprint, where its images
come from, and the PIL steps. It is two files: ``<key>.u8`` (the rows, in split
order) and ``<key>.json`` (shape and a completion marker). Both are written to
unique temp files beside them, fsynced and renamed, the rows first and the
metadata last, so an entry without its metadata (a writer that died) is never
read; a lock file makes a second process wait for the first instead of decoding
the same split again. The folder as a whole (its size bound, least-recently-used
eviction, which entries are in use, clearing) is :mod:`tvcore.data.cache_store`'s.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import DatasetError
from . import cache_store as store
from .base import Split

FORMAT = 1  # bump when the layout of an entry changes: old entries are then ignored
_BUILD_BATCH = 64


def _describe_step(step) -> str:
    """A description of one transform step that is the same in every process (the
    default ``repr`` carries a memory address, which would key a new entry per run)."""
    kind = type(step)
    if kind.__repr__ is object.__repr__:
        if callable(step) and hasattr(step, "__qualname__"):  # a plain function
            return f"{step.__module__}.{step.__qualname__}"
        fields = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(step).items()))
        return f"{kind.__module__}.{kind.__qualname__}({fields})"
    return repr(step)


@dataclass(frozen=True)
class PixelTransform:
    """An eval transform split in two: ``geometric`` (PIL image -> PIL image at the
    model's resolution), run once when the cache is built, and ``mean``/``std``, the
    ``ToTensor`` + ``Normalize`` arithmetic run on the device per batch."""

    geometric: Callable
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str

    @classmethod
    def of(cls, transform) -> "PixelTransform":
        """Split a torchvision ``Compose`` of PIL steps, ``ToTensor`` and an optional
        ``Normalize`` (OpenCLIP's ``preprocess_val``)."""
        if isinstance(transform, PixelTransform):
            return transform
        from torchvision import transforms as T

        steps = list(getattr(transform, "transforms", []))
        at = next((i for i, s in enumerate(steps) if isinstance(s, T.ToTensor)), None)
        after = steps[at + 1:] if at is not None else []
        if at is None or len(after) > 1 or (after and not isinstance(after[0], T.Normalize)):
            raise DatasetError(f"cannot cache pixels for transform {transform!r}: expected a Compose of PIL "
                               "steps, then ToTensor, then at most a Normalize (an OpenCLIP preprocess_val)")
        mean, std = ((tuple(float(m) for m in after[0].mean), tuple(float(s) for s in after[0].std)) if after
                     else ((0.0,), (1.0,)))
        geometric = T.Compose(steps[:at])
        description = " | ".join(_describe_step(s) for s in steps[:at])
        return cls(geometric, mean, std, description)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, C, H, W)`` pixels, on any device, to the float images the full
        transform gives: the same operations as ``ToTensor`` then ``Normalize``."""
        mean, std = _constants(self.mean, self.std, pixels.device)
        return pixels.to(torch.float32).div_(255).sub_(mean).div_(std)


@functools.lru_cache(maxsize=32)
def _constants(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
    """``mean`` and ``std`` as ``(C, 1, 1)`` tensors on ``device``, made once (not two
    host-to-device copies per batch or training step)."""
    return (torch.tensor(mean, dtype=torch.float32, device=device).view(-1, 1, 1),
            torch.tensor(std, dtype=torch.float32, device=device).view(-1, 1, 1))


def _source_digest(split: Split) -> str:
    """Where the split's images come from: file paths with their size and mtime, or
    the bytes of in-memory arrays. The fingerprint alone names keys and labels, and
    two generated trees in different folders share those."""
    h = hashlib.sha256()
    for s in split.samples:
        if isinstance(s.source, np.ndarray):
            arr = np.ascontiguousarray(s.source)
            h.update(f"{arr.dtype}{arr.shape}".encode())
            h.update(memoryview(arr).cast("B"))
        else:
            try:
                st = os.stat(s.source)
            except OSError as exc:
                raise DatasetError(f"cannot read image {s.source}: {exc}") from exc
            h.update(f"{os.path.abspath(s.source)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_key(split: Split, pixels: PixelTransform) -> str:
    h = hashlib.sha256()
    for part in (f"tvcore-pixels-{FORMAT}", split.fingerprint(), _source_digest(split), pixels.description):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:40]


class _Geometric(torch.utils.data.Dataset):
    """A split's images through the PIL steps, as uint8 CHW tensors (run in workers)."""

    def __init__(self, split: Split, geometric: Callable):
        self.split, self.geometric = split, geometric

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> torch.Tensor:
        arr = np.asarray(self.geometric(self.split.samples[i].load()), dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _pack(rows: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """A batch of rows as one ``(k, C, H, W)`` tensor when they share a shape: a
    worker hands it to the building process as one shared-memory block, not one per
    image (each costs a file descriptor sent, received and closed: 8,000 of them for
    an 8,000-image split). Rows of different shapes stay a list, so the row of the
    wrong size is named."""
    if len({tuple(row.shape) for row in rows}) == 1:
        return torch.stack(rows)
    return rows


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not possible on every platform; the renames are still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Lock:
    """An advisory lock on a file beside the entry, so a second process building the
    same entry waits and then reads the first one's result. Released by the kernel
    if its holder dies; taken on the file the path names once held (an eviction may
    remove the file meanwhile: :func:`.cache_store.lock_file`). Where ``fcntl`` is
    missing the lock is skipped: two writers then both build, and the renames keep
    the entry whole."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def __enter__(self):
        self.fd = store.lock_file(self.path, exclusive=True, wait=True)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


# Images a decode worker must have to be worth starting. A process's first workers
# wait for its forkserver to import torch, the transforms and OpenCLIP (4 s on this
# 2-core CPU; before the server imported them, every worker did, 3.5 s each on a
# sandboxed H200 box, where the 8 workers of an 8,000-image split took 28 s to start
# and the split decodes in 5 s in one process); later workers start in milliseconds
# (tvcore.data.worker_preload). A small image decodes in under a millisecond: below a
# few thousand images, even that first wait costs more than the workers save.
IMAGES_PER_BUILD_WORKER = 4000


def build_workers(images: int, workers: int) -> int:
    """Decode workers for building a split of ``images``: at most ``workers``, one per
    :data:`IMAGES_PER_BUILD_WORKER` images (0, the main process, below that)."""
    return max(0, min(workers, images // IMAGES_PER_BUILD_WORKER))


class PixelCache:
    """One split at one geometric transform: uint8 CHW rows in a file on disk.

    Rows are read with positioned reads into a fresh tensor rather than through a
    memory map: pages of a mapping count toward the process's resident set until
    the kernel takes them back, so mapping a 3 GB cache looks like 3 GB of RSS,
    while reads go through the same page cache and leave the process's memory flat.
    """

    def __init__(self, path: Path, shape: tuple[int, int, int, int], labels: np.ndarray, pixels: PixelTransform):
        self.path = Path(path)
        self.shape = shape
        self.labels = labels
        self.pixels = pixels
        self._fd: int | None = None
        self._pid: int | None = None
        self._in_use: store.InUse | None = None  # held while open: the entry is never evicted

    # --------------------------------------------------------------- opening

    @classmethod
    def build(cls, split: Split, transform, *, cache_dir: str | os.PathLike | None = None, workers: int = 0,
              progress: bool = False, max_bytes: float | str | None = None) -> "PixelCache":
        """The cache entry of ``split`` under ``transform`` (an eval transform or a
        :class:`PixelTransform`): opened if complete, else built first; after a build,
        least recently used entries not in use are evicted until the folder is within
        ``max_bytes`` (default ``TVCORE_CACHE_MAX``, else 20 GB; see :mod:`.cache_store`)."""
        if len(split) == 0:
            raise DatasetError(f"split {split.name!r} is empty: nothing to evaluate or train on")
        bound = store.max_bytes(max_bytes)  # a malformed bound is named before hours of decoding
        pixels = PixelTransform.of(transform)
        root = Path(cache_dir) if cache_dir is not None else _default_root()
        root.mkdir(parents=True, exist_ok=True)
        key = cache_key(split, pixels)
        data, meta = root / f"{key}.u8", root / f"{key}.json"
        labels = np.asarray(split.labels, dtype=np.int64)
        found = cls._acquire(root, key, len(split), labels, pixels)
        if found is not None:
            return found
        with _Lock(root / f"{key}.lock"):
            found = cls._acquire(root, key, len(split), labels, pixels)  # another process may have finished it
            built = found is None
            if built:
                cls._write(split, pixels, data, meta, workers, progress)
                found = cls._acquire(root, key, len(split), labels, pixels)
        if found is None:
            raise DatasetError(f"pixel cache entry {data} is incomplete right after it was written; "
                               "check the disk under TVCORE_CACHE")
        if built:
            store.enforce_bound(root, bound, keep=key)
        return found

    @classmethod
    def _acquire(cls, root: Path, key: str, n: int, labels: np.ndarray,
                 pixels: PixelTransform) -> "PixelCache | None":
        """The entry opened and marked in use (then checked: it may have been evicted
        between the two), with its last use recorded; None if it is not complete."""
        in_use = store.InUse(root, key)
        found = cls._open(root / f"{key}.u8", root / f"{key}.json", n, labels, pixels)
        if found is None:
            in_use.release()
            return None
        found._in_use = in_use
        store.touch(root, key)
        return found

    @classmethod
    def _open(cls, data: Path, meta: Path, n: int, labels: np.ndarray, pixels: PixelTransform) -> "PixelCache | None":
        """The entry if its metadata says it is complete and the rows file has the
        size that metadata promises; None for a missing or half-written entry."""
        try:
            info = json.loads(meta.read_text())
            shape = tuple(int(d) for d in info["shape"])
            complete = info.get("complete") is True and info.get("format") == FORMAT
            size = data.stat().st_size
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not complete or len(shape) != 4 or shape[0] != n or size != int(np.prod(shape)):
            return None
        return cls(data, shape, labels, pixels)

    @staticmethod
    def _write(split: Split, pixels: PixelTransform, data: Path, meta: Path, workers: int, progress: bool) -> None:
        from tqdm.auto import tqdm

        tag = f"{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        tmp_data, tmp_meta = data.with_name(f".{data.name}.{tag}"), meta.with_name(f".{meta.name}.{tag}")
        from .loaders import worker_context  # loaders imports this module

        workers = build_workers(len(split), workers)
        loader = torch.utils.data.DataLoader(_Geometric(split, pixels.geometric), batch_size=_BUILD_BATCH,
                                             num_workers=workers, collate_fn=_pack, generator=torch.Generator(),
                                             multiprocessing_context=worker_context(workers))
        row_shape = None
        try:
            # Rows are appended with plain writes, in order: the split never sits in
            # memory, and (unlike writes through a mapping) the written pages are not
            # counted in this process's resident set.
            with open(tmp_data, "wb") as fh, tqdm(total=len(split), desc=f"cache {split.name}",
                                                  disable=not progress, leave=False) as bar:
                for b, batch in enumerate(loader):
                    for j, row in enumerate(batch):  # a list's rows, or a packed tensor's
                        row_shape = row_shape or tuple(row.shape)
                        if tuple(row.shape) != row_shape:
                            raise DatasetError(
                                f"sample {split.samples[b * _BUILD_BATCH + j].key!r} of split {split.name!r} "
                                f"comes out of the transform as {tuple(row.shape)}, the others as {row_shape}: "
                                "the transform must end in a fixed-size crop")
                    for block in batch if isinstance(batch, list) else [batch]:
                        fh.write(memoryview(block.numpy()).cast("B"))
                    bar.update(len(batch))
                fh.flush()
                os.fsync(fh.fileno())
            info = {"format": FORMAT, "complete": True, "shape": [len(split), *row_shape], "dtype": "uint8",
                    "split": split.name, "fingerprint": split.fingerprint(), "transform": pixels.description,
                    "mean": list(pixels.mean), "std": list(pixels.std)}
            with open(tmp_meta, "w") as fh:
                fh.write(json.dumps(info, indent=1) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_data, data)
            os.replace(tmp_meta, meta)  # last: the entry exists only once its rows are whole
            _fsync_dir(data.parent)
        except BaseException:
            for tmp in (tmp_data, tmp_meta):
                tmp.unlink(missing_ok=True)
            raise

    # --------------------------------------------------------------- reading

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def row_shape(self) -> tuple[int, int, int]:
        return self.shape[1:]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def close(self) -> None:
        """Close this process's descriptor (a later read opens it again)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None

    def _file(self) -> int:
        # One descriptor per process: a DataLoader worker opens its own.
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0)), os.getpid()
        return self._fd

    def rows(self, start: int, stop: int, pin_memory: bool = False) -> torch.Tensor:
        """Rows ``start:stop`` as a uint8 ``(k, C, H, W)`` tensor, in one read; with
        ``pin_memory``, read straight into pinned memory (for a copy to CUDA that need
        not block)."""
        start, stop = max(0, start), min(len(self), stop)
        out = torch.empty((max(0, stop - start), *self.row_shape), dtype=torch.uint8, pin_memory=pin_memory)
        if torch.utils.data.get_worker_info() is not None:
            out.share_memory_()  # read straight into what the worker hands to the main process
        return self.read_into(start, out)

    def read_into(self, start: int, out: torch.Tensor) -> torch.Tensor:
        """Rows ``start:start + len(out)`` read into ``out`` (a contiguous uint8 CPU
        tensor of whole rows, pinned memory say), in one read; ``out`` is returned."""
        if start < 0 or start + len(out) > len(self) or tuple(out.shape[1:]) != tuple(self.row_shape):
            raise ValueError(f"rows {start}:{start + len(out)} of shape {tuple(out.shape[1:])} are not in "
                             f"{self.path} ({len(self)} rows of {tuple(self.row_shape)})")
        if out.numel():
            row = int(np.prod(self.row_shape))
            buf = memoryview(out.numpy()).cast("B")
            fd, offset, done = self._file(), start * row, 0
            while done < len(buf):  # a read may return less than asked
                if hasattr(os, "preadv"):
                    got = os.preadv(fd, [buf[done:]], offset + done)
                else:
                    os.lseek(fd, offset + done, os.SEEK_SET)
                    got = os.readv(fd, [buf[done:]])
                if got <= 0:
                    raise DatasetError(f"pixel cache {self.path} ends early at byte {offset + done}; delete it "
                                       "to rebuild")
                done += got
        return out

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} out of range for a cache of {len(self)} images")
        i %= len(self)
        return self.rows(i, i + 1)[0], int(self.labels[i])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fd"] = state["_pid"] = None  # a process opens its own descriptor
        state["_in_use"] = None  # the process that opened the entry holds it in use
        return state

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass
        in_use = getattr(self, "_in_use", None)
        if in_use is not None:
            in_use.release()


def _default_root() -> Path:
    from ..models import cache_root

    return cache_root() / "pixels"
