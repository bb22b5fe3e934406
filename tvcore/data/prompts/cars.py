"""Stanford Cars: prompts, and class names read from the dataset itself.

Source: the paper's released code, github.com/mlfoundations/task_vectors at
commit 826a64c67082fab0f40628233287948f0f8d7fa3:
``src/datasets/templates.py`` (``cars_template``, 8 templates) and
``src/datasets/cars.py`` (class names are the ``class_names`` of the devkit's
``cars_meta.mat``, in label order, with ``_`` read as a space).

torchvision's ``StanfordCars.classes`` reads the same ``cars_meta.mat`` field,
so its names are valid input. Other characters are kept as they are, e.g.
``Ram C/V Cargo Van Minivan 2012`` keeps its ``/``.
"""

from __future__ import annotations

SOURCE = ("mlfoundations/task_vectors@826a64c src/datasets/templates.py (cars_template); "
          "src/datasets/cars.py (names from devkit/cars_meta.mat, '_' -> ' ')")

# Stanford Cars has 196 classes (Krause et al., "3D Object Representations for Fine-Grained
# Categorization", 3dRR 2013; the 196 entries of cars_meta.mat's class_names).
CLASS_COUNT = 196

TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of my {}.",
    "i love my {}!",
    "a photo of my dirty {}.",
    "a photo of my clean {}.",
    "a photo of my new {}.",
    "a photo of my old {}.",
)


def clean(identifier: str) -> str:
    """The prompt name for one ``cars_meta.mat`` class name."""
    return identifier.replace("_", " ")
