"""The paper's prompt templates and class names (tvcore.data.prompts)."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvcore.data.prompts import (
    DATASET_CLASSNAMES,
    FIXED_CLASSNAMES,
    SOURCES,
    TASKS,
    classnames,
    prompt_fingerprint,
    templates,
)
from tvcore.data.prompts.imagenet import PAPER_FINGERPRINT
from tvcore.errors import DatasetError

TEMPLATE_COUNTS = {"Cars": 8, "DTD": 8, "EuroSAT": 3, "GTSRB": 3, "MNIST": 1,
                   "RESISC45": 18, "SUN397": 2, "SVHN": 1, "ImageNet": 80}
FIXED_COUNTS = {"GTSRB": 43, "EuroSAT": 10, "RESISC45": 45, "MNIST": 10, "SVHN": 10, "ImageNet": 1000}


def test_tasks_are_the_eight_and_the_imagenet_control():
    assert TASKS == ("Cars", "DTD", "EuroSAT", "GTSRB", "MNIST", "RESISC45", "SUN397", "SVHN", "ImageNet")


def test_every_task_has_either_a_fixed_list_or_dataset_names():
    assert FIXED_CLASSNAMES == set(FIXED_COUNTS)
    assert DATASET_CLASSNAMES == {"Cars", "DTD", "SUN397"}
    assert FIXED_CLASSNAMES | DATASET_CLASSNAMES == set(TASKS)


def test_every_task_cites_the_papers_code():
    assert set(SOURCES) == set(TASKS)
    assert all("mlfoundations/task_vectors@826a64c" in source for source in SOURCES.values())


@pytest.mark.parametrize("task", TASKS)
def test_template_count_is_the_papers(task):
    assert len(templates(task)) == TEMPLATE_COUNTS[task]


@pytest.mark.parametrize("task", TASKS)
def test_every_template_holds_one_slot_and_formats(task):
    for template in templates(task):
        assert template.count("{}") == 1, template
        filled = template.format("stop sign")
        assert "stop sign" in filled and "{" not in filled and "}" not in filled


@pytest.mark.parametrize("task", TASKS)
def test_templates_are_distinct(task):
    assert len(set(templates(task))) == len(templates(task))


@pytest.mark.parametrize("task", sorted(FIXED_COUNTS))
def test_fixed_class_name_count_is_the_papers(task):
    assert len(classnames(task)) == FIXED_COUNTS[task]


@pytest.mark.parametrize("task", sorted(FIXED_CLASSNAMES - {"ImageNet"}))
def test_fixed_class_names_are_distinct(task):
    assert len(set(classnames(task))) == len(classnames(task))


def test_imagenet_names_repeat_only_where_the_papers_do():
    names = classnames("ImageNet")
    repeats = {name: [i for i, n in enumerate(names) if n == name]
               for name, count in collections.Counter(names).items() if count > 1}
    assert repeats == {"missile": [657, 744], "sunglasses": [836, 837]}


def test_imagenet_prompts_from_open_clip_are_the_papers():
    # The paper's 1000 names and 80 templates, order included, hashed when this was written.
    assert prompt_fingerprint(classnames("ImageNet"), templates("ImageNet")) == PAPER_FINGERPRINT


def test_imagenet_lists_start_and_end_where_the_papers_do():
    names, temps = classnames("ImageNet"), templates("ImageNet")
    assert (names[0], names[1], names[-1]) == ("tench", "goldfish", "toilet paper")
    assert (temps[0], temps[-1]) == ("a bad photo of a {}.", "a tattoo of the {}.")


def test_digit_tasks_name_label_k_as_digit_k():
    assert classnames("MNIST") == classnames("SVHN") == [str(k) for k in range(10)]
    assert templates("MNIST") == templates("SVHN") == ['a photo of the number: "{}".']


def test_gtsrb_names_are_descriptions_in_class_id_order():
    names = classnames("GTSRB")
    assert names[0] == "red and white circle 20 kph speed limit"
    assert names[14] == "stop"
    assert names[42] == "white circle with gray strike bar indicating no passing for trucks has ended"


def test_eurosat_names_are_descriptions_in_sorted_folder_order():
    names = classnames("EuroSAT")
    assert names[0] == "annual crop land"  # AnnualCrop
    assert names[2] == "brushland or shrubland"  # HerbaceousVegetation
    assert names[9] == "lake or sea"  # SeaLake


def test_resisc45_names_read_underscores_as_spaces():
    names = classnames("RESISC45")
    assert names[2] == "baseball diamond"
    assert names[43] == "thermal power station"
    assert not any("_" in name for name in names)


def test_fixed_list_accepts_raw_identifiers_of_the_same_count():
    folders = [f"{k:05d}" for k in range(43)]
    assert classnames("GTSRB", folders) == classnames("GTSRB")


def test_fixed_list_refuses_a_raw_count_that_differs():
    with pytest.raises(DatasetError, match=r"GTSRB.*\b42\b.*\b43\b"):
        classnames("GTSRB", [f"{k:05d}" for k in range(42)])


def test_fixed_list_refuses_a_single_string_as_raw():
    with pytest.raises(DatasetError, match="single string"):
        classnames("MNIST", "0123456789")


@pytest.mark.parametrize("task", sorted(DATASET_CLASSNAMES))
def test_dataset_named_task_needs_the_datasets_classes(task):
    with pytest.raises(DatasetError, match=f"{task}.*from the dataset"):
        classnames(task)


@pytest.mark.parametrize("task", sorted(DATASET_CLASSNAMES))
def test_dataset_named_task_refuses_an_empty_class_list(task):
    with pytest.raises(DatasetError, match="no classes"):
        classnames(task, [])


@pytest.mark.parametrize("raw, name", [
    ("a_abbey", "abbey"),                                           # the paper's prepared folder
    ("a/abbey", "abbey"),
    ("/a/abbey", "abbey"),                                          # ClassName.txt
    ("abbey", "abbey"),                                             # torchvision SUN397.classes
    ("b/bus_interior", "bus interior"),
    ("b_bus_interior", "bus interior"),
    ("a_apartment_building_outdoor", "apartment building outdoor"),
    ("/a/apartment_building/outdoor", "apartment building outdoor"),
    ("apartment_building/outdoor", "apartment building outdoor"),
    ("o/outhouse/outdoor", "outhouse outdoor"),
    ("o_outhouse_outdoor", "outhouse outdoor"),
    ("/t/theater/indoor_procenium", "theater indoor procenium"),
])
def test_sun397_names_drop_the_letter_folder_and_read_separators_as_spaces(raw, name):
    assert classnames("SUN397", [raw]) == [name]


def test_sun397_keeps_a_leading_word_that_is_not_the_letter_folder():
    # Only "<letter>/" or "<letter>_" before a name starting with that letter is SUN397's folder.
    assert classnames("SUN397", ["x_ray_room"]) == ["x ray room"]


def test_dataset_names_keep_label_order():
    raw = ["c_cabin_outdoor", "a_abbey", "b_bus_interior"]
    assert classnames("SUN397", raw) == ["cabin outdoor", "abbey", "bus interior"]


def test_cars_names_read_underscores_as_spaces_and_keep_other_characters():
    raw = ["AM General Hummer SUV 2000", "Ram C/V Cargo Van Minivan 2012", "Acura_TL_Sedan_2012"]
    assert classnames("Cars", raw) == ["AM General Hummer SUV 2000", "Ram C/V Cargo Van Minivan 2012",
                                       "Acura TL Sedan 2012"]


def test_dtd_names_are_the_folder_names():
    assert classnames("DTD", ["banded", "polka-dotted", "some_texture"]) == ["banded", "polka-dotted", "some texture"]


def test_dataset_names_that_clean_to_the_same_words_are_refused():
    with pytest.raises(DatasetError, match=r"'a_abbey'.*'/a/abbey'.*'abbey'"):
        classnames("SUN397", ["a_abbey", "/a/abbey"])


def test_dataset_names_must_be_strings():
    with pytest.raises(DatasetError, match=r"DTD raw class identifiers\[1\] is int"):
        classnames("DTD", ["banded", 3])


@pytest.mark.parametrize("lookup", [templates, classnames])
def test_unknown_task_is_refused_with_the_known_ones(lookup):
    with pytest.raises(DatasetError, match="'Caltech101'.*known tasks: Cars"):
        lookup("Caltech101")


def test_returned_lists_are_copies():
    templates("DTD").append("x {}")
    classnames("GTSRB").clear()
    assert len(templates("DTD")) == 8 and len(classnames("GTSRB")) == 43


def test_fingerprint_is_a_stable_sha256_of_both_lists():
    fp = prompt_fingerprint(["cat", "dog"], ["a photo of a {}."])
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert prompt_fingerprint(("cat", "dog"), ("a photo of a {}.",)) == fp


def test_fingerprint_changes_when_a_template_changes():
    names = classnames("EuroSAT")
    changed = templates("EuroSAT")
    changed[1] = changed[1].replace("centered", "centred")
    assert prompt_fingerprint(names, changed) != prompt_fingerprint(names, templates("EuroSAT"))


def test_fingerprint_changes_when_a_name_changes():
    names = classnames("GTSRB")
    changed = list(names)
    changed[14] = "stop sign"
    assert prompt_fingerprint(changed, templates("GTSRB")) != prompt_fingerprint(names, templates("GTSRB"))


def test_fingerprint_tells_the_two_lists_apart():
    assert prompt_fingerprint(["a {}"], []) != prompt_fingerprint([], ["a {}"])


@given(st.lists(st.text(max_size=8), min_size=2, max_size=6, unique=True))
def test_fingerprint_depends_on_order(names):
    assert prompt_fingerprint(names, ["{}"]) != prompt_fingerprint(names[::-1], ["{}"])


def test_fingerprint_refuses_non_strings():
    with pytest.raises(DatasetError, match=r"templates\[0\] is int"):
        prompt_fingerprint(["cat"], [7])


def test_an_open_clip_with_other_imagenet_names_is_refused(monkeypatch):
    from open_clip import zero_shot_metadata

    from tvcore.data.prompts import imagenet

    names = list(zero_shot_metadata.IMAGENET_CLASSNAMES)
    names[0] = "tench fish"
    monkeypatch.setattr(zero_shot_metadata, "IMAGENET_CLASSNAMES", tuple(names))
    imagenet._from_open_clip.cache_clear()
    try:
        with pytest.raises(DatasetError, match="ImageNet: open_clip .* not the paper's"):
            classnames("ImageNet")
    finally:
        monkeypatch.undo()
        imagenet._from_open_clip.cache_clear()
    assert classnames("ImageNet")[0] == "tench"
