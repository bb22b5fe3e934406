"""Metrics against hand computations and known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tvcore.errors import DatasetError
from tvcore.evaluate import (Accuracy, run_classifier, classification_metrics, cluster_design_effect,
                             paired_change, wilson_interval)
from tvcore.stats import exact_mcnemar as mcnemar_exact


def test_wilson_interval_known_values():
    # 53.25% of 400 (the BI-RADS baseline): the textbook Wilson interval.
    low, high = wilson_interval(213, 400)
    assert low == pytest.approx(0.4835, abs=5e-4) and high == pytest.approx(0.5809, abs=5e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_seed_baseline_confusion_matrix_gives_seed_accuracies():
    cm = np.array([[71, 24, 5, 0], [33, 59, 6, 2], [7, 37, 48, 8], [8, 18, 39, 35]])
    labels = np.repeat(np.arange(4), cm.sum(1))
    preds = np.concatenate([np.repeat(np.arange(4), row) for row in cm])
    m = classification_metrics(labels, preds, ["2", "3", "4", "5"])
    assert np.array_equal(m.confusion, cm)
    assert m.overall.value == pytest.approx(0.5325)
    assert [round(100 * a.value) for a in m.per_class.values()] == [71, 59, 48, 35]
    assert m.balanced == pytest.approx(0.5325)
    assert m.overall.contains(0.5325)


def test_balanced_accuracy_differs_from_accuracy_on_imbalanced_data():
    labels = np.array([0] * 9 + [1])
    preds = np.zeros(10, dtype=int)
    m = classification_metrics(labels, preds, ["a", "b"])
    assert m.overall.value == 0.9 and m.balanced == 0.5


def test_metrics_reject_mismatched_or_empty_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        classification_metrics([], [], ["a"])


def test_mcnemar_exact():
    a = np.array([1] * 10 + [0] * 5 + [1] * 20, dtype=bool)
    b = np.array([0] * 10 + [1] * 5 + [1] * 20, dtype=bool)
    r = mcnemar_exact(a, b)
    assert (r.only_a_correct, r.only_b_correct) == (10, 5)
    # two-sided exact binomial p for 10 of 15 at p=0.5
    assert r.p_value == pytest.approx(0.30175781, abs=1e-6)
    assert mcnemar_exact(a, a).p_value == 1.0
    with pytest.raises(ValueError, match="different test sets"):
        mcnemar_exact(a, b[:-1])


def test_accuracy_record():
    acc = Accuracy(45, 60)
    assert acc.as_dict()["value"] == 0.75 and acc.low < 0.75 < acc.high
    assert str(acc).startswith("75.00%")


# ------------------------------------------------------------------ case-level intervals

def _views(case_correct: np.ndarray, views: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per-image correctness and case ids when each case's views share its outcome."""
    return np.repeat(case_correct, views), np.repeat(np.arange(case_correct.size), views)


def _width(acc: Accuracy) -> float:
    return acc.high - acc.low


def test_case_bootstrap_interval_contains_the_point_estimate():
    rng = np.random.default_rng(0)
    for p in (0.05, 0.3, 0.5, 0.9):
        correct = rng.random(120) < p
        acc = Accuracy.from_cases(correct, rng.integers(0, 30, 120))
        assert acc.low <= acc.value <= acc.high


def test_perfectly_correlated_views_widen_the_interval_about_sqrt_4_times():
    correct, cases = _views(np.arange(100) % 2 == 0)   # 100 cases of 4 identical views, 50% right
    boot = Accuracy.from_cases(correct, cases)
    wilson = Accuracy(int(correct.sum()), correct.size)
    assert _width(boot) / _width(wilson) == pytest.approx(2.0, abs=0.25)
    assert boot.design_effect == pytest.approx(4.0)


def test_one_image_per_case_gives_a_wilson_like_width_and_no_design_effect():
    correct = np.arange(400) % 2 == 0
    boot = Accuracy.from_cases(correct, np.arange(400))
    assert _width(boot) / _width(Accuracy(200, 400)) == pytest.approx(1.0, abs=0.1)
    assert boot.design_effect == pytest.approx(1.0)


def test_case_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(1)
    correct, cases = rng.random(200) < 0.6, rng.integers(0, 50, 200)
    a, b = Accuracy.from_cases(correct, cases, seed=3), Accuracy.from_cases(correct, cases, seed=3)
    assert a.as_dict() == b.as_dict()
    assert (a.low, a.high) != (Accuracy.from_cases(correct, cases, seed=4).low,
                               Accuracy.from_cases(correct, cases, seed=4).high)


