"""How images reach a model: worker processes where images are decoded (building
the pixel cache, augmented fine-tuning), and plain reads of the cache everywhere
else.

Evaluation batches are contiguous rows of the cache, each read in one call by a
reader thread a batch or two ahead of the model (the read releases the GIL), pinned
and copied without blocking on CUDA, and normalized on the device. Reading cached
rows is a memory copy: DataLoader worker processes only slow it down (measured in
``bench/test_data_path.py``: 2-4x fewer images per second with 2 workers than in
the main process, and a fork per pass, which a 21-point sweep pays 21 times per
split). Training items are keyed by ``(step, index)`` and seed every RNG from
``(seed, step, index)`` before the transform runs, so a sample's random crop is the
same in any worker, in the main process, and in a run resumed halfway.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np
import torch

from .base import Split
from .cache import PixelCache, PixelTransform


def default_workers() -> int:
    """Worker processes for a DataLoader when none are asked for: the CPUs this
    process may run on, at most 8 (beyond that, reading outpaces the model)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus))


# The modules the forkserver imports before it forks any worker (see
# tvcore.data.worker_preload), and "__main__", which it imports by default.
WORKER_PRELOAD = ("tvcore.data.worker_preload", "__main__")
# The server must stay single-threaded: a fork copies only the forking thread, and
# numpy's BLAS starts a thread pool at import unless told to use one thread. Its
# workers inherit this; each DataLoader worker runs torch on one thread anyway.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _start_forkserver(ctx) -> None:
    """Start the process's forkserver with :data:`WORKER_PRELOAD` imported, once (a
    server already running, started by anyone, is used as it is)."""
    from multiprocessing import forkserver
    from unittest import mock

    if getattr(_start_forkserver, "done", False):
        return
    ctx.set_forkserver_preload(list(WORKER_PRELOAD))
    with mock.patch.dict(os.environ, ONE_THREAD):  # the server's environment, not this process's
        forkserver.ensure_running()
    _start_forkserver.done = True


def worker_context(workers: int):
    """The start method of a DataLoader's worker processes: none without workers;
    else "forkserver" (where the platform has it) or "spawn", never "fork". The
    process that asks is threaded (the evaluation reader, a pin-memory thread,
    torch's own pools), and a fork copies whatever lock another thread holds at that
    instant into a child that can never release it (Python 3.12 warns of exactly
    this). A worker then receives its dataset pickled, so datasets stay picklable.
    The forkserver imports what workers need once (:data:`WORKER_PRELOAD`), so each
    worker after the server's start begins in milliseconds instead of seconds."""
    if workers <= 0:
        return None
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    _start_forkserver(ctx)
    return ctx


# Evaluation splits kept on a CUDA device after their first pass take together at
# most this fraction of its memory (ImageNet's 50,000 validation images at 224 px
# are 7.5 GB of uint8: a quarter of an 80 GB device holds them and the eight tasks').
RESIDENT_EVAL_FRACTION = 0.25
_resident_eval_bytes: dict[str, int] = {}  # device -> bytes held by resident splits


def fits_resident(nbytes: int, held: int, free: int, total: int) -> bool:
    """Whether a split of ``nbytes`` may stay on a device of ``total`` bytes with
    ``free`` free, where resident splits already hold ``held``."""
    return held + nbytes <= RESIDENT_EVAL_FRACTION * total and nbytes <= free / 2


