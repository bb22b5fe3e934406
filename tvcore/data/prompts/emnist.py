"""EMNIST (20-task set): prompts and class names of EMNIST's ``digits`` split.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``emnist_template``, 1 template) and ``src/datasets/emnist.py`` (torchvision's
``EMNIST(split="digits")``, whose ``classes`` are the digits ``0``..``9``).
FusionBench (github.com/tanganke/fusion_bench at commit
54c9e8c9d9621620c720452cd8533332a32d3689) uses the ``letters`` split instead
(``fusion_bench/tasks/clip_classification/emnist_letters.py``, 26 classes, same
template); tvcore follows TALL-masks, whose 20-task set this task belongs to.

Label order: the label file's byte 0..9, the digit itself.
"""

from __future__ import annotations

SOURCE = ("nik-dim/tall_masks@d10af8b src/datasets/templates.py (emnist_template); "
          "src/datasets/emnist.py (torchvision EMNIST split 'digits')")

TEMPLATES = (
    'a photo of the digit character: "{}".',
)

CLASSNAMES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
