"""The 14- and 20-task sets' added tasks read from their published formats: each
format's real files, generated small in the exact layout, load with every class,
the cited class names and templates, the official train/test split, the paper's
validation rule, and labels in the order torchvision gives them."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures import extended_trees as et
from tvcore import DatasetError, data
from tvcore.data import prompts, vision_tasks
from tvcore.data.completeness import check_complete
from tvcore.data.formats import validation_indices

# task -> (reader, classes, train, val, test) at the generators' default sizes
CASES = {
    "CIFAR10": ("cifar-binary-CIFAR10", 10, 18, 2, 10),
    "CIFAR100": ("cifar-binary-CIFAR100", 100, 90, 10, 100),
    "STL10": ("torchvision-STL10", 10, 18, 2, 10),
    "Flowers102": ("torchvision-Flowers102", 102, 92, 10, 102),  # trnid; the official valid is unused
    "OxfordIIITPet": ("torchvision-OxfordIIITPet", 37, 34, 3, 37),
    "Food101": ("torchvision-Food101", 101, 91, 10, 101),
    "RenderedSST2": ("torchvision-RenderedSST2", 2, 9, 1, 4),
    "FashionMNIST": ("torchvision-FashionMNIST", 10, 18, 2, 10),
    "KMNIST": ("torchvision-KMNIST", 10, 18, 2, 10),
    "EMNIST": ("torchvision-EMNIST", 10, 18, 2, 10),
    "FER2013": ("torchvision-FER2013", 7, 13, 1, 14),  # test: PublicTest + PrivateTest rows
}


def _load(root, task):
    """A task as the registry reads it: the first matching reader, then the completeness check."""
    return check_complete(data.pick_reader(task, root).load(root, task), root)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """Every added task written once, each under its own root: task -> (root, labels per split)."""
    out = {}
    for task in CASES:
        root = tmp_path_factory.mktemp(task)
        out[task] = (root, et.write_extended_task(root, task))
    return out


def test_the_task_sets_are_the_papers_eight_plus_tall_masks_additions():
    assert vision_tasks.TASKS_14[:8] == vision_tasks.PAPER_TASKS
    assert vision_tasks.TASKS_14[8:] == ("STL10", "OxfordIIITPet", "Flowers102", "CIFAR100", "PCAM", "FER2013")
    assert vision_tasks.TASKS_20[14:] == ("CIFAR10", "Food101", "FashionMNIST", "RenderedSST2", "EMNIST", "KMNIST")
    assert set(vision_tasks.EXTENDED_TASKS) == set(prompts.EXTENDED_TASKS) == set(CASES) | {"PCAM"}


@pytest.mark.parametrize("task", sorted(CASES))
def test_each_task_loads_with_its_reader_classes_and_split_sizes(trees, task):
    root, _ = trees[task]
    reader, classes, n_train, n_val, n_test = CASES[task]
    loaded = _load(root, task)
    assert loaded.reader == reader
    assert loaded.num_classes == classes
    assert [len(loaded[s]) for s in ("train", "val", "test")] == [n_train, n_val, n_test]
    loaded.check_no_case_leak()


@pytest.mark.parametrize("task", sorted(CASES))
def test_each_task_has_the_cited_class_names_and_templates(trees, task):
    root, _ = trees[task]
    loaded = _load(root, task)
    assert loaded.class_names == prompts.classnames(task)
    assert loaded.templates == prompts.templates(task)


@pytest.mark.parametrize("task", sorted(CASES))
def test_labels_follow_the_files_order_with_the_papers_validation_rule(trees, task):
    root, written = trees[task]
    loaded = _load(root, task)
    assert loaded["test"].labels == written["test"]
    train_idx, val_idx = validation_indices(len(written["train"]))
    assert loaded["train"].labels == [written["train"][i] for i in sorted(train_idx)]
    assert loaded["val"].labels == [written["train"][i] for i in sorted(val_idx)]


@pytest.mark.parametrize("task", ["FashionMNIST", "KMNIST", "EMNIST"])
def test_idx_tasks_match_torchvisions_own_reader(trees, task):
    import torchvision.datasets as tvd

    root, _ = trees[task]
    kwargs = {"split": "digits"} if task == "EMNIST" else {}
    theirs = getattr(tvd, task)(str(root), train=False, download=False, **kwargs)
    ours = _load(root, task)["test"]
    assert ours.labels == theirs.targets.tolist()
    assert np.array_equal(ours.samples[3].source, theirs.data[3].numpy())
    assert prompts.classnames(task) == list(theirs.classes)


def test_idx_files_as_downloaded_read_the_same_as_decompressed(tmp_path):
    et.write_idx_task(tmp_path / "plain", "KMNIST")
    et.write_idx_task(tmp_path / "gz", "KMNIST", gz=True)
    plain, packed = _load(tmp_path / "plain", "KMNIST"), _load(tmp_path / "gz", "KMNIST")
    assert data.describe(plain)["fingerprints"] == data.describe(packed)["fingerprints"]


def test_cifar_images_are_the_records_pixel_planes_as_rows_of_32(trees):
    root, _ = trees["CIFAR10"]
    record = (root / "cifar-10-batches-bin" / "test_batch.bin").read_bytes()[:3073]
    sample = _load(root, "CIFAR10")["test"].samples[0]
    planes = np.frombuffer(record[1:], np.uint8).reshape(3, 32, 32)
    assert sample.label == record[0]
    assert np.array_equal(sample.source, planes.transpose(1, 2, 0))
    assert sample.key == "cifar-10-batches-bin/test_batch.bin#0"


@pytest.mark.parametrize("task,size", [("CIFAR10", (18, 2, 10)), ("CIFAR100", (180, 20, 100))])
def test_cifar_python_version_is_read_first_with_the_same_classes_and_order(tmp_path, task, size):
    written = et.write_cifar_python(tmp_path, task)
    loaded = _load(tmp_path, task)
    assert loaded.reader == f"torchvision-{task}"
    assert loaded.class_names == prompts.classnames(task)
    assert [len(loaded[s]) for s in ("train", "val", "test")] == list(size)
    assert loaded["test"].labels == written["test"]
    assert [r.name for r in data.readers_for(task)] == [f"torchvision-{task}", f"cifar-binary-{task}"]


def test_cifar_python_rows_equal_what_pickle_itself_reads_from_the_file(tmp_path):
    import pickle

    et.write_cifar_python(tmp_path, "CIFAR10")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    # The test wrote this file itself; pickle (as torchvision runs it) checks the hand-written opcodes.
    theirs = pickle.loads(path.read_bytes(), encoding="latin1")
    ours = _load(tmp_path, "CIFAR10")["test"]
    assert ours.labels == theirs["labels"]
    assert np.array_equal(ours.samples[4].source, theirs["data"][4].reshape(3, 32, 32).transpose(1, 2, 0))
    assert ours.samples[4].key == "cifar-10-batches-py/test_batch#4"


def test_a_cifar_pickle_that_would_run_code_runs_nothing_and_is_named(tmp_path):
    et.write_cifar_python(tmp_path, "CIFAR10")
    marker = tmp_path / "ran"
    command = f"touch {marker}".encode()
    evil = (b"\x80\x02}(U\x04data" + b"cos\nsystem\n" + b"U" + bytes([len(command)]) + command
            + b"\x85R" + b"U\x06labels](K\x01eu.")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(evil)
    with pytest.raises(DatasetError, match=r"CIFAR10: .*test_batch: 'data' is not a pickled numpy array"):
        _load(tmp_path, "CIFAR10")
    assert not marker.exists()


def test_cifar100_reads_the_fine_label_not_the_coarse_one(trees):
    root, _ = trees["CIFAR100"]
    record = (root / "cifar-100-binary" / "test.bin").read_bytes()[:3074]
    assert record[0] != record[1]  # the generator's coarse byte is fine // 5
    assert _load(root, "CIFAR100")["test"].labels[0] == record[1]


def test_stl10_images_are_upright_rows_of_the_column_major_planes(trees):
    root, _ = trees["STL10"]
    planes = np.fromfile(root / "stl10_binary" / "test_X.bin", np.uint8).reshape(-1, 3, 96, 96)
    ours = _load(root, "STL10")["test"]
    # Each plane is stored column by column: plane[c][w][h] is the pixel at row h, column w.
    assert np.array_equal(ours.samples[2].source, planes[2].transpose(2, 1, 0))
    assert ours.samples[2].load().size == (96, 96)


def test_pet_class_names_are_torchvisions_from_the_image_ids(trees):
    from torchvision.datasets import OxfordIIITPet

    root, _ = trees["OxfordIIITPet"]
    assert list(OxfordIIITPet(str(root), split="trainval").classes) == prompts.classnames("OxfordIIITPet")


def test_food101_labels_index_the_sorted_class_names(trees):
    root, _ = trees["Food101"]
    loaded = _load(root, "Food101")
    names = prompts.classnames("Food101")
    assert names == sorted(names) and names.index("cheese_plate") < names.index("cheesecake")
    first = loaded["test"].samples[0]
    assert first.key.startswith("food-101/images/apple_pie/") and first.label == 0


def test_fer2013_icml_copy_reads_as_the_kaggle_csv(tmp_path):
    a = et.write_fer2013_csv(tmp_path / "fer", seed=3)
    b = et.write_fer2013_csv(tmp_path / "icml", seed=3, icml=True)
    assert a == b
    fer, icml = _load(tmp_path / "fer", "FER2013"), _load(tmp_path / "icml", "FER2013")
    assert fer["test"].labels == icml["test"].labels == a["test"]
    assert np.array_equal(fer["test"].samples[0].source, icml["test"].samples[0].source)


def test_fer2013_kaggle_pair_without_test_labels_is_refused_by_name(tmp_path):
    (tmp_path / "fer2013").mkdir()
    (tmp_path / "fer2013" / "train.csv").write_text("emotion,pixels\n")
    with pytest.raises(DatasetError, match=r"fer2013.csv not found .*train.csv and test.csv hold no test labels"):
        _load(tmp_path, "FER2013")


def test_pcam_layout_is_named_and_refused_in_one_line(tmp_path):
    (tmp_path / "pcam").mkdir()
    with pytest.raises(DatasetError, match=r"PCAM: .*pcam holds camelyonpatch_level_2_split_\*.h5 files, which "
                                           r"tvcore does not read \(HDF5 needs h5py"):
        _load(tmp_path, "PCAM")


MISSING = [
    ("CIFAR10", "cifar-10-batches-bin/data_batch_3.bin", "not found"),
    ("CIFAR100", "cifar-100-binary/fine_label_names.txt", "not found"),
    ("CIFAR10-python", "cifar-10-batches-py/batches.meta", "not found"),
    ("STL10", "stl10_binary/test_y.bin", "not found"),
    ("Flowers102", "flowers-102/setid.mat", "not found"),
    ("Flowers102", "flowers-102/jpg/image_00005.jpg", "lists 1 images that are not there, e.g."),
    ("OxfordIIITPet", "oxford-iiit-pet/annotations/test.txt", "not found"),
    ("Food101", "food-101/meta/test.json", "not found"),
    ("Food101", "food-101/images/apple_pie/1001.jpg", "lists 1 images that are not there, e.g."),
    ("RenderedSST2", "rendered-sst2/test/positive", "class folder not found:"),
    ("FashionMNIST", "FashionMNIST/raw/t10k-labels-idx1-ubyte", "not found"),
    ("KMNIST", "KMNIST/raw/train-images-idx3-ubyte", "not found"),
    ("EMNIST", "EMNIST/raw/emnist-digits-test-images-idx3-ubyte", "not found"),
    ("FER2013", "fer2013/fer2013.csv", "not found"),
]


@pytest.mark.parametrize("task,rel,says", MISSING, ids=[rel for _, rel, _ in MISSING])
def test_a_missing_file_is_one_line_naming_it(tmp_path, task, rel, says):
    if task == "CIFAR10-python":
        task = "CIFAR10"
        et.write_cifar_python(tmp_path, task)
    else:
        et.write_extended_task(tmp_path, task)
    path = tmp_path / rel
    if path.is_dir():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    else:
        path.unlink()
    with pytest.raises(DatasetError) as info:
        _load(tmp_path, task)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{task}: ")
    assert str(path) in message and says in message


def test_a_truncated_cifar_batch_is_named(tmp_path):
    et.write_cifar10_binary(tmp_path)
    batch = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    batch.write_bytes(batch.read_bytes()[:-5])
    with pytest.raises(DatasetError, match=r"CIFAR10: .*test_batch.bin holds 30725 bytes, not whole 3073-byte"):
        _load(tmp_path, "CIFAR10")


def test_a_partial_copy_is_refused_by_the_completeness_check(tmp_path):
    et.write_fer2013_csv(tmp_path)
    csv = tmp_path / "fer2013" / "fer2013.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], *(line for line in lines[1:] if not line.startswith("6,"))]) + "\n")
    with pytest.raises(DatasetError, match=r"FER2013: the training images hold none of 1 of its 7 classes \(neutral\)"):
        _load(tmp_path, "FER2013")


def test_a_root_without_the_layout_names_what_was_looked_for(tmp_path):
    with pytest.raises(DatasetError, match=r"CIFAR100: no known layout under .*cifar-100-binary/ \(the CIFAR-100 "
                                           r"binary version\)"):
        _load(tmp_path, "CIFAR100")