class EvalLoader:
    """Iterates ``(normalized float images, labels)`` batches of a cached split, both
    on ``device``; iterate it again for another model (each alpha of a sweep).

    On CUDA a reader thread copies each batch's rows from the cache file straight
    into pinned memory (:class:`_CachedBatches`), which goes to the device without
    blocking;
    and a split that fits within
    :data:`RESIDENT_EVAL_FRACTION` of the device's memory (all resident splits
    together, and at most half of what is free) stays there as uint8 after its first
    pass, so every later pass of a sweep reads no host memory at all
    (``resident=False`` turns that off). ``pin_memory`` (default: on CUDA) says
    whether the rows are read into pinned memory; without it each copy to the device
    is made from pageable memory and waits for the device."""

    PREFETCH = 2  # batches read ahead of the model

    def __init__(self, cache: PixelCache, device: str | torch.device = "cpu", batch_size: int = 256,
                 resident: bool = True, pin_memory: bool | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.cache = cache
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.resident = resident
        pin = self.device.type == "cuda" if pin_memory is None else pin_memory
        self._batches = _CachedBatches(cache, batch_size, pin_memory=pin)
        self._kept: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def on_device(self) -> bool:
        """Whether the split's pixels are held on the device (after a first pass)."""
        return self._kept is not None

    def release(self) -> None:
        """Free the device copy of the split (a later pass reads the cache again)."""
        if self._kept is not None:
            _resident_eval_bytes[str(self.device)] -= self.cache.nbytes
            self._kept = None

    def __del__(self):
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _may_keep(self) -> bool:
        if not self.resident or self.device.type != "cuda":
            return False
        free, total = torch.cuda.mem_get_info(self.device)
        return fits_resident(self.cache.nbytes, _resident_eval_bytes.get(str(self.device), 0), free, total)

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def num_samples(self) -> int:
        """Images per pass (``len`` counts batches, as a DataLoader's does)."""
        return len(self.cache)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for pixels, labels in self.raw():
            yield self.cache.pixels.normalize(pixels), labels

    def raw(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches as uint8 pixels on the device, before normalization."""
        if self._kept is not None:
            yield from self._kept
            return
        keep = self._may_keep()
        kept = []
        for pixels, labels in self._read():
            if keep:
                kept.append((pixels, labels))
            yield pixels, labels
        if keep and len(kept) == len(self) and self._kept is None:  # a whole pass, not one left halfway
            self._kept = kept
            _resident_eval_bytes[str(self.device)] = _resident_eval_bytes.get(str(self.device), 0) + self.cache.nbytes

    def _read(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches on the device, each read a batch or two ahead by a reader
        thread (the read releases the GIL)."""
        read = self._batches.__getitem__
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tvcore-read") as reader:
            ahead = deque(reader.submit(read, b) for b in range(min(self.PREFETCH, len(self))))
            following = len(ahead)
            while ahead:
                pixels, labels = ahead.popleft().result()
                if following < len(self):
                    ahead.append(reader.submit(read, following))
                    following += 1
                yield pixels.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)


class _CachedBatches(torch.utils.data.Dataset):
    """Batch ``b`` of a cached split: rows ``b*size`` to ``(b+1)*size`` in one read.
    With ``pin_memory`` (CUDA) the rows are read straight into pinned memory (one host
    copy), so their copy to the device need not block; the blocks come from torch's
    caching host allocator, which hands one out again only once the copy out of it
    has run, so after the first batches nothing is allocated."""

    def __init__(self, cache: PixelCache, size: int, pin_memory: bool = False):
        self.cache, self.size, self.pin_memory = cache, size, pin_memory

    def __len__(self) -> int:
        return -(-len(self.cache) // self.size)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = b * self.size
        stop = min(len(self.cache), start + self.size)
        labels = torch.from_numpy(self.cache.labels[start:stop].astype(np.int64))
        return (self.cache.rows(start, stop, pin_memory=self.pin_memory),
                labels.pin_memory() if self.pin_memory else labels)


def eval_loader(split: Split, transform, *, device: str | torch.device = "cpu", batch_size: int = 256,
                workers: int = 0, cache_dir: str | os.PathLike | None = None, progress: bool = False) -> EvalLoader:
    """Batches of ``split`` under the eval ``transform``, normalized on ``device``;
    the split is decoded into the pixel cache the first time, by ``workers``
    processes; every pass reads the cache from this process."""
    cache = PixelCache.build(split, transform, cache_dir=cache_dir, workers=workers, progress=progress)
    return EvalLoader(cache, device, batch_size)


# ------------------------------------------------------------------ training


def sample_seed(seed: int, step: int, index: int) -> int:
    """The RNG seed of one training sample at one step: a hash, so neighbouring
    (step, index) pairs get unrelated streams."""
    digest = hashlib.blake2b(f"{seed}/{step}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class StepDataset(torch.utils.data.Dataset):
    """Training items keyed by ``(step, index)``: Python's, NumPy's and torch's RNGs
    are seeded from ``(seed, step, index)`` before ``item(index)`` runs.

    ``device_transform``, when set, is applied by the trainer to each batch once it
    is on the device (the normalization of cached uint8 pixels).
    """

    device_transform: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __init__(self, seed: int):
        self.seed = seed

    def item(self, index: int):
        raise NotImplementedError

    random_items = True  # False where an item draws nothing random: seeding is then skipped
    decodes = True  # False where an item is a plain read (cached pixels): no worker processes then

    def __getitem__(self, key: tuple[int, int]):
        step, index = key
        if not self.random_items:
            return self.item(index)
        s = sample_seed(self.seed, step, index)
        random.seed(s)
        np.random.seed(s % 2**32)
        # The CPU generator only (transforms run on the CPU): torch.manual_seed would
        # also reseed every accelerator, at a cost per sample.
        torch.default_generator.manual_seed(s)
        return self.item(index)


class AugmentedTrain(StepDataset):
    """A split decoded from its original images through the model's train transform
    (random resized crops), every time: ``(float image, label)``."""

    def __init__(self, split: Split, transform: Callable, seed: int):
        super().__init__(seed)
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def item(self, index: int):
        sample = self.split.samples[index]
        return self.transform(sample.load()), sample.label


class CachedTrain(StepDataset):
    """A split's cached uint8 pixels, ``(uint8 image, label)``, normalized on the
    device: what the eval transform would give, without decoding again."""

    random_items = False
    decodes = False

    def __init__(self, cache: PixelCache, seed: int):
        super().__init__(seed)
        self.cache = cache
        self.device_transform = cache.pixels.normalize

    def __len__(self) -> int:
        return len(self.cache)

    def item(self, index: int):
        return self.cache[index]


class SeededView(StepDataset):
    """Any map-style dataset of ``(image tensor, label)``, keyed by ``(step, index)``
    like the others, so a random transform inside it is seeded the same way."""

    def __init__(self, dataset: torch.utils.data.Dataset, seed: int):
        super().__init__(seed)
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def item(self, index: int):
        return self.dataset[index]


def as_step_dataset(data: torch.utils.data.Dataset, seed: int) -> StepDataset:
    return data if isinstance(data, StepDataset) else SeededView(data, seed)


def train_dataset(split: Split, transform_train: Callable, transform_eval, *, augment: bool, seed: int,
                  cache_dir: str | os.PathLike | None = None, workers: int = 0) -> StepDataset:
    """What :func:`tvcore.finetune.finetune` trains on: the model's train transform
    applied afresh (``augment``), or the eval transform's cached pixels."""
    if augment:
        return AugmentedTrain(split, transform_train, seed)
    return CachedTrain(PixelCache.build(split, PixelTransform.of(transform_eval), cache_dir=cache_dir,
                                        workers=workers), seed)


__all__ = ["EvalLoader", "StepDataset", "AugmentedTrain", "CachedTrain", "SeededView", "as_step_dataset",
           "default_workers", "eval_loader", "sample_seed", "train_dataset", "worker_context"]
