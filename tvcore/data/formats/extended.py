"""The tasks the model-merging benchmark's 14- and 20-task sets add to the paper's
eight (TALL-masks, github.com/nik-dim/tall_masks@d10af8b
``src/utils/variables_and_paths.py``; FusionBench), as torchvision's dataset classes
read them (``download=False``), under the data root passed as torchvision's ``root``.

=============  ===================================================================  =====================
task           layout under the data root                                           splits
=============  ===================================================================  =====================
CIFAR10        ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``    train / test files
               (torchvision's), or ``cifar-10-batches-bin/`` (the same ``.bin``
               files and ``batches.meta.txt``: the archive's binary version)
CIFAR100       ``cifar-100-python/{train,test,meta}`` (torchvision's), or           train / test files
               ``cifar-100-binary/{train,test}.bin``, ``fine_label_names.txt``
STL10          ``stl10_binary/{train,test}_{X,y}.bin``, ``class_names.txt``         train / test files
Flowers102     ``flowers-102/{jpg/image_*.jpg,imagelabels.mat,setid.mat}``          trnid / tstid
OxfordIIITPet  ``oxford-iiit-pet/{images/*.jpg,annotations/{trainval,test}.txt}``   trainval / test
FER2013        ``fer2013/fer2013.csv`` (or ``icml_face_data.csv``)                  Training / PublicTest
                                                                                    + PrivateTest rows
Food101        ``food-101/{images/<class>/*.jpg,meta/{train,test}.json}``           train / test lists
FashionMNIST   ``FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``    train / test files
KMNIST         ``KMNIST/raw/`` (the same four idx files)                            train / test files
EMNIST         ``EMNIST/raw/emnist-digits-{train,test}-{images-idx3,labels-idx1}``  train / test files
               ``-ubyte``
RenderedSST2   ``rendered-sst2/{train,test}/{negative,positive}/*.png``             train / test folders
=============  ===================================================================  =====================

The idx files may also be the ``.gz`` files as downloaded. Validation is the paper's
10% rule on the training split for every task, as TALL-masks' ``get_dataset`` does
for these tasks (``src/datasets/registry.py``, ``split_train_into_train_val``): the
official validation splits of Flowers102 and RenderedSST2 are not used, and STL10's
unlabelled images are not read.

How each is read:

* CIFAR: torchvision reads the *python* version, whose batches are pickles, with
  ``pickle.load``; tvcore never runs a pickle it did not write. It reads them with
  its opcode-checked unpickler (:class:`tvcore.importers.RestrictedUnpickler`),
  which calls nothing the file names: the batch's numpy array comes back as an
  inert stand-in holding its shape, dtype and raw bytes, and only a 2-d uint8 array
  is accepted and rebuilt from those bytes. The *binary* version of the same
  archive is read with numpy: fixed-size records of label byte(s) and 3072 pixel
  bytes. Either way a row is 1024 red, 1024 green, then 1024 blue values, rows of
  32 (www.cs.toronto.edu/~kriz/cifar.html). Keys name the file read, so the two
  versions fingerprint apart.
* STL10 and Flowers102: torchvision's classes, with the md5 check of each file
  replaced by a presence check (as for SVHN: the md5 pins one download; the split
  fingerprint identifies the data). STL10's check asks only for the labelled files.
* OxfordIIITPet, Food101, RenderedSST2: torchvision's classes as they are.
* FashionMNIST, KMNIST, EMNIST: the idx files, read as MNIST's are
  (:func:`tvcore.data.formats.torchvision_layouts.read_idx`), in the folders
  torchvision's classes read; EMNIST is its ``digits`` split, as TALL-masks uses it.
* FER2013: the CSV as torchvision's ``FER2013`` parses it (``emotion``, ``pixels``
  of 48 x 48 values, ``Usage``), read here because torchvision refuses any copy
  whose md5 is not the Kaggle file's. Kaggle's ``train.csv`` + ``test.csv`` pair has
  no test labels and is refused. TALL-masks itself read a Hugging Face copy
  (``Jeneral/fer-2013``); its split is not known to match the CSV's.
* PCAM: its files are HDF5, which needs h5py, not a tvcore dependency; the layout
  is recognised and refused with a line saying so.

Some classes keep their lists in private attributes (``_image_files``, ``_labels``,
``_images``, ``_samples``); tests/test_data_extended.py pins them against the
installed torchvision.
"""

