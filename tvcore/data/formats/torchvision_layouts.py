"""The tasks as torchvision's dataset classes read them (``download=False``): the
files users hold after a torchvision download or the datasets' own archives.

===========  ==========================================================  ===========================
task         layout under the data root                                   splits
===========  ==========================================================  ===========================
MNIST        ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``   train / test files
             (or the four ``.gz`` files as downloaded)
SVHN         ``svhn/{train,test}_32x32.mat``                              train / test files
GTSRB        ``gtsrb/GTSRB/Training/<class>/*.ppm``,                      train / test
             ``gtsrb/GTSRB/Final_Test/Images``, ``gtsrb/GT-final_test.csv``
Cars         ``stanford_cars/devkit/{cars_meta,cars_train_annos}.mat``,   train / test
             ``stanford_cars/cars_test_annos_withlabels.mat``,
             ``stanford_cars/cars_{train,test}/``
DTD          ``dtd/dtd/images/<class>/``, ``dtd/dtd/labels/*1.txt``       train1 + val1 / test1
EuroSAT      ``eurosat/2750/<Class>/``                                    tvcore's 80/10/10 split
SUN397       ``SUN397/ClassName.txt``, ``SUN397/<l>/<class>/sun_*.jpg``,  Training_01 / Testing_01
             ``SUN397/{Training,Testing}_01.txt``
===========  ==========================================================  ===========================

The folder names are the ones the paper's code passes to these classes (``svhn``
is the paper's ``<location>/svhn``; the rest are torchvision's own). Validation is
the paper's 10% rule on the training split, except EuroSAT (below). The splits
follow the paper (its appendix table and github.com/mlfoundations/task_vectors
issue #1): DTD trains on its official train1 + val1 and tests on test1; SUN397
trains and tests on the official partition 01 lists (50 + 50 images a class).

EuroSAT's archive is not split, and the paper's random 21,600 / 2,700 / 2,700
split was never published. tvcore splits it the same sizes (80% / 10% / 10%) by
one ``torch.randperm`` seeded 0 over the files in ``ImageFolder`` order: a fixed
split, the same on every machine, but not the paper's images, so compare EuroSAT
numbers from this layout with other tvcore runs, not with the paper's table to
the decimal. The paper's own split folders (``EuroSAT_splits``) are read by the
``paper-splits`` reader.

Some classes below keep their lists in private attributes (``_samples``,
``_image_files``, ``_labels``); tests/test_data_formats.py pins them against the
installed torchvision.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ..base import TaskData
from ..reader import Reader
from .common import array_samples, assemble, class_folders, file_samples, paper_names, rel_key

# Exceptions torchvision's readers raise on a malformed or partial tree.
_READ_ERRORS = (OSError, RuntimeError, ValueError, KeyError, IndexError, TypeError, AssertionError)


def _read(task: str, what: Path, build):
    try:
        return build()
    except DatasetError:
        raise
    except _READ_ERRORS as exc:
        raise DatasetError(f"{task}: cannot read {what}: {type(exc).__name__}: {exc}") from None


# --- MNIST: idx files -------------------------------------------------------------

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")


def _mnist_gzipped(raw: Path) -> bool:
    """The four files as downloaded (``*.gz``), none of them decompressed."""
    return all((raw / f"{f}.gz").is_file() and not (raw / f).is_file() for f in _MNIST_FILES)


def _mnist_detect(root: Path, task: str) -> bool:
    raw = root / "MNIST" / "raw"
    return (raw / "train-images-idx3-ubyte").is_file() or _mnist_gzipped(raw)


def read_idx(path: Path, task: str = "MNIST") -> np.ndarray:
    """An unsigned-byte IDX array, gzipped or not. The format (yann.lecun.com/exdb/mnist):
    two zero bytes, the type code (0x08: unsigned byte), the number of dimensions, each
    dimension as a big-endian int32, then the data in row-major order."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DatasetError(f"{task}: {path} is not an unsigned-byte IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", ndim, 4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{task}: {path} holds {data.size} bytes of data for the shape {shape}")
    return data.reshape(shape)


