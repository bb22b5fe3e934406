"""Merging many task vectors with one general method.

:class:`MergeSpec` describes a merge; its options give the known methods:

* task arithmetic: ``lam * sum_i w_i * tau_i`` (the default);
* TIES (``trim=k, consensus="sign"``): keep each vector's top-``k`` fraction of
  entries by magnitude, elect a sign per entry from the sum of the trimmed
  vectors, and average only the entries that agree with it (disjoint mean). The
  top-``k`` runs over each whole task vector by default, as the TIES-Merging paper
  defines it (Yadav et al., NeurIPS 2023, Sec. 3: "keep the top-k% values
  according to their magnitude" of each task vector); ``trim_scope="tensor"``
  trims each tensor on its own instead (tvcore's earlier behaviour, and the
  per-layer trim many merging toolkits apply);
* DARE (``drop=p``): drop each entry with probability ``p`` and rescale the rest
  by ``1 / (1 - p)``, seeded per tensor, so the result is unbiased;
* DARE with TIES consensus (``drop=p, consensus="sign"``);
* the analogy ``tau_C + tau_B - tau_A`` (:func:`analogy`, weights ``-1, 1, 1``).

The same per-tensor function serves the in-memory merge (:func:`merge`), the
fused merge-and-apply (:func:`merge_into`) and the streaming merge of files
(:func:`merge_files`), which holds one tensor per input at a time. A whole-vector
trim needs each vector's threshold (its k-th largest magnitude) before any
tensor is merged: :func:`trim_thresholds` finds it exactly with a radix select
over the vector's tensors, one tensor at a time, so the streaming merge reads
the files once more per pass but never holds more than one tensor per input.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from ..errors import UsageError
from ..kernels import compute_dtype, fused_combine, kth_largest_magnitude
from ..vectors import TaskVector, check_alpha, write_update
from .base import MergeMethod, check_vectors, steps
from .streaming import StreamStats, stream_merge

TRIM_SCOPES = ("vector", "tensor")


@dataclass(frozen=True)
class MergeSpec:
    """One merge. ``trim_scope`` says over what TIES's top-``trim`` fraction is
    taken: ``"vector"`` (the default), each whole task vector, as the TIES-Merging
    paper defines it (Yadav et al., NeurIPS 2023, Sec. 3); ``"tensor"``, each
    tensor on its own (tvcore's earlier behaviour, kept for comparison)."""

    weights: tuple[float, ...] | None = None  # per vector; None = all 1
    lam: float = 1.0                          # global scaling coefficient
    trim: float | None = None                 # TIES: keep this fraction of entries by magnitude
    trim_scope: str = "vector"                # TIES: top-k over the whole vector (paper) or per "tensor"
    drop: float = 0.0                         # DARE: drop probability
    consensus: str = "none"                   # "none" or "sign" (TIES sign election, disjoint mean)
    seed: int = 0                             # DARE's masks

    def __post_init__(self):
        check_alpha(self.lam, "lam")
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(check_alpha(w, "weight") for w in self.weights))
        if self.trim is not None and not 0 < self.trim <= 1:
            raise UsageError(f"trim must be a fraction in (0, 1], got {self.trim}")
        if self.trim_scope not in TRIM_SCOPES:
            raise UsageError(f"trim_scope must be 'vector' or 'tensor', got {self.trim_scope!r}")
        if not 0 <= self.drop < 1:
            raise UsageError(f"drop must be a probability in [0, 1), got {self.drop}")
        if self.consensus not in ("none", "sign"):
            raise UsageError(f"consensus must be 'none' or 'sign', got {self.consensus!r}")
        if self.consensus == "sign" and self.weights is not None and any(w <= 0 for w in self.weights):
            raise UsageError("sign consensus (TIES) needs positive weights")

    @property
    def trims_whole_vectors(self) -> bool:
        """Whether merging needs each vector's trim threshold first."""
        return self.trim is not None and self.trim < 1 and self.trim_scope == "vector"

    @property
    def is_linear(self) -> bool:
        """Plain weighted sum: no trimming, dropping or consensus."""
        return self.trim is None and self.drop == 0 and self.consensus == "none"

    def weights_for(self, n: int) -> tuple[float, ...]:
        if self.weights is None:
            return (1.0,) * n
        if len(self.weights) != n:
            raise UsageError(f"{len(self.weights)} weights for {n} vectors")
        return self.weights

    def coefs(self, n: int) -> list[float]:
        """``lam * w_i``: the coefficient of each vector in a linear merge."""
        return [self.lam * w for w in self.weights_for(n)]

    @property
    def name(self) -> str:
        if self.is_linear:
            return "task_arithmetic"
        parts = (["dare"] if self.drop else []) + (["ties"] if self.trim is not None or self.consensus == "sign"
                                                   else [])
        return "_".join(parts)


