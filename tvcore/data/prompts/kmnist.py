"""KMNIST (20-task set): prompts and class names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``kmnist_template``, 1 template) and ``src/datasets/kmnist.py`` (the names are
torchvision's ``KMNIST.classes``, romanized). FusionBench
(github.com/tanganke/fusion_bench at commit 54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/kmnist.py``) writes the same ten
characters in hiragana; tvcore follows TALL-masks.

Label order: the label file's byte 0..9.
"""

from __future__ import annotations

SOURCE = ("nik-dim/tall_masks@d10af8b src/datasets/templates.py (kmnist_template); "
          "src/datasets/kmnist.py (torchvision KMNIST.classes)")

TEMPLATES = (
    "a photo of the character {}.",
)

CLASSNAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
