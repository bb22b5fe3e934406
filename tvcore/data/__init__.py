"""The dataset registry: a name maps to a loader that returns :class:`TaskData`.

``mini-ddsm`` (the BI-RADS experiment), the paper's eight tasks and ``ImageNet``
(from local folders, in whichever published format is found under the data root:
:data:`READERS`, tried in order, tvcore's generic layout last), and ``digits``
(embedded, from scikit-learn).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import DatasetError
from . import digits, formats, mini_ddsm, vision_tasks
from .base import Sample, Split, SplitDataset, TaskData
from .completeness import SUBSETS_FILE, check_complete
from .reader import Reader

_REGISTRY: dict[str, Callable[..., TaskData]] = {}

# Every reader of the paper's tasks, in the order they are tried: the published
# formats first, the generic layout last.
READERS: tuple[Reader, ...] = (*formats.READERS, *vision_tasks.READERS)
PAPER_TASKS, CONTROL_TASK = vision_tasks.PAPER_TASKS, vision_tasks.CONTROL_TASK
# ``summary("paper-tasks", root)``: the eight tasks and the control together.
ALL_PAPER_TASKS = "paper-tasks"


def register(name: str, loader: Callable[..., TaskData]) -> None:
    if name in _REGISTRY:
        raise ValueError(f"dataset {name!r} is already registered")
    _REGISTRY[name] = loader


def names() -> list[str]:
    return sorted(_REGISTRY)


def needs_root(name: str) -> bool:
    return name != "digits"


def readers_for(task: str) -> list[Reader]:
    return [r for r in READERS if task in r.tasks]


def pick_reader(task: str, root: str | Path) -> Reader:
    """The first reader whose layout is under ``root``; none is a one-line error saying
    what each reader looked for."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{task}: data root {root} is not a folder" if root.exists()
                           else f"{task}: data root not found: {root}")
    candidates = readers_for(task)
    for reader in candidates:
        if reader.detect(root, task):
            return reader
    raise DatasetError(f"{task}: no known layout under {root}; looked for "
                       + "; or ".join(r.looks_for for r in candidates))


def _load_paper_task(root: str | Path, task: str) -> TaskData:
    return check_complete(pick_reader(task, root).load(Path(root), task), root)


def load(name: str, root: str | Path | None = None, **options) -> TaskData:
    """Load a registered dataset. Datasets read from disk need ``root``."""
    if name not in _REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}; registered: {', '.join(names())}")
    if needs_root(name):
        if root is None:
            raise DatasetError(f"dataset {name!r} is read from local folders: pass its root "
                               "(--root / --data-root, or TVCORE_DATA)")
        return _REGISTRY[name](root, **options)
    return _REGISTRY[name](**options)


def describe(task: TaskData) -> dict:
    """What identifies a loaded task: its reader, images and fingerprint per split, class
    count and the fingerprint of the prompts its zero-shot head is built from."""
    from .prompts import prompt_fingerprint

    return {"reader": task.reader or None, "classes": task.num_classes,
            "images": {name: len(split) for name, split in task.splits.items()},
            "fingerprints": {name: split.fingerprint() for name, split in task.splits.items()},
            "prompt_fingerprint": prompt_fingerprint(task.class_names, task.templates),
            "notes": task.notes}


def summary(name: str, root: str | Path | None = None, **options) -> dict[str, dict]:
    """Per task, :func:`describe` of it (``name``: a registered dataset, or ``"paper-tasks"``
    for the eight tasks and ImageNet). Two users holding the same data see the same
    fingerprints. With ``"paper-tasks"``, a task whose layout is not found under ``root``
    gets ``{"error": <the one-line reason>}`` instead, so one missing dataset does not hide
    the others; a single named dataset raises."""
    if name != ALL_PAPER_TASKS:
        return {name: describe(load(name, root, **options))}
    out = {}
    for task in (*PAPER_TASKS, CONTROL_TASK):
        try:
            out[task] = describe(load(task, root))
        except DatasetError as exc:
            out[task] = {"error": str(exc)}
    return out


register("mini-ddsm", mini_ddsm.load)
for _task in (*PAPER_TASKS, CONTROL_TASK, *vision_tasks.EXTENDED_TASKS):
    register(_task, lambda root, _t=_task: _load_paper_task(root, _t))
register("digits", digits.load)

__all__ = ["Sample", "Split", "SplitDataset", "TaskData", "Reader", "READERS", "SUBSETS_FILE", "check_complete",
           "load", "names", "register", "needs_root", "readers_for", "pick_reader", "describe", "summary"]
