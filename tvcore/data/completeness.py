"""Is a copy of a paper task whole? Every reader's result is checked here before a
task is used, so a partial copy is refused instead of read as a smaller task.

A task read from disk must have:

- its class count (:func:`tvcore.data.prompts.class_count`: Cars 196, DTD 47,
  EuroSAT 10, GTSRB 43, MNIST 10, RESISC45 45, SUN397 397, SVHN 10, ImageNet 1000; the
  14- and 20-task sets' additions: CIFAR10 10, CIFAR100 100, EMNIST 10 (its digits
  split), FashionMNIST 10, FER2013 7, Flowers102 102, Food101 101, KMNIST 10,
  OxfordIIITPet 37, PCAM 2, RenderedSST2 2, STL10 10),
  unless the data root declares a deliberate subset in ``tvcore-subsets.json``
  (``{"DTD": 3}``: this copy holds 3 of DTD's classes on purpose), which the
  task's notes then record;
- images of every class among its training images (train and val) and its test images;
- a validation split that is not empty. It may miss a few classes: the paper's
  rule draws 10% of the training images at random, and for a task with few
  images a class (Cars: about 41 training images a class, so a class is left out
  with probability 0.9^41, about 1.3%, and two or three of the 196 are) can draw
  none; that is the paper's split, not a broken copy.

Errors name the missing classes where tvcore knows the whole list (the fixed
lists, DTD's folder names, or the classes the dataset's own metadata lists).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DatasetError
from .base import TaskData
from .prompts import all_classnames, class_count

SUBSETS_FILE = "tvcore-subsets.json"
_SHOWN = 5  # missing classes named in a message; the rest are counted


def declared_subsets(root: str | Path) -> dict[str, int]:
    """``<root>/tvcore-subsets.json``: task -> the class count of a deliberate subset
    (empty when the file is absent)."""
    path = Path(root) / SUBSETS_FILE
    if not path.is_file():
        return {}
    try:
        declared = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not readable as JSON ({exc}); write it as {{\"DTD\": 3}}") from None
    if not isinstance(declared, dict) or not all(isinstance(k, str) and type(v) is int and v >= 2
                                                 for k, v in declared.items()):
        raise DatasetError(f"{path}: must map task names to class counts of at least 2, e.g. {{\"DTD\": 3}}")
    return declared


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _check_count(task: TaskData, root: Path) -> None:
    name, found = task.name, task.num_classes
    whole = class_count(name)
    declared = declared_subsets(root).get(name)
    if declared is not None:
        if found != declared:
            raise DatasetError(f"{name}: found {found} classes under {root}, but {root / SUBSETS_FILE} declares "
                               f"a subset of {declared}; correct the count there")
        if declared != whole:
            note = f"a deliberate subset: {found} of {name}'s {whole} classes ({SUBSETS_FILE})"
            task.notes = f"{task.notes}; {note}" if task.notes else note
        return
    if found == whole:
        return
    if found > whole:
        raise DatasetError(f"{name}: found {found} classes under {root}, but {name} has {whole}; remove the "
                           "folders or lines of classes that are not the dataset's")
    known = all_classnames(name)
    missing = ""
    if known is not None and found < whole and set(task.class_names) <= set(known):
        missing = f" (missing: {_names([c for c in known if c not in set(task.class_names)])})"
    raise DatasetError(f"{name}: found {found} of {name}'s {whole} classes under {root}{missing}; copy the "
                       f"whole dataset, or declare a deliberate subset with {{\"{name}\": {found}}} in "
                       f"{root / SUBSETS_FILE}")


def _check_splits(task: TaskData) -> None:
    # The training images are train and val together: the validation split is carved out of
    # them, and a class with a single training image may land wholly in it.
    for what, splits in (("training", ("train", "val")), ("test", ("test",))):
        counts = [sum(c) for c in zip(*(task[s].class_counts(task.num_classes) for s in splits))]
        empty = [task.class_names[i] for i, n in enumerate(counts) if n == 0]
        if empty:
            raise DatasetError(f"{task.name}: the {what} images hold none of {len(empty)} of its "
                               f"{task.num_classes} classes ({_names(empty)}); a copy needs every class in "
                               "its training and test images")
    if len(task["val"]) == 0:
        raise DatasetError(f"{task.name}: the validation split is empty: the paper's rule holds out 10% of the "
                           f"{len(task['train'])} training images, which is none; give the task at least 10 "
                           "training images")


def check_complete(task: TaskData, root: str | Path) -> TaskData:
    """``task`` (read from ``root``) if it is whole or a declared subset, with every class in
    train and test and a validation split; else a one-line :class:`DatasetError`."""
    _check_count(task, Path(root))
    _check_splits(task)
    return task
