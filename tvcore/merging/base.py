"""One interface for every merging method.

A :class:`MergeMethod` takes task vectors (:class:`~tvcore.vectors.TaskVector`
objects or plain mappings of tensors) and hyperparameters and returns one merged
task vector; apply it with ``merged.apply_to(pretrained)``. Every method here
works in task-vector space: the ones defined on weights (weight averaging,
RegMean, Fisher merging) are affine in the weights with weights summing to one,
so ``merge(theta_0 + tau_i) = theta_0 + merge(tau_i)`` and the pretrained weights
are not needed.

A method is given either per key (``per_tensor``: the merged tensor of one key
from the inputs' tensors of that key, so it streams one tensor at a time) or over
whole vectors (``whole``: a method whose normalization or ranking runs over each
whole vector). Data-dependent methods declare the statistics they need
(``statistics``: ``"grams"`` or ``"fisher"``) and receive one mapping per task from
:mod:`tvcore.merging.statistics`.

Each method carries its citation, its published defaults, its validation grid and
its selection rule; :func:`select` searches that grid with a score function that
the caller evaluates on validation data, never on test data.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from ..errors import UsageError
from ..kernels import compute_dtype
from ..vectors import TaskVector, check_compatible
from .streaming import StreamStats, one_term, stream_merge

STATISTICS = ("grams", "fisher")


def check_vectors(vectors: Sequence[TaskVector]) -> None:
    """At least one vector, and all of them with the same keys, shapes and dtypes."""
    if not vectors:
        raise UsageError("nothing to merge: no task vectors given")
    for i, v in enumerate(vectors[1:], start=1):
        check_compatible(vectors[0]._tensors, v._tensors, vectors[0].name or "vector 0", v.name or f"vector {i}")


def as_vectors(vectors) -> list[TaskVector]:
    """Task vectors from task vectors or mappings of tensors, checked to agree."""
    out = [v if isinstance(v, TaskVector) else TaskVector(v, name=f"vector {i}") for i, v in enumerate(vectors)]
    check_vectors(out)
    return out


def is_matrix(t: torch.Tensor) -> bool:
    """A 2-D tensor: a linear layer's weight (or an embedding), which the SVD and
    layer-wise methods treat as a matrix; everything else falls back."""
    return t.ndim == 2 and min(t.shape) > 0


def in_compute_dtype(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The tensors in a dtype fit for arithmetic and linear algebra (fp32 for fp16/bf16)."""
    return [t.to(compute_dtype(t.dtype)) for t in tensors]


