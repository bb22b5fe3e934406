"""The registry of merging methods: name -> :class:`~tvcore.merging.base.MergeMethod`,
each with its citation, published defaults, validation grid and selection rule."""

from __future__ import annotations

from ..errors import UsageError
from .averaging import WEIGHT_AVERAGING
from .base import MergeMethod
from .consensus import CONSENSUS_TA
from .fisher import FISHER
from .generalized import DARE, DARE_TIES, TASK_ARITHMETIC, TIES
from .iso import ISO_C, ISO_CTS
from .pcb import PCB
from .regmean import REGMEAN
from .tsv import TSV_M
from .wudi import WUDI

METHODS: dict[str, MergeMethod] = {m.name: m for m in (
    WEIGHT_AVERAGING, TASK_ARITHMETIC, TIES, DARE, DARE_TIES, CONSENSUS_TA, TSV_M, ISO_C, ISO_CTS, PCB, WUDI,
    REGMEAN, FISHER)}


def method_named(name: str) -> MergeMethod:
    """The registered method ``name``, or a one-line error naming the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise UsageError(f"unknown merging method {name!r}; known methods: {', '.join(METHODS)}") from None
