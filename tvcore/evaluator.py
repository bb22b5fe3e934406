"""The evaluator: one image encoder, edited in place, judged on any task's split.

Every task's classifier is that one encoder under the task's frozen head, so an
edit (a vector applied at some alpha) is made once and judged on every task. The
encoder and each head are built once per process; a sweep only rewrites weights.

On CUDA evaluation runs in bf16 autocast unless fp32 is asked
(:func:`tvcore.evaluate.eval_precision`), in batches sized to the device
(:func:`eval_batch_size`); on the CPU it is fp32 in batches of 256, as the
committed baselines were made.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Mapping

import numpy as np
import torch

from .evaluate import (ClassificationMetrics, classification_metrics, eval_precision, predict, progress_label,
                       run_classifier)
from .models import ImageClassifier
from .tasks import TaskPool
from .vectors import TaskVector


CPU_BATCH = 256
# Images per evaluation batch on CUDA by device memory (GiB): at bf16 a ViT-B-32
# batch of 1024 holds a few hundred MiB of activations, and throughput stops growing
# past it (measured on an H200: 23,072 img/s at 1,024, bf16).
CUDA_BATCHES = ((40, 1024), (16, 512), (0, 256))


def eval_batch_size(device: str | torch.device) -> int:
    """The evaluation batch for a device: :data:`CPU_BATCH` off CUDA, else by the
    device's memory (:data:`CUDA_BATCHES`)."""
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_BATCH
    gib = torch.cuda.get_device_properties(device).total_memory / 2**30
    return next(batch for floor, batch in CUDA_BATCHES if gib >= floor)


class Evaluator:
    def __init__(self, encoder: torch.nn.Module, tasks: TaskPool, device: str = "cpu", precision: str = "auto"):
        # A copy: the evaluator's edits never touch the weights it was given.
        self.encoder = copy.deepcopy(encoder).to(device).eval()
        self.tasks = tasks
        self.device = device
        self.precision = eval_precision(precision, device)
        self._classifiers: dict[str, ImageClassifier] = {}

    def set_precision(self, precision: str) -> None:
        """Evaluate from now on in ``precision`` ("auto", "fp32" or "bf16")."""
        self.precision = eval_precision(precision, self.device)

    def describe(self) -> dict:
        """What a record says about evaluation: its arithmetic and batch."""
        return {"precision": self.precision, "batch_size": self.tasks.batch_size, "device": str(self.device)}

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
        return predict(self.classifier(task_name), self.tasks.batches(task_name, split), self.device,
                       progress=self.tasks.progress, desc=progress_label(task_name, split), precision=self.precision)

    def scores(self, task_name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels and logits (float32, on the CPU) of the encoder, as it is now."""
        return run_classifier(self.classifier(task_name), self.tasks.batches(task_name, split), self.device,
                              logits=True, progress=self.tasks.progress, desc=progress_label(task_name, split),
                              precision=self.precision)

    def metrics(self, task_name: str, split: str, labels, preds) -> ClassificationMetrics:
        """Metrics of predictions on a split; intervals by case where a case has several images."""
        task = self.tasks.task(task_name)
        return classification_metrics(labels, preds, task.class_names, cases=[s.case for s in task[split].samples])

    def evaluate(self, task_name: str, split: str = "test") -> ClassificationMetrics:
        return self.metrics(task_name, split, *self.predictions(task_name, split))

    def accuracy(self, task_name: str, split: str = "test") -> float:
        return self.evaluate(task_name, split).overall.value
