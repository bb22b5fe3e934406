"""TSV-M: merging by task singular vectors.

Gargiulo et al., *Task Singular Vectors: Reducing Task Interference in Model
Merging*, CVPR 2025. For each 2-D layer, each task matrix is cut to its top
``keep * rank`` singular components, ``Delta_t ~ U_t S_t V_t^T`` (``keep = 1/T`` in the
paper: the T tasks together fill the layer's rank). The components of all tasks
are concatenated, ``U = [U_1 .. U_T]``, ``S = diag(S_1 .. S_T)``, ``V = [V_1 .. V_T]``, and
the interference between tasks is removed by replacing ``U`` and ``V`` with their
nearest matrices with orthonormal columns (the orthogonal Procrustes / polar
factor ``P Q^T`` of ``U = P Sigma Q^T``): ``Delta = lam * U_perp S V_perp^T``.
Tensors that are not matrices are averaged, as in the paper's released code.
Each layer is merged on its own, so the method streams.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from .base import MergeMethod, layerwise, steps


def polar(a: torch.Tensor) -> torch.Tensor:
    """The nearest matrix to ``a`` with orthonormal columns (rows, if wider than
    tall): ``P Q^T`` from ``a = P Sigma Q^T`` (orthogonal Procrustes)."""
    p, _, qh = torch.linalg.svd(a, full_matrices=False)
    return p @ qh


def components(t: torch.Tensor, count: int):
    """The top ``count`` singular triplets of ``t``."""
    u, s, vh = torch.linalg.svd(t, full_matrices=False)
    return u[:, :count], s[:count], vh[:count]


def tsv_matrices(ts, *, keep):
    fraction = 1.0 / len(ts) if keep is None else keep
    count = max(1, int(min(ts[0].shape) * fraction))
    parts = [components(t, count) for t in ts]
    u = polar(torch.cat([p[0] for p in parts], dim=1))
    s = torch.cat([p[1] for p in parts])
    vh = polar(torch.cat([p[2] for p in parts], dim=0))
    return (u * s) @ vh


def _check(hp):
    if hp["keep"] is not None and not 0 < hp["keep"] <= 1:
        raise UsageError(f"tsv-m: keep must be a fraction of each layer's rank in (0, 1], got {hp['keep']}")


TSV_M = MergeMethod(
    name="tsv-m",
    citation="Gargiulo et al., Task Singular Vectors: Reducing Task Interference in Model Merging, CVPR 2025",
    defaults={"lam": 1.0, "keep": None},
    grid={"lam": steps(0.0, 1.0, 0.05)},
    rule=("each task keeps 1/T of each layer's rank (Gargiulo et al. 2025); the coefficient on validation over "
          "{0, 0.05, ..., 1}, as the authors' released evaluation does for task arithmetic"),
    per_tensor=layerwise(tsv_matrices), check=_check, scales_by_lam=True,
    notes=("keep=None is the paper's 1/T; a number sets the fraction of each layer's rank kept per task",),
)