def _mnist_split(root: Path, task: str, split: str, prefix: str) -> tuple[np.ndarray, list[int]]:
    raw = root / "MNIST" / "raw"
    if _mnist_gzipped(raw):  # read as downloaded; the same arrays as the decompressed files
        return (read_idx(raw / f"{prefix}-images-idx3-ubyte.gz"),
                read_idx(raw / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64).tolist())
    from torchvision.datasets import MNIST

    ds = _read(task, raw / f"{prefix}-images-idx3-ubyte",
               lambda: MNIST(str(root), train=split == "train", download=False))
    return ds.data.numpy(), ds.targets.tolist()  # (N, 28, 28) uint8, sharing the tensor's memory


def _mnist_load(root: Path, task: str) -> TaskData:
    raw = root / "MNIST" / "raw"
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = _mnist_split(root, task, split, prefix)
        if len(labels) != len(images):
            raise DatasetError(f"MNIST: {raw}/{prefix}-labels-idx1-ubyte holds {len(labels)} labels "
                               f"for {len(images)} images")
        splits[split] = array_samples(images, labels, f"MNIST/raw/{prefix}-images-idx3-ubyte")
    return assemble(task, "torchvision-MNIST", splits["train"], splits["test"],
                    paper_names(task, 10, root / "MNIST"))


# --- SVHN: .mat files ---------------------------------------------------------------

def _svhn_class():
    from torchvision.datasets import SVHN

    class LocalSVHN(SVHN):
        """torchvision's SVHN with the file's presence checked instead of its md5: the
        md5 pins one download, while a copy re-saved by another MATLAB or scipy holds
        the same arrays; the split fingerprint is what identifies the data."""

        def _check_integrity(self) -> bool:
            return os.path.isfile(os.path.join(self.root, self.filename))

    return LocalSVHN


def _svhn_detect(root: Path, task: str) -> bool:
    return (root / "svhn" / "train_32x32.mat").is_file()


def _svhn_load(root: Path, task: str) -> TaskData:
    svhn = _svhn_class()
    splits = {}
    for split in ("train", "test"):
        path = root / "svhn" / f"{split}_32x32.mat"
        ds = _read(task, path, lambda: svhn(str(root / "svhn"), split=split, download=False))
        # torchvision keeps X as (N, C, H, W), a view of the (H, W, C, N) array in the file,
        # and maps the label 10 to the digit 0; rows of the (N, H, W, C) view are images.
        images = np.transpose(ds.data, (0, 2, 3, 1))
        splits[split] = array_samples(images, ds.labels.tolist(), f"svhn/{split}_32x32.mat")
    return assemble(task, "torchvision-SVHN", splits["train"], splits["test"], paper_names(task, 10, root / "svhn"))


# --- GTSRB: class folders of .ppm, test labels in a CSV -----------------------------

def _gtsrb_detect(root: Path, task: str) -> bool:
    return (root / "gtsrb" / "GTSRB" / "Training").is_dir()


def _gtsrb_load(root: Path, task: str) -> TaskData:
    from torchvision.datasets import GTSRB

    base = root / "gtsrb"
    # The class folders first: an empty one is named before torchvision skips it.
    classes, _ = class_folders(base / "GTSRB" / "Training", task, what=".ppm images")
    csv = base / "GT-final_test.csv"
    if not csv.is_file():
        raise DatasetError(f"GTSRB: test labels not found: {csv} (from GTSRB_Final_Test_GT.zip)")
    train = _read(task, base / "GTSRB" / "Training", lambda: GTSRB(str(root), split="train", download=False))
    test = _read(task, csv, lambda: GTSRB(str(root), split="test", download=False))
    missing = [p for p, _ in test._samples if not os.path.isfile(p)]
    if missing:
        raise DatasetError(f"GTSRB: {csv} lists {len(missing)} images that are not there, e.g. {missing[0]}")
    return assemble(task, "torchvision-GTSRB", file_samples(train._samples, root),
                    file_samples(test._samples, root), paper_names(task, len(classes), base, raw=classes))