def mean_of(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The entrywise mean, in the inputs' dtype: the fallback of the layer-wise
    methods for tensors they do not treat as matrices."""
    return (sum(in_compute_dtype(tensors)) / len(tensors)).to(tensors[0].dtype)


def sum_of(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The entrywise sum (task arithmetic at lambda 1), in the inputs' dtype."""
    return sum(in_compute_dtype(tensors)).to(tensors[0].dtype)


def layerwise(merge_matrices: Callable, fallback: Callable = mean_of) -> Callable:
    """The per-key function of a layer-wise method from its merge of one layer's
    task matrices, ``merge_matrices(matrices, **hp)``: 2-D tensors go to it in the
    compute dtype, other tensors to ``fallback`` (the layer-wise papers average
    them); ``lam`` scales either, and the result has the inputs' dtype."""
    def per_tensor(key, tensors, stats=None, *, lam=1.0, **hp):
        ts = in_compute_dtype(tensors)
        merged = merge_matrices(ts, **hp) if is_matrix(tensors[0]) else fallback(ts)
        return (lam * merged).to(tensors[0].dtype)
    return per_tensor


@dataclass(frozen=True)
class MergeMethod:
    """A merging method: its name, citation, hyperparameters and how it merges."""

    name: str
    citation: str
    defaults: Mapping[str, object]              # every hyperparameter, with its published default
    grid: Mapping[str, tuple]                   # the validation grid; a hyperparameter left out stays fixed
    rule: str                                   # the published selection rule, with its source
    per_tensor: Callable | None = None          # (key, tensors, stats_or_None, **hp) -> merged tensor
    whole: Callable | None = None               # (vectors, stats_or_None, **hp) -> {key: merged tensor}
    files: Callable | None = None               # (paths, out_path, base, name, **hp) -> StreamStats
    statistics: str | None = None               # what each task's data must give: "grams" or "fisher"
    check: Callable[[dict], None] | None = None  # refuses hyperparameters out of range
    scales_by_lam: bool = False                 # the result is lam * (the merge at lam 1)
    notes: tuple[str, ...] = field(default=())  # where tvcore departs from, or fills in, the paper

    def __post_init__(self):
        if (self.per_tensor is None) == (self.whole is None):
            raise ValueError(f"method {self.name}: give exactly one of per_tensor and whole")
        if self.statistics not in (None, *STATISTICS):
            raise ValueError(f"method {self.name}: statistics must be one of {STATISTICS}")
        if self.scales_by_lam and "lam" not in self.defaults:
            raise ValueError(f"method {self.name}: scales_by_lam needs a 'lam' hyperparameter")

    @property
    def streams(self) -> bool:
        """Whether merging files holds one tensor per input at a time."""
        return self.per_tensor is not None or self.files is not None

    def hyperparameters(self, **given) -> dict:
        """The defaults updated with ``given``; an unknown name is refused."""
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise UsageError(f"{self.name}: unknown hyperparameter {', '.join(unknown)}; its hyperparameters: {known}")
        hp = {**self.defaults, **given}
        if self.check is not None:
            self.check(hp)
        return hp

    def _stats(self, stats, n: int):
        if self.statistics is None:
            if stats is not None:
                raise UsageError(f"{self.name} uses no data statistics; leave stats out")
            return None
        if stats is None:
            raise UsageError(f"{self.name} needs each task's {self.statistics} (tvcore.merging.statistics): "
                             f"pass stats=[one mapping per vector]")
        stats = list(stats)
        if len(stats) != n:
            raise UsageError(f"{self.name}: {len(stats)} {self.statistics} mappings for {n} vectors; give one per vector")
        return stats

    def __call__(self, vectors, *, stats=None, **hp) -> TaskVector:
        """Merge ``vectors`` (with ``stats``, one mapping per vector, for a
        data-dependent method) into one task vector."""
        vectors = as_vectors(vectors)
        hp = self.hyperparameters(**hp)
        stats = self._stats(stats, len(vectors))
        with torch.no_grad():
            if self.whole is not None:
                out = self.whole(vectors, stats, **hp)
            else:
                out = {key: self.per_tensor(key, [v[key] for v in vectors], stats_for(stats, key), **hp)
                       for key in vectors[0].keys()}
        names = ", ".join(v.name or "?" for v in vectors)
        return TaskVector(out, name=f"{self.name}({names})", base_model=vectors[0].base_model)

    def stream(self, paths: Sequence[str | os.PathLike], out_path: str | os.PathLike, *,
               stats: Sequence[Mapping[str, torch.Tensor]] | None = None, base: str | os.PathLike | None = None,
               name: str | None = None, **hp) -> StreamStats:
        """Merge task-vector files into ``out_path`` (``base + merged`` with ``base``).

        A per-key method holds one tensor per input at a time; a whole-vector
        method (see :attr:`streams`) reads the vectors into memory first.
        """
        hp = self.hyperparameters(**hp)
        stats = self._stats(stats, len(paths))
        if self.files is not None:
            return self.files(paths, out_path, base, name, **hp)
        detail = f"{self.name}({', '.join(f'{k}={v!r}' for k, v in hp.items())})"

        def plan(read, layout, n):
            if self.per_tensor is not None:
                merged = lambda key, tensors: self.per_tensor(key, tensors, stats_for(stats, key), **hp)  # noqa: E731
            else:
                whole = self.whole(as_vectors([{k: read(i, k).clone() for k in layout} for i in range(n)]),
                                   stats, **hp)
                merged = lambda key, tensors: whole[key]  # noqa: E731
            return merged, one_term(merged)

        return stream_merge(paths, out_path, plan, label=self.name, detail=detail, base=base, name=name)

    def grid_points(self, grid: Mapping[str, tuple] | None = None, **fixed) -> list[dict]:
        """Every point of the grid (``fixed`` pins hyperparameters), ``lam`` varying fastest."""
        grid = dict(self.grid if grid is None else grid)
        for k in fixed:
            grid.pop(k, None)
        names = sorted(grid, key=lambda k: k == "lam")
        points = [dict(zip(names, values)) for values in itertools.product(*(grid[k] for k in names))]
        return [self.hyperparameters(**fixed, **p) for p in points]


def stats_for(stats, key: str):
    """Each task's statistic of ``key``, or ``None`` when a task has none for it."""
    if stats is None:
        return None
    found = [s.get(key) for s in stats]
    return None if any(f is None for f in found) else found


@dataclass
class Selection:
    """The outcome of :func:`select`: the chosen hyperparameters and what each point scored."""

    hyperparameters: dict
    score: float
    merged: TaskVector
    scores: list[tuple[dict, float]]


def select(method: MergeMethod, vectors, score: Callable[[TaskVector], float], *, stats=None,
           grid: Mapping[str, tuple] | None = None, **fixed) -> Selection:
    """The method's selection rule as a search: merge at every point of its grid and
    keep the highest ``score`` (the first point of equal scores).

    ``score(merged)`` must evaluate the merged vector on *validation* data (for
    the eight-task benchmark, the mean validation accuracy over tasks): nothing
    here sees test data. ``grid`` replaces the published grid, ``fixed`` pins
    hyperparameters. For a method that is ``lam`` times its merge at ``lam = 1``,
    the merge is computed once per point of the other hyperparameters.
    """
    vectors = as_vectors(vectors)
    points = method.grid_points(grid, **fixed)
    scores, best, cached = [], None, (None, None)
    for point in points:
        if method.scales_by_lam:
            rest = tuple((k, v) for k, v in point.items() if k != "lam")
            if cached[0] != rest:
                cached = (rest, method(vectors, stats=stats, **{**point, "lam": 1.0}))
            merged = cached[1] * point["lam"]
        else:
            merged = method(vectors, stats=stats, **point)
        value = float(score(merged))
        scores.append((point, value))
        if best is None or value > best[1]:
            best = (point, value, merged)
    return Selection(hyperparameters=best[0], score=best[1], merged=best[2], scores=scores)


def steps(start: float, stop: float, step: float) -> tuple[float, ...]:
    """``start, start + step, ..., stop`` rounded to the step's decimals (a grid)."""
    n = int(round((stop - start) / step))
    decimals = max(0, -int(f"{step:e}".split("e")[1]))
    return tuple(round(start + i * step, decimals + 1) for i in range(n + 1))
