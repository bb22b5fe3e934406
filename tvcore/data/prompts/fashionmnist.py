"""FashionMNIST (20-task set): prompts and class names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``fashionmnist_template``, 2 templates) and ``src/datasets/fashionmnist.py``
(the names are torchvision's ``FashionMNIST.classes``). FusionBench
(github.com/tanganke/fusion_bench at commit 54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/fashion_mnist.py``) writes the first as
``T - shirt / top``; tvcore keeps torchvision's ``T-shirt/top``, as TALL-masks does.

Label order: the label file's byte 0..9.
"""

from __future__ import annotations

SOURCE = ("nik-dim/tall_masks@d10af8b src/datasets/templates.py (fashionmnist_template); "
          "src/datasets/fashionmnist.py (torchvision FashionMNIST.classes)")

TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
)

CLASSNAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
              "Ankle boot")