# --- Stanford Cars: devkit .mat annotations -------------------------------------------

def _cars_detect(root: Path, task: str) -> bool:
    return (root / "stanford_cars" / "devkit" / "cars_meta.mat").is_file()


def _cars_load(root: Path, task: str) -> TaskData:
    from torchvision.datasets import StanfordCars

    base = root / "stanford_cars"
    splits = {}
    for split, mat in (("train", base / "devkit" / "cars_train_annos.mat"),
                       ("test", base / "cars_test_annos_withlabels.mat")):
        if not mat.is_file():
            raise DatasetError(f"Cars: annotations not found: {mat}")
        ds = _read(task, mat, lambda: StanfordCars(str(root), split=split, download=False))
        missing = [p for p, _ in ds._samples if not os.path.isfile(p)]
        if missing:
            raise DatasetError(f"Cars: {mat} lists {len(missing)} images that are not there, e.g. {missing[0]}")
        splits[split] = file_samples(ds._samples, root)
        classes = list(ds.classes)
    return assemble(task, "torchvision-StanfordCars", splits["train"], splits["test"],
                    paper_names(task, len(classes), base, raw=classes))


# --- DTD: the archive's images and split lists ---------------------------------------

def _dtd_detect(root: Path, task: str) -> bool:
    return (root / "dtd" / "dtd" / "labels" / "train1.txt").is_file()


def _dtd_load(root: Path, task: str) -> TaskData:
    from torchvision.datasets import DTD

    data = root / "dtd" / "dtd"
    parts = {}
    for split in ("train", "val", "test"):
        listing = data / "labels" / f"{split}1.txt"
        ds = _read(task, listing, lambda: DTD(str(root), split=split, partition=1, download=False))
        missing = [p for p in ds._image_files if not p.is_file()]
        if missing:
            raise DatasetError(f"DTD: {listing} lists {len(missing)} images that are not there, e.g. {missing[0]}")
        parts[split] = (list(ds.classes), list(zip(map(str, ds._image_files), ds._labels)))
    # Each list's labels index its own sorted classes: they must be the same classes.
    for split in ("val", "test"):
        if parts[split][0] != parts["train"][0]:
            differ = sorted(set(parts[split][0]) ^ set(parts["train"][0]))
            raise DatasetError(f"DTD: {split}1.txt and train1.txt name different classes: {differ[:5]}")
    # The paper merges train1 and val1 into one training folder; sorted as ImageFolder
    # would list that folder, so the 10% rule draws the paper's validation images.
    by_folder = lambda item: (item[1], Path(item[0]).name)  # noqa: E731
    train = sorted(parts["train"][1] + parts["val"][1], key=by_folder)
    test = sorted(parts["test"][1], key=by_folder)
    classes = parts["train"][0]
    return assemble(task, "torchvision-DTD", file_samples(train, root), file_samples(test, root),
                    paper_names(task, len(classes), root / "dtd", raw=classes))


# --- EuroSAT: the unsplit RGB archive --------------------------------------------------

EUROSAT_SPLIT = ("tvcore's 80/10/10 split of the EuroSAT archive (torch.randperm, seed 0); "
                 "the paper's was never published")


def _eurosat_detect(root: Path, task: str) -> bool:
    return (root / "eurosat" / "2750").is_dir()


