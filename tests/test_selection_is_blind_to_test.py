"""No coefficient is chosen on test data, shown by what a run does rather than by
what its record says: every experiment that chooses a coefficient is run three
times, as is and twice with every test-split evaluation answered by random labels
(two seeds), and must choose the same coefficients each time. The same check,
given an evaluation that answers validation reads with the test split's
predictions (selection on test), sees the choice move.

The protocol under test: coefficients are chosen on held-out validation data and
test accuracy is reported at the chosen point only (Ilharco et al., "Editing Models
with Task Arithmetic", ICLR 2023, Section 2: the scaling coefficient is chosen
on held-out validation sets)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tvcore.evaluator import Evaluator
from tvcore.experiments import Suite, run_suite
from tvcore.experiments.addition import AdditionConfig
from tvcore.experiments.analogy import AnalogyConfig
from tvcore.experiments.birads import BiradsConfig
from tvcore.experiments.common import TINY, Context
from tvcore.experiments.merging import MergingConfig
from tvcore.experiments.negation import NegationConfig
from tvcore.finetune import Recipe
from tvcore.tasks import TaskPool

QUICK = Recipe(lr=1e-3, batch_size=16, steps=3, warmup_steps=1)
CAP = 32  # images per split: val and test the same size, so a val read can be answered with test's
GRID = [0.0, 0.5, 1.0]
POISON_SEEDS = (1, 2)


# The merging methods are functions of the vectors and their statistics; what the
# experiment reads of data is the validation score of every grid point and the
# statistics of the data-dependent methods (train split). One method per path:
# task arithmetic (scaled by lam), RegMean (Grams, alpha grid), Fisher (no grid).
MERGING_METHODS = ("task-arithmetic", "regmean", "fisher")
MERGING_GRIDS = {"task-arithmetic": {"lam": tuple(GRID)}, "regmean": {"alpha": (0.1, 0.5, 0.9)}}


SUITES = {
    "negation": Suite("negation-blind", "negation", NegationConfig(["digits/rot90"], "digits/upright", lambdas=GRID),
                      TINY, QUICK),
    "addition": Suite("addition-blind", "addition", AdditionConfig(["digits/rot90", "digits/mirror"], lambdas=GRID),
                      TINY, QUICK),
    "analogy": Suite("analogy-blind", "analogy",
                     AnalogyConfig("digits/rot180", "digits/rot180+noisy", "digits/mirror", "digits/mirror+noisy",
                                   control="digits/upright", lambdas=GRID, oracle=False), TINY, QUICK),
    "birads": Suite("birads-blind", "birads",
                    BiradsConfig("digits-grades/baseline", "digits-grades/focus-2", "digits-grades/focus-5",
                                 alphas=GRID), TINY, QUICK),
    "merging": Suite("merging-blind", "merging",
                     MergingConfig(["digits/rot90", "digits/mirror"], MERGING_METHODS, grids=MERGING_GRIDS,
                                   stats_batches=1),
                     TINY, QUICK),
}

# What an experiment reports inside its selection that is itself a test
# measurement: it moves with the test images by design, so it is no choice.
TEST_MEASUREMENTS = {"birads": ("test_at_alpha", "minority_test_at_alpha")}


def choices(record: dict) -> dict:
    """What a run chose on validation: its ``selection`` less the test measurements
    it reports there, and what it chose outside it: the coefficients its controls
    chose by their own validation rules (negation's random vector, analogy's tau_C
    alone, BI-RADS's prior-shift bias) and BI-RADS's validation sweep, which its
    selection does not repeat."""
    experiment, controls = record["experiment"], record.get("controls", {})
    selection = {k: v for k, v in record["selection"].items() if k not in TEST_MEASUREMENTS.get(experiment, ())}
    outside = {
        "negation": lambda: {"random_vector": controls["random_vector"]["per_task"]},
        "analogy": lambda: {"c_only": controls["c_only"]},
        "birads": lambda: {"val_sweep": [{"alpha": r["alpha"], "val": r["val"]} for r in record["sweep"]],
                           "prior_shift": {at: {k: row[k] for k in ("alpha", "bias", "matched_val_recall")}
                                           for at, row in controls["prior_shift"]["at"].items()}},
    }.get(experiment, dict)()
    return {"selection": selection, "outside_selection": outside}


def poison_test_split(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """From now on every test-split evaluation answers uniformly random labels
    (predictions) or standard normal logits (scores), and every other read of the
    test split's images (a method's statistics, say) gets standard normal noise,
    all drawn from ``seed`` in call order; validation and train reads are left as
    they are."""
    rng = np.random.default_rng(seed)
    noise = torch.Generator().manual_seed(seed)
    predictions, scores, batches = Evaluator.predictions, Evaluator.scores, TaskPool.batches

    def poisoned_batches(self, name, split):
        loader = batches(self, name, split)
        if split != "test":
            return loader
        return ((torch.randn(x.shape, generator=noise).to(dtype=x.dtype, device=x.device), y) for x, y in loader)

    def poisoned_predictions(self, task_name, split):
        labels, preds = predictions(self, task_name, split)
        if split != "test":
            return labels, preds
        n_classes = len(self.tasks.task(task_name).class_names)
        return labels, rng.integers(n_classes, size=len(preds)).astype(preds.dtype)

    def poisoned_scores(self, task_name, split):
        labels, logits = scores(self, task_name, split)
        if split != "test":
            return labels, logits
        return labels, rng.standard_normal(logits.shape).astype(logits.dtype)

    monkeypatch.setattr(Evaluator, "predictions", poisoned_predictions)
    monkeypatch.setattr(Evaluator, "scores", poisoned_scores)
    monkeypatch.setattr(TaskPool, "batches", poisoned_batches)


def runs_with_test_poisoned(suite: Suite, make_context) -> list[dict]:
    """The suite's record as is, then once per :data:`POISON_SEEDS` with its test
    split poisoned (:func:`poison_test_split`), each in a fresh context."""
    records = [run_suite(suite, make_context())]
    for seed in POISON_SEEDS:
        with pytest.MonkeyPatch.context() as mp:
            poison_test_split(mp, seed)
            records.append(run_suite(suite, make_context()))
    return records


def same(values: list) -> bool:
    """Whether the values are equal as JSON (NaN equal to NaN, key order ignored)."""
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) == 1


def moved_choices(records: list[dict]) -> list[str]:
    """The entries of :func:`choices` that are not the same in every run (none:
    the choice is blind to the test images). Every run's test metrics must differ
    from every other's, or the poison never reached them and the comparison
    proves nothing."""
    assert not any(same([a["metrics"], b["metrics"]]) for i, a in enumerate(records) for b in records[i + 1:]), \
        "two runs have the same test metrics: the test split was not poisoned"
    chosen = [choices(r) for r in records]
    entries = {(part, key) for c in chosen for part in c for key in c[part]}
    return sorted(f"{part}.{key}" for part, key in entries if not same([c[part].get(key) for c in chosen]))


@pytest.fixture(scope="module")
def make_context(tmp_path_factory):
    """Fresh contexts over one pool folder: each vector is fine-tuned once."""
    tmp = tmp_path_factory.mktemp("blind")
    return lambda: Context(TINY, QUICK, progress=False, pool_dir=str(tmp / "pool"), head_cache=str(tmp / "heads"),
                           pixel_cache=str(tmp / "pixels"), max_per_split=CAP)


@pytest.mark.parametrize("experiment", sorted(SUITES))
def test_the_chosen_coefficients_do_not_depend_on_the_test_images(experiment, make_context):
    assert moved_choices(runs_with_test_poisoned(SUITES[experiment], make_context)) == []


def test_the_check_catches_an_evaluation_that_chooses_on_test(make_context, monkeypatch):
    predictions = Evaluator.predictions

    def val_reads_test(self, task_name, split):
        # Through the class attribute, so a poisoned test split reaches validation too.
        return self.predictions(task_name, "test") if split == "val" else predictions(self, task_name, split)

    monkeypatch.setattr(Evaluator, "predictions", val_reads_test)
    records = runs_with_test_poisoned(SUITES["addition"], make_context)
    # The two poisoned runs alone: lambda moves with the random test labels (seeds 1 and 2 choose 0 and 1).
    assert "selection.lambda" in moved_choices(records[1:])
