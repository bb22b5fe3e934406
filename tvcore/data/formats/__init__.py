"""Readers of the published on-disk formats of the paper's tasks, ImageNet and the
14- and 20-task sets' additions (:mod:`.extended`), in the
order the registry tries them (see :mod:`tvcore.data.reader`). The generic layout,
tvcore's own, is the last resort and lives in :mod:`tvcore.data.vision_tasks`."""

from __future__ import annotations

from . import extended, imagenet, paper_splits, torchvision_layouts
from .common import validation_indices, validation_split

READERS = (*torchvision_layouts.READERS, *paper_splits.READERS, *imagenet.READERS, *extended.READERS)

__all__ = ["READERS", "validation_indices", "validation_split"]
