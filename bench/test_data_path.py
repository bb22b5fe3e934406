"""Memory and speed of evaluation and its data path (tvcore.data.cache and .loaders).

* Peak RSS of the ``tvcore eval`` command (cache built, then every batch read
  back, normalized and run through a 224-px model) over 2,000 and 20,000
  generated images, each in a fresh process (bench/rss_probe.py). The sources are
  32-px PNGs on disk that the model's eval transform upscales, so the cache holds
  full 224-px rows (150,528 bytes each: 3 GB for 20,000) while the sources stay
  small.
* Throughput of the data path alone, in images/s, with 0 and 2 decode workers: the
  first pass (decode, resize, crop, write the cache) and a cached pass (read uint8
  batches; and, separately, read and normalize them on the CPU, which on a GPU is
  the device's work). Two kinds of source: 32-px PNGs (digit-sized, cheap to
  decode) and 400x400 JPEGs (the size of a photo in the paper's natural-image tasks).
* Cache bytes per image.

Figures go to the speed table printed at the end and results/speed.json. The only
assertions are on memory (a difference of sizes measured in this run), never on time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tvcore.data import Sample, Split
from tvcore.data.loaders import eval_loader

import rss_probe

pytestmark = pytest.mark.speed

SIZE = 224
RSS_COUNTS = (2_000, 20_000)
RSS_BUDGET = 300 * 2**20  # the larger evaluation may use at most this much more memory
SOURCES = {"32px-png": (32, "png", 1_000), "400px-jpeg": (400, "jpg", 400)}  # side, format, images


def write_images(folder: Path, n: int, side: int, fmt: str, seed: int = 0) -> list[Path]:
    """``n`` images of random blocks (8x8-px blocks above 64 px, so a JPEG is not all noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    block = 8 if side > 64 else 1
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, (side // block, side // block, 3), dtype=np.uint8)
        arr = arr.repeat(block, 0).repeat(block, 1)
        path = folder / f"{i:05d}.{fmt}"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


def transform():
    import open_clip

    return open_clip.image_transform(SIZE, is_train=False)  # ViT-B-32's eval transform


@pytest.fixture(scope="module")
def png_sources(tmp_path_factory) -> list[Path]:
    """A hundred distinct 32-px PNGs that the memory probes' trees link to."""
    return write_images(tmp_path_factory.mktemp("rss_images"), 100, 32, "png")


def mnist_tree(root: Path, sources: list[Path], n: int) -> Path:
    """A generic-layout MNIST tree whose test split holds ``n`` images (links to
    ``sources`` in turn, spread over the ten classes; every link is its own sample,
    decoded and cached on its own) and whose train split holds one image per class."""
    for i in range(n):
        src = sources[i % len(sources)]
        for split in ("test",) + (("train",) if i < 10 else ()):
            link = root / "MNIST" / split / str(i % 10) / f"{i:05d}{src.suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(src)
    return root


def test_peak_rss_of_tvcore_eval_does_not_grow_with_the_split(png_sources, tmp_path, speed_table):
    """The command itself, model and all (the 224-px stand-in architecture, random
    init, workers 0), each size in a fresh process with an empty pixel cache: the
    split is decoded into the cache, read back, normalized and evaluated."""
    from tvcore.experiments import STAND_IN

    # Under the test's own tmp_path: the 3 GB of pixel cache goes when the test passes.
    for n in RSS_COUNTS:
        (tmp_path / f"eval_results_{n}").mkdir()
    runs = [(("tvcore-eval", mnist_tree(tmp_path / f"mnist_{n}", png_sources, n), tmp_path / f"eval_results_{n}",
              STAND_IN.arch), {"TVCORE_CACHE": str(tmp_path / f"eval_cache_{n}")}) for n in RSS_COUNTS]
    *measured, idle = rss_probe.run(*runs, (("idle",), None))
    runs, idle = dict(zip(RSS_COUNTS, measured)), idle["peak_rss_bytes"]
    small, large = (runs[n] for n in RSS_COUNTS)
    assert small["images"] == RSS_COUNTS[0] and large["images"] == RSS_COUNTS[1]
    speed_table["tvcore_eval_rss"] = {
        "image_size": SIZE, "idle_bytes": idle,
        "runs": {str(n): {"peak_rss_bytes": r["peak_rss_bytes"], "cache_bytes": r["cache_bytes"]}
                 for n, r in runs.items()},
        "difference_bytes": large["peak_rss_bytes"] - small["peak_rss_bytes"],
    }
    # The larger split's cache is ten times the size (150,528 bytes an image); the
    # process's memory must not follow it. Each pass keeps its predictions in one
    # preallocated array: kept as one small tensor per batch they fragmented the
    # heap, and the command grew by about 1 GB between these two sizes.
    assert small["cache_bytes"] == RSS_COUNTS[0] * 3 * SIZE * SIZE
    assert large["cache_bytes"] == 10 * small["cache_bytes"]
    assert large["peak_rss_bytes"] - small["peak_rss_bytes"] < RSS_BUDGET


def passes(split: Split, cache_dir: Path, workers: int) -> dict:
    preprocess = transform()
    t0 = time.perf_counter()
    loader = eval_loader(split, preprocess, cache_dir=cache_dir, workers=workers)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    seen = sum(len(labels) for _, labels in loader.raw())
    cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    normalized = sum(len(labels) for _, labels in loader)
    cached_normalized = time.perf_counter() - t0
    assert seen == normalized == len(split)
    n = len(split)
    return {"first_img_s": n / first, "cached_img_s": n / cached, "cached_normalized_img_s": n / cached_normalized,
            "cached_over_first": first / cached, "cache_bytes_per_image": loader.cache.nbytes / n}


@pytest.mark.parametrize("source", list(SOURCES))
def test_throughput_of_first_and_cached_passes(source, tmp_path, speed_table, monkeypatch):
    side, fmt, n = SOURCES[source]
    folder = tmp_path  # its images and caches go when the test passes
    paths = write_images(folder / "images", n, side, fmt)
    split = Split("test", [Sample(str(p), i % 10, p.stem, p.name) for i, p in enumerate(paths)])
    torch.set_num_threads(2)
    transform()  # imported before anything is timed
    # The worker path itself, measured: a split this small would otherwise be built in
    # the main process (tvcore.data.cache.build_workers).
    monkeypatch.setattr("tvcore.data.cache.IMAGES_PER_BUILD_WORKER", 1)
    rows = {f"workers={w}": passes(split, folder / f"cache{w}", w) for w in (0, 2)}
    for row in rows.values():
        assert row["cache_bytes_per_image"] == 3 * SIZE * SIZE  # uint8 CHW at the model's resolution
    speed_table.setdefault("data_path_throughput", {})[source] = {"images": n, "image_size": SIZE, **rows}


def test_a_bench_session_without_data_caches_in_a_folder_of_its_own(tvcore_options):
    """Without --data-root every suite's data is embedded or generated: its cache
    entries go to the session's folder, not the user's (bench/conftest.py)."""
    from tvcore.models import cache_root

    if tvcore_options.data_root:
        pytest.skip("--data-root was given: the user's cache (TVCORE_CACHE) keeps the real trees' pixels")
    assert cache_root().name.startswith("tvcore-session-cache-") and cache_root().is_dir()
