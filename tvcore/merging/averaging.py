"""Weight averaging: ``theta = (1/T) sum_t theta_t``, so ``tau = (1/T) sum_t tau_t``.

The uniform "soup" of Wortsman et al., *Model soups: averaging weights of multiple
fine-tuned models improves accuracy without increasing inference time*, ICML 2022
(the uniform soup), used as the merging baseline by Matena & Raffel (2022) and
by every eight-task ViT benchmark since. No hyperparameter.
"""

from __future__ import annotations

from .base import MergeMethod, mean_of


def average(key, tensors, stats=None):
    return mean_of(tensors)


WEIGHT_AVERAGING = MergeMethod(
    name="weight-averaging",
    citation="Wortsman et al., Model soups, ICML 2022 (uniform soup)",
    defaults={}, grid={},
    rule="none: no hyperparameter",
    per_tensor=average,
)
