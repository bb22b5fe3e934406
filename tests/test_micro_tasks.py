"""The embedded micro tasks as a fair analogue of the paper's: every task has a
head of its own, the analogy's control stands outside the analogy, and its
lambda keeps the control as negation's does."""

from __future__ import annotations

import ast
from itertools import combinations

import numpy as np
import pytest

from tvcore.data import micro
from tvcore.data.digits import TEMPLATES, images_and_labels
from tvcore.data.prompts.fingerprint import prompt_fingerprint
from tvcore.errors import DatasetError, UsageError
from tvcore.experiments import SUITES
from tvcore.experiments.analogy import AnalogyConfig
from tvcore.experiments.common import FIXTURES
from tvcore.experiments.selection import choose_lambda
from tvcore.tasks import load_task


def _suite_tasks(config) -> set[str]:
    """The digits domain tasks a micro suite's config names."""
    names = set()
    for field in ("targets", "tasks"):
        names.update(getattr(config, field, None) or [])
    for field in ("control", "a", "b", "c", "target"):
        if getattr(config, field, None):
            names.add(getattr(config, field))
    return {n for n in names if n.startswith("digits/")}


DOMAIN_TASKS = sorted(set().union(*(_suite_tasks(s.config) for s in SUITES.values() if s.name.endswith("-micro")))
                      | {f"digits/{d}" for d in micro.DOMAINS})


def _pretraining_captions() -> list[str]:
    """The captions the tiny model was pretrained with, read from its script
    without running it."""
    tree = ast.parse((FIXTURES / "pretrain_tiny.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CAPTIONS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("fixtures/pretrain_tiny.py defines no CAPTIONS")


def test_every_pair_of_domain_tasks_has_different_head_prompts():
    prints = {}
    for name in DOMAIN_TASKS:
        task = load_task(name)
        prints[name] = prompt_fingerprint(task.class_names, task.templates)
    same = [(a, b) for a, b in combinations(prints, 2) if prints[a] == prints[b]]
    assert same == []


def test_the_micro_suites_two_domain_tasks_heads_differ():
    rot90, mirror = load_task("digits/rot90"), load_task("digits/mirror")
    assert (prompt_fingerprint(rot90.class_names, rot90.templates)
            != prompt_fingerprint(mirror.class_names, mirror.templates))


def test_the_control_domain_keeps_the_digits_templates():
    assert micro.domain_templates("upright") == TEMPLATES


def test_domain_templates_are_pretraining_captions_after_one_that_names_the_drawing():
    captions = _pretraining_captions()
    for domain in ("rot90", "negative", "mirror+rot90"):
        first, *rest = micro.domain_templates(domain)
        assert rest and all(t in captions for t in rest)
        assert first not in captions and "{}" in first


def test_a_composition_is_named_in_the_order_its_steps_apply():
    assert micro.domain_templates("mirror+rot90")[0] == "a mirrored rotated digit {}."
    assert micro.domain_templates("rot90+mirror")[0] == "a rotated mirrored digit {}."


def test_a_composition_renders_its_steps_in_order():
    images, _ = images_and_labels()
    img = images[7]
    assert np.array_equal(micro.render("negative+rot90", img, 7), np.rot90(255 - img))
    assert np.array_equal(micro.render("mirror+rot90", img, 7), np.rot90(img[:, ::-1]))


def test_an_unknown_domain_step_is_named():
    with pytest.raises(DatasetError, match="'sideways'"):
        micro.domain_templates("mirror+sideways")


def test_the_micro_analogys_control_is_outside_the_analogy():
    config = SUITES["analogy-micro"].config
    assert config.control not in {config.a, config.b, config.c, config.target}


def test_an_analogy_whose_control_is_one_of_its_tasks_is_refused():
    with pytest.raises(UsageError, match="control 'digits/upright' is also task a"):
        AnalogyConfig("digits/upright", "digits/rot90", "digits/mirror", "digits/mirror+rot90",
                      control="digits/upright")


ROWS = [{"lambda": 0.0, "target": 0.20, "control": 0.80}, {"lambda": 0.5, "target": 0.50, "control": 0.77},
        {"lambda": 1.0, "target": 0.70, "control": 0.60}]


def test_analogy_selection_takes_the_highest_target_that_keeps_the_control():
    assert choose_lambda(ROWS, 0.95 * 0.80, goal="higher")["lambda"] == 0.5


def test_negation_selection_takes_the_lowest_target_that_keeps_the_control():
    assert choose_lambda(ROWS, 0.95 * 0.80)["lambda"] == 0.0


def test_negation_and_analogy_share_one_selection_rule():
    from tvcore.experiments import negation
    from tvcore.experiments import selection

    assert negation.choose_lambda is selection.choose_lambda


@pytest.fixture(scope="module")
def analogy_record(tmp_path_factory):
    from tvcore.experiments import Context, Suite, run_suite
    from tvcore.experiments.common import TINY
    from tvcore.finetune import Recipe

    quick = Recipe(lr=1e-3, batch_size=16, steps=2, warmup_steps=1)
    config = AnalogyConfig("digits/rot180", "digits/rot180+noisy", "digits/mirror", "digits/mirror+noisy",
                           control="digits/upright", lambdas=[0.0, 0.5, 1.0], oracle=False)
    ctx = Context(TINY, quick, progress=False, head_cache=str(tmp_path_factory.mktemp("heads")))
    return run_suite(Suite("analogy-quick", "analogy", config, TINY, quick), ctx)


def test_the_analogy_lambda_keeps_the_control_above_its_floor(analogy_record):
    sel = analogy_record["selection"]
    chosen = next(r for r in sel["val_sweep"] if r["lambda"] == sel["lambda"])
    assert chosen["control"] >= sel["control_floor"]
    assert sel["control_floor"] == pytest.approx(0.95 * sel["val_sweep"][0]["control"])


def test_the_analogy_reports_tau_c_alone_beside_its_gated_metrics(analogy_record):
    assert set(analogy_record["reported"]) == {"c_only.target", "c_only.control"}
    assert not set(analogy_record["reported"]) & set(analogy_record["metrics"])


def test_the_digits_are_scikit_learns_read_from_its_data_file():
    """Read without importing scikit-learn, the pixels and labels are load_digits' own."""
    from sklearn.datasets import load_digits

    from tvcore.data import digits

    assert digits._bundled_file() is not None
    images, labels = images_and_labels()
    bunch = load_digits()
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert np.array_equal(images, np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8))
    assert np.array_equal(labels, bunch.target)


def test_without_that_file_the_digits_come_from_load_digits(monkeypatch):
    from tvcore.data import digits

    expected = images_and_labels()
    monkeypatch.setattr(digits, "_bundled_file", lambda: None)
    images, labels = images_and_labels()
    assert np.array_equal(images, expected[0]) and np.array_equal(labels, expected[1])
