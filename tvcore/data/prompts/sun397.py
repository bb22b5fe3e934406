"""SUN397: prompts, and class names read from the dataset itself.

Source: the paper's released code, github.com/mlfoundations/task_vectors at
commit 826a64c67082fab0f40628233287948f0f8d7fa3:
``src/datasets/templates.py`` (``sun397_template``, 2 templates) and
``src/datasets/sun397.py`` (class names are the class folder names of the
prepared ``sun397/train`` split with their first two characters dropped and
``_`` read as a space).

The prepared folders come from the split recipe the authors gave in
github.com/mlfoundations/task_vectors/issues/1 (SUN397's ``Partitions``
``Training_01.txt`` / ``Testing_01.txt``): an image path such as
``/a/apartment_building/outdoor/sun_x.jpg`` goes to the folder
``a_apartment_building_outdoor``, so the paper's rule turns it into
``apartment building outdoor`` and ``a_abbey`` into ``abbey``.

Users hold the same classes under three spellings; each gives the paper's name:

* prepared folder: ``a_abbey``, ``a_apartment_building_outdoor``;
* ``ClassName.txt`` / image path: ``/a/abbey``, ``/a/apartment_building/outdoor``;
* torchvision's ``SUN397.classes`` (prefix already dropped): ``abbey``,
  ``apartment_building/outdoor``.

SUN397 files every class under the folder of its own first letter, so the
letter prefix is recognised as ``<letter>`` + ``/`` or ``_`` + a name starting
with that same letter; a name without it is taken as already stripped.
"""

from __future__ import annotations

SOURCE = ("mlfoundations/task_vectors@826a64c src/datasets/templates.py (sun397_template); "
          "src/datasets/sun397.py (folder name[2:], '_' -> ' '); folders per task_vectors issue #1")

# SUN397 has 397 scene categories (Xiao et al., "SUN Database: Large-scale Scene Recognition
# from Abbey to Zoo", CVPR 2010; the 397 lines of the archive's ClassName.txt).
CLASS_COUNT = 397

TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
)


def _has_letter_prefix(name: str) -> bool:
    return len(name) > 2 and name[0].isalpha() and name[1] in "/_" and name[2] == name[0]


def clean(identifier: str) -> str:
    """The prompt name for one SUN397 class, in any of the spellings above."""
    name = identifier.strip().lstrip("/")
    if _has_letter_prefix(name):
        name = name[2:]
    return name.replace("/", " ").replace("_", " ")
