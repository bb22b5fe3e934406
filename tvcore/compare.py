"""Two records of one suite, metric by metric: do the two runs' models score the
same, differ, or can their test sets not tell?

Each metric is a proportion measured on a test set (``correct`` of ``total``, with a
design effect where images come in cases). For one metric, with ``d`` the
difference of the two values and ``s`` its standard error:

* **agree**: the 90% interval of the difference, ``d +- 1.645 s``, lies within
  ``+-margin`` (two one-sided tests at 5% each; default margin one percentage
  point). The two models are shown to score within the margin of each other.
* **differ**: ``|d|`` exceeds the two-sided 95% bound ``z s`` (never less than one
  image), with ``z`` Sidak-corrected over the metrics compared, so that two runs
  of one model disagree on *some* metric of a record at most 5% of the time.
* **inconclusive**: neither; the row says how many test images (per record, at
  these accuracies and disagreements) an exact agreement would need to be shown
  within the margin.

``s`` comes from the images themselves where it can. Two records of one suite are
measured on the same test images in the same order (equal ``split_hashes``), and
a record keeps each image's outcome beside the metric (:mod:`tvcore.outcomes`):
the difference is then paired, and ``s`` counts only the images the two models
answer differently, with Agresti and Min's adjustment (half an image added to each
cell of the 2x2 table: *Simple improved confidence intervals for comparing matched
proportions*, Statistics in Medicine 24, 2005). Without the outcomes (records of
older versions, or different data allowed), ``s`` is that of two independent
proportions with Agresti and Caffo's adjustment (one success and one failure added
to each side: *Simple and effective confidence intervals for proportions and
differences of proportions result from adding two successes and two failures*, The
American Statistician 54(4), 2000), which on shared images is wider than the truth
as long as the two models' errors are positively correlated, as two runs of one
recipe are. Where images come in cases each variance is multiplied by a design
effect: a two-sample accuracy's own (in the record), a paired difference's the
larger of the two accuracies' (records keep no case ids to measure its own; the
simulation below covers the worst case, a case's views changing together). The
false-alarm rate and the power against named wrong results, simulated through
:func:`compare_records`, are in the README (``tests/test_compare.py``).

A metric in only one record differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .errors import IncomparableRecordsError, RecordError, UsageError
from .outcomes import FIELD, decode_outcomes
from .records import first_different_split, validate_record
from .stats import sidak_z

AGREE, DIFFER, INCONCLUSIVE = "agree", "differ", "inconclusive"
DEFAULT_MARGIN = 0.01  # one percentage point: what two reproductions of a result may differ by
ALPHA = 0.05
Z_ONE_SIDED = 1.6448536269514722  # the 95% one-sided normal quantile, for each of the two one-sided tests


@dataclass(frozen=True)
class Agreement:
    metric: str
    a: float | None
    b: float | None
    bound: float | None  # the difference beyond which the two differ (family-corrected 95%)
    outcome: str
    margin: float = DEFAULT_MARGIN
    sd: float | None = None  # standard error of the difference
    needed_total: int | None = None  # test images per record that would let an exact agreement show
    paired: bool = False  # judged image by image (both records kept the per-image outcomes)
    center: float | None = None  # the adjusted difference the interval is centred on (Agresti-Min / -Caffo)

    @property
    def agree(self) -> bool:
        return self.outcome == AGREE

    @property
    def difference(self) -> float | None:
        return None if self.a is None or self.b is None else self.a - self.b

    @property
    def interval_90(self) -> tuple[float, float] | None:
        if self.center is None or self.sd is None:
            return None
        return self.center - Z_ONE_SIDED * self.sd, self.center + Z_ONE_SIDED * self.sd


def check_comparable(a: Mapping, b: Mapping, name_a: str = "A", name_b: str = "B") -> None:
    """Raise :class:`IncomparableRecordsError` when two records ran different suites
    or measured on different test sets (their ``split_hashes`` differ): their
    numbers would agree or differ by accident."""
    suite_a, suite_b = a.get("suite"), b.get("suite")
    if suite_a != suite_b:
        raise IncomparableRecordsError(
            f"{name_a} is suite {suite_a!r} and {name_b} is suite {suite_b!r}; compare records of one suite, "
            "or pass --allow-different-data")
    differ = first_different_split(a.get("split_hashes") or {}, b.get("split_hashes") or {})
    if differ:
        split, how = differ
        what = "has different contents" if how == "different contents" else "is only in one record"
        raise IncomparableRecordsError(
            f"test data differ: split {split!r} {what} ({name_a} vs {name_b}); compare records measured on "
            "the same data, or pass --allow-different-data")


def _deff(metric: Mapping) -> float:
    return max(float(metric.get("design_effect") or 1.0), 1.0)


def _two_sample(a: Mapping, b: Mapping) -> tuple[float, float, float]:
    """(difference, its variance, the variance times the test size): two independent
    proportions, Agresti-Caffo, each on its effective size (images over design effect)."""
    d, var, per_image = 0.0, 0.0, 0.0
    for sign, m in ((1, a), (-1, b)):
        n_eff = m["total"] / _deff(m)
        p = (m["value"] * n_eff + 1) / (n_eff + 2)
        d += sign * p
        var += p * (1 - p) / (n_eff + 2)
        per_image += p * (1 - p) * _deff(m)
    return d, var, per_image


def _outcomes(metric: Mapping, name: str, side: str) -> np.ndarray | None:
    """The metric's per-image outcomes, checked against its counts; None if not kept."""
    if "correct" in metric and abs(metric["correct"] / metric["total"] - metric["value"]) > 1e-9:
        raise RecordError(f"record {side}: metric {name!r} has value {metric['value']!r} but {metric['correct']} "
                          f"of {metric['total']} right; the record was altered: write it again")
    text = metric.get(FIELD)
    if text is None:
        return None
    try:
        bits = decode_outcomes(text, metric["total"])
    except ValueError as exc:
        raise RecordError(f"record {side}: metric {name!r} has unreadable {FIELD} ({exc}); write the record "
                          "again with 'tvcore run' or 'pytest bench/'") from None
    if "correct" in metric and int(bits.sum()) != metric["correct"]:
        raise RecordError(f"record {side}: metric {name!r} has {int(bits.sum())} images right in its {FIELD} "
                          f"but 'correct' {metric['correct']}; the record was altered: write it again")
    return bits


