"""The merging experiment end to end on a tiny budget: every registered method
merges the same vectors, chooses on validation, and its record gates and renders."""

from __future__ import annotations

import json

import pytest

from tvcore.baselines import headline_specs, resolve_headline
from tvcore.errors import UsageError
from tvcore.experiments import SUITES, Context, Suite, run_suite
from tvcore.experiments.common import TINY
from tvcore.experiments.merging import MergingConfig, task_statistics
from tvcore.finetune import Recipe
from tvcore.merging import METHODS

QUICK = Recipe(lr=1e-3, batch_size=16, steps=3, warmup_steps=1)
TASKS = ["digits/rot90", "digits/mirror"]
# Two points where a method has a lam (so selection has a choice), one elsewhere.
GRIDS = {name: ({"lam": (0.3, 1.0)} if "lam" in m.grid else {}) | ({"iterations": (2,)} if name == "wudi" else {})
         for name, m in METHODS.items()}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("merging")
    return Context(TINY, QUICK, progress=False, head_cache=str(tmp / "heads"), pixel_cache=str(tmp / "pixels"),
                   max_per_split=48)


@pytest.fixture(scope="module")
def record(ctx):
    suite = Suite("merging-quick", "merging", MergingConfig(TASKS, grids=GRIDS, stats_batches=1), TINY, QUICK)
    return run_suite(suite, ctx)


def test_every_registered_method_is_run_by_default():
    assert MergingConfig(TASKS).methods == tuple(METHODS)


def test_record_has_every_methods_accuracy_on_every_task(record):
    for name in METHODS:
        for t in TASKS:
            entry = record["metrics"][f"merged[{name}][{t}]"]
            assert 0.0 <= entry["value"] <= 1.0 and entry["total"] == 48


def test_record_has_the_pretrained_and_finetuned_models_on_every_task(record):
    assert {f"{k}[{t}]" for k in ("pretrained", "finetuned") for t in TASKS} <= set(record["metrics"])


def test_hyperparameters_are_chosen_on_validation(record):
    assert record["selection"]["split"] == "val"
    for name, sel in record["selection"]["methods"].items():
        best = max(r["normalized"] for r in sel["grid"])
        first_best = next(r for r in sel["grid"] if r["normalized"] == best)
        assert sel["chosen"] == first_best["hyperparameters"], name
        assert sel["val_normalized"] == best


def test_each_methods_grid_is_the_configs(record):
    for name in ("task-arithmetic", "ties", "wudi"):
        points = [r["hyperparameters"] for r in record["selection"]["methods"][name]["grid"]]
        assert [p.get("lam") for p in points] == ([0.3, 1.0] if "lam" in METHODS[name].grid else [1.0])
    assert record["selection"]["methods"]["wudi"]["chosen"]["iterations"] == 2


def test_summary_is_the_mean_over_tasks_of_each_method(record):
    for name in METHODS:
        mean = sum(record["metrics"][f"merged[{name}][{t}]"]["value"] for t in TASKS) / len(TASKS)
        assert record["summary"][name]["absolute"] == pytest.approx(mean)


def test_headlines_pair_each_method_with_task_arithmetic_over_its_own_tasks(record):
    from tvcore.baselines import change_sides

    anchor, *specs = headline_specs(record)
    # What every method shares is gated once, as weight averaging's own mean.
    assert anchor == "mean(merged[weight-averaging][*])"
    assert resolve_headline(anchor, record["metrics"]) == sorted(f"merged[weight-averaging][{t}]" for t in TASKS)
    others = [m for m in METHODS if m != "task-arithmetic"]
    assert len(specs) == len(others)
    for name, spec in zip(others, specs):
        # iso-c must not take iso-cts's metrics, nor dare dare-ties's: brackets match literally.
        first, second = change_sides(spec, record["metrics"])
        assert first == sorted(f"merged[{name}][{t}]" for t in TASKS)
        assert second == sorted(f"merged[task-arithmetic][{t}]" for t in TASKS)
        assert resolve_headline(spec, record["metrics"]) == first + second


def test_record_is_json_and_renders_a_table_and_a_plot(record, tmp_path):
    from tvcore import report

    json.dumps(record, default=str)
    text = report.render(record)
    assert all(name in text for name in METHODS) and "average" in text
    assert report.sweep_plot(record, tmp_path / "m.png").stat().st_size > 0


def test_split_hashes_cover_val_and_test_of_every_task(record):
    assert set(record["split_hashes"]) == {f"{t}:{s}" for t in TASKS for s in ("val", "test")}


def test_grams_are_keyed_and_shaped_like_the_vectors_matrices(ctx):
    tau = ctx.vector(TASKS[0])
    grams = task_statistics(ctx, TASKS[0], tau, "grams", 1)
    assert grams and all(k in tau.keys() and grams[k].shape == (tau[k].shape[1],) * 2 for k in grams)


def test_fisher_covers_every_encoder_weight_and_leaves_the_encoder_frozen(ctx):
    tau = ctx.vector(TASKS[0])
    frozen = {n: p.requires_grad for n, p in ctx.evaluator.encoder.named_parameters()}
    fisher = task_statistics(ctx, TASKS[0], tau, "fisher", 1)
    assert set(fisher) == set(frozen) and all(fisher[k].shape == tau[k].shape for k in fisher if k in tau.keys())
    assert float(sum(f.sum() for f in fisher.values())) > 0
    assert {n: p.requires_grad for n, p in ctx.evaluator.encoder.named_parameters()} == frozen


def test_an_unknown_method_is_refused_naming_the_known_ones():
    with pytest.raises(UsageError, match="unknown merging method 'sum-all'.*task-arithmetic"):
        MergingConfig(TASKS, methods=("sum-all",))


def test_a_grid_for_a_method_not_run_is_refused():
    with pytest.raises(UsageError, match="grids given for ties"):
        MergingConfig(TASKS, methods=("task-arithmetic",), grids={"ties": {"lam": (1.0,)}})


def test_micro_suite_runs_every_method_on_the_addition_tasks():
    from tvcore.experiments import MICRO_ADDITION_DOMAINS, MICRO_RECIPE

    suite = SUITES["merging-micro"]
    assert suite.config.tasks == MICRO_ADDITION_DOMAINS and suite.recipe == MICRO_RECIPE
    assert suite.config.methods == tuple(METHODS)


def test_rehearsal_shortens_every_lam_grid_and_wudis_steps():
    from tvcore.experiments import REHEARSAL_GRID

    config = SUITES["merging-micro"].rehearsal().config
    assert config.grids["task-arithmetic"] == {"lam": tuple(REHEARSAL_GRID)}
    assert config.grids["regmean"] == {} and config.grids["wudi"]["iterations"][0] < METHODS["wudi"].defaults[
        "iterations"]
    assert config.stats_batches == 1


def test_record_times_each_methods_selection_and_each_statistic(record):
    assert {f"select[{name}]_s" for name in METHODS} | {"statistics[grams]_s", "statistics[fisher]_s"} <= set(
        record["timings"])
