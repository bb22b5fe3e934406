"""Describable Textures (DTD): prompts, and class names read from the dataset itself.

Source: the paper's released code, github.com/mlfoundations/task_vectors at
commit 826a64c67082fab0f40628233287948f0f8d7fa3:
``src/datasets/templates.py`` (``dtd_template``, 8 templates) and
``src/datasets/dtd.py`` (class names are the class folder names of the prepared
``dtd/train`` split, sorted as torchvision's ``ImageFolder`` sorts them, with
``_`` read as a space).

torchvision's ``DTD.classes`` are the same folder names (``banded``,
``polka-dotted``, ...), so they are valid input too.
"""

from __future__ import annotations

SOURCE = ("mlfoundations/task_vectors@826a64c src/datasets/templates.py (dtd_template); "
          "src/datasets/dtd.py (names from the class folders, '_' -> ' ')")

# DTD's 47 categories (Cimpoi et al., "Describing Textures in the Wild", CVPR 2014): the
# folder names of the archive's dtd/images/, sorted as ImageFolder sorts them.
IDENTIFIERS = (
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched",
    "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy", "grid", "grooved",
    "honeycombed", "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed", "paisley",
    "perforated", "pitted", "pleated", "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled",
    "sprinkled", "stained", "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven",
    "wrinkled", "zigzagged",
)
CLASS_COUNT = len(IDENTIFIERS)

TEMPLATES = (
    "a photo of a {} texture.",
    "a photo of a {} pattern.",
    "a photo of a {} thing.",
    "a photo of a {} object.",
    "a photo of the {} texture.",
    "a photo of the {} pattern.",
    "a photo of the {} thing.",
    "a photo of the {} object.",
)


def clean(identifier: str) -> str:
    """The prompt name for one DTD class folder name."""
    return identifier.replace("_", " ")
