"""PCB merging: parameter competition balancing.

Du et al., *Parameter Competition Balancing for Model Merging*, NeurIPS 2024
(Algorithm 1), in the form of the authors' released ``PCB_merge``: over each
whole task vector ``tau_i`` (flattened; ``T`` tasks),

* magnitudes are clipped to their 0.01% and 99.99% quantiles, signs kept
  (``tau_i'``);
* intra-balancing (a parameter's weight within its task):
  ``exp(T * Norm(|tau_i'|)^2)``, ``Norm`` the min-max normalization over the vector;
* inter-balancing (its agreement with the other tasks):
  ``tanh(tau_i * sum_j tau_j)``;
* ``beta_i`` = intra * inter; the entries below its ``(1 - density)`` quantile are
  dropped, and ``beta_i`` is min-max normalized (so the dropped entries weigh 0);
* ``tau = lam * sum_i beta_i tau_i' / sum_i beta_i``.

The paper writes the balancing with softmaxes (``Softmax(T * Norm(tau_i * tau_i))``
and ``sum_j Softmax(Norm(tau_i * tau_j))``); tvcore follows the released script, whose
results the published tables report. The quantiles and normalizations run over
each whole vector, so PCB holds the T vectors in memory (it does not stream).
"""

from __future__ import annotations

import functools

import torch

from ..errors import UsageError
from ..kernels import compute_dtype
from .base import MergeMethod, steps

CLIP_QUANTILE = 1e-4  # the released script's outlier clip, each side


def _sorted_at(x: torch.Tensor, index: int) -> torch.Tensor:
    """Each row's value at 0-based position ``index`` of its ascending order."""
    index = min(max(index, 0), x.shape[1] - 1)
    return x.kthvalue(index + 1, dim=1, keepdim=True).values


def _minmax(x: torch.Tensor) -> torch.Tensor:
    low, high = x.min(dim=1, keepdim=True).values, x.max(dim=1, keepdim=True).values
    return (x - low) / (high - low).clamp(min=torch.finfo(x.dtype).tiny)


def pcb_flat(flat: torch.Tensor, *, lam: float, density: float) -> torch.Tensor:
    """PCB over a ``(T, d)`` matrix of flattened task vectors; returns the ``d`` merged entries."""
    n, d = flat.shape
    magnitude = flat.abs()
    magnitude = magnitude.clamp(min=_sorted_at(magnitude, int(d * CLIP_QUANTILE)),
                                max=_sorted_at(magnitude, int(d * (1 - CLIP_QUANTILE)) - 1))
    clipped = torch.sign(flat) * magnitude
    intra = torch.exp(n * _minmax(magnitude) ** 2)
    inter = torch.tanh(flat * flat.sum(dim=0, keepdim=True))
    beta = intra * inter
    beta = _minmax(beta.clamp(min=_sorted_at(beta, int(d * (1 - density)))))
    merged = (beta * clipped).sum(dim=0) / beta.sum(dim=0).clamp(min=1e-12)
    return lam * merged


def pcb_whole(vectors, stats=None, *, lam, density):
    keys = list(vectors[0].keys())
    dtype = functools.reduce(torch.promote_types, (compute_dtype(vectors[0][k].dtype) for k in keys))
    flat = torch.stack([torch.cat([v[k].to(dtype).reshape(-1) for k in keys]) for v in vectors])
    merged = pcb_flat(flat, lam=lam, density=density)
    out, offset = {}, 0
    for k in keys:
        t = vectors[0][k]
        out[k] = merged[offset:offset + t.numel()].reshape(t.shape).to(t.dtype)
        offset += t.numel()
    return out


def _check(hp):
    if not 0 < hp["density"] <= 1:
        raise UsageError(f"pcb: density (the fraction of entries kept) must lie in (0, 1], got {hp['density']}")


PCB = MergeMethod(
    name="pcb",
    citation="Du et al., Parameter Competition Balancing for Model Merging, NeurIPS 2024",
    defaults={"lam": 1.0, "density": 0.1},
    grid={"density": (0.05, 0.1, 0.2), "lam": steps(0.8, 1.8, 0.1)},
    rule=("the kept fraction and lambda on validation (Du et al. 2024); the grid, densities 0.05-0.2 and lambda "
          "0.8-1.8, is tvcore's, around the released script's 0.1 and TIES's lambda range"),
    whole=pcb_whole, check=_check, scales_by_lam=True,
    notes=("the released script then tunes one lambda per task by evolutionary search on validation; tvcore "
           "keeps one lambda",),
)