def _eurosat_load(root: Path, task: str) -> TaskData:
    import torch
    from torchvision.datasets import EuroSAT

    folder = root / "eurosat" / "2750"
    classes, _ = class_folders(folder, task)  # names an empty class folder
    ds = _read(task, folder, lambda: EuroSAT(str(root), download=False))
    items = list(ds.samples)
    n_hold = int(len(items) * 0.1)
    perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(0)).tolist()
    cut = len(items) - 2 * n_hold
    pick = lambda idx: file_samples([items[i] for i in sorted(idx)], root)  # noqa: E731
    return assemble(task, "torchvision-EuroSAT", pick(perm[:cut]), pick(perm[cut + n_hold:]),
                    paper_names(task, len(classes), root / "eurosat", raw=classes), val=pick(perm[cut:cut + n_hold]),
                    notes=EUROSAT_SPLIT)


# --- SUN397: the archive with the official partition 01 lists ---------------------------

def _sun397_detect(root: Path, task: str) -> bool:
    return (root / "SUN397" / "ClassName.txt").is_file()


def _sun397_load(root: Path, task: str) -> TaskData:
    from torchvision.datasets import SUN397

    data = root / "SUN397"
    lists = {split: data / f"{name}_01.txt" for split, name in (("train", "Training"), ("test", "Testing"))}
    for path in lists.values():
        if not path.is_file():
            raise DatasetError(f"SUN397: {path} not found: the paper trains and tests on SUN397's partition 01; "
                               "copy Training_01.txt and Testing_01.txt (SUN397 Partitions archive) beside "
                               "ClassName.txt")
    ds = _read(task, data, lambda: SUN397(str(root), download=False))
    label_of = {p.relative_to(data).as_posix(): label for p, label in zip(ds._image_files, ds._labels)}
    counts = np.bincount(ds._labels, minlength=len(ds.classes))
    if len(ds.classes) and counts.min() == 0:
        empty = ds.classes[int(np.argmin(counts))]
        raise DatasetError(f"SUN397: class folder {data / empty} holds no sun_*.jpg images; "
                           "add its images or remove its line from ClassName.txt")
    splits = {}
    for split, path in lists.items():
        items = []
        for line in path.read_text().splitlines():
            rel = line.strip().lstrip("/")
            if not rel:
                continue
            if rel not in label_of:
                raise DatasetError(f"SUN397: {path} lists {line.strip()}, which is not under {data}")
            items.append((str(data / rel), label_of[rel]))
        # ImageFolder order over a folder per class, as the paper's prepared splits were read.
        splits[split] = file_samples(sorted(items, key=lambda item: (item[1], rel_key(item[0], data))), root)
    return assemble(task, "torchvision-SUN397", splits["train"], splits["test"],
                    paper_names(task, len(ds.classes), data, raw=list(ds.classes)))


READERS = (
    Reader("torchvision-MNIST", ("MNIST",),
           "<root>/MNIST/raw/train-images-idx3-ubyte[.gz] (torchvision MNIST)",
           _mnist_detect, _mnist_load),
    Reader("torchvision-SVHN", ("SVHN",), "<root>/svhn/train_32x32.mat (torchvision SVHN)",
           _svhn_detect, _svhn_load),
    Reader("torchvision-GTSRB", ("GTSRB",), "<root>/gtsrb/GTSRB/Training/ (torchvision GTSRB)",
           _gtsrb_detect, _gtsrb_load),
    Reader("torchvision-StanfordCars", ("Cars",),
           "<root>/stanford_cars/devkit/cars_meta.mat (torchvision StanfordCars)", _cars_detect, _cars_load),
    Reader("torchvision-DTD", ("DTD",), "<root>/dtd/dtd/labels/train1.txt (torchvision DTD)",
           _dtd_detect, _dtd_load),
    Reader("torchvision-EuroSAT", ("EuroSAT",), "<root>/eurosat/2750/<Class>/ (torchvision EuroSAT)",
           _eurosat_detect, _eurosat_load),
    Reader("torchvision-SUN397", ("SUN397",),
           "<root>/SUN397/ClassName.txt with Training_01.txt, Testing_01.txt (torchvision SUN397)",
           _sun397_detect, _sun397_load),
)
