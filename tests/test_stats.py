"""Paired tests with the case as unit: McNemar for clustered pairs keeps its size
when views of one case move together; the sweep's direction is a case-level slope."""

from __future__ import annotations

import numpy as np
import pytest

from tvcore.stats import CLUSTERED, EXACT, clustered_mcnemar, paired_mcnemar, paired_trend


def _clustered_null(rng, cases: int, views: int, rho: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two equally accurate models whose discordances are shared by a case's views
    with probability rho."""
    n = cases * views
    own = rng.integers(0, 4, n)                       # 0 both, 1 only a, 2 only b, 3 neither
    shared = np.repeat(rng.integers(0, 4, cases), views)
    cat = np.where(np.repeat(rng.random(cases) < rho, views), shared, own)
    a, b = (cat == 0) | (cat == 1), (cat == 0) | (cat == 2)
    return a, b, np.repeat(np.arange(cases), views)


def test_clustered_mcnemar_keeps_its_size_when_views_move_together():
    rng = np.random.default_rng(0)
    rejections = [clustered_mcnemar(*_clustered_null(rng, 100, 4, 0.5)).p_value < 0.05 for _ in range(1500)]
    assert np.mean(rejections) <= 0.065


def test_exact_mcnemar_on_images_rejects_too_often_under_the_same_null():
    rng = np.random.default_rng(0)
    rejections = []
    for _ in range(1500):
        a, b, _cases = _clustered_null(rng, 100, 4, 0.5)
        rejections.append(paired_mcnemar(a, b).p_value < 0.05)   # every image its own case
    assert np.mean(rejections) > 0.08


def test_paired_mcnemar_names_the_test_it_ran():
    a = np.array([1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 0, 1, 0, 0, 0], bool)
    assert paired_mcnemar(a, b, cases=np.arange(6)).test == EXACT
    assert paired_mcnemar(a, b, cases=np.array([0, 0, 1, 1, 2, 2])).test == CLUSTERED


def test_clustered_mcnemar_sees_a_real_difference():
    rng = np.random.default_rng(1)
    a = rng.random(400) < 0.5
    b = a | (rng.random(400) < 0.3)
    assert clustered_mcnemar(a, b, np.repeat(np.arange(100), 4)).p_value < 0.001


def test_a_sweep_trend_is_the_slope_of_correctness_on_alpha():
    alphas = [0.0, 0.5, 1.0]
    correct = np.array([[0, 0, 0, 0], [0, 1, 0, 1], [1, 1, 1, 1]])   # accuracy 0 -> 0.5 -> 1
    t = paired_trend(correct, alphas, cases=[0, 0, 1, 1])
    assert t["slope"] == pytest.approx(1.0) and t["cases"] == 2


def test_a_flat_sweep_has_no_trend():
    correct = np.tile(np.array([1, 0, 1, 0]), (3, 1))
    t = paired_trend(correct, [0.0, 0.5, 1.0])
    assert t["slope"] == 0 and t["se"] == 0
