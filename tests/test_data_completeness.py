"""A copy of a paper task is whole, or a declared subset, or refused in one line that
names what is missing; common wrong layouts get a hint that says how to fix them."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from fixtures import fake_trees as ft
from tvcore import DatasetError, data
from tvcore.data import prompts


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ class counts

@pytest.mark.parametrize("task,count", [("Cars", 196), ("DTD", 47), ("EuroSAT", 10), ("GTSRB", 43), ("MNIST", 10),
                                        ("RESISC45", 45), ("SUN397", 397), ("SVHN", 10), ("ImageNet", 1000)])
def test_each_paper_task_knows_its_class_count(task, count):
    assert prompts.class_count(task) == count


def test_dtd_identifiers_are_its_47_sorted_folder_names():
    names = prompts.all_classnames("DTD")
    assert len(set(names)) == 47 and names == sorted(names) and "polka-dotted" in names


def test_a_partial_dtd_copy_is_refused_naming_the_missing_classes(tmp_path):
    ft.write_paper_splits(tmp_path, "DTD")  # banded, blotchy, zigzagged
    (tmp_path / data.SUBSETS_FILE).unlink()  # as a user's partial copy: nothing declared
    with pytest.raises(DatasetError) as err:
        data.load("DTD", root=tmp_path)
    message = one_line(err)
    assert message.startswith("DTD: found 3 of DTD's 47 classes under ")
    assert "(missing: braided, bubbly, bumpy, chequered, cobwebbed and 39 more)" in message
    assert f'{{"DTD": 3}} in {tmp_path / data.SUBSETS_FILE}' in message


def test_a_partial_sun397_copy_is_refused_with_its_count(tmp_path):
    ft.write_paper_splits(tmp_path, "SUN397")
    (tmp_path / data.SUBSETS_FILE).unlink()
    with pytest.raises(DatasetError, match=r"SUN397: found 3 of SUN397's 397 classes under .*; copy the whole"):
        data.load("SUN397", root=tmp_path)


def test_a_partial_fixed_list_copy_names_the_missing_classes(tmp_path):
    ft.make_vision_task_tree(tmp_path, "MNIST", [str(d) for d in range(5)], subset=False)
    with pytest.raises(DatasetError, match=r"MNIST: found 5 of MNIST's 10 classes .*\(missing: 5, 6, 7, 8, 9\)"):
        data.load("MNIST", root=tmp_path)


def test_a_declared_subset_loads_and_its_notes_say_so(tmp_path):
    ft.write_paper_splits(tmp_path, "DTD")
    assert json.loads((tmp_path / data.SUBSETS_FILE).read_text()) == {"DTD": 3}
    task = data.load("DTD", root=tmp_path)
    assert task.num_classes == 3 and "a deliberate subset: 3 of DTD's 47 classes" in task.notes


def test_a_subset_declared_with_another_count_is_refused(tmp_path):
    ft.write_paper_splits(tmp_path, "DTD")
    (tmp_path / data.SUBSETS_FILE).write_text('{"DTD": 4}')
    with pytest.raises(DatasetError, match=r"DTD: found 3 classes under .*, but .*tvcore-subsets.json declares "
                                           r"a subset of 4"):
        data.load("DTD", root=tmp_path)


def test_a_malformed_subsets_file_is_one_line(tmp_path):
    ft.write_paper_splits(tmp_path, "DTD")
    (tmp_path / data.SUBSETS_FILE).write_text('{"DTD": "three"}')
    with pytest.raises(DatasetError) as err:
        data.load("DTD", root=tmp_path)
    assert "must map task names to class counts" in one_line(err)


# ------------------------------------------------------------------ splits

def test_an_empty_validation_split_is_refused(tmp_path):
    ft.make_vision_task_tree(tmp_path, "DTD", ["banded", "blotchy", "zigzagged"], train_per_class=3)
    with pytest.raises(DatasetError) as err:
        data.load("DTD", root=tmp_path)
    assert one_line(err).startswith("DTD: the validation split is empty") and "9 training images" in str(err.value)


def test_a_class_missing_from_the_test_images_is_named(tmp_path):
    ft.write_sun397_torchvision(tmp_path)
    listing = tmp_path / "SUN397" / "Testing_01.txt"
    listing.write_text("".join(line + "\n" for line in listing.read_text().splitlines()
                               if not line.startswith("/b/bamboo_forest/")))
    with pytest.raises(DatasetError, match=r"SUN397: the test images hold none of 1 of its 3 classes "
                                           r"\(bamboo forest\)"):
        data.load("SUN397", root=tmp_path)


# ------------------------------------------------------------------ hints for wrong layouts

def test_a_flat_imagenet_val_folder_says_how_to_sort_it(tmp_path):
    ft.write_imagenet(tmp_path, classes=3)
    val = tmp_path / "imagenet" / "val"
    for image in sorted(val.glob("*/*.JPEG")):
        image.rename(val / image.name)
        image.parent.rmdir()
    devkit = tmp_path / "imagenet" / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("490\n361\n171\n")
    with pytest.raises(DatasetError) as err:
        data.load("ImageNet", root=tmp_path)
    message = one_line(err)
    assert f"ImageNet: {val} holds 3 images in one flat folder" in message
    assert "ILSVRC2012_validation_ground_truth.txt labels them by ILSVRC2012 id" in message
    assert "ImageNet(" in message and "split='val'" in message and "ILSVRC2012_img_val.tar" in message


def _gzip_mnist(root):
    for path in sorted((root / "MNIST" / "raw").iterdir()):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()


def test_gzipped_mnist_files_are_read_as_downloaded(tmp_path):
    plain, zipped = tmp_path / "plain", tmp_path / "zipped"
    ft.write_mnist_idx(plain)
    ft.write_mnist_idx(zipped)
    _gzip_mnist(zipped)
    want, got = data.load("MNIST", root=plain), data.load("MNIST", root=zipped)
    assert got.reader == "torchvision-MNIST"
    for split in ("train", "val", "test"):
        assert got[split].fingerprint() == want[split].fingerprint()
        assert all(np.array_equal(a.source, b.source) for a, b in zip(got[split].samples, want[split].samples))


def test_a_truncated_gzipped_mnist_file_is_named(tmp_path):
    ft.write_mnist_idx(tmp_path)
    _gzip_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))
    with pytest.raises(DatasetError, match=r"MNIST: .*t10k-images-idx3-ubyte.gz holds \d+ bytes of data for the shape"):
        data.load("MNIST", root=tmp_path)


def test_more_classes_than_the_dataset_has_is_refused(tmp_path):
    ft.make_vision_task_tree(tmp_path, "SVHN", [str(d) for d in range(11)], subset=False)
    with pytest.raises(DatasetError, match=r"SVHN: found 11 classes under .*, but SVHN has 10; remove"):
        data.load("SVHN", root=tmp_path)
