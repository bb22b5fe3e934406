"""ImageNet (ILSVRC-2012) in its standard layout, where the paper's code reads it
(``src/datasets/imagenet.py``)::

    <root>/imagenet/train/<wnid>/*.JPEG
    <root>/imagenet/val/<wnid>/*.JPEG        (or val_in_folder/, which the paper prefers)

Class ``i`` is the ``i``-th wnid in sorted order (torchvision ``ImageFolder``, as the
paper's code), named by the paper's 1000 class names, ``prompts.classnames("ImageNet")``,
which are in that order. The validation images are the test set; validation is the
paper's 10% rule on train (at most 5000 images).
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import DatasetError
from ..base import TaskData
from ..reader import Reader
from .common import assemble, class_folders, file_samples, paper_names, same_classes

WNID = re.compile(r"n\d{8}")


def _test_dir(base: Path) -> Path:
    return base / "val_in_folder" if (base / "val_in_folder").is_dir() else base / "val"


def _detect(root: Path, task: str) -> bool:
    base = root / "imagenet"
    return (base / "train").is_dir() and _test_dir(base).is_dir()


GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"


def _check_sorted(test_dir: Path, base: Path) -> None:
    """A validation folder as the ILSVRC2012_img_val.tar unpacks (50,000 flat JPEGs) is
    refused with the way to sort it into wnid folders. torchvision's ImageNet does that
    sort (``parse_val_archive``) from the two archives when the folder is absent; the
    devkit's ground-truth file alone does not say the folder, its labels being
    ILSVRC2012 ids (1..1000) mapped to wnids only by the devkit's meta.mat."""
    try:
        entries = list(test_dir.iterdir())
    except OSError:
        return
    if any(e.is_dir() for e in entries):
        return
    flat = sum(e.suffix.lower() in (".jpeg", ".jpg") for e in entries)
    if not flat:
        return
    # Where the devkit unpacks it (ILSVRC2012_devkit_t12/data/), or beside the folders; never a
    # walk of train/, which holds 1.28 million files.
    places = [base / GROUND_TRUTH, *base.glob(f"*/{GROUND_TRUTH}"), *base.glob(f"*/data/{GROUND_TRUTH}")]
    truth = next((p for p in places if p.is_file()), None)
    raise DatasetError(
        f"ImageNet: {test_dir} holds {flat} images in one flat folder, not in <wnid>/ class folders as train/ "
        f"does{f' ({truth} labels them by ILSVRC2012 id, which only the devkit maps to wnids)' if truth else ''}; "
        f"sort them: move {test_dir} aside, put ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz in {base}, "
        f"and run python -c \"from torchvision.datasets import ImageNet; ImageNet('{base}', split='val')\", "
        f"which writes {base / 'val'}/<wnid>/")


def _load(root: Path, task: str) -> TaskData:
    base = root / "imagenet"
    _check_sorted(_test_dir(base), base)
    classes, train = class_folders(base / "train", task)
    odd = [c for c in classes if not WNID.fullmatch(c)]
    if odd:
        raise DatasetError(f"ImageNet: {base / 'train' / odd[0]} is not a WordNet id folder (n########); "
                           "the class index is the sorted wnid order")
    test_dir = _test_dir(base)
    test_classes, test = class_folders(test_dir, task)
    same_classes(task, ("train", classes), (test_dir.name, test_classes))
    return assemble(task, "imagenet", file_samples(train, root), file_samples(test, root),
                    paper_names(task, len(classes), base, raw=classes))


READERS = (
    Reader("imagenet", ("ImageNet",), "<root>/imagenet/{train,val}/<wnid>/*.JPEG (ImageNet's standard layout)",
           _detect, _load),
)
