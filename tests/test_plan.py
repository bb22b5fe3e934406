"""``tvcore run <suite> --plan``: the cost of a suite, printed before any long work."""

from __future__ import annotations

import re

import pytest

from tvcore.cli import main
from tvcore.experiments import SUITES


@pytest.fixture(scope="module")
def negation_plan(tmp_path_factory):
    import contextlib
    import io

    results = tmp_path_factory.mktemp("plan-results")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "negation-micro", "--plan", "--quiet", "--results-dir", str(results)])
    return code, out.getvalue(), results


def test_plan_exits_zero_without_running_the_suite(negation_plan):
    code, _, results = negation_plan
    assert code == 0 and not (results / "negation-micro.json").exists() and not (results / "pool").exists()


def test_plan_counts_a_fine_tune_and_a_gradient_ascent_per_target(negation_plan):
    """Table 1 of the paper: each negated task has its fine-tuned vector and a
    gradient-ascent vector of the recipe's full length."""
    _, text, _ = negation_plan
    suite = SUITES["negation-micro"]
    vectors = 2 * len(suite.config.targets)
    assert f"fine-tunes: {vectors} vectors, {vectors} to train" in text
    assert f"{vectors * suite.recipe.steps:,} steps at batch {suite.recipe.batch_size}" in text


def test_plan_prints_images_cache_bytes_and_a_predicted_time(negation_plan):
    _, text, _ = negation_plan
    images = int(re.search(r"images evaluated: ([\d,]+)", text).group(1).replace(",", ""))
    assert images > 0
    assert re.search(r"pixel cache: [\d.]+ [KMG]B over \d+ splits", text)
    assert re.search(r"timed here: [\d.]+ s per fine-tuning step", text)
    assert re.search(r"predicted wall time: \d+ (min|s|h)", text)


# ------------------------------------------------------------------ a plan, then the run


@pytest.fixture(scope="module")
def small_suite():
    from tvcore.experiments import Suite
    from tvcore.experiments.common import TINY
    from tvcore.experiments.negation import NegationConfig
    from tvcore.finetune import Recipe

    return Suite("negation-small", "negation",
                 NegationConfig(["digits/rot90"], "digits/upright", lambdas=[0.0, 1.0], controls=False), TINY,
                 Recipe(lr=1e-3, batch_size=16, steps=4, warmup_steps=1))


@pytest.fixture(scope="module")
def planned_and_plain(small_suite, tmp_path_factory):
    from tvcore.experiments import context_for, run_suite
    from tvcore.plan import plan_suite

    mp = pytest.MonkeyPatch()
    mp.setenv("TVCORE_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        ctx = context_for(small_suite, workers=0, progress=False)
        plan = plan_suite(small_suite, ctx)
        planned = run_suite(small_suite, ctx)
        plain = run_suite(small_suite, context_for(small_suite, workers=0, progress=False))
    finally:
        mp.undo()
    return plan, planned, plain


def test_a_run_after_its_plan_records_the_predicted_seconds_beside_the_measured(planned_and_plain):
    plan, planned, plain = planned_and_plain
    assert planned["timings"]["predicted"] == plan.predicted_s()
    assert planned["timings"]["predicted"]["total"] > 0 and "load_model_s" in planned["timings"]
    assert "predicted" not in plain["timings"]


def test_a_record_says_where_the_seconds_of_loading_the_model_went(planned_and_plain):
    """OpenCLIP's import, the build, the weights, the move to the device, and the
    pool, tasks and evaluator built over the model: together, ``load_model_s``."""
    _, _, plain = planned_and_plain
    parts = plain["timings"]["load_model_parts"]
    assert set(parts) == {"openclip_import_s", "build_s", "weights_s", "to_device_s", "other_loading_s", "pool_s",
                          "tasks_s", "evaluator_s"}
    assert all(seconds >= 0 for seconds in parts.values())
    assert sum(parts.values()) == pytest.approx(plain["timings"]["load_model_s"], abs=1e-3)


def test_planning_leaves_the_context_as_it_was(planned_and_plain):
    _, planned, plain = planned_and_plain
    assert planned["metrics"] == plain["metrics"]
    assert {k: v["source"] for k, v in planned["context"]["vectors"].items()} == \
        {k: v["source"] for k, v in plain["context"]["vectors"].items()}


# ------------------------------------------------------------------ under pytest

pytest_plugins = ["pytester"]

VISIBLE = """
import sys

def test_x(tvcore_runs):
    with tvcore_runs.visible("running demo"):
        print("finetune demo: 50%", file=sys.stderr)
"""


def test_under_pytest_long_work_shows_its_progress_on_the_terminal(pytester):
    pytester.makepyfile(VISIBLE)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*tvcore: running demo*"])
    res.stderr.fnmatch_lines(["finetune demo: 50%"])


def test_under_pytest_quiet_mode_keeps_progress_captured(pytester):
    pytester.makepyfile(VISIBLE)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    res.assert_outcomes(passed=1)
    assert "tvcore: running demo" not in res.stdout.str() and "finetune demo" not in res.stderr.str()


def test_plugin_plan_prints_each_suites_plan_and_skips_its_run(pytester):
    pytester.makepyfile("def test_x(tvcore_runs):\n    tvcore_runs.run('negation-micro')\n")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--plan", "--results-dir",
                                        str(pytester.path / "results"))
    res.assert_outcomes(skipped=1)
    res.stdout.fnmatch_lines(["*tvcore plans*", "plan: negation-micro on cpu", "fine-tunes: * vectors*",
                              "predicted wall time: *"])
    assert not (pytester.path / "results" / "negation-micro.json").exists()


