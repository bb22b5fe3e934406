"""The evaluator: one image encoder, edited in place, judged on any task's split.

Every task's classifier is that one encoder under the task's frozen head, so an
edit (a vector applied at some alpha) is made once and judged on every task.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Mapping

import numpy as np
import torch

from .evaluate import ClassificationMetrics, classification_metrics, predict, run_classifier
from .models import ImageClassifier
from .tasks import TaskPool
from .vectors import TaskVector


class Evaluator:
    def __init__(self, encoder: torch.nn.Module, tasks: TaskPool, device: str = "cpu"):
        # A copy: the evaluator's edits never touch the weights it was given.
        self.encoder = copy.deepcopy(encoder).to(device).eval()
        self.tasks = tasks
        self.device = device
        self._classifiers: dict[str, ImageClassifier] = {}

    def classifier(self, task_name: str) -> ImageClassifier:
        if task_name not in self._classifiers:
            self._classifiers[task_name] = ImageClassifier(self.encoder, self.tasks.head(task_name))
        return self._classifiers[task_name]

    def load(self, state: Mapping[str, torch.Tensor]) -> None:
        """Put ``state`` into the encoder."""
        self.encoder.load_state_dict(state)

    @contextmanager
    def edits(self, vector: TaskVector, base: Mapping[str, torch.Tensor]):
        """Load ``base`` and yield a sweep that sets ``base + alpha * vector`` in
        place; the base is restored afterwards."""
        self.load(base)
        with vector.sweep(self.encoder) as sweep:
            yield sweep

    def predictions(self, task_name: str, split: str):
        """Labels and predictions of the encoder, as it is now, on a split."""
        return predict(self.classifier(task_name), self.tasks.batches(task_name, split), self.device)

    def scores(self, task_name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels and logits (float32, on the CPU) of the encoder, as it is now."""
        return run_classifier(self.classifier(task_name), self.tasks.batches(task_name, split), self.device,
                              logits=True)

    def metrics(self, task_name: str, split: str, labels, preds) -> ClassificationMetrics:
        """Metrics of predictions on a split; intervals by case where a case has several images."""
        task = self.tasks.task(task_name)
        return classification_metrics(labels, preds, task.class_names, cases=[s.case for s in task[split].samples])

    def evaluate(self, task_name: str, split: str = "test") -> ClassificationMetrics:
        return self.metrics(task_name, split, *self.predictions(task_name, split))

    def accuracy(self, task_name: str, split: str = "test") -> float:
        return self.evaluate(task_name, split).overall.value
