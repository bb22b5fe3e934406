"""Judging a classifier: accuracy, per-class and balanced accuracy, confusion
matrices, 95% intervals, and the paired change counts of two models on the same
test set (McNemar's tests live in :mod:`tvcore.stats`).

Intervals: Wilson's score interval when images are independent. When a test set
holds several images per case (the four mammogram views of one patient), images
of one case succeed or fail together, so a binomial interval is too narrow; there
the interval is a seeded case-level (cluster) bootstrap: cases are resampled with
replacement, the accuracy recomputed over their images, and the 2.5% and 97.5%
percentiles taken. Each accuracy records which method made its interval and its
design effect (case-level variance / binomial variance), which reference checks
use to widen their margins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .errors import DatasetError
from .outcomes import encode_outcomes
from .stats import Z95


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% by default)."""
    if n <= 0:
        raise ValueError("a Wilson interval needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At p = 0 or 1 the bound equals p exactly; rounding must not put it past p.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


BOOTSTRAP_RESAMPLES = 2000
# Resampled accuracies are computed in blocks of at most this many (resample, case)
# cells, so a test set with many cases does not need one huge weight matrix.
_BOOTSTRAP_BLOCK = 4_000_000


def _case_totals(correct: np.ndarray, cases) -> tuple[np.ndarray, np.ndarray]:
    """Per case: number of correct images and number of images."""
    _, inverse = np.unique(np.asarray(cases), return_inverse=True)
    inverse = inverse.reshape(-1)
    return (np.bincount(inverse, weights=correct.astype(np.float64)),
            np.bincount(inverse).astype(np.float64))


def cluster_design_effect(case_correct, case_images) -> np.ndarray:
    """Design effect of an accuracy over clustered images: the case-level
    (ratio-estimator) variance ``sum_i (c_i - p m_i)^2 / N^2`` over the binomial
    variance ``p (1 - p) / N``; exactly 1 when every case has one image, and 1 when
    p is 0 or 1 (both variances vanish). ``case_correct`` (c_i) and ``case_images``
    (m_i) run along the last axis; leading axes are independent test sets."""
    c = np.asarray(case_correct, dtype=np.float64)
    m = np.broadcast_to(np.asarray(case_images, dtype=np.float64), c.shape)
    n = m.sum(-1)
    p = c.sum(-1) / n
    cluster = ((c - p[..., None] * m) ** 2).sum(-1) / n ** 2
    binom = p * (1 - p) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(binom > 0, cluster / np.where(binom > 0, binom, 1.0), 1.0)


def case_bootstrap_interval(correct, cases, seed: int | np.random.SeedSequence = 0,
                            resamples: int = BOOTSTRAP_RESAMPLES,
                            level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the accuracy from resampling whole cases with
    replacement (``resamples`` times, seeded). The interval is widened to hold the
    point estimate, which a percentile interval of a ratio can miss by a hair on a
    handful of cases."""
    correct = np.asarray(correct, dtype=bool).reshape(-1)
    if correct.size == 0:
        raise ValueError("a bootstrap interval needs at least one image")
    c, m = _case_totals(correct, cases)
    k = c.size
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    block = max(1, _BOOTSTRAP_BLOCK // k)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        # Multinomial counts = how often each case is drawn in one resample of k cases.
        w = rng.multinomial(k, np.full(k, 1.0 / k), size=stop - start).astype(np.float64)
        stats[start:stop] = (w @ c) / (w @ m)
    tail = (1 - level) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    p = correct.mean()
    return float(min(low, p)), float(max(high, p))


@dataclass(frozen=True)
class Accuracy:
    """A proportion with its 95% interval: Wilson's (independent images) unless a
    case-level bootstrap interval is given (``interval="case-bootstrap"``)."""

    correct: int
    total: int
    interval: str = "wilson"
    low: float | None = None
    high: float | None = None
    cases: int | None = None
    design_effect: float = 1.0
    # Each test image's outcome (right or wrong), in the split's order: a record keeps
    # it (``correct_bits``) so that two runs on the same images can be compared image
    # by image (tvcore.compare), not as two independent samples.
    outcomes: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.outcomes is not None:
            outcomes = np.asarray(self.outcomes, dtype=bool).reshape(-1)
            if outcomes.size != self.total or int(outcomes.sum()) != self.correct:
                raise ValueError(f"{outcomes.size} image outcomes with {int(outcomes.sum())} right do not make "
                                 f"{self.correct} of {self.total}")
            object.__setattr__(self, "outcomes", outcomes)
        if self.interval == "wilson":
            low, high = wilson_interval(self.correct, self.total)
            object.__setattr__(self, "low", low)
            object.__setattr__(self, "high", high)
        elif self.interval == "case-bootstrap":
            if self.low is None or self.high is None or self.cases is None:
                raise ValueError("a case-bootstrap accuracy needs its low, high and number of cases")
        else:
            raise ValueError(f"unknown interval method {self.interval!r}: use 'wilson' or 'case-bootstrap'")

    @classmethod
    def from_cases(cls, correct, cases, seed: int | np.random.SeedSequence = 0) -> "Accuracy":
        """Accuracy over images grouped in cases, with its case-bootstrap interval."""
        correct = np.asarray(correct, dtype=bool).reshape(-1)
        c, m = _case_totals(correct, cases)
        low, high = case_bootstrap_interval(correct, cases, seed)
        return cls(int(correct.sum()), int(correct.size), "case-bootstrap", low, high, int(c.size),
                   float(cluster_design_effect(c, m)), outcomes=correct)

    @property
    def value(self) -> float:
        return self.correct / self.total

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict:
        out = {"value": self.value, "low": self.low, "high": self.high,
               "correct": self.correct, "total": self.total, "interval": self.interval}
        if self.cases is not None:
            out["cases"] = self.cases
            out["design_effect"] = self.design_effect
        if self.outcomes is not None:
            out["correct_bits"] = encode_outcomes(self.outcomes)
        return out

    def __str__(self) -> str:
        return f"{100 * self.value:.2f}% [{100 * self.low:.1f}, {100 * self.high:.1f}]"


def _as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.int64)


def confusion_matrix(labels, preds, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes; pairs with a class outside
    ``0..num_classes-1`` are left out (as ``sklearn.metrics.confusion_matrix`` with
    ``labels=range(num_classes)`` does). Counted with one bincount: importing
    sklearn for this would add a second and a half to every ``tvcore eval``."""
    labels, preds = _as_array(labels).ravel(), _as_array(preds).ravel()
    if labels.shape != preds.shape:
        raise ValueError(f"{labels.size} labels but {preds.size} predictions: one prediction per image")
    inside = (labels >= 0) & (labels < num_classes) & (preds >= 0) & (preds < num_classes)
    cells = np.bincount(labels[inside] * num_classes + preds[inside], minlength=num_classes * num_classes)
    return cells.reshape(num_classes, num_classes)


@dataclass
class ClassificationMetrics:
    class_names: list[str]
    overall: Accuracy
    per_class: dict[str, Accuracy]
    balanced: float
    confusion: np.ndarray

    def as_dict(self) -> dict:
        return {
            "overall": self.overall.as_dict(),
            "per_class": {k: v.as_dict() for k, v in self.per_class.items()},
            "balanced_accuracy": self.balanced,
            "confusion_matrix": self.confusion.tolist(),
            "class_names": list(self.class_names),
        }


def classification_metrics(labels, preds, class_names: Sequence[str], cases=None,
                           seed: int = 0) -> ClassificationMetrics:
    """Overall, per-class and balanced accuracy and the confusion matrix.

    ``cases`` (one id per image, e.g. the patient) marks images that belong
    together: when some case holds more than one image, overall and per-class
    intervals come from a case-level bootstrap seeded by ``seed``; otherwise (or
    without ``cases``) from Wilson's interval."""
    labels, preds = _as_array(labels), _as_array(preds)
    if labels.shape != preds.shape:
        raise ValueError(f"labels and predictions differ in length: {labels.shape} vs {preds.shape}")
    if labels.size == 0:
        raise DatasetError("cannot evaluate on an empty test set")
    clustered = False
    if cases is not None:
        cases = np.asarray(cases).reshape(-1)
        if cases.shape != labels.shape:
            raise ValueError(f"cases name {cases.size} images but there are {labels.size} labels: "
                             "give one case id per test image")
        clustered = np.unique(cases).size < cases.size
    k = len(class_names)
    cm = confusion_matrix(labels, preds, k)
    correct = labels == preds

    def accuracy(mask: np.ndarray, stream: int) -> Accuracy:
        if clustered:
            # One seeded stream per metric, so a class's interval does not depend on the others.
            return Accuracy.from_cases(correct[mask], cases[mask], seed=np.random.SeedSequence([seed, stream]))
        n_cases = None if cases is None else int(mask.sum())
        return Accuracy(int(correct[mask].sum()), int(mask.sum()), cases=n_cases, outcomes=correct[mask])

    per_class = {}
    recalls = []
    for i, name in enumerate(class_names):
        n = int(cm[i].sum())
        if n:
            per_class[name] = accuracy(labels == i, i + 1)
            recalls.append(cm[i, i] / n)
    overall = accuracy(np.ones(labels.shape, dtype=bool), 0)
    return ClassificationMetrics(list(class_names), overall, per_class, float(np.mean(recalls)), cm)


def paired_change(correct_a, correct_b, cases=None) -> dict:
    """Two models scored on the same images (model b after an edit of model a):
    the discordant counts behind their accuracy change, and the design effect of
    the per-image change when images are grouped in cases. Reference checks use it
    to test a change with its paired (not two-sample) variance."""
    a, b = np.asarray(correct_a, dtype=bool).reshape(-1), np.asarray(correct_b, dtype=bool).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"the two models were scored on different test sets: {a.shape} vs {b.shape}")
    n = a.size
    if n == 0:
        raise ValueError("a paired change needs at least one image")
    d = b.astype(np.float64) - a.astype(np.float64)
    deff = 1.0
    if cases is not None:
        _, inverse = np.unique(np.asarray(cases).reshape(-1), return_inverse=True)
        inverse = inverse.reshape(-1)
        per_case, images = np.bincount(inverse, weights=d), np.bincount(inverse).astype(np.float64)
        mean = d.mean()
        iid = (np.mean(d * d) - mean * mean) / n
        if iid > 0:
            deff = float(((per_case - mean * images) ** 2).sum() / n ** 2 / iid)
    return {"only_a_correct": int(np.sum(a & ~b)), "only_b_correct": int(np.sum(~a & b)), "total": int(n),
            "design_effect": deff}


def _sample_count(loader) -> int | None:
    """How many samples ``loader`` yields, where it can say without being iterated."""
    n = getattr(loader, "num_samples", None)
    if n is None:
        try:
            n = len(loader.dataset)
        except (AttributeError, TypeError):
            return None
    return int(n)


class _Rows:
    """Rows appended batch by batch into one growing NumPy array.

    Keeping one small tensor per batch until the end (and concatenating) interleaves
    thousands of long-lived small blocks with each batch's large, freed activations,
    and the heap fragments: a process's memory then grows with the split though
    nothing is leaked. One buffer, sized from the loader's sample count (or doubled
    when it fills), keeps the memory of a pass flat.
    """

    def __init__(self, capacity: int | None, width: tuple[int, ...], dtype):
        self.data = np.empty((capacity or 1024, *width), dtype=dtype)
        self.n = 0

    def add(self, rows: torch.Tensor) -> None:
        k = len(rows)
        if self.n + k > len(self.data):
            grown = np.empty((max(2 * len(self.data), self.n + k), *self.data.shape[1:]), dtype=self.data.dtype)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:self.n + k] = rows.numpy()
        self.n += k

    def result(self) -> np.ndarray:
        return self.data[:self.n] if self.n < len(self.data) else self.data