def test_metrics_over_cases_name_the_bootstrap_and_count_cases():
    labels = np.repeat(np.arange(4), 100)
    correct, cases = _views(np.arange(100) % 3 != 0)   # 25 cases per class, views agree
    preds = np.where(correct, labels, (labels + 1) % 4)
    m = classification_metrics(labels, preds, ["2", "3", "4", "5"], cases=cases).as_dict()
    assert m["overall"]["interval"] == "case-bootstrap" and m["overall"]["cases"] == 100
    assert all(c["interval"] == "case-bootstrap" and c["cases"] == 25 for c in m["per_class"].values())
    assert {"value", "low", "high", "correct", "total", "design_effect"} <= set(m["overall"])
    assert m["overall"]["design_effect"] > 3


def test_metrics_keep_wilson_when_images_are_independent():
    labels = np.repeat(np.arange(2), 50)
    m = classification_metrics(labels, labels, ["a", "b"], cases=np.arange(100)).as_dict()
    assert m["overall"]["interval"] == "wilson" and m["overall"]["cases"] == 100
    assert classification_metrics(labels, labels, ["a", "b"]).as_dict()["overall"]["interval"] == "wilson"


def test_metrics_reject_cases_of_another_length():
    with pytest.raises(ValueError, match="one case id per test image"):
        classification_metrics([0, 1], [0, 1], ["a", "b"], cases=[0])


def test_paired_change_counts_discordant_images_and_their_design_effect():
    base = np.array([1, 1, 0, 0] * 10, dtype=bool)
    enh = np.array([1, 0, 1, 1] * 10, dtype=bool)
    p = paired_change(base, enh)
    assert (p["only_a_correct"], p["only_b_correct"], p["total"]) == (10, 20, 40)
    assert p["design_effect"] == 1.0
    # Every case flips all its four views the same way: four times the variance.
    flips = np.repeat(np.arange(40) % 2 == 0, 4)
    clustered = paired_change(np.zeros(160, bool), flips, np.repeat(np.arange(40), 4))
    assert clustered["design_effect"] == pytest.approx(4.0)


def test_design_effect_is_one_for_single_image_cases():
    assert cluster_design_effect(np.array([1, 0, 1, 1, 0]), 1) == pytest.approx(1.0)


class _Linear(torch.nn.Module):
    def forward(self, x):
        return torch.stack([x.sum(1), -x.sum(1), x[:, 0]], dim=1)


def _batches(x: torch.Tensor, y: torch.Tensor, size: int):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


@pytest.mark.parametrize("sized", [True, False])
def test_run_classifier_returns_every_row_in_loader_order(sized):
    """Sized from the loader (a DataLoader's dataset) or grown as batches come, the
    result is what running the whole split at once gives."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2500, 4, generator=g), torch.randint(0, 3, (2500,), generator=g)
    batches = _batches(x, y, 64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64) if sized else batches
    labels, preds = run_classifier(_Linear(), loader)
    _, logits = run_classifier(_Linear(), loader, logits=True)
    whole = _Linear()(x)
    assert labels.tolist() == y.tolist()
    assert preds.tolist() == whole.argmax(1).tolist()
    assert logits.dtype == np.float32 and logits.shape == (2500, 3)
    np.testing.assert_allclose(logits, whole.numpy(), rtol=1e-6, atol=1e-5)


def test_run_classifier_names_an_empty_loader():
    with pytest.raises(DatasetError, match="no batches"):
        run_classifier(_Linear(), [])


@pytest.mark.parametrize("seed", range(5))
def test_confusion_matrix_is_sklearns_with_the_class_range_as_labels(seed):
    from sklearn.metrics import confusion_matrix as sklearn_confusion

    from tvcore.evaluate import confusion_matrix

    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    labels, preds = rng.integers(-1, k + 1, 500), rng.integers(-1, k + 1, 500)  # some outside the classes
    ours = confusion_matrix(labels, preds, k)
    assert np.array_equal(ours, sklearn_confusion(labels, preds, labels=list(range(k))))


def test_confusion_matrix_refuses_labels_and_predictions_of_other_lengths():
    from tvcore.evaluate import confusion_matrix

    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        confusion_matrix([0, 1, 1], [0, 1], 2)
