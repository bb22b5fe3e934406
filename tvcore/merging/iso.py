"""Isotropic merging: Iso-C and Iso-CTS.

Marczak et al., *No Task Left Behind: Isotropic Model Merging with Common and
Task-Specific Subspaces*, ICML 2025.

Iso-C (common subspace): the task-arithmetic matrix of each 2-D layer,
``Delta_TA = sum_t Delta_t = U S V^T``, gets a flat spectrum: every singular value
becomes their mean ``sigma_bar = (1/r) sum_i sigma_i``, so
``Delta = lam * sigma_bar * U V^T``.

Iso-CTS (common and task-specific subspaces): the top ``k`` singular directions of
``Delta_TA`` (``k = common * r``, rounded so that the rest divides by T) are kept as
the common subspace; each task's matrix, projected off it
(``Delta_t - U_k U_k^T Delta_t``), contributes its top ``(r - k) / T`` directions. The
directions are concatenated, made orthonormal (polar factor, as in TSV-M) and
given one singular value, the mean of all the singular values kept.

Tensors that are not matrices are averaged, as in the authors' code. Each layer is
merged on its own, so both stream.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from .base import MergeMethod, layerwise, steps
from .tsv import components, polar


def iso_c_matrices(ts):
    u, s, vh = torch.linalg.svd(sum(ts), full_matrices=False)
    return s.mean() * (u @ vh)


def split_rank(rank: int, tasks: int, common: float) -> tuple[int, int]:
    """``(k, per_task)`` with ``k + tasks * per_task = rank``: the common subspace's
    size ``int(common * rank)``, moved so that the rest divides evenly among the
    tasks (the authors' rounding, kept within ``0 <= k <= rank``)."""
    per_task = min(round((rank - int(rank * common)) / tasks), rank // tasks)
    return rank - per_task * tasks, per_task


def iso_cts_matrices(ts, *, common):
    rank = min(ts[0].shape)
    k, per_task = split_rank(rank, len(ts), common)
    u, s, vh = components(sum(ts), k)
    us, ss, vhs = [u], [s], [vh]
    if per_task:
        for t in ts:
            for acc, part in zip((us, ss, vhs), components(t - u @ (u.T @ t), per_task)):
                acc.append(part)
    s_all = torch.cat(ss)
    merged = polar(torch.cat(us, dim=1)) @ polar(torch.cat(vhs, dim=0))
    return s_all.mean() * merged


def _check(hp):
    if not 0 <= hp["common"] <= 1:
        raise UsageError(f"iso-cts: common must be a fraction of each layer's rank in [0, 1], got {hp['common']}")


_ISO_CITATION = ("Marczak et al., No Task Left Behind: Isotropic Model Merging with Common and Task-Specific "
                 "Subspaces, ICML 2025")
_ISO_RULE = ("the scaling factor alpha on validation (Marczak et al. 2025); the grid {0.5, 0.6, ..., 2.5} is "
             "tvcore's, since a flat spectrum's norm differs from task arithmetic's")

ISO_C = MergeMethod(
    name="iso-c", citation=_ISO_CITATION, defaults={"lam": 1.0},
    grid={"lam": steps(0.5, 2.5, 0.1)}, rule=_ISO_RULE,
    per_tensor=layerwise(iso_c_matrices), scales_by_lam=True,
)

ISO_CTS = MergeMethod(
    name="iso-cts", citation=_ISO_CITATION, defaults={"lam": 1.0, "common": 0.8},
    grid={"lam": steps(0.5, 2.5, 0.1)}, rule="common subspace 0.8 of each layer's rank (the paper's); " + _ISO_RULE,
    per_tensor=layerwise(iso_cts_matrices), check=_check, scales_by_lam=True,
)
