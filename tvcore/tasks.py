"""The task pool: what each task is (its data and splits) and how it is judged
(its frozen zero-shot head), built once per run from the base model's text tower
and transforms.

Nothing here knows about task vectors or experiments: the model pool fine-tunes
on what this module hands it, and the evaluator reads batches from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import data as datasets
from .data.base import Split, TaskData
from .models import ClassificationHead, LoadedModel, head_cache_key, zero_shot_head


def load_task(name: str, data_root: str | Path | None = None) -> TaskData:
    """Task names: ``digits/<domain>``, ``digits-grades/<protocol>`` (embedded);
    ``mini-ddsm/<protocol>`` and the paper's tasks (``MNIST``, ...) under ``data_root``."""
    from .data import micro

    family, _, variant = name.partition("/")
    if family == "digits" and variant:
        return micro.domain_task(variant)
    if family == "digits-grades":
        return micro.grades_task(variant or "baseline")
    if family == "mini-ddsm":
        root = Path(data_root) / "mini-ddsm" if data_root else None
        return datasets.load("mini-ddsm", root=root, protocol=variant or "baseline")
    return datasets.load(name, root=data_root)


def capped(split: Split, limit: int, seed: int = 0) -> Split:
    """At most ``limit`` samples of ``split``, drawn round-robin over the classes in a
    seeded order, so every class stays present; the kept samples keep their order."""
    if len(split) <= limit:
        return split
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, s in enumerate(split.samples):
        by_class.setdefault(s.label, []).append(i)
    queues = [list(rng.permutation(idx)) for _, idx in sorted(by_class.items())]
    keep: list[int] = []
    while len(keep) < limit:
        for q in queues:
            if q and len(keep) < limit:
                keep.append(int(q.pop()))
    return Split(split.name, [split.samples[i] for i in sorted(keep)])


@dataclass
class TaskPool:
    """Tasks by name, each loaded once, with its head and its batches.

    ``max_per_split`` caps every split (a rehearsal's dry run): the cap is applied
    before anything is cached or trained on, and the record says so.
    """

    model: LoadedModel
    data_root: str | None = None
    device: str = "cpu"
    head_cache: str | None = None
    pixel_cache: str | None = None
    workers: int = 0
    batch_size: int = 256
    max_per_split: int | None = None
    progress: bool = True
    _tasks: dict = field(default_factory=dict, init=False, repr=False)
    _heads: dict = field(default_factory=dict, init=False, repr=False)
    _loaders: dict = field(default_factory=dict, init=False, repr=False)
    # The tasks asked for since the last take_used(): what one run used, in order.
    _used: dict = field(default_factory=dict, init=False, repr=False)

    def task(self, name: str) -> TaskData:
        """The task, loaded once; noted as used by the current run (:meth:`take_used`)."""
        self._used[name] = None
        return self._loaded(name)

    def _loaded(self, name: str) -> TaskData:
        if name not in self._tasks:
            task = load_task(name, self.data_root)
            if self.max_per_split:
                task.splits = {k: capped(v, self.max_per_split) for k, v in task.splits.items()}
            self._tasks[name] = task
        return self._tasks[name]

    def head(self, name: str) -> ClassificationHead:
        """The task's frozen zero-shot head (cached on disk by text tower, names and templates)."""
        if name not in self._heads:
            task = self.task(name)
            self._heads[name] = zero_shot_head(self.model, task.class_names, task.templates, device=self.device,
                                               cache_dir=self.head_cache)
        return self._heads[name]

    def head_key(self, name: str) -> str:
        """What decides the head: the text tower's weights, the class names, the templates."""
        task = self.task(name)
        return head_cache_key(self.model, task.class_names, task.templates)

    def take_used(self) -> list[str]:
        """The tasks asked for since the previous call (a shared pool serves several
        runs; a record lists the tasks of its own run)."""
        used, self._used = list(self._used), {}
        return used

    def describe(self, name: str) -> dict:
        """What a record says about a task: its reader, sizes, class count and the
        fingerprint of what its head was built from (split hashes are recorded apart)."""
        info = {k: v for k, v in datasets.describe(self._loaded(name)).items() if k != "fingerprints"}
        return {**info, "capped_at": self.max_per_split}

    def batches(self, name: str, split: str):
        """``(images, labels)`` batches of a split on the device, preprocessed by the
        model's evaluation transform (through the on-disk pixel cache)."""
        from .data.loaders import eval_loader

        # One loader per split, built (and its cache entry located, every source file
        # stat'ed) once: an alpha sweep iterates it again rather than rebuilding it.
        if (name, split) not in self._loaders:
            self._loaders[name, split] = eval_loader(
                self.task(name)[split], self.model.preprocess_val, device=self.device, batch_size=self.batch_size,
                workers=self.workers, cache_dir=self.pixel_cache, progress=self.progress)
        return self._loaders[name, split]

    def release_device_copies(self) -> None:
        """Free the evaluation splits held on the device (a fine-tune is about to
        want its memory); their next pass reads the pixel cache again."""
        for loader in self._loaders.values():
            loader.release()

    def train_data(self, name: str, augment: bool, seed: int):
        """What fine-tuning reads: the train split under the model's train transform
        (``augment``) or its evaluation transform (from the pixel cache)."""
        from .data.loaders import train_dataset

        return train_dataset(self.task(name)["train"], self.model.preprocess_train, self.model.preprocess_val,
                             augment=augment, seed=seed, cache_dir=self.pixel_cache, workers=self.workers)

    def fingerprints(self, names: Sequence[str], splits: Sequence[str] = ("val", "test")) -> dict[str, str]:
        return {f"{name}:{split}": self.task(name)[split].fingerprint() for name in names for split in splits}
