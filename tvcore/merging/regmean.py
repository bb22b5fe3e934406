"""RegMean: regression mean of linear layers.

Jin et al., *Dataless Knowledge Fusion by Merging Weights of Language Models*,
ICLR 2023. For a linear layer ``y = W x`` fine-tuned on task ``t`` with inputs
``X_t`` (rows are examples) and Gram matrix ``G_t = X_t^T X_t``, the merged weight
that best reproduces every task's outputs on its own inputs is the solution of a
least-squares problem: ``W = (sum_t W_t G_t) (sum_t G_t)^-1`` (in PyTorch's
``(out, in)`` layout). The Grams' off-diagonal entries are scaled by ``alpha``
(``G~ = alpha * G + (1 - alpha) * diag(G)``), which the paper finds necessary.
Since the weights sum to the identity, the same formula holds for the task
vectors, ``tau = (sum_t tau_t G~_t) (sum_t G~_t)^-1``. Weights without a Gram (biases,
layer norms, embeddings, and linear maps whose inputs no hook sees) are averaged,
as in the paper.

The Grams come from :func:`tvcore.merging.statistics.linear_input_grams`, one
mapping per task, keyed like the task vector's weights.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from .base import MergeMethod, in_compute_dtype, is_matrix, mean_of


def regularized(gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha * G + (1 - alpha) * diag(G)``."""
    return alpha * gram + (1 - alpha) * torch.diag(torch.diagonal(gram))


def regmean_tensor(key, tensors, grams=None, *, alpha):
    ts = in_compute_dtype(tensors)
    if grams is None or not is_matrix(tensors[0]):
        return mean_of(ts).to(tensors[0].dtype)
    if any(g.shape != (t.shape[1], t.shape[1]) for g, t in zip(grams, ts)):
        raise UsageError(f"regmean: the Gram of {key!r} is {tuple(grams[0].shape)}, the weight {tuple(ts[0].shape)}; "
                         "a Gram is (in_features, in_features) of the layer's inputs")
    gs = [regularized(g.to(torch.float64), alpha) for g in grams]
    # An input feature no task ever saw has an all-zero row and column in every Gram:
    # its column of W is unconstrained, and (sum G) is singular. An identity there
    # makes that column the tasks' average, like the weights without a Gram.
    unseen = torch.diagonal(sum(gs)) == 0
    if unseen.any():
        gs = [g + torch.diag(unseen.to(g.dtype)) for g in gs]
    numerator = sum(t.to(torch.float64) @ g for t, g in zip(ts, gs))
    # W (sum G) = sum W_t G_t; sum G is symmetric, so solve (sum G) W^T = (sum W_t G_t)^T.
    merged = torch.linalg.solve(sum(gs), numerator.T).T
    return merged.to(tensors[0].dtype)


def _check(hp):
    if not 0 <= hp["alpha"] <= 1:
        raise UsageError(f"regmean: alpha (the Grams' off-diagonal scale) must lie in [0, 1], got {hp['alpha']}")


REGMEAN = MergeMethod(
    name="regmean",
    citation="Jin et al., Dataless Knowledge Fusion by Merging Weights of Language Models, ICLR 2023",
    defaults={"alpha": 0.9},
    grid={"alpha": (0.1, 0.3, 0.5, 0.7, 0.9)},
    rule=("alpha, the Grams' off-diagonal scale, on validation (Jin et al. 2023); the grid 0.1-0.9 is tvcore's; "
          "Grams from a few batches of each task's training data"),
    per_tensor=regmean_tensor, statistics="grams", check=_check,
)