PRECISIONS = ("auto", "fp32", "bf16")


def eval_precision(precision: str, device: str | torch.device) -> str:
    """The arithmetic of evaluation: "auto" is bf16 autocast on CUDA (the tensor
    cores' format; fp32 is several times slower there) and fp32 elsewhere, so CPU
    results stay those of the committed baselines."""
    if precision not in PRECISIONS:
        from .errors import UsageError

        raise UsageError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}; use fp32 for full "
                         "precision, bf16 for autocast")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    return precision


def progress_label(task: str, split: str) -> str:
    """An evaluation's progress-bar label: ``evaluate digits/rot90:val``, the task and split it runs on."""
    return f"evaluate {task}:{split}"


@torch.no_grad()
def run_classifier(model: torch.nn.Module, loader, device: str | torch.device = "cpu", *, logits: bool = False,
                   progress: bool = False, desc: str = "evaluate", precision: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Run a classifier over a loader of ``(images, labels)``; return (labels,
    predicted classes), or (labels, float32 logits) with ``logits``. ``precision``:
    see :func:`eval_precision`. On an accelerator the outputs stay on it until the
    split ends (one transfer, no wait for the device per batch)."""
    from tqdm.auto import tqdm

    model.eval()
    device = torch.device(device)
    use_bf16 = eval_precision(precision, device) == "bf16"
    batches = tqdm(loader, desc=desc, disable=not progress, leave=False)
    if device.type != "cpu":
        kept_labels, kept = [], []
        for images, labels in batches:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                scores = model(images.to(device, non_blocking=True))
            kept.append(scores.float() if logits else scores.argmax(dim=-1))
            kept_labels.append(labels.to(device, non_blocking=True).long())
        if not kept:
            raise DatasetError("the loader yielded no batches: nothing to evaluate")
        return torch.cat(kept_labels).cpu().numpy(), torch.cat(kept).cpu().numpy()
    n = _sample_count(loader)
    labels_out, out = _Rows(n, (), np.int64), None
    for images, labels in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            scores = model(images.to(device, non_blocking=True))
        if out is None:
            out = _Rows(n, tuple(scores.shape[1:]), np.float32) if logits else _Rows(n, (), np.int64)
        out.add(scores.float().cpu() if logits else scores.argmax(dim=-1).cpu())
        labels_out.add(labels.cpu().long())
    if out is None:
        raise DatasetError("the loader yielded no batches: nothing to evaluate")
    return labels_out.result(), out.result()


def predict(model: torch.nn.Module, loader, device: str | torch.device = "cpu",
            progress: bool = False, desc: str = "evaluate", precision: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Run a classifier over a loader of ``(images, labels)``; return (labels, predictions)."""
    return run_classifier(model, loader, device, progress=progress, desc=desc, precision=precision)


def evaluate(model: torch.nn.Module, loader, class_names: Sequence[str],
             device: str | torch.device = "cpu", progress: bool = False, cases=None,
             seed: int = 0, desc: str = "evaluate") -> ClassificationMetrics:
    """``cases``: one case id per image of the loader, in loader order (see
    :func:`classification_metrics`). ``desc``: the progress bar's label, e.g.
    :func:`progress_label` of the task and split."""
    labels, preds = predict(model, loader, device, progress, desc)
    return classification_metrics(labels, preds, class_names, cases=cases, seed=seed)
