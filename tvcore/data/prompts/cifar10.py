"""CIFAR10 (20-task set): prompts and class names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``cifar10_template``, 18 templates) and ``src/datasets/cifar10.py`` (the names
are torchvision's ``CIFAR10.classes``, the archive's ``label_names``).
FusionBench (github.com/tanganke/fusion_bench at commit
54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/cifar10.py``) uses the same words.

Label order is the archive's label byte 0..9 (``batches.meta.txt`` of the binary
version, ``label_names`` of the python version).
"""

from __future__ import annotations

SOURCE = ("nik-dim/tall_masks@d10af8b src/datasets/templates.py (cifar10_template); "
          "src/datasets/cifar10.py (torchvision CIFAR10.classes)")

TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)

CLASSNAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
