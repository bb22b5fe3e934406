"""PCAM (14- and 20-task sets): prompts and the 2 class names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``pcam_template``, 1 template, no final period) and ``src/datasets/pcam.py``
(the names written out). FusionBench (github.com/tanganke/fusion_bench at commit
54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/pcam.py``) has the same strings.

Label order: the HDF5 target 0 (no metastatic tissue) and 1.
"""

from __future__ import annotations

SOURCE = "nik-dim/tall_masks@d10af8b src/datasets/templates.py (pcam_template); src/datasets/pcam.py"

TEMPLATES = (
    "this is a photo of {}",
)

CLASSNAMES = ("lymph node", "lymph node containing metastatic tumor tissue")
