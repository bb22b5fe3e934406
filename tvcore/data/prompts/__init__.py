"""The task-arithmetic paper's prompt templates and class names, as data.

A zero-shot head is built from ``template.format(name)`` for every class name and
template of a task; since the head stays frozen, these words shape every task
vector and every accuracy. tvcore uses the exact strings of the paper's released
code (github.com/mlfoundations/task_vectors); each task's module cites the file
it reproduces and ``SOURCES`` repeats that citation for records.

Class names come in two kinds:

* ``FIXED_CLASSNAMES``: the paper wrote the list out (GTSRB, EuroSAT, RESISC45,
  MNIST, SVHN, ImageNet). ``classnames(task)`` returns it; given the dataset's own
  class identifiers, it only checks that their count matches.
* ``DATASET_CLASSNAMES``: the paper read the names from the dataset (Cars, DTD,
  SUN397). ``classnames(task, raw)`` cleans the dataset's identifiers, in label
  order, by the paper's rule for that task.

The tasks that the TALL-masks and FusionBench benchmarks add to the paper's eight
(``EXTENDED_TASKS``: their 14- and 20-task sets) come with their own modules, each
citing the file it reproduces in ``EXTENDED_SOURCES``; all of them are fixed lists.
``TASKS``, ``FIXED_CLASSNAMES`` and ``SOURCES`` stay the paper's.

``prompt_fingerprint(names, templates)`` hashes both lists, so a result record can
say which words its heads were built from.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType, ModuleType

from ...errors import DatasetError
from . import (cars, cifar10, cifar100, dtd, emnist, eurosat, fashionmnist, fer2013, flowers102, food101, gtsrb,
               imagenet, kmnist, mnist, oxfordiiitpet, pcam, renderedsst2, resisc45, stl10, sun397, svhn)
from ._checks import string_list
from .fingerprint import prompt_fingerprint

__all__ = ["TASKS", "FIXED_CLASSNAMES", "DATASET_CLASSNAMES", "SOURCES", "EXTENDED_TASKS", "EXTENDED_SOURCES",
           "templates", "classnames", "class_count", "all_classnames", "prompt_fingerprint"]

_MODULES: dict[str, ModuleType] = {
    "Cars": cars,
    "DTD": dtd,
    "EuroSAT": eurosat,
    "GTSRB": gtsrb,
    "MNIST": mnist,
    "RESISC45": resisc45,
    "SUN397": sun397,
    "SVHN": svhn,
    "ImageNet": imagenet,
}

# The 14- and 20-task sets' additions, in the order of TALL-masks' ALL_DATASETS
# (nik-dim/tall_masks@d10af8b src/utils/variables_and_paths.py).
_EXTENDED_MODULES: dict[str, ModuleType] = {
    "STL10": stl10,
    "OxfordIIITPet": oxfordiiitpet,
    "Flowers102": flowers102,
    "CIFAR100": cifar100,
    "PCAM": pcam,
    "FER2013": fer2013,
    "CIFAR10": cifar10,
    "Food101": food101,
    "FashionMNIST": fashionmnist,
    "RenderedSST2": renderedsst2,
    "EMNIST": emnist,
    "KMNIST": kmnist,
}

TASKS: tuple[str, ...] = tuple(_MODULES)
EXTENDED_TASKS: tuple[str, ...] = tuple(_EXTENDED_MODULES)
DATASET_CLASSNAMES: frozenset[str] = frozenset(t for t, m in _MODULES.items() if hasattr(m, "clean"))
FIXED_CLASSNAMES: frozenset[str] = frozenset(TASKS) - DATASET_CLASSNAMES
SOURCES = MappingProxyType({task: module.SOURCE for task, module in _MODULES.items()})
EXTENDED_SOURCES = MappingProxyType({task: module.SOURCE for task, module in _EXTENDED_MODULES.items()})


def _module(task: str) -> ModuleType:
    try:
        return _MODULES[task] if task in _MODULES else _EXTENDED_MODULES[task]
    except (KeyError, TypeError):
        raise DatasetError(f"no paper prompts for task {task!r}; known tasks: "
                           f"{', '.join((*TASKS, *EXTENDED_TASKS))}") from None


def templates(task: str) -> list[str]:
    """The paper's prompt templates for ``task``, each with one ``{}`` for the class name."""
    return list(_module(task).TEMPLATES)


def classnames(task: str, raw: Sequence[str] | None = None) -> list[str]:
    """The class names the paper puts into ``task``'s prompts, in label order.

    ``raw`` is the dataset's own class identifiers in label order (class folder
    names, or the ``classes`` a torchvision dataset reports). For a fixed-list
    task it is optional and only its count is checked; for a dataset-named task
    (Cars, DTD, SUN397) it is required and its entries are cleaned.
    """
    module = _module(task)
    if not hasattr(module, "clean"):  # a fixed list
        names = list(module.CLASSNAMES)
        if raw is not None:
            found = string_list(raw, f"{task} raw class identifiers")
            if len(found) != len(names):
                raise DatasetError(
                    f"{task}: the dataset has {len(found)} classes but the paper names {len(names)}; "
                    f"check the {task} data root holds the whole dataset")
        return names

    if raw is None:
        raise DatasetError(f"{task}: class names come from the dataset itself; pass its class identifiers "
                           "in label order (class folder names or the torchvision dataset's .classes)")
    found = string_list(raw, f"{task} raw class identifiers")
    if not found:
        raise DatasetError(f"{task}: the dataset lists no classes")
    names = [module.clean(identifier) for identifier in found]
    first: dict[str, str] = {}
    for identifier, name in zip(found, names):
        if name in first:
            raise DatasetError(f"{task}: classes {first[name]!r} and {identifier!r} both read as {name!r} in prompts; "
                               "each class needs its own name")
        first[name] = identifier
    return names


def class_count(task: str) -> int:
    """How many classes a whole copy of ``task`` has: the length of the paper's list, or
    for a dataset-named task the count its module states (Cars 196, DTD 47, SUN397 397)."""
    module = _module(task)
    return int(module.CLASS_COUNT) if hasattr(module, "clean") else len(module.CLASSNAMES)


def all_classnames(task: str) -> list[str] | None:
    """Every class name of a whole copy of ``task`` in label order, where tvcore knows them
    without the dataset (the fixed lists, and DTD's 47 folder names); else None."""
    module = _module(task)
    if not hasattr(module, "clean"):
        return list(module.CLASSNAMES)
    identifiers = getattr(module, "IDENTIFIERS", None)
    return [module.clean(i) for i in identifiers] if identifiers else None