def _paired_deff(a: Mapping, b: Mapping) -> float:
    """The design effect a paired difference is given over images grouped in cases:
    the larger of the two accuracies' (records keep no case ids to measure the
    difference's own). Simulated where a second model answers a changed case's views
    alike, the worst case for it: the README's BI-RADS rows."""
    return max(_deff(a), _deff(b))


def _paired(x, y, deff: float) -> tuple[float, float, float]:
    """(difference, its variance, the variance times the test size) of two models'
    accuracies on the same images, Agresti-Min: half an image added to each cell."""
    n = x.size
    only_a, only_b = int(np.sum(x & ~y)), int(np.sum(~x & y))
    p10, p01 = (only_a + 0.5) / (n + 2), (only_b + 0.5) / (n + 2)
    d = p10 - p01
    per_image = (p10 + p01 - d * d) * deff
    return d, per_image / (n + 2), per_image


def judge_metric(metric: str, a: Mapping, b: Mapping, margin: float, z: float, same_images: bool,
                 names: tuple[str, str] = ("A", "B")) -> Agreement:
    """One metric measured in both records (``same_images``: on the same test images
    in the same order, so that kept per-image outcomes can be paired)."""
    pa, pb = a["value"], b["value"]
    bits_a, bits_b = _outcomes(a, metric, names[0]), _outcomes(b, metric, names[1])
    paired = same_images and bits_a is not None and bits_b is not None and bits_a.size == bits_b.size
    if paired:
        d, var, per_image = _paired(bits_a, bits_b, _paired_deff(a, b))
    else:
        d, var, per_image = _two_sample(a, b)
    sd = math.sqrt(var)
    bound = max(z * sd, 1.0 / min(a["total"], b["total"]))
    if abs(d) + Z_ONE_SIDED * sd <= margin:
        outcome = AGREE
    elif abs(pa - pb) > bound:
        outcome = DIFFER
    else:
        outcome = INCONCLUSIVE
    needed = math.ceil(per_image * (Z_ONE_SIDED / margin) ** 2) if outcome == INCONCLUSIVE else None
    return Agreement(metric, pa, pb, bound, outcome, margin, sd, needed, paired, d)


def compare_records(a: Mapping, b: Mapping, allow_different_data: bool = False,
                    names: tuple[str, str] = ("A", "B"), margin: float = DEFAULT_MARGIN) -> list[Agreement]:
    """Metric by metric: agree (within ``margin``), differ, or inconclusive (see the
    module's docstring). Records of different suites or test sets are refused
    (:func:`check_comparable`) unless ``allow_different_data``."""
    if not 0 < margin < 1:
        raise UsageError(f"margin {margin!r}: give the largest difference that counts as the same result, "
                         "as a proportion between 0 and 1 (--margin in points: 1 for one point)")
    validate_record(a, names[0])
    validate_record(b, names[1])
    try:
        check_comparable(a, b, *names)
        same_images = True
    except IncomparableRecordsError:
        if not allow_different_data:
            raise
        same_images = False
    ma, mb = a["metrics"], b["metrics"]
    both = sorted(set(ma) & set(mb))
    z = sidak_z(max(len(both), 1), ALPHA)
    out = []
    for name in sorted(set(ma) | set(mb)):
        if name not in ma or name not in mb:
            out.append(Agreement(name, ma.get(name, {}).get("value"), mb.get(name, {}).get("value"), None, DIFFER,
                                 margin))
        else:
            out.append(judge_metric(name, ma[name], mb[name], margin, z, same_images, names))
    return out


def overall(rows: list[Agreement]) -> str:
    """The records' outcome: differ if any metric differs, agree if every one agrees,
    else inconclusive."""
    outcomes = {r.outcome for r in rows}
    if DIFFER in outcomes:
        return DIFFER
    return AGREE if outcomes == {AGREE} else INCONCLUSIVE
