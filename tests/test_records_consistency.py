"""A record agrees with itself: it lists the vectors its run used (not every vector
its context holds for other runs), and its determinism says what was true of the
run: the flags evaluation ran under, and per vector the flags it was fine-tuned
under, where that is known (a pool-served vector was trained by another process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tvcore.experiments import Suite, run_suite
from tvcore.experiments.addition import AdditionConfig
from tvcore.experiments.analogy import AnalogyConfig
from tvcore.experiments.common import TINY, Context
from tvcore.finetune import Recipe
from tvcore.records import finalize

QUICK = Recipe(lr=1e-3, batch_size=16, steps=2, warmup_steps=1)
CAP = 48  # images per split: these tests read records, not accuracies
OTHER = "digits/negative"  # a vector another suite fine-tuned in the shared context


@pytest.fixture
def restore_determinism():
    """The flags are the process's; a test that sets them gives them back."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=True)
    torch.backends.cudnn.benchmark = saved[1]


@pytest.fixture(scope="module")
def make_context(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("records")
    return lambda recipe=QUICK: Context(TINY, recipe, progress=False, pool_dir=str(tmp / "pool"), pixel_cache=str(tmp / "pixels"),
                           head_cache=str(tmp / "heads"), max_per_split=CAP)


@pytest.fixture(scope="module")
def shared(make_context):
    """One context that serves several suites, as the pytest plugin's does."""
    ctx = make_context()
    ctx.vector(OTHER)
    ctx.describe()  # the other suite's run ends with its record
    return ctx


def test_an_addition_record_lists_only_the_vectors_it_added(shared):
    tasks = ["digits/mirror", "digits/rot180"]
    record = run_suite(Suite("addition-case", "addition", AdditionConfig(tasks, lambdas=[0.0, 0.5]), TINY, QUICK),
                       shared)
    assert OTHER in shared.pool.provenance
    assert set(record["context"]["vectors"]) == set(tasks)


def test_an_addition_record_lists_only_the_tasks_it_used(shared):
    tasks = ["digits/mirror", "digits/rot180"]
    record = run_suite(Suite("addition-case", "addition", AdditionConfig(tasks, lambdas=[0.0, 0.5]), TINY, QUICK),
                       shared)
    assert OTHER in shared.tasks._tasks  # loaded for the other suite, still held
    assert set(record["context"]["tasks"]) == set(tasks)


def test_an_analogy_record_lists_only_its_three_vectors(shared):
    config = AnalogyConfig("digits/rot180", "digits/mirror", "digits/rot90", "digits/mirror+rot90",
                           lambdas=[0.0, 0.5], oracle=False)
    record = run_suite(Suite("analogy-case", "analogy", config, TINY, QUICK), shared)
    assert set(record["context"]["vectors"]) == {"digits/rot180", "digits/mirror", "digits/rot90"}


def test_a_run_that_fine_tunes_records_the_flags_its_vectors_were_trained_under(make_context, restore_determinism):
    torch.use_deterministic_algorithms(False)  # a fresh process: nothing has set them yet
    ctx = make_context(QUICK.with_(seed=1))  # a recipe no other test has put in the pool
    suite = Suite("addition-case", "addition", AdditionConfig(["digits/rot90"], lambdas=[0.0]), TINY, ctx.recipe)
    record = finalize(run_suite(suite, ctx), "addition-case")
    training = record["environment"]["determinism"]["training"]["digits/rot90"]
    assert record["context"]["vectors"]["digits/rot90"]["source"] == "trained"
    assert training["deterministic_algorithms"] is True and training["from"].startswith("this process")
    # Evaluation ran before the fine-tune with the flags off, after it with them on: both are said.
    evaluation = record["environment"]["determinism"]["evaluation"]
    assert (evaluation["at_start"]["deterministic_algorithms"], evaluation["at_end"]["deterministic_algorithms"]) \
        == (False, True)


def test_a_pool_served_run_never_records_its_vectors_as_trained_without_determinism(make_context,
                                                                                    restore_determinism):
    make_context().vector("digits/rot90")  # a run before this one put the vector in the pool
    torch.use_deterministic_algorithms(False)  # this run is a fresh process that trains nothing
    ctx = make_context()
    suite = Suite("addition-case", "addition", AdditionConfig(["digits/rot90"], lambdas=[0.0]), TINY, QUICK)
    record = finalize(run_suite(suite, ctx), "addition-case")
    assert record["context"]["vectors"]["digits/rot90"]["source"] == "pool"
    determinism = record["environment"]["determinism"]
    evaluation = determinism["evaluation"]
    assert evaluation["at_start"]["deterministic_algorithms"] is False
    assert evaluation["at_end"]["deterministic_algorithms"] is False
    # Training: what the pool entry's meta.json says, or unknown; never this process's flags.
    meta = json.loads((Path(ctx.pool.provenance["digits/rot90"]["path"]).parent / "meta.json").read_text())
    recorded = meta["determinism"]
    training = determinism["training"]["digits/rot90"]
    assert training["deterministic_algorithms"] == recorded.get("deterministic_algorithms")
    assert "pool entry" in training["from"]
    # The pool writes the flags its entries were trained under.
    assert recorded["deterministic_algorithms"] is True and training["from"] == "the pool entry's meta.json"


def test_the_record_and_its_context_tell_one_determinism(make_context):
    ctx = make_context()
    record = finalize(run_suite(Suite("addition-case", "addition", AdditionConfig(["digits/rot90"], lambdas=[0.0]),
                                      TINY, QUICK), ctx), "addition-case")
    assert record["environment"]["determinism"] == record["context"]["determinism"]
    assert set(record["environment"]["determinism"]["training"]) == set(record["context"]["vectors"])
