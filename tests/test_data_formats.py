"""The paper's tasks and ImageNet read from the formats users hold: each format's real
files, generated small in the exact layout, load with the paper's classes and splits."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fixtures import fake_trees as ft
from tvcore import DatasetError, data
from tvcore.data import formats, prompts

N = 2  # images per class and split unit of the generators (see fake_trees.write_task)

# (task, format) -> (reader, classes, train, val, test) with images_per_class = N
CASES = {
    ("MNIST", "torchvision"): ("torchvision-MNIST", 10, 36, 4, 20),
    ("SVHN", "torchvision"): ("torchvision-SVHN", 10, 36, 4, 20),
    ("GTSRB", "torchvision"): ("torchvision-GTSRB", 43, 155, 17, 86),
    ("Cars", "torchvision"): ("torchvision-StanfordCars", 3, 11, 1, 6),
    ("DTD", "torchvision"): ("torchvision-DTD", 3, 11, 1, 6),  # train1 + val1 merged, test1
    ("EuroSAT", "torchvision"): ("torchvision-EuroSAT", 10, 416, 52, 52),  # tvcore's 80/10/10
    ("SUN397", "torchvision"): ("torchvision-SUN397", 3, 11, 1, 12),
    ("DTD", "paper-splits"): ("paper-splits", 3, 11, 1, 6),  # the val folder is the test set
    ("EuroSAT", "paper-splits"): ("paper-splits", 10, 40, 20, 20),  # a fixed val folder
    ("SUN397", "paper-splits"): ("paper-splits", 3, 11, 1, 6),
    ("RESISC45", "paper-splits"): ("paper-splits", 45, 162, 18, 90),
    ("GTSRB", "generic"): ("generic", 43, 155, 17, 86),
}


@pytest.mark.parametrize("task,fmt", sorted(CASES))
def test_each_format_loads_with_its_reader_classes_and_split_sizes(tmp_path, task, fmt):
    ft.write_task(tmp_path, task, fmt, images_per_class=N)
    reader, classes, n_train, n_val, n_test = CASES[task, fmt]
    loaded = data.load(task, root=tmp_path)
    assert loaded.reader == reader
    assert loaded.num_classes == classes
    assert [len(loaded[s]) for s in ("train", "val", "test")] == [n_train, n_val, n_test]
    assert loaded.templates == list(prompts.templates(task))
    loaded.check_no_case_leak()


def test_imagenet_standard_layout_maps_sorted_wnids_to_the_paper_names(tmp_path):
    ft.write_imagenet(tmp_path, train_per_class=1, val_per_class=1)
    task = data.load("ImageNet", root=tmp_path)
    assert task.reader == "imagenet" and task.num_classes == 1000
    assert [len(task[s]) for s in ("train", "val", "test")] == [900, 100, 1000]
    assert task.class_names == list(prompts.classnames("ImageNet"))
    first = min(task["test"].samples, key=lambda s: s.label)
    assert first.label == 0 and first.key.startswith("imagenet/val/n01440764/")


def test_imagenet_class_folders_must_be_wnids(tmp_path):
    ft.write_imagenet(tmp_path, classes=2)
    (tmp_path / "imagenet" / "train" / "n01440764").rename(tmp_path / "imagenet" / "train" / "tench")
    with pytest.raises(DatasetError, match=r"imagenet/train/tench is not a WordNet id folder"):
        data.load("ImageNet", root=tmp_path)


def test_a_partial_copy_of_a_fixed_list_task_is_named(tmp_path):
    ft.write_imagenet(tmp_path, classes=3, subset=False)
    with pytest.raises(DatasetError, match=r"ImageNet: found 3 of ImageNet's 1000 classes under .*; copy the whole"):
        data.load("ImageNet", root=tmp_path)


def test_class_names_are_cleaned_from_the_datasets_own_identifiers(tmp_path):
    ft.write_stanford_cars(tmp_path)
    ft.write_sun397_torchvision(tmp_path)
    ft.write_paper_splits(tmp_path, "EuroSAT")
    assert data.load("Cars", root=tmp_path).class_names == ft.CARS_CLASSES  # from cars_meta.mat
    assert data.load("SUN397", root=tmp_path).class_names == ["abbey", "apartment building outdoor",
                                                               "bamboo forest"]
    assert data.load("EuroSAT", root=tmp_path).class_names == list(prompts.classnames("EuroSAT"))


def _owner(array: np.ndarray) -> np.ndarray:
    """The array that owns a view's memory."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def test_mnist_samples_are_rows_of_one_array_matching_the_idx_file(tmp_path):
    ft.write_mnist_idx(tmp_path)
    test = data.load("MNIST", root=tmp_path)["test"]
    raw = (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()
    labels = np.frombuffer((tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").read_bytes()[8:], np.uint8)
    pixels = np.frombuffer(raw[16:], np.uint8).reshape(-1, 28, 28)
    assert len({id(_owner(s.source)) for s in test.samples}) == 1
    assert test.labels == labels.tolist()
    assert np.array_equal(test.samples[5].source, pixels[5])
    assert test.samples[5].key == "MNIST/raw/t10k-images-idx3-ubyte#5"


def test_svhn_rows_are_views_and_label_10_is_the_digit_0(tmp_path):
    import scipy.io

    ft.write_svhn_mat(tmp_path)
    test = data.load("SVHN", root=tmp_path)["test"]
    mat = scipy.io.loadmat(tmp_path / "svhn" / "test_32x32.mat")
    assert test.labels == [0 if y == 10 else int(y) for y in mat["y"].ravel()]
    assert 0 in test.labels
    assert len({id(_owner(s.source)) for s in test.samples}) == 1
    assert np.array_equal(test.samples[3].source, mat["X"][..., 3])
    assert test.samples[3].load().size == (32, 32)


def test_images_in_files_are_not_decoded_while_loading(tmp_path, monkeypatch):
    ft.make_paper_tasks_tree(tmp_path, images_per_class=N, formats={"ImageNet": "generic"})
    import PIL.Image

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was opened while loading")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    for task in ("GTSRB", "Cars", "DTD", "EuroSAT", "SUN397", "RESISC45"):
        assert all(isinstance(s.source, str) for s in data.load(task, root=tmp_path)["test"].samples)


def test_the_paper_validation_rule_is_torch_random_split_seeded_0():
    # The paper's registry asserts this of MNISTVal (src/datasets/registry.py).
    train_idx, val_idx = formats.validation_indices(60_000)
    assert train_idx[0] == 36044 and len(val_idx) == 5000 and len(train_idx) == 55_000


def test_fixed_validation_folder_is_used_as_is(tmp_path):
    ft.write_paper_splits(tmp_path, "EuroSAT")
    val = data.load("EuroSAT", root=tmp_path)["val"]
    assert all(s.key.startswith("EuroSAT_splits/val/") for s in val.samples)


def test_dtd_with_a_test_folder_reads_val_as_validation(tmp_path):
    ft.write_paper_splits(tmp_path, "DTD")
    shutil.copytree(tmp_path / "dtd" / "val", tmp_path / "dtd" / "test")
    task = data.load("DTD", root=tmp_path)
    assert all(s.key.startswith("dtd/val/") for s in task["val"].samples)
    assert all(s.key.startswith("dtd/test/") for s in task["test"].samples)


def test_paper_two_folder_dtd_tests_on_its_val_folder(tmp_path):
    ft.write_paper_splits(tmp_path, "DTD")
    task = data.load("DTD", root=tmp_path)
    assert all(s.key.startswith("dtd/val/") for s in task["test"].samples)
    assert all(s.key.startswith("dtd/train/") for s in task["val"].samples)


def test_published_formats_are_tried_before_the_generic_layout(tmp_path):
    ft.write_task(tmp_path, "MNIST", "generic")
    assert data.load("MNIST", root=tmp_path).reader == "generic"
    ft.write_mnist_idx(tmp_path)
    assert data.load("MNIST", root=tmp_path).reader == "torchvision-MNIST"


def test_selection_follows_the_reader_order(tmp_path):
    ft.write_paper_splits(tmp_path, "DTD")
    assert data.load("DTD", root=tmp_path).reader == "paper-splits"
    ft.write_dtd_torchvision(tmp_path)
    assert data.load("DTD", root=tmp_path).reader == "torchvision-DTD"
    order = [r.name for r in data.readers_for("DTD")]
    assert order == ["torchvision-DTD", "paper-splits", "generic"]


@pytest.mark.parametrize("task", [*data.PAPER_TASKS, data.CONTROL_TASK])
def test_a_root_without_any_layout_is_one_line_naming_what_each_reader_looked_for(tmp_path, task):
    with pytest.raises(DatasetError) as info:
        data.load(task, root=tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{task}: no known layout under {tmp_path}")
    for reader in data.readers_for(task):
        assert reader.looks_for in message


def test_a_data_root_that_is_a_file_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DatasetError, match=r"MNIST: data root .*f is not a folder"):
        data.load("MNIST", root=tmp_path / "f")


@pytest.mark.parametrize("task,fmt,folder", [
    ("DTD", "paper-splits", "dtd/train/blotchy"),
    ("GTSRB", "torchvision", "gtsrb/GTSRB/Training/00007"),
    ("EuroSAT", "torchvision", "eurosat/2750/Forest"),
    ("RESISC45", "generic", "RESISC45/test/beach"),
])
def test_an_empty_class_folder_is_an_error_naming_it(tmp_path, task, fmt, folder):
    ft.write_task(tmp_path, task, fmt, images_per_class=1)
    for image in (tmp_path / folder).iterdir():
        if image.suffix != ".csv":  # GTSRB keeps its per-class CSV
            image.unlink()
    with pytest.raises(DatasetError, match=f"class folder {tmp_path / folder} holds no"):
        data.load(task, root=tmp_path)


def test_gtsrb_without_its_test_csv_is_named(tmp_path):
    ft.write_gtsrb(tmp_path, 1, 1)
    (tmp_path / "gtsrb" / "GT-final_test.csv").unlink()
    with pytest.raises(DatasetError, match=r"GTSRB: test labels not found: .*GT-final_test.csv"):
        data.load("GTSRB", root=tmp_path)


def test_a_label_outside_the_classes_is_named(tmp_path):
    ft.write_gtsrb(tmp_path, 1, 1)
    csv = tmp_path / "gtsrb" / "GT-final_test.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].rsplit(";", 1)[0] + ";43"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"GTSRB: test sample gtsrb/GTSRB/Final_Test/Images/00000.ppm has label 43"):
        data.load("GTSRB", root=tmp_path)


def test_sun397_archive_without_partition_lists_says_what_to_add(tmp_path):
    ft.write_sun397_torchvision(tmp_path, partitions=False)
    with pytest.raises(DatasetError, match=r"Training_01.txt not found: the paper trains and tests on"):
        data.load("SUN397", root=tmp_path)


def test_resisc45_list_naming_a_missing_image_is_named(tmp_path):
    ft.write_paper_splits(tmp_path, "RESISC45", images_per_class=1)
    (tmp_path / "resisc45" / "NWPU-RESISC45" / "airplane" / "airplane_001.jpg").unlink()
    with pytest.raises(DatasetError, match=r"resisc45-train.txt lists 1 images not under .*e.g. airplane_001.jpg"):
        data.load("RESISC45", root=tmp_path)


def test_dtd_lists_naming_missing_images_are_named(tmp_path):
    ft.write_dtd_torchvision(tmp_path)
    (tmp_path / "dtd" / "dtd" / "images" / "banded" / "banded_0003.jpg").unlink()
    with pytest.raises(DatasetError, match=r"DTD: .*test1.txt lists 1 images that are not there"):
        data.load("DTD", root=tmp_path)


@pytest.fixture(scope="module")
def paper_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper-tasks")
    return root, ft.make_paper_tasks_tree(root, images_per_class=N)


def test_make_paper_tasks_tree_writes_every_task_in_the_promised_format(paper_tree):
    root, expected = paper_tree
    assert set(expected) == {*data.PAPER_TASKS, data.CONTROL_TASK}
    assert len(set(expected.values())) >= 7  # the formats vary
    for task, reader in expected.items():
        assert data.load(task, root=root).reader == reader


def test_fingerprints_are_the_same_for_the_same_data_at_another_path(paper_tree, tmp_path):
    root, _ = paper_tree
    copy = tmp_path / "elsewhere"
    shutil.copytree(root, copy)
    first, again, moved = data.summary("paper-tasks", root), data.summary("paper-tasks", root), \
        data.summary("paper-tasks", copy)
    assert first == again == moved
    assert all("error" not in entry for entry in first.values())


def test_summary_gives_reader_sizes_fingerprints_classes_and_prompts(paper_tree):
    root, expected = paper_tree
    entry = data.summary("Cars", root)["Cars"]
    task = data.load("Cars", root=root)
    assert entry["reader"] == expected["Cars"] and entry["classes"] == 3
    assert entry["images"] == {"train": 11, "val": 1, "test": 6}
    assert entry["fingerprints"]["test"] == task["test"].fingerprint()
    assert entry["prompt_fingerprint"] == prompts.prompt_fingerprint(task.class_names, task.templates)


def test_summary_of_all_tasks_reports_a_missing_one_in_its_entry(tmp_path):
    ft.write_mnist_idx(tmp_path)
    out = data.summary("paper-tasks", tmp_path)
    assert out["MNIST"]["reader"] == "torchvision-MNIST"
    assert out["Cars"]["error"].startswith("Cars: no known layout under")


def test_fake_trees_command_writes_a_format(tmp_path, capsys):
    assert ft.main(["SVHN", str(tmp_path), "--format", "torchvision"]) == 0
    assert data.load("SVHN", root=tmp_path).reader == "torchvision-SVHN"
