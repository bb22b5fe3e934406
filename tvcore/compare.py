"""Two records of one suite, metric by metric: do they agree?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from .baselines import Z
from .errors import IncomparableRecordsError
from .records import first_different_split, validate_record


@dataclass(frozen=True)
class Agreement:
    metric: str
    a: float | None
    b: float | None
    bound: float | None
    agree: bool


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


def compare_records(a: Mapping, b: Mapping, allow_different_data: bool = False,
                    names: tuple[str, str] = ("A", "B")) -> list[Agreement]:
    """Metric by metric: do two records agree within the 95% bound of the
    difference of two independent proportions, ``1.96 * sqrt(pa qa / na + pb qb / nb)``
    (at least one sample's worth)? Metrics in only one record disagree. Records of
    different suites or test sets are refused (:func:`check_comparable`) unless
    ``allow_different_data``."""
    validate_record(a, names[0])
    validate_record(b, names[1])
    if not allow_different_data:
        check_comparable(a, b, *names)
    out = []
    ma, mb = a["metrics"], b["metrics"]
    for name in sorted(set(ma) | set(mb)):
        if name not in ma or name not in mb:
            out.append(Agreement(name, ma.get(name, {}).get("value"), mb.get(name, {}).get("value"), None, False))
            continue
        pa, na, pb, nb = ma[name]["value"], ma[name]["total"], mb[name]["value"], mb[name]["total"]
        bound = max(Z * math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb), 1.0 / min(na, nb))
        out.append(Agreement(name, pa, pb, bound, abs(pa - pb) <= bound))
    return out
