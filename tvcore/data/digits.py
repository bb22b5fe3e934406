"""scikit-learn's bundled handwritten digits (1797 images, 8x8, 10 classes): the
embedded dataset that runs everywhere without a download."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from .base import Sample, Split, TaskData

CLASS_NAMES = [str(i) for i in range(10)]
TEMPLATES = ['a photo of the number: "{}".', "a handwritten digit {}.", "the digit {}."]


def _bundled_file() -> Path | None:
    """scikit-learn's own copy of the digits (``sklearn/datasets/data/digits.csv.gz``),
    found without importing scikit-learn, or None where that copy is not there."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations if spec else None) or []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def images_and_labels() -> tuple[np.ndarray, np.ndarray]:
    """uint8 images of shape (1797, 8, 8) scaled to 0..255, and their labels.

    The values are those of ``sklearn.datasets.load_digits``: read here from the
    file it reads (rows of 64 pixels, 0..16, then the label), because importing
    scikit-learn costs a second of every process that evaluates a micro-task. Where
    that file is missing or not of that shape, ``load_digits`` itself is asked."""
    data = None
    path = _bundled_file()
    if path is not None:
        with gzip.open(path, "rt") as handle:
            data = np.loadtxt(handle, delimiter=",")
    if data is None or data.shape != (1797, 65):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        data = np.concatenate([bunch.data, bunch.target[:, None]], axis=1)
    pixels, labels = data[:, :64].reshape(-1, 8, 8), data[:, 64]
    images = np.clip(np.rint(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def samples_from_arrays(images: np.ndarray, labels: np.ndarray, indices, prefix: str) -> list[Sample]:
    return [Sample(images[i], int(labels[i]), case=f"{prefix}{i}", key=f"{prefix}{i}") for i in indices]


def load(test_fraction: float = 0.3, val_fraction: float = 0.15, seed: int = 0) -> TaskData:
    """The digits as a 10-class task with seeded train/val/test splits."""
    images, labels = images_and_labels()
    perm = np.random.default_rng(seed).permutation(len(labels))
    n_test, n_val = int(len(perm) * test_fraction), int(len(perm) * val_fraction)
    test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    split = lambda name, idx: Split(name, samples_from_arrays(images, labels, sorted(idx), "digits/"))  # noqa: E731
    return TaskData("digits", {"train": split("train", train), "val": split("val", val),
                               "test": split("test", test)}, CLASS_NAMES, TEMPLATES)
