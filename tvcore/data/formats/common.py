"""What every reader shares: listing class folders as torchvision's ``ImageFolder``
does, keying samples by their path under the data root, and assembling a task
with the paper's class names, templates and validation rule.

Images that are files stay files (a ``Sample`` holds the path; nothing is decoded
here); images stored as arrays (MNIST, SVHN) are rows of one uint8 array per split.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...errors import DatasetError
from ..base import Sample, Split, TaskData
from ..prompts import DATASET_CLASSNAMES, classnames, templates


# The paper's validation rule (src/datasets/registry.py, split_train_into_train_val with
# get_dataset's defaults): 10% of the training set, at most 5000 images, chosen by
# torch.utils.data.random_split with a generator seeded 0.
VAL_FRACTION, VAL_MAX, VAL_SEED = 0.1, 5000, 0


def validation_indices(n: int, fraction: float = VAL_FRACTION, cap: int | None = VAL_MAX,
                       seed: int = VAL_SEED) -> tuple[list[int], list[int]]:
    """(train, val) indices into a training set of ``n`` images, in the order
    ``random_split(range(n), [n - n_val, n_val], torch.Generator().manual_seed(seed))``
    gives them: one ``torch.randperm`` of ``n``, its first part training, the rest validation."""
    import torch

    n_val = int(n * fraction)
    if cap is not None:
        n_val = min(n_val, cap)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return perm[:n - n_val], perm[n - n_val:]


def validation_split(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """(train, val) by the paper's rule; each part keeps the samples' original order."""
    train_idx, val_idx = validation_indices(len(samples))
    return [samples[i] for i in sorted(train_idx)], [samples[i] for i in sorted(val_idx)]


def rel_key(path: str | Path, root: Path) -> str:
    """A sample's stable identity: its path under the data root, with ``/``."""
    return Path(path).relative_to(root).as_posix()


def file_samples(items: Sequence[tuple[str, int]], root: Path) -> list[Sample]:
    """``(path, label)`` pairs as samples; each image is its own case (these tasks have
    no patient or scene structure)."""
    # String slicing, not Path.relative_to: ImageNet's train split is 1.28 million files.
    prefix = os.path.join(str(root), "")
    out = []
    for path, label in items:
        path = str(path)
        key = path[len(prefix):] if path.startswith(prefix) else rel_key(path, root)
        if os.sep != "/":
            key = key.replace(os.sep, "/")
        out.append(Sample(path, int(label), case=key, key=key))
    return out


def array_samples(images: np.ndarray, labels: Sequence[int], file_key: str) -> list[Sample]:
    """One sample per row of ``images`` (a view, never a copy), keyed ``<file>#<index>``."""
    out = []
    for i, label in enumerate(labels):
        key = f"{file_key}#{i}"
        out.append(Sample(images[i], int(label), case=key, key=key))
    return out


def class_folders(split_dir: Path, task: str,
                  is_valid_file: Callable[[str], bool] | None = None,
                  what: str = "images") -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, (path, label) pairs)`` of ``split_dir/<class>/...`` in torchvision
    ``ImageFolder`` order (classes sorted, files sorted), the order the paper's code
    indexed, so its seeded validation split selects the same images. An empty class
    folder is an error naming it."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not split_dir.is_dir():
        raise DatasetError(f"{task}: split folder not found: {split_dir}")
    try:
        classes, class_to_idx = find_classes(split_dir)
    except FileNotFoundError:
        raise DatasetError(f"{task}: no class folders in {split_dir}") from None
    extensions = None if is_valid_file else IMG_EXTENSIONS
    items = make_dataset(split_dir, class_to_idx, extensions=extensions, is_valid_file=is_valid_file,
                         allow_empty=True)
    counts = np.bincount([label for _, label in items], minlength=len(classes))
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DatasetError(f"{task}: class folder {split_dir / empty[0]} holds no {what}"
                           + (f" (and {len(empty) - 1} more empty)" if len(empty) > 1 else "")
                           + "; add its images or remove the folder")
    return classes, items


def same_classes(task: str, first: tuple[str, list[str]], second: tuple[str, list[str]]) -> None:
    """Two splits must name the same classes in the same order, or labels would differ."""
    (a_name, a), (b_name, b) = first, second
    if a != b:
        differ = sorted(set(a) ^ set(b))
        raise DatasetError(f"{task}: {a_name} and {b_name} class folders differ: {differ[:5]}")


def override_names(folder: Path, task: str, n_classes: int) -> list[str] | None:
    """``classnames.txt`` in the dataset's folder (one name a line, in label order) overrides
    the paper's names."""
    listing = folder / "classnames.txt"
    if not listing.is_file():
        return None
    names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if len(names) != n_classes:
        raise DatasetError(f"{task}: {listing} has {len(names)} names for {n_classes} classes")
    return names


def paper_names(task: str, n_classes: int, where: Path, raw: list[str] | None = None) -> list[str]:
    """The paper's class names for a task read with ``n_classes`` classes from ``where``
    (``raw``: the dataset's own class identifiers in label order). A fixed-list task
    read with another count (a partial copy) is named by its identifiers, ``_`` read as
    a space; :mod:`tvcore.data.completeness` then refuses it unless it is a declared subset."""
    override = override_names(where, task, n_classes)
    if override is not None:
        return override
    if task in DATASET_CLASSNAMES:
        return list(classnames(task, raw=raw))
    names = list(classnames(task))
    if len(names) == n_classes:
        return names
    return [str(r).replace("_", " ") for r in raw] if raw is not None else [str(i) for i in range(n_classes)]


def assemble(task: str, reader: str, train: list[Sample], test: list[Sample], class_names: list[str],
             val: list[Sample] | None = None, notes: str = "") -> TaskData:
    """The task with its three splits; without a fixed ``val``, the paper's 10% rule."""
    for split_name, samples in (("train", train), ("test", test), ("val", val or [])):
        bad = [s for s in samples if not 0 <= s.label < len(class_names)]
        if bad:
            raise DatasetError(f"{task}: {split_name} sample {bad[0].key} has label {bad[0].label}, "
                               f"outside 0..{len(class_names) - 1}")
    if not train:
        raise DatasetError(f"{task}: the train split holds no images")
    if not test:
        raise DatasetError(f"{task}: the test split holds no images")
    if val is None:
        train, val = validation_split(train)
    return TaskData(name=task, splits={"train": Split("train", train), "val": Split("val", val),
                                       "test": Split("test", test)},
                    class_names=list(class_names), templates=list(templates(task)), notes=notes, reader=reader)
