"""An evaluation split stays on the device after its first pass: every later pass
of a sweep (21 alphas a task) reads no host memory, and what it yields is what a
read of the cache yields. The CUDA-only parts (pinned reads, the device's memory)
are stood in for on the CPU by deciding residency directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tvcore.data import loaders
from tvcore.data.cache import PixelCache, PixelTransform
from tvcore.data.loaders import EvalLoader, fits_resident

ROWS, SHAPE = 10, (3, 4, 4)


@pytest.fixture
def cache(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "split.u8"
    path.write_bytes(rng.integers(0, 256, (ROWS, *SHAPE), dtype=np.uint8).tobytes())
    pixels = PixelTransform(None, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "test")
    return PixelCache(path, (ROWS, *SHAPE), rng.integers(0, 3, ROWS).astype(np.int64), pixels)


@pytest.fixture
def reads(cache, monkeypatch):
    """How many times the cache file is read."""
    count = {"n": 0}
    read_into = cache.read_into

    def counted(start, out):
        count["n"] += 1
        return read_into(start, out)

    monkeypatch.setattr(cache, "read_into", counted)
    return count


@pytest.fixture
def kept(monkeypatch):
    """Residency granted as a CUDA device with room would grant it; the ledger of
    resident bytes starts empty and is restored after."""
    monkeypatch.setattr(EvalLoader, "_may_keep", lambda self: self.resident)
    monkeypatch.setattr(loaders, "_resident_eval_bytes", {})


def batches(loader):
    return [(p.clone(), l.clone()) for p, l in loader.raw()]


def test_a_second_pass_reads_nothing_from_the_cache_and_yields_the_same_batches(cache, reads, kept):
    loader = EvalLoader(cache, "cpu", batch_size=4)
    first = batches(loader)
    after_first = reads["n"]
    second = batches(loader)
    assert after_first == 3 and reads["n"] == 3
    assert loader.on_device
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))


def test_resident_batches_are_the_rows_and_labels_of_the_cache(cache, kept):
    loader = EvalLoader(cache, "cpu", batch_size=4)
    batches(loader)
    pixels = torch.cat([p for p, _ in loader.raw()])
    labels = torch.cat([l for _, l in loader.raw()])
    assert torch.equal(pixels, cache.rows(0, ROWS)) and labels.tolist() == cache.labels.tolist()


def test_a_pass_left_halfway_does_not_stay(cache, reads, kept):
    loader = EvalLoader(cache, "cpu", batch_size=4)
    next(iter(loader.raw()))
    assert not loader.on_device
    batches(loader)
    assert loader.on_device


def test_resident_false_keeps_reading_the_cache(cache, reads, kept):
    loader = EvalLoader(cache, "cpu", batch_size=4, resident=False)
    batches(loader)
    batches(loader)
    assert reads["n"] == 6 and not loader.on_device


def test_the_ledger_counts_resident_bytes_and_release_gives_them_back(cache, kept):
    loader = EvalLoader(cache, "cpu", batch_size=4)
    batches(loader)
    assert loaders._resident_eval_bytes["cpu"] == cache.nbytes
    loader.release()
    assert loaders._resident_eval_bytes["cpu"] == 0 and not loader.on_device


def test_on_the_cpu_a_split_is_never_kept(cache, reads):
    loader = EvalLoader(cache, "cpu", batch_size=4)
    batches(loader)
    batches(loader)
    assert reads["n"] == 6 and not loader.on_device


@pytest.mark.parametrize("nbytes, held, free, total, fits", [
    (10, 0, 100, 100, True),     # a tenth of the device
    (26, 0, 100, 100, False),    # over a quarter on its own
    (10, 20, 100, 100, False),   # over a quarter with what is already resident
    (20, 0, 30, 100, False),     # more than half of what is free
    (15, 0, 30, 100, True),
])
def test_a_split_stays_within_a_quarter_of_the_device_and_half_its_free_memory(nbytes, held, free, total, fits):
    assert fits_resident(nbytes, held, free, total) is fits


def test_reading_rows_past_the_end_names_the_cache(cache):
    with pytest.raises(ValueError, match="split.u8"):
        cache.read_into(ROWS - 1, torch.empty((2, *SHAPE), dtype=torch.uint8))


@pytest.mark.parametrize("device, asked, pinned", [("cuda", None, True), ("cuda", False, False), ("cpu", None, False)])
def test_rows_are_read_into_pinned_memory_on_cuda_unless_asked_not_to(cache, device, asked, pinned):
    """Pinned reads let a copy to the device run without waiting; ``pin_memory=False``
    reads into pageable memory (the GPU bench times a first pass both ways)."""
    assert EvalLoader(cache, device, batch_size=4, pin_memory=asked)._batches.pin_memory is pinned


def test_a_pass_read_into_pageable_memory_yields_the_rows_and_labels_of_the_cache(cache):
    loader = EvalLoader(cache, "cpu", batch_size=4, pin_memory=False)
    pixels, labels = (torch.cat(t) for t in zip(*batches(loader)))
    assert torch.equal(pixels, cache.rows(0, ROWS)) and labels.tolist() == cache.labels.tolist()
