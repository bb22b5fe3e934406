"""CIFAR100 (14- and 20-task sets): prompts and the 100 fine class names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``cifar100_template``, 18 templates, the same as CIFAR10's) and
``src/datasets/cifar100.py`` (the names are torchvision's ``CIFAR100.classes``,
the archive's ``fine_label_names``, underscores kept: ``aquarium_fish``).
FusionBench (github.com/tanganke/fusion_bench at commit
54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/cifar100.py``, ``fine_label``) has the
same list except ``cra`` for ``crab``; tvcore keeps the archive's ``crab``.

Label order is the archive's fine label 0..99 (``fine_label_names.txt`` of the
binary version), alphabetical.
"""

from __future__ import annotations

from .cifar10 import TEMPLATES as _CIFAR_TEMPLATES

SOURCE = ("nik-dim/tall_masks@d10af8b src/datasets/templates.py (cifar100_template); "
          "src/datasets/cifar100.py (torchvision CIFAR100.classes)")

TEMPLATES = _CIFAR_TEMPLATES  # TALL-masks' cifar100_template is cifar10_template, string for string

CLASSNAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