from __future__ import annotations

import csv
import os
import pickle
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ..base import Sample, TaskData
from ..prompts import class_count
from ..reader import Reader
from .common import array_samples, assemble, file_samples, paper_names
from .torchvision_layouts import _read, read_idx


def _require(task: str, *paths: Path, hint: str = "") -> None:
    """Each path must be a file, else a one-line error naming the first that is not."""
    for path in paths:
        if not path.is_file():
            raise DatasetError(f"{task}: {path} not found" + (f"; {hint}" if hint else ""))


def _missing_images(task: str, listing: Path, paths) -> None:
    missing = [p for p in map(str, paths) if not os.path.isfile(p)]
    if missing:
        raise DatasetError(f"{task}: {listing} lists {len(missing)} images that are not there, e.g. {missing[0]}")


def _name_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


# --- CIFAR10 / CIFAR100: the binary version's fixed-size records -------------------------

_CIFAR = {
    # task: (folder, train files, test files, label bytes per record, which is the label, names file)
    "CIFAR10": ("cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)), ("test_batch.bin",),
                1, 0, "batches.meta.txt"),
    "CIFAR100": ("cifar-100-binary", ("train.bin",), ("test.bin",), 2, 1, "fine_label_names.txt"),
}
_CIFAR_PIXELS = 3 * 32 * 32


def _cifar_file(task: str, path: Path, label_bytes: int, label_at: int, key: str) -> list[Sample]:
    """One binary batch as samples: each image a (32, 32, 3) view of the file's one array."""
    raw = np.fromfile(path, np.uint8)
    record = label_bytes + _CIFAR_PIXELS
    if raw.size == 0 or raw.size % record:
        raise DatasetError(f"{task}: {path} holds {raw.size} bytes, not whole {record}-byte records "
                           f"({label_bytes} label byte(s) and {_CIFAR_PIXELS} pixels each)")
    rows = raw.reshape(-1, record)
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # channel planes -> HWC
    return array_samples(images, rows[:, label_at].tolist(), key)


def _cifar_detect(root: Path, task: str) -> bool:
    return (root / _CIFAR[task][0]).is_dir()


# --- CIFAR10 / CIFAR100: the python version's pickles, read without running them -----------

_CIFAR_PY = {
    # task: (folder, train batches, test batches, label key, meta file, names key)
    "CIFAR10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels",
                "batches.meta", "label_names"),
    "CIFAR100": ("cifar-100-python", ("train",), ("test",), "fine_labels", "meta", "fine_label_names"),
}


