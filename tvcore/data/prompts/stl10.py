"""STL10 (14- and 20-task sets): prompts and class names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``stl10_template``, 2 templates) and ``src/datasets/stl10.py`` (the names are
torchvision's ``STL10.classes``, the lines of the archive's ``class_names.txt``).
FusionBench (github.com/tanganke/fusion_bench at commit
54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/stl10.py``) uses the same words.

Label order: the label files' bytes 1..10, read as 0..9 (torchvision subtracts 1).
"""

from __future__ import annotations

SOURCE = ("nik-dim/tall_masks@d10af8b src/datasets/templates.py (stl10_template); "
          "src/datasets/stl10.py (torchvision STL10.classes)")

TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
)

CLASSNAMES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