# ------------------------------------------------------------------ fine-tunes over several devices


def _plan_of(entries_steps, devices):
    from tvcore.plan import Plan

    plan = Plan("s", "cuda", devices=devices, step_s=1.0, compile="cudagraphs", compile_first_s=30.0,
                compile_again_s=1.0)
    plan.finetunes = [{"task": f"t{i}", "steps": n, "batch": 128, "source": "plan", "objective": "descent"}
                      for i, n in enumerate(entries_steps)]
    plan.to_train = [{"task": f"t{i}", "steps": n, "key": str(i)} for i, n in enumerate(entries_steps)]
    return plan


def test_on_one_device_the_fine_tunes_take_their_turns():
    plan = _plan_of([100, 100, 100, 100], devices=1)
    assert plan.predicted_s()["finetune"] == pytest.approx(400 + 30 + 3 * 1)


def test_over_several_devices_each_compiles_once_and_the_longest_go_first():
    plan = _plan_of([300, 100, 100, 100], devices=2)
    # Device 0: 300 (+30); device 1: 100 (+30) + 100 (+1) + 100 (+1) = 332.
    assert plan.predicted_s()["finetune"] == pytest.approx(332)
    assert "over 2 devices" in plan.render()


def test_more_devices_than_fine_tunes_leave_the_longest_alone():
    assert _plan_of([50, 20], devices=8).predicted_s()["finetune"] == pytest.approx(80)


def test_jobs_spread_the_plan_over_every_visible_gpu_only_with_jobs_above_one(monkeypatch):
    import torch

    from tvcore.parallel import plan_devices

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert plan_devices("cuda", 2) == 4 and plan_devices("cuda", 1) == 1 and plan_devices("cuda:1", 2) == 1


def test_a_recipe_decoding_every_step_waits_for_the_slowest_tasks_decoding():
    """Each task's images cost their own decoding: a batch of 128 large JPEGs spread
    over 8 workers can take longer than the device's step; tiny PNGs cannot."""
    plan = _plan_of([100, 100], devices=1)
    plan.compile_first_s = plan.compile_again_s = 0.0
    plan.step_s, plan.augment_batch, plan.workers = 0.02, 128, 8
    plan.decode_task_s = {"t0": 0.0005, "t1": 0.005}  # 8 ms and 80 ms of decoding a step
    assert plan.task_step_s("t0") == pytest.approx(0.02) and plan.task_step_s("t1") == pytest.approx(0.08)
    assert plan.predicted_s()["finetune"] == pytest.approx(100 * 0.02 + 100 * 0.08)


def test_without_workers_decoding_adds_to_every_step():
    plan = _plan_of([10], devices=1)
    plan.compile_first_s, plan.step_s, plan.augment_batch, plan.workers = 0.0, 0.02, 8, 0
    plan.decode_task_s = {"t0": 0.001}
    assert plan.task_step_s("t0") == pytest.approx(0.02 + 0.008)
