"""Fisher merging.

Matena & Raffel, *Merging Models with Fisher-Weighted Averaging*, NeurIPS 2022.
Each model's parameters are weighted by their diagonal Fisher information
``F_t`` (how sharply task ``t``'s log-likelihood depends on them):
``theta = sum_t w_t F_t theta_t / sum_t w_t F_t``, entry by entry. With
``theta_t = theta_0 + tau_t`` the same weights give ``tau = sum_t w_t F_t tau_t / sum_t w_t F_t``.
Each Fisher is floored at ``floor`` (the authors' code uses 1e-6), so an entry no
task informs falls back to the weighted average. The paper's merges weight tasks
equally (``w_t = 1``).

The Fishers come from :func:`tvcore.merging.statistics.diagonal_fisher`, one
mapping per task, keyed like the task vector.
"""

from __future__ import annotations

from ..errors import UsageError
from .base import MergeMethod, in_compute_dtype, mean_of


def fisher_tensor(key, tensors, fishers=None, *, floor, weights):
    ts = in_compute_dtype(tensors)
    if fishers is None:
        return mean_of(ts).to(tensors[0].dtype)
    ws = (1.0,) * len(ts) if weights is None else weights
    if len(ws) != len(ts):
        raise UsageError(f"fisher: {len(ws)} weights for {len(ts)} vectors; give one weight per vector")
    fs = [w * f.to(t.dtype).clamp(min=floor) for w, f, t in zip(ws, fishers, ts)]
    return (sum(f * t for f, t in zip(fs, ts)) / sum(fs)).to(tensors[0].dtype)


def _check(hp):
    if hp["floor"] <= 0:
        raise UsageError(f"fisher: floor must be > 0, got {hp['floor']}")
    if hp["weights"] is not None and any(w <= 0 for w in hp["weights"]):
        raise UsageError(f"fisher: weights must be positive, got {hp['weights']}")


FISHER = MergeMethod(
    name="fisher",
    citation="Matena & Raffel, Merging Models with Fisher-Weighted Averaging, NeurIPS 2022",
    defaults={"floor": 1e-6, "weights": None},
    grid={},
    rule="none: tasks weighted equally and the Fisher floored at 1e-6 (Matena & Raffel 2022)",
    per_tensor=fisher_tensor, statistics="fisher", check=_check,
)