def task_arithmetic(lam: float = 1.0, weights=None) -> MergeSpec:
    return MergeSpec(weights=weights, lam=lam)


def ties(density: float = 0.2, lam: float = 1.0, weights=None, trim_scope: str = "vector") -> MergeSpec:
    return MergeSpec(weights=weights, lam=lam, trim=density, consensus="sign", trim_scope=trim_scope)


def dare(drop: float = 0.9, lam: float = 1.0, weights=None, seed: int = 0, consensus: str = "none") -> MergeSpec:
    return MergeSpec(weights=weights, lam=lam, drop=drop, seed=seed, consensus=consensus)


# ----------------------------------------------------------------------- kernels

def _key_seed(seed: int, key: str, index: int) -> int:
    return (seed * 1_000_003 + zlib.crc32(key.encode()) * 97 + index) % (2**63)


def _trim(t: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the top ``density`` fraction of entries by magnitude (ties at the
    threshold kept), zero the rest."""
    if density >= 1 or t.numel() == 0:
        return t
    k = max(1, int(math.ceil(density * t.numel())))
    threshold = t.abs().reshape(-1).kthvalue(t.numel() - k + 1).values
    return torch.where(t.abs() >= threshold, t, torch.zeros((), dtype=t.dtype, device=t.device))


def _trim_at(t: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Keep the entries whose magnitude reaches ``threshold`` (compared in the
    threshold's dtype, so the comparison is exact), zero the rest."""
    keep = t.abs().to(threshold.dtype) >= threshold.to(t.device)
    return torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))


