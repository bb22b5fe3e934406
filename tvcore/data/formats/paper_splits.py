"""The split folders the task-arithmetic paper's code reads (github.com/mlfoundations/
task_vectors, ``src/datasets/{dtd,eurosat,sun397,resisc45}.py``), as its users
prepared them (the paper never shipped the DTD, EuroSAT and SUN397 splits; its
issue #1 describes them).

========  =================================================================  ==========================
task      layout under the data root                                          splits
========  =================================================================  ==========================
DTD       ``dtd/train/<class>/``, ``dtd/val/<class>/``                        ``val`` is the test set
SUN397    ``sun397/train/<l>_<class>/``, ``sun397/val/<l>_<class>/``          ``val`` is the test set
EuroSAT   ``EuroSAT_splits/{train,val,test}/<Class>/``                        fixed validation split
RESISC45  ``resisc45/NWPU-RESISC45/<class>/*.jpg`` with                       train / test lists
          ``resisc45/resisc45-{train,test}.txt``
========  =================================================================  ==========================

What tvcore accepts, and why:

- DTD and SUN397: the paper's code tests on the ``val`` folder (DTD's official test1
  images; SUN397's Testing_01) and validates on 10% of ``train``. A tree with a
  ``test`` folder as well (``train``/``val``/``test``, as some later repositories
  prepare them) is read as train, a fixed validation split, and test.
- EuroSAT: the paper's only fixed validation split (its ``EuroSATVal`` reads the
  ``val`` folder); without a ``val`` folder, the 10% rule.
- RESISC45: the train/test lists of Neumann et al. 2019, as the paper reads them;
  like the paper (which registers no ``RESISC45Val``), validation is 10% of the
  train list and ``resisc45-val.txt`` is not used.

Classes are the sorted folder names (torchvision ``ImageFolder``, as in the paper's code).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DatasetError
from ..base import TaskData
from ..reader import Reader
from .common import assemble, class_folders, file_samples, paper_names, same_classes

READER = "paper-splits"
# task -> folder under the data root (the paper's names).
FOLDERS = {"DTD": "dtd", "SUN397": "sun397", "EuroSAT": "EuroSAT_splits"}


def _folders_detect(root: Path, task: str) -> bool:
    base = root / FOLDERS[task]
    return (base / "train").is_dir() and ((base / "val").is_dir() or (base / "test").is_dir())


def _folders_load(root: Path, task: str) -> TaskData:
    base = root / FOLDERS[task]
    classes, train = class_folders(base / "train", task)
    has_val, has_test = (base / "val").is_dir(), (base / "test").is_dir()
    if task == "EuroSAT" and not has_test:
        raise DatasetError(f"EuroSAT: test split not found: {base / 'test'}")
    # DTD/SUN397 in the paper's two folders: its 'val' folder is the test set.
    test_dir = base / "test" if has_test else base / "val"
    val_dir = base / "val" if has_val and has_test else None
    test_classes, test = class_folders(test_dir, task)
    same_classes(task, ("train", classes), (test_dir.name, test_classes))
    val = None
    if val_dir is not None:
        val_classes, val_items = class_folders(val_dir, task)
        same_classes(task, ("train", classes), ("val", val_classes))
        val = file_samples(val_items, root)
    return assemble(task, READER, file_samples(train, root), file_samples(test, root),
                    paper_names(task, len(classes), base, raw=classes), val=val)


def _resisc45_detect(root: Path, task: str) -> bool:
    return (root / "resisc45" / "resisc45-train.txt").is_file()


def _resisc45_load(root: Path, task: str) -> TaskData:
    base = root / "resisc45"
    images = base / "NWPU-RESISC45"
    splits, classes = {}, None
    for split in ("train", "test"):
        listing = base / f"resisc45-{split}.txt"
        if not listing.is_file():
            raise DatasetError(f"RESISC45: split list not found: {listing}")
        names = {line.strip() for line in listing.read_text().splitlines() if line.strip()}
        # As the paper's reader: a file belongs to the split when its name is in the list.
        split_classes, items = class_folders(images, task, is_valid_file=lambda p: Path(p).name in names,
                                             what=f"image listed in {listing.name}")
        found = {Path(p).name for p, _ in items}
        if found != names:
            missing = sorted(names - found)
            raise DatasetError(f"RESISC45: {listing} lists {len(missing)} images not under {images}, "
                               f"e.g. {missing[0]}")
        classes = split_classes
        splits[split] = file_samples(items, root)
    return assemble(task, READER, splits["train"], splits["test"], paper_names(task, len(classes), base, raw=classes))


READERS = (
    Reader(READER, ("DTD",), "<root>/dtd/train/<class>/ with dtd/val/ (the paper's DTD split folders)",
           _folders_detect, _folders_load),
    Reader(READER, ("EuroSAT",), "<root>/EuroSAT_splits/{train,val,test}/<Class>/ (the paper's EuroSAT splits)",
           _folders_detect, _folders_load),
    Reader(READER, ("SUN397",), "<root>/sun397/train/<class>/ with sun397/val/ (the paper's SUN397 split folders)",
           _folders_detect, _folders_load),
    Reader(READER, ("RESISC45",),
           "<root>/resisc45/NWPU-RESISC45/<class>/ with resisc45-{train,test}.txt (the paper's RESISC45)",
           _resisc45_detect, _resisc45_load),
)
