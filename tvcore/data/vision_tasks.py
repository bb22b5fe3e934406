"""The task-arithmetic paper's eight image-classification tasks and ImageNet (the
control) in tvcore's generic layout, the last resort when no published format is
found under the data root (see :mod:`tvcore.data.formats`)::

    <root>/<Task>/train/<class>/<image>
    <root>/<Task>/test/<class>/<image>

Class folders are sorted by name. Class names, in order of preference: a
``classnames.txt`` beside ``train/`` (one name per line, in folder order); the
paper's names where the task has a fixed list of that length (MNIST, SVHN,
EuroSAT, GTSRB, RESISC45, ImageNet); the paper's cleaning of the folder names
(Cars, DTD, SUN397); otherwise the folder names with ``_`` read as a space. The
templates are the paper's (:mod:`tvcore.data.prompts`). Validation follows the
paper's code: 10% of the training set, at most 5000 images, seeded 0.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import TaskData, require_dir
from .formats.common import (VAL_FRACTION, VAL_MAX, VAL_SEED, assemble, class_folders, file_samples,
                             paper_names, same_classes, validation_indices, validation_split)
from .reader import Reader

PAPER_TASKS = ("Cars", "DTD", "EuroSAT", "GTSRB", "MNIST", "RESISC45", "SUN397", "SVHN")
CONTROL_TASK = "ImageNet"
ALL_TASKS = (*PAPER_TASKS, CONTROL_TASK)
# The model-merging benchmark's larger task sets (TALL-masks, Wang et al. 2024, and
# FusionBench): the eight plus six, and plus six more, in the order of TALL-masks'
# ALL_DATASETS (nik-dim/tall_masks@d10af8b src/utils/variables_and_paths.py). Their
# readers are in :mod:`tvcore.data.formats.extended`; the generic layout stays the
# paper's tasks' (ALL_TASKS).
TASKS_14 = (*PAPER_TASKS, "STL10", "OxfordIIITPet", "Flowers102", "CIFAR100", "PCAM", "FER2013")
TASKS_20 = (*TASKS_14, "CIFAR10", "Food101", "FashionMNIST", "RenderedSST2", "EMNIST", "KMNIST")
EXTENDED_TASKS = TASKS_20[len(PAPER_TASKS):]
READER = "generic"

__all__ = ["PAPER_TASKS", "CONTROL_TASK", "ALL_TASKS", "TASKS_14", "TASKS_20", "EXTENDED_TASKS", "READERS", "load", "validation_split",
           "validation_indices", "VAL_FRACTION", "VAL_MAX", "VAL_SEED"]


def detect(root: Path, task: str) -> bool:
    return (Path(root) / task / "train").is_dir()


def load(root: str | Path, task: str) -> TaskData:
    if task not in ALL_TASKS:
        raise DatasetError(f"unknown task {task!r}; choose one of {sorted(ALL_TASKS)}")
    root = Path(root)
    task_dir = require_dir(root / task, f"{task} folder")
    train_classes, train = class_folders(require_dir(task_dir / "train", f"{task} train split"), task)
    test_classes, test = class_folders(require_dir(task_dir / "test", f"{task} test split"), task)
    same_classes(task, ("train", train_classes), ("test", test_classes))
    # Keys are relative to the task folder (train/<class>/<file>), as they always were,
    # so records made before the other readers existed keep their fingerprints.
    return assemble(task, READER, file_samples(train, task_dir), file_samples(test, task_dir),
                    paper_names(task, len(train_classes), task_dir, raw=train_classes))


READERS = tuple(Reader(READER, (task,), f"<root>/{task}/{{train,test}}/<class>/ (tvcore's generic layout)",
                       detect, load) for task in ALL_TASKS)
