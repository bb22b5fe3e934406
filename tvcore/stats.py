"""Paired tests of two models (or one model along a sweep) scored on the same test
images, aware that several images may belong to one case (a patient's views).

Images of one case are not independent: a test that counts them as such rejects
a true null too often (an exact McNemar test on 4 views per case, intra-case
correlation 1/3: 6.8% at a nominal 5%). Here the case, not the image, is the unit:

* :func:`clustered_mcnemar`: McNemar's test for clustered matched pairs
  (Durkalski, Palesch, Lipsitz and Rust, *Analysis of clustered matched-pair
  data*, Statistics in Medicine 22, 2003): ``X^2 = (sum_k (b_k - c_k))^2 /
  sum_k (b_k - c_k)^2`` over cases k, with b_k and c_k the case's discordant
  images, referred to chi-square with 1 degree of freedom. With one image per
  case it is the ordinary (asymptotic) McNemar statistic.
* :func:`paired_mcnemar`: the exact binomial McNemar test (:func:`exact_mcnemar`)
  when every case holds one image, the clustered one otherwise; the result names
  which ran.
* :func:`paired_trend`: the direction of a sweep: per case, the least-squares
  slope of its images' mean correctness against alpha; the mean slope and its
  case-level standard error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal


@lru_cache(maxsize=None)
def sidak_z(family: int, alpha: float = 0.05, two_sided: bool = True) -> float:
    """The normal quantile that keeps the chance of any false alarm among ``family``
    independent checks at ``alpha`` (Sidak): a verdict's contradictions, the
    differences ``tvcore compare`` finds among a record's metrics."""
    from scipy.stats import norm  # scipy on first use, not at every tvcore start

    if family < 1:
        raise ValueError("a family needs at least one check")
    each = 1.0 - (1.0 - alpha) ** (1.0 / family)
    return float(norm.isf(each / 2 if two_sided else each))


EXACT = "exact McNemar (binomial; one image per case)"
CLUSTERED = "clustered McNemar (Durkalski et al. 2003; cases as units)"


@dataclass(frozen=True)
class PairedTest:
    only_a_correct: int
    only_b_correct: int
    p_value: float
    test: str
    cases: int

    def as_dict(self) -> dict:
        return asdict(self)


def _bools(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool).reshape(-1), np.asarray(b, dtype=bool).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"the two models were scored on different test sets: {a.shape} vs {b.shape}")
    return a, b


def _case_index(cases, n: int) -> np.ndarray:
    if cases is None:
        return np.arange(n)
    cases = np.asarray(cases).reshape(-1)
    if cases.size != n:
        raise ValueError(f"cases name {cases.size} images but there are {n}: give one case id per test image")
    return np.unique(cases, return_inverse=True)[1].reshape(-1)


def clustered_mcnemar(correct_a, correct_b, cases=None) -> PairedTest:
    """Durkalski's clustered McNemar test (two-sided) of 'a and b are equally
    accurate', cases as units. Without ``cases`` every image is its own case."""
    from scipy.stats import chi2  # scipy on first use, not at every tvcore start

    a, b = _bools(correct_a, correct_b)
    idx = _case_index(cases, a.size)
    d = np.bincount(idx, weights=(a & ~b).astype(float) - (~a & b).astype(float))
    den = float(np.sum(d * d))
    p = 1.0 if den == 0 else float(chi2.sf(float(d.sum()) ** 2 / den, 1))
    return PairedTest(int(np.sum(a & ~b)), int(np.sum(~a & b)), p, CLUSTERED, int(idx.max() + 1) if a.size else 0)


def exact_mcnemar(correct_a, correct_b) -> PairedTest:
    """Exact (binomial) McNemar test of two models' per-image correctness on the
    same test set, every image its own case: two-sided p-value for 'both are
    equally accurate'."""
    from scipy.stats import binomtest

    a, b = _bools(correct_a, correct_b)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)
    return PairedTest(only_a, only_b, p, EXACT, a.size)


def paired_mcnemar(correct_a, correct_b, cases=None) -> PairedTest:
    """McNemar's test with the case as unit: exact (:func:`exact_mcnemar`) when each
    case holds one image, clustered (:func:`clustered_mcnemar`) when some case holds
    several."""
    a, b = _bools(correct_a, correct_b)
    idx = _case_index(cases, a.size)
    if a.size and np.bincount(idx).max() > 1:
        return clustered_mcnemar(a, b, cases)
    return exact_mcnemar(a, b)


def paired_trend(correct: np.ndarray, alphas: Sequence[float], cases=None) -> dict:
    """The direction of a sweep on fixed test images: ``correct`` is (alphas,
    images) of per-image correctness. Per case, the least-squares slope of the
    case's mean correctness against alpha; returns the mean slope over cases
    (accuracy per unit alpha, each case weighted by its images) and its
    case-level standard error."""
    correct = np.asarray(correct, dtype=float)
    x = np.asarray(alphas, dtype=float)
    if correct.ndim != 2 or correct.shape[0] != x.size or x.size < 2:
        raise ValueError("a trend needs per-image correctness at two or more alphas, shaped (alphas, images)")
    idx = _case_index(cases, correct.shape[1])
    images = np.bincount(idx).astype(float)
    per_case = np.stack([np.bincount(idx, weights=row) for row in correct]) / images  # (alphas, cases)
    xc = x - x.mean()
    slopes = (xc[:, None] * per_case).sum(0) / float((xc * xc).sum())
    w = images / images.sum()
    mean = float((w * slopes).sum())
    k = slopes.size
    # Ratio-estimator variance of a weighted mean of case-level slopes.
    se = float(np.sqrt(k / max(k - 1, 1) * np.sum(w * w * (slopes - mean) ** 2))) if k > 1 else float("inf")
    return {"slope": mean, "se": se, "cases": int(k), "images": int(correct.shape[1]),
            "alphas": [float(v) for v in x], "test": "case-level slope of correctness on alpha"}