def _drop(t: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    if p == 0:
        return t
    gen = torch.Generator(device=t.device).manual_seed(seed)
    keep = torch.rand(t.shape, generator=gen, device=t.device) >= p
    return torch.where(keep, t / (1 - p), torch.zeros((), dtype=t.dtype, device=t.device))


def _dropped(key: str, index: int, t: torch.Tensor, spec: MergeSpec) -> torch.Tensor:
    """Input ``index``'s tensor of ``key`` in the compute dtype, after DARE's drop
    (the trim sees what the drop left)."""
    return _drop(t.to(compute_dtype(t.dtype)), spec.drop, _key_seed(spec.seed, key, index))


def trim_thresholds(spec: MergeSpec, layout: Mapping[str, torch.Tensor],
                    read: Callable[[int, str], torch.Tensor], n: int) -> list[torch.Tensor] | None:
    """Each vector's whole-vector trim threshold: the ``ceil(trim * numel)``-th
    largest magnitude over all its entries (after DARE's drop, if any). ``None``
    when ``spec`` does not trim whole vectors.

    ``layout`` maps the vectors' common keys to tensors of their shapes and dtypes
    (meta tensors will do); ``read(i, key)`` gives vector ``i``'s tensor of ``key``.
    Tensors are read one at a time (twice each for fp32), never all at once.
    """
    if not spec.trims_whole_vectors:
        return None
    keys = [k for k, t in layout.items() if t.numel()]
    numel = sum(layout[k].numel() for k in keys)
    if numel == 0:
        return None
    k = max(1, math.ceil(spec.trim * numel))
    dtype = torch.float32
    for key in keys:
        dtype = torch.promote_types(dtype, compute_dtype(layout[key].dtype))
    out = []
    for i in range(n):
        def tensors(i=i):
            return (_dropped(key, i, read(i, key), spec) for key in keys)
        out.append(kth_largest_magnitude(tensors, k, dtype))
    return out


def merge_tensor(key: str, tensors: Sequence[torch.Tensor], spec: MergeSpec,
                 thresholds: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """The merged update for one key, ``lam * merge(tensors)``, in the inputs' dtype.
    A whole-vector trim needs each vector's threshold (:func:`trim_thresholds`)."""
    if spec.is_linear:
        return fused_combine(torch.empty_like(tensors[0]), tensors, spec.coefs(len(tensors)))
    if spec.trims_whole_vectors and thresholds is None:
        raise ValueError("a whole-vector trim (trim_scope='vector') needs each vector's threshold; compute "
                         "them with trim_thresholds(), or use merge()/merge_files(), which do")
    weights = spec.weights_for(len(tensors))
    dtype = tensors[0].dtype
    cd = compute_dtype(dtype)
    parts = []
    for i, t in enumerate(tensors):
        t = _dropped(key, i, t, spec)
        if spec.trims_whole_vectors:
            t = _trim_at(t, thresholds[i])
        elif spec.trim is not None:
            t = _trim(t, spec.trim)
        parts.append(t)
    if spec.consensus == "none":
        merged = sum(w * t for w, t in zip(weights, parts))
    else:
        weighted = [w * t for w, t in zip(weights, parts)]
        elected = torch.sign(sum(weighted))
        num = torch.zeros_like(parts[0])
        den = torch.zeros_like(parts[0])
        for w, t, wt in zip(weights, parts, weighted):
            agree = (torch.sign(t) == elected) & (t != 0)
            num += torch.where(agree, wt, 0.0)
            den += agree.to(cd) * w
        merged = num / den.clamp(min=torch.finfo(cd).tiny)
    return (spec.lam * merged).to(dtype)


def update_terms(key: str, tensors: Sequence[torch.Tensor], spec: MergeSpec,
                 thresholds: Sequence[torch.Tensor] | None = None):
    """(terms, coefs) such that ``base + sum_i coefs[i] * terms[i]`` applies the merge:
    the inputs themselves for a linear merge (fused, no merged tensor in between),
    else the one merged update."""
    if spec.is_linear:
        return list(tensors), spec.coefs(len(tensors))
    return [merge_tensor(key, tensors, spec, thresholds)], [1.0]


# ----------------------------------------------------------------------- in memory

def _thresholds_of(vectors: Sequence[TaskVector], spec: MergeSpec) -> list[torch.Tensor] | None:
    with torch.no_grad():
        return trim_thresholds(spec, vectors[0].state_dict(), lambda i, key: vectors[i][key], len(vectors))


def merge(vectors: Sequence[TaskVector], spec: MergeSpec = MergeSpec()) -> TaskVector:
    """Merge task vectors in memory into one task vector."""
    vectors = list(vectors)
    check_vectors(vectors)
    thresholds = _thresholds_of(vectors, spec)
    out = {}
    with torch.no_grad():
        for key in vectors[0].keys():
            out[key] = merge_tensor(key, [v[key] for v in vectors], spec, thresholds)
    names = [v.name or "?" for v in vectors]
    return TaskVector(out, name=f"{spec.name}({', '.join(names)})", base_model=vectors[0].base_model)


def merge_into(base, vectors: Sequence[TaskVector], spec: MergeSpec = MergeSpec(), *, out=None,
               inplace: bool = False, strict: bool = True):
    """``base + merge(vectors)``.

    Written into ``out`` (a module or state dict laid out like ``base``, e.g. the
    model being evaluated) when given, into ``base`` itself with ``inplace=True``,
    else into a new state dict (or a copy of a module). For the linear merge the
    work is fused: each input is read once and each result tensor written once,
    with no merged vector in between.
    """
    vectors = list(vectors)
    check_vectors(vectors)
    thresholds = _thresholds_of(vectors, spec)
    return write_update(base, vectors[0], lambda key, tensors: update_terms(key, tensors, spec, thresholds),
                        vectors, out=out, inplace=inplace, strict=strict)


def analogy(a: TaskVector, b: TaskVector, c: TaskVector) -> TaskVector:
    """``tau_C + tau_B - tau_A``: "A is to B as C is to the target"."""
    return merge([a, b, c], MergeSpec(weights=(-1.0, 1.0, 1.0)))


# ----------------------------------------------------------------------- streaming

def merge_files(paths: Sequence[str | os.PathLike], out_path: str | os.PathLike, spec: MergeSpec = MergeSpec(),
                *, base: str | os.PathLike | None = None, name: str | None = None) -> StreamStats:
    """Merge task-vector files tensor by tensor and write the result as safetensors.

    Without ``base`` the output is a task-vector file; with ``base`` (a weights
    file) it is ``base + merge(vectors)``, a weights file. Only one tensor per input
    is in memory at a time, whatever the number of inputs. Inputs must agree on
    keys, shapes and dtypes.
    """
    def plan(read, layout, n):
        # A first pass (two reads per tensor for fp32) for the whole-vector trim.
        thresholds = trim_thresholds(spec, layout, read, n)
        return (lambda key, tensors: merge_tensor(key, tensors, spec, thresholds),
                lambda key, tensors: update_terms(key, tensors, spec, thresholds))

    return stream_merge(paths, out_path, plan, label=spec.name, detail=repr(spec), base=base, name=name)


# ----------------------------------------------------------------------- as registered methods

def _registered(name: str, citation: str, spec_of, defaults: dict, grid: dict, rule: str, notes=()) -> MergeMethod:
    """A registry entry for one setting of the general method: ``spec_of(**hp)``
    gives its :class:`MergeSpec`; files stream through :func:`merge_files`."""
    return MergeMethod(
        name=name, citation=citation, defaults=defaults, grid=grid, rule=rule, notes=tuple(notes),
        whole=lambda vectors, stats, **hp: merge(vectors, spec_of(**hp)).state_dict(),
        files=lambda paths, out_path, base, label, **hp: merge_files(paths, out_path, spec_of(**hp), base=base,
                                                                     name=label),
        check=lambda hp: spec_of(**hp), scales_by_lam=True,
    )


_LAMBDAS = steps(0.0, 1.0, 0.05)
_TIES_LAMBDAS = steps(0.8, 1.8, 0.1)
_DROPS = steps(0.1, 0.9, 0.1)
_TA = "Ilharco et al., Editing Models with Task Arithmetic, ICLR 2023"
_TIES = "Yadav et al., TIES-Merging: Resolving Interference When Merging Models, NeurIPS 2023"
_DARE = "Yu et al., Language Models are Super Mario: Absorbing Abilities from Homologous Models as a Free Lunch, ICML 2024"

TASK_ARITHMETIC = _registered(
    "task-arithmetic", _TA,
    lambda lam, weights: MergeSpec(weights=weights, lam=lam),
    {"lam": 1.0, "weights": None}, {"lam": _LAMBDAS},
    "lambda in {0, 0.05, ..., 1} maximizing mean validation accuracy over the tasks (Ilharco et al. 2023)")

TIES = _registered(
    "ties", _TIES,
    lambda lam, density, weights, trim_scope: MergeSpec(weights=weights, lam=lam, trim=density, consensus="sign",
                                                        trim_scope=trim_scope),
    {"lam": 1.0, "density": 0.2, "weights": None, "trim_scope": "vector"}, {"lam": _TIES_LAMBDAS},
    "top-20% density (k = 20) and lambda in {0.8, 0.9, ..., 1.8} on validation (Yadav et al. 2023)")

DARE = _registered(
    "dare", f"{_DARE}; merged by task arithmetic",
    lambda lam, drop, seed, weights: MergeSpec(weights=weights, lam=lam, drop=drop, seed=seed),
    {"lam": 1.0, "drop": 0.9, "seed": 0, "weights": None}, {"drop": _DROPS, "lam": _LAMBDAS},
    "drop rate in {0.1, ..., 0.9} (Yu et al. 2024) and task arithmetic's lambda grid, on validation",
    notes=("masks drawn from a seeded generator per tensor and vector, so a merge is reproducible",))

DARE_TIES = _registered(
    "dare-ties", f"{_DARE}; merged by TIES ({_TIES})",
    lambda lam, drop, density, seed, weights: MergeSpec(weights=weights, lam=lam, drop=drop, trim=density,
                                                        consensus="sign", seed=seed),
    {"lam": 1.0, "drop": 0.9, "density": 0.2, "seed": 0, "weights": None}, {"drop": _DROPS, "lam": _TIES_LAMBDAS},
    "drop rate in {0.1, ..., 0.9} (Yu et al. 2024), TIES's density 0.2 and lambda grid, on validation")
