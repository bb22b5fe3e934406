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
