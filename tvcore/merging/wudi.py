"""WUDI merging: the task vectors guide a data-free merge.

Cheng et al., *Whoever Started the Interference Should End It: Guiding Data-Free
Model Merging via Task Vectors*, ICML 2025. A linear layer's task vector spans
(approximately) the inputs its task sends through it, so the interference that
the merged update ``M`` causes on task ``t`` is measured on the task vector's rows:
each 2-D layer's merged update minimizes

    L(M) = sum_t ||(M - tau_t) tau_t^T||_F^2 / ||tau_t||_F^2

by Adam from ``M = sum_t tau_t`` (the authors: learning rate 1e-5, 300 steps, no
rescaling coefficient). Tensors that are not matrices are summed (task arithmetic
at lambda 1), as FusionBench's implementation does. Each layer is merged on its
own, so the method streams.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from .base import MergeMethod, layerwise, sum_of


def wudi_loss(merged: torch.Tensor, stacked: torch.Tensor) -> torch.Tensor:
    """``L(M)`` for ``stacked``, the ``(T, out, in)`` task matrices of one layer."""
    norms = stacked.flatten(1).pow(2).sum(dim=1).clamp(min=torch.finfo(stacked.dtype).tiny)
    interference = (merged.unsqueeze(0) - stacked) @ stacked.transpose(1, 2)
    return (interference.pow(2).sum(dim=(1, 2)) / norms).sum()


def wudi_matrices(ts, *, lr, iterations):
    stacked = torch.stack(ts)
    merged = torch.nn.Parameter(stacked.sum(dim=0))
    optimizer = torch.optim.Adam([merged], lr=lr)
    with torch.enable_grad():
        for _ in range(int(iterations)):
            optimizer.zero_grad()
            wudi_loss(merged, stacked).backward()
            optimizer.step()
    return merged.detach()


def _check(hp):
    if hp["lr"] <= 0 or hp["iterations"] < 0 or int(hp["iterations"]) != hp["iterations"]:
        raise UsageError(f"wudi: lr must be > 0 and iterations a whole number >= 0, got lr={hp['lr']}, "
                         f"iterations={hp['iterations']}")


WUDI = MergeMethod(
    name="wudi",
    citation=("Cheng et al., Whoever Started the Interference Should End It: Guiding Data-Free Model Merging "
              "via Task Vectors, ICML 2025"),
    defaults={"lam": 1.0, "lr": 1e-5, "iterations": 300},
    grid={},
    rule="none: fixed lr 1e-5, 300 Adam steps, no rescaling coefficient (Cheng et al. 2025)",
    per_tensor=layerwise(wudi_matrices, fallback=sum_of), check=_check,
)
