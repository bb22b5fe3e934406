"""Consensus task arithmetic with TALL masks.

Wang et al., *Localizing Task Information for Improved Model Merging and
Compression*, ICML 2024. With the multi-task vector ``tau_MTL = sum_t tau_t``,
task ``t``'s TALL mask keeps the entries where the task carries more of the
multi-task vector than the other tasks together, scaled by ``lambda_t``:
``m_t = 1{|tau_t| >= lambda_t * |tau_MTL - tau_t|}`` (the authors'
code compares with ``>``; tvcore does too). Consensus merging keeps the entries
that at least ``k`` tasks deem relevant and drops the rest, the "selfish" weights
(one task) and "catastrophic" weights (none):
``tau = lam * 1{sum_t m_t >= k} * tau_MTL``. The paper uses ``k = 2``.

Every entry depends only on the same entry of each vector, so the method streams.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from .base import MergeMethod, in_compute_dtype, steps


def consensus_tensor(key, tensors, stats=None, *, lam, k, tall_lambda):
    ts = in_compute_dtype(tensors)
    mtl = sum(ts)
    votes = sum((t.abs() > tall_lambda * (mtl - t).abs()).to(torch.int32) for t in ts)
    return (lam * torch.where(votes >= k, mtl, torch.zeros((), dtype=mtl.dtype))).to(tensors[0].dtype)


def _check(hp):
    if int(hp["k"]) != hp["k"] or hp["k"] < 0:
        raise UsageError(f"consensus-ta: k must be a whole number of tasks >= 0, got {hp['k']}")
    if hp["tall_lambda"] < 0:
        raise UsageError(f"consensus-ta: tall_lambda must be >= 0, got {hp['tall_lambda']}")


CONSENSUS_TA = MergeMethod(
    name="consensus-ta",
    citation="Wang et al., Localizing Task Information for Improved Model Merging and Compression, ICML 2024",
    defaults={"lam": 1.0, "k": 2, "tall_lambda": 0.4},
    grid={"tall_lambda": (0.2, 0.3, 0.4, 0.5, 0.6), "lam": steps(0.0, 1.0, 0.05)},
    rule=("k = 2 (Wang et al. 2024); the TALL-mask lambda in {0.2, ..., 0.6} and task arithmetic's "
          "coefficient in {0, 0.05, ..., 1}, both on validation"),
    per_tensor=consensus_tensor, check=_check, scales_by_lam=True,
    notes=("one TALL-mask lambda shared by all tasks, where the paper picks lambda_t per task on that task's "
           "validation split",),
)