def _unpickle(task: str, path: Path) -> dict:
    """A python-version batch as a dict, through the restricted unpickler (Python 2 strings read as
    latin-1, as torchvision reads them)."""
    from ...importers import RefusedPickle, RestrictedUnpickler

    unpickler = type("BatchUnpickler", (RestrictedUnpickler,), {"named": {}})
    try:
        with open(path, "rb") as fh:
            obj = unpickler(fh, encoding="latin1").load()
    except RefusedPickle as exc:
        raise DatasetError(f"{task}: {path} refused: the pickle asks for {exc}; tvcore reads a CIFAR batch as "
                           "containers and one stood-in array only") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise DatasetError(f"{task}: {path} is not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{task}: {path} holds a {type(obj).__name__}, not a CIFAR batch's dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _stood_in_array(task: str, path: Path, value) -> np.ndarray:
    """The uint8 array a stand-in for ``numpy.core.multiarray._reconstruct`` describes: its
    ``ndarray.__setstate__`` state is (version, shape, dtype, Fortran order, raw bytes)."""
    state = getattr(value, "__dict__", {}).get("_standin_state")
    if not (getattr(value, "pickled_name", "").endswith("multiarray._reconstruct")
            and isinstance(state, tuple) and len(state) == 5):
        raise DatasetError(f"{task}: {path}: 'data' is not a pickled numpy array")
    _, shape, dtype, fortran, raw = state
    dtype_args = getattr(dtype, "__dict__", {}).get("_standin_args", ((),))[0]
    if not dtype_args or dtype_args[0] != "u1":
        raise DatasetError(f"{task}: {path}: 'data' is not a uint8 array (dtype {dtype_args[:1]})")
    raw = raw.encode("latin1") if isinstance(raw, str) else raw
    if not (isinstance(raw, bytes) and isinstance(shape, tuple) and len(shape) == 2
            and all(type(d) is int for d in shape) and shape[1] == _CIFAR_PIXELS and len(raw) == shape[0] * shape[1]):
        raise DatasetError(f"{task}: {path}: 'data' is not an (N, {_CIFAR_PIXELS}) array of its bytes "
                           f"(shape {shape})")
    array = np.frombuffer(raw, np.uint8)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _cifar_py_file(task: str, path: Path, label_key: str, key: str) -> list[Sample]:
    batch = _unpickle(task, path)
    for field in ("data", label_key):
        if field not in batch:
            raise DatasetError(f"{task}: {path} has no '{field}' entry (it has {sorted(map(str, batch))})")
    rows, labels = _stood_in_array(task, path, batch["data"]), batch[label_key]
    if not (isinstance(labels, list) and all(type(y) is int for y in labels) and len(labels) == len(rows)):
        raise DatasetError(f"{task}: {path}: '{label_key}' is not a list of {len(rows)} integers")
    return array_samples(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels, key)


def _cifar_py_detect(root: Path, task: str) -> bool:
    return (root / _CIFAR_PY[task][0]).is_dir()


def _cifar_py_load(root: Path, task: str) -> TaskData:
    folder, train_files, test_files, label_key, meta_file, names_key = _CIFAR_PY[task]
    base = root / folder
    _require(task, *(base / f for f in (*train_files, *test_files, meta_file)),
             hint="copy the whole folder as torchvision's download extracts it")
    splits = {split: [s for f in files for s in _cifar_py_file(task, base / f, label_key, f"{folder}/{f}")]
              for split, files in (("train", train_files), ("test", test_files))}
    raw = _unpickle(task, base / meta_file).get(names_key)
    if not (isinstance(raw, list) and all(isinstance(n, str) for n in raw)):
        raise DatasetError(f"{task}: {base / meta_file} has no list of '{names_key}'")
    return assemble(task, f"torchvision-{task}", splits["train"], splits["test"],
                    paper_names(task, len(raw), base, raw=raw))


def _cifar_load(root: Path, task: str) -> TaskData:
    folder, train_files, test_files, label_bytes, label_at, names_file = _CIFAR[task]
    base = root / folder
    hint = "copy the whole folder of the archive's binary version"
    _require(task, *(base / f for f in (*train_files, *test_files, names_file)), hint=hint)
    splits = {split: [s for f in files for s in _cifar_file(task, base / f, label_bytes, label_at, f"{folder}/{f}")]
              for split, files in (("train", train_files), ("test", test_files))}
    raw = _name_lines(base / names_file)
    return assemble(task, f"cifar-binary-{task}", splits["train"], splits["test"],
                    paper_names(task, len(raw), base, raw=raw))


# --- STL10: torchvision's reader of the binary files ------------------------------------

def _stl10_class():
    from torchvision.datasets import STL10

    class LocalSTL10(STL10):
        """torchvision's STL10 with a presence check of the labelled files instead of the md5
        of every file (the unlabelled 100,000 images are not needed for classification)."""

        def _check_integrity(self) -> bool:
            return all(os.path.isfile(os.path.join(self.root, self.base_folder, name))
                       for name in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"))

    return LocalSTL10


def _stl10_detect(root: Path, task: str) -> bool:
    return (root / "stl10_binary").is_dir()


def _stl10_load(root: Path, task: str) -> TaskData:
    base = root / "stl10_binary"
    _require(task, *(base / f"{s}_{x}.bin" for s in ("train", "test") for x in ("X", "y")), base / "class_names.txt")
    stl10 = _stl10_class()
    splits = {}
    for split in ("train", "test"):
        ds = _read(task, base / f"{split}_X.bin", lambda: stl10(str(root), split=split, download=False))
        if len(ds.labels) != len(ds.data):
            raise DatasetError(f"{task}: {base / f'{split}_y.bin'} holds {len(ds.labels)} labels for "
                               f"{len(ds.data)} images in {split}_X.bin")
        # torchvision keeps (N, C, H, W); rows of the (N, H, W, C) view are images. Its labels are
        # the file's bytes minus 1 as uint8: a byte 0 wraps to 255 and is refused as out of range.
        images = np.transpose(ds.data, (0, 2, 3, 1))
        splits[split] = array_samples(images, ds.labels.tolist(), f"stl10_binary/{split}_X.bin")
    return assemble(task, "torchvision-STL10", splits["train"], splits["test"],
                    paper_names(task, len(ds.classes), base, raw=list(ds.classes)))


# --- Flowers102: jpg folder and two .mat files --------------------------------------------

_FLOWERS_FILES = ("imagelabels.mat", "setid.mat")


def _flowers_class():
    from torchvision.datasets import Flowers102

    class LocalFlowers102(Flowers102):
        """torchvision's Flowers102 with the md5 of its two .mat files replaced by a presence check."""

        def _check_integrity(self) -> bool:
            return self._images_folder.is_dir() and all((self._base_folder / f).is_file() for f in _FLOWERS_FILES)

    return LocalFlowers102


def _flowers_detect(root: Path, task: str) -> bool:
    return (root / "flowers-102").is_dir()


def _flowers_load(root: Path, task: str) -> TaskData:
    base = root / "flowers-102"
    _require(task, *(base / f for f in _FLOWERS_FILES))
    if not (base / "jpg").is_dir():
        raise DatasetError(f"{task}: image folder not found: {base / 'jpg'}")
    flowers = _flowers_class()
    splits = {}
    for split in ("train", "test"):  # TALL-masks' (src/datasets/flowers102.py); the official val is unused
        ds = _read(task, base / "setid.mat", lambda: flowers(str(root), split=split, download=False))
        _missing_images(task, base / "setid.mat", ds._image_files)
        splits[split] = file_samples(list(zip(map(str, ds._image_files), ds._labels)), root)
    return assemble(task, "torchvision-Flowers102", splits["train"], splits["test"],
                    paper_names(task, class_count(task), base))


# --- OxfordIIITPet: images and the trainval / test lists ---------------------------------

def _pets_detect(root: Path, task: str) -> bool:
    return (root / "oxford-iiit-pet").is_dir()


def _pets_load(root: Path, task: str) -> TaskData:
    from torchvision.datasets import OxfordIIITPet

    base = root / "oxford-iiit-pet"
    lists = {"train": base / "annotations" / "trainval.txt", "test": base / "annotations" / "test.txt"}
    _require(task, *lists.values())
    if not (base / "images").is_dir():
        raise DatasetError(f"{task}: image folder not found: {base / 'images'}")
    splits, classes = {}, []
    for split, listing in lists.items():
        ds = _read(task, listing, lambda: OxfordIIITPet(str(root), split="trainval" if split == "train" else "test",
                                                       download=False))
        _missing_images(task, listing, ds._images)
        splits[split] = file_samples(list(zip(map(str, ds._images), ds._labels)), root)
        if split == "train":
            classes = list(ds.classes)  # from the trainval ids, as TALL-masks' head reads them
    return assemble(task, "torchvision-OxfordIIITPet", splits["train"], splits["test"],
                    paper_names(task, len(classes), base, raw=classes))


# --- Food101: images and the meta/{train,test}.json lists ---------------------------------

def _food_detect(root: Path, task: str) -> bool:
    return (root / "food-101").is_dir()


def _food_load(root: Path, task: str) -> TaskData:
    from torchvision.datasets import Food101

    base = root / "food-101"
    _require(task, base / "meta" / "train.json", base / "meta" / "test.json")
    if not (base / "images").is_dir():
        raise DatasetError(f"{task}: image folder not found: {base / 'images'}")
    splits, classes = {}, {}
    for split in ("train", "test"):
        listing = base / "meta" / f"{split}.json"
        ds = _read(task, listing, lambda: Food101(str(root), split=split, download=False))
        _missing_images(task, listing, ds._image_files)
        splits[split] = file_samples(list(zip(map(str, ds._image_files), ds._labels)), root)
        classes[split] = list(ds.classes)
    # Each list's labels index its own sorted keys: the two must name the same classes.
    if classes["train"] != classes["test"]:
        differ = sorted(set(classes["train"]) ^ set(classes["test"]))
        raise DatasetError(f"{task}: meta/train.json and meta/test.json name different classes: {differ[:5]}")
    return assemble(task, "torchvision-Food101", splits["train"], splits["test"],
                    paper_names(task, len(classes["train"]), base, raw=classes["train"]))


# --- RenderedSST2: class folders of .png ----------------------------------------------------

def _sst2_detect(root: Path, task: str) -> bool:
    return (root / "rendered-sst2").is_dir()


def _sst2_load(root: Path, task: str) -> TaskData:
    from torchvision.datasets import RenderedSST2

    base = root / "rendered-sst2"
    splits = {}
    for split in ("train", "test"):
        for label in ("negative", "positive"):
            if not (base / split / label).is_dir():
                raise DatasetError(f"{task}: class folder not found: {base / split / label}")
        ds = _read(task, base / split, lambda: RenderedSST2(str(root), split=split, download=False))
        splits[split] = file_samples(ds._samples, root)
    return assemble(task, "torchvision-RenderedSST2", splits["train"], splits["test"],
                    paper_names(task, len(ds.classes), base, raw=list(ds.classes)))


# --- FashionMNIST, KMNIST, EMNIST: idx files as MNIST's ------------------------------------

_IDX = {
    # task: (folder under the root, {split: file prefix})
    "FashionMNIST": ("FashionMNIST/raw", {"train": "train", "test": "t10k"}),
    "KMNIST": ("KMNIST/raw", {"train": "train", "test": "t10k"}),
    "EMNIST": ("EMNIST/raw", {"train": "emnist-digits-train", "test": "emnist-digits-test"}),
}


def _idx_file(task: str, raw: Path, name: str) -> Path:
    """``name`` in ``raw``, decompressed or as downloaded (``.gz``)."""
    for path in (raw / name, raw / f"{name}.gz"):
        if path.is_file():
            return path
    raise DatasetError(f"{task}: {raw / name} not found (nor {name}.gz)")


def _idx_detect(root: Path, task: str) -> bool:
    return (root / _IDX[task][0]).is_dir()


def _idx_load(root: Path, task: str) -> TaskData:
    folder, prefixes = _IDX[task]
    raw = root / folder
    splits = {}
    for split, prefix in prefixes.items():
        images_path = _idx_file(task, raw, f"{prefix}-images-idx3-ubyte")
        labels_path = _idx_file(task, raw, f"{prefix}-labels-idx1-ubyte")
        images, labels = read_idx(images_path, task), read_idx(labels_path, task)
        if len(labels) != len(images):
            raise DatasetError(f"{task}: {labels_path} holds {len(labels)} labels for {len(images)} images")
        # The key names the decompressed file, so a .gz copy and its contents fingerprint alike.
        splits[split] = array_samples(images, labels.astype(np.int64).tolist(),
                                      f"{folder}/{prefix}-images-idx3-ubyte")
    return assemble(task, f"torchvision-{task}", splits["train"], splits["test"],
                    paper_names(task, class_count(task), raw.parent))


# --- FER2013: one CSV of 48 x 48 grey faces ----------------------------------------------------

_FER_USAGE = {"train": ("Training",), "test": ("PublicTest", "PrivateTest")}  # torchvision's FER2013


def _fer_detect(root: Path, task: str) -> bool:
    return (root / "fer2013").is_dir()


def _fer_load(root: Path, task: str) -> TaskData:
    base = root / "fer2013"
    # torchvision's precedence: fer2013.csv, then icml_face_data.csv (the same rows, columns with a space).
    for name, pixels, usage in (("fer2013.csv", "pixels", "Usage"), ("icml_face_data.csv", " pixels", " Usage")):
        path = base / name
        if path.is_file():
            break
    else:
        kaggle = " (train.csv and test.csv hold no test labels)" if (base / "train.csv").is_file() else ""
        raise DatasetError(f"{task}: {base / 'fer2013.csv'} not found (nor icml_face_data.csv){kaggle}; copy "
                           "fer2013.csv from the Kaggle FER2013 challenge's data")
    rows: dict[str, list[tuple[int, np.ndarray, int]]] = {"train": [], "test": []}
    split_of = {u: s for s, usages in _FER_USAGE.items() for u in usages}
    with open(path, newline="") as fh:
        for line_no, row in enumerate(csv.DictReader(fh), start=2):
            try:
                split = split_of.get(row[usage])
                if split is None:
                    continue
                face = np.array(row[pixels].split(), dtype=np.uint8).reshape(48, 48)
                rows[split].append((line_no, face, int(row["emotion"])))
            except (KeyError, ValueError, TypeError) as exc:
                raise DatasetError(f"{task}: {path} line {line_no} is not an emotion, pixels, Usage row of "
                                   f"48 x 48 values ({type(exc).__name__}: {exc})") from None
    splits = {}
    for split, items in rows.items():
        faces = np.stack([face for _, face, _ in items]) if items else np.zeros((0, 48, 48), np.uint8)
        key = f"fer2013/{name}"
        # Keyed by the CSV line, the row's identity in the file whichever split it is in.
        splits[split] = [Sample(faces[i], label, case=f"{key}#{line}", key=f"{key}#{line}")
                         for i, (line, _, label) in enumerate(items)]
    return assemble(task, "torchvision-FER2013", splits["train"], splits["test"],
                    paper_names(task, class_count(task), base),
                    notes="test: the PublicTest and PrivateTest rows, as torchvision's FER2013 reads them")


# --- PCAM: HDF5, recognised but not read ---------------------------------------------------------

def _pcam_detect(root: Path, task: str) -> bool:
    return (root / "pcam").is_dir()


def _pcam_load(root: Path, task: str) -> TaskData:
    raise DatasetError(f"{task}: {root / 'pcam'} holds camelyonpatch_level_2_split_*.h5 files, which tvcore does "
                       "not read (HDF5 needs h5py, not a tvcore dependency)")


READERS = (
    *(Reader(f"torchvision-{task}", (task,), f"<root>/{folder}/ (torchvision {task}, the python version)",
             _cifar_py_detect, _cifar_py_load) for task, (folder, *_) in _CIFAR_PY.items()),
    Reader("cifar-binary-CIFAR10", ("CIFAR10",),
           "<root>/cifar-10-batches-bin/ (the CIFAR-10 binary version)", _cifar_detect, _cifar_load),
    Reader("cifar-binary-CIFAR100", ("CIFAR100",),
           "<root>/cifar-100-binary/ (the CIFAR-100 binary version)", _cifar_detect, _cifar_load),
    Reader("torchvision-STL10", ("STL10",), "<root>/stl10_binary/ (torchvision STL10)", _stl10_detect, _stl10_load),
    Reader("torchvision-Flowers102", ("Flowers102",), "<root>/flowers-102/ (torchvision Flowers102)",
           _flowers_detect, _flowers_load),
    Reader("torchvision-OxfordIIITPet", ("OxfordIIITPet",), "<root>/oxford-iiit-pet/ (torchvision OxfordIIITPet)",
           _pets_detect, _pets_load),
    Reader("torchvision-Food101", ("Food101",), "<root>/food-101/ (torchvision Food101)", _food_detect, _food_load),
    Reader("torchvision-RenderedSST2", ("RenderedSST2",), "<root>/rendered-sst2/ (torchvision RenderedSST2)",
           _sst2_detect, _sst2_load),
    *(Reader(f"torchvision-{task}", (task,), f"<root>/{folder}/ (torchvision {task})", _idx_detect, _idx_load)
      for task, (folder, _) in _IDX.items()),
    Reader("torchvision-FER2013", ("FER2013",), "<root>/fer2013/fer2013.csv (torchvision FER2013)",
           _fer_detect, _fer_load),
    Reader("torchvision-PCAM", ("PCAM",), "<root>/pcam/ (torchvision PCAM; not read: needs h5py)",
           _pcam_detect, _pcam_load),
)
