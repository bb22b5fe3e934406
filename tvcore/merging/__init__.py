"""Merging many task vectors into one: the methods, their registry and the data hook.

* :mod:`.base`: the interface (:class:`MergeMethod`), hyperparameter selection on
  validation (:func:`select`);
* :mod:`.generalized`: task arithmetic, TIES and DARE as settings of one general
  method (:class:`MergeSpec`), fused merge-and-apply and the streaming file merge;
* one module per other method: :mod:`.averaging`, :mod:`.consensus`, :mod:`.tsv`,
  :mod:`.iso`, :mod:`.pcb`, :mod:`.wudi`, :mod:`.regmean`, :mod:`.fisher`;
* :mod:`.statistics`: per-task Gram matrices and Fishers for RegMean and Fisher merging;
* :mod:`.registry`: ``METHODS``, name -> method.
"""

from .base import MergeMethod, Selection, select
from .generalized import (TRIM_SCOPES, MergeSpec, analogy, dare, merge, merge_files, merge_into, merge_tensor,
                          task_arithmetic, ties, trim_thresholds, update_terms)
from .registry import METHODS, method_named
from .statistics import diagonal_fisher, linear_input_grams, read_statistics, save_statistics
from .streaming import StreamStats

__all__ = [
    "METHODS", "MergeMethod", "MergeSpec", "Selection", "StreamStats", "TRIM_SCOPES", "analogy", "dare",
    "diagonal_fisher", "linear_input_grams", "merge", "merge_files", "merge_into", "merge_tensor", "method_named",
    "read_statistics", "save_statistics", "select", "task_arithmetic", "ties", "trim_thresholds", "update_terms",
]
