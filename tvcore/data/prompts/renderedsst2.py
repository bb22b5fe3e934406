"""RenderedSST2 (20-task set): prompts and the 2 class names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``sst2_template``, 1 template) and ``src/datasets/sst2.py`` (the names are
torchvision's ``RenderedSST2.classes``). FusionBench (github.com/tanganke/fusion_bench
at commit 54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/rendered_sst2.py``) has the same strings.

Label order: the sorted class folders ``negative``, ``positive``.
"""

from __future__ import annotations

SOURCE = "nik-dim/tall_masks@d10af8b src/datasets/templates.py (sst2_template); src/datasets/sst2.py"

TEMPLATES = (
    "a {} review of a movie.",
)

CLASSNAMES = ("negative", "positive")
