"""The gate: one run's record judged against its suite's baseline, metric by metric.

Before any metric is judged, the record must be judgeable: every value a finite
proportion, every headline of the baseline measured, and the record's test sets
the baseline's (the same ``split_hashes``); anything else is an error naming what
differs, never a pass. Then a headline fails when it falls beyond its tolerance
(a change gated both ways when it moves either way), and when it *improves* by
more than :data:`SUSPICIOUS` times its tolerance: a jump that large is what a test
leak or a broken split looks like, so it fails as a suspicious improvement unless
the run accepts improvements (``--accept-improvements``), after which the baseline
is rebuilt in a commit that explains it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Mapping

from .baselines import UPDATE_COMMAND, change_value, is_seeded, under_current_rule, validate_baseline
from . import protocol
from .errors import IncomparableRecordsError, RecordError
from .records import first_different_split, fingerprint, same_hardware, validate_record

# A headline better than the baseline by more than this many tolerances is
# suspicious. For a new seed of unchanged code that is beyond about 3.7 seed SDs
# from the mean (tolerance ~ 1.9-2.7 SDs): under 0.3% of runs.
SUSPICIOUS = 2.0


@dataclass(frozen=True)
class Finding:
    """One metric judged against its baseline. ``role`` is 'headline',
    'untouched' or 'reported' (seeded baselines) or 'gated' (single-seed ones,
    where every metric is gated); a reported metric never fails the suite.
    ``rule`` says in words how its tolerance was set."""
    metric: str
    status: str  # "regressed", "changed", "improved", "suspicious", "within", "missing", "new"
    baseline: float | None
    measured: float | None
    tolerance: float | None
    role: str = "gated"
    rule: str = ""

    @property
    def gated(self) -> bool:
        return self.role != "reported"

    def message(self) -> str:
        tail = "" if self.gated else " (reported, not gated)"
        if self.status == "missing":
            return f"{self.metric}: in the baseline ({self.baseline:.4f}) but not measured{tail}"
        if self.status == "new":
            return f"{self.metric}: measured {self.measured:.4f}, not in the baseline"
        delta = self.measured - self.baseline
        rule = f"; {self.rule}" if self.rule else ""
        status = self.status
        if status == "suspicious":
            status = (f"suspicious improvement (more than {SUSPICIOUS:g} x tolerance: a test leak or a changed "
                      "split looks like this; if it is real, rerun with --accept-improvements and rebuild the "
                      f"baseline with {UPDATE_COMMAND} in a commit that says why)")
        return (f"{self.metric}: measured {self.measured:.4f} vs baseline {self.baseline:.4f} "
                f"({delta:+.4f}, tolerance {self.tolerance:.4f}{rule}) {status}{tail}")


# Equal up to float rounding: far below one image on any test set.
EXACT = 1e-9


def measure(record: Mapping, baseline: Mapping) -> dict[str, float | None]:
    """The record's value of every metric of a seeded baseline (a headline mean
    over the same members as in the baseline, a change as its first side's mean
    less its second's); None where a metric is missing."""
    measured = record["metrics"]
    out = {}
    for name, base in baseline["metrics"].items():
        members = base.get("members", [name])
        if not all(n in measured for n in members):
            out[name] = None
        elif base.get("combine") == "change":
            out[name] = change_value({n: measured[n]["value"] for n in members}, members, base.get("split", 1))
        else:
            out[name] = statistics.fmean(measured[n]["value"] for n in members)
    return out


def _judge(name: str, value: float | None, base: Mapping, tol: float, role: str, rule: str) -> Finding:
    if value is None:
        return Finding(name, "missing", base["value"], None, tol, role, rule)
    slack = max(tol, EXACT)
    better = base.get("better", "higher")
    if better == "either":
        status = "changed" if abs(value - base["value"]) > slack else "within"
        return Finding(name, status, base["value"], value, tol, role, rule)
    gain = (value - base["value"]) * (1 if better == "higher" else -1)
    status = "regressed" if gain < -slack else "improved" if gain > slack else "within"
    if status == "improved" and role == "headline" and gain > SUSPICIOUS * slack:
        status = "suspicious"
    return Finding(name, status, base["value"], value, tol, role, rule)


def judge(values: Mapping[str, float | None], baseline: Mapping, same_machine: bool) -> list[Finding]:
    """Judge measured ``values`` (:func:`measure`) against a seeded baseline;
    ``same_machine``: the run's hardware fingerprint is the baseline's."""
    findings = []
    n_seeds = baseline.get("n_seeds")
    for name, base in sorted(baseline["metrics"].items()):
        role = base["role"]
        if role == "untouched":
            tol = 0.0 if same_machine else base["floor"]
            rule = ("untouched by training: exact on this hardware" if same_machine
                    else "untouched by training: test-set floor on other hardware")
        else:
            tol = base["tolerance"]
            if base["sd"] is None:
                rule = f"SD unknown (one seed): single-seed rule; rebuild with {UPDATE_COMMAND}"
            elif tol == base["floor"]:
                rule = f"test-set floor ({n_seeds} seeds)"
            else:
                rule = f"seed spread of {n_seeds} seeds, sd {base['sd']:.4f}"
            if base.get("better") == "either":
                rule += "; gated both ways"
        findings.append(_judge(name, values.get(name), base, tol, role, rule))
    return findings


def check_same_test_sets(record: Mapping, baseline: Mapping, source: str = "baseline") -> None:
    """Raise :class:`IncomparableRecordsError` naming the first task split whose
    test data differ between the record and the baseline (a changed split makes
    every comparison meaningless)."""
    theirs = baseline.get("data_hashes") or {}
    differ = first_different_split(record.get("split_hashes") or {}, theirs) if theirs else None
    if differ:
        split, how = differ
        what = {"only in ours": "is not in the " + source, "only in theirs": "is missing from the record",
                "different contents": f"holds other test data than the {source}'s"}[how]
        raise IncomparableRecordsError(
            f"{record.get('case', 'record')}: split {split!r} {what}: the run measured other test data; restore "
            f"the data or rebuild the baseline with {UPDATE_COMMAND} in a commit that says why the data changed")


def check_same_protocol(record: Mapping, baseline: Mapping) -> None:
    """Raise :class:`IncomparableRecordsError` naming the fields of the protocol
    (:mod:`tvcore.protocol`: config, recipe less the seed, pre-trained weights,
    tasks and prompts) in which the record's run differs from the runs the
    baseline pooled: its numbers would be judged against another experiment's."""
    diffs = protocol.differences(protocol.of_record(record), protocol.of_baseline(baseline))
    if diffs:
        raise IncomparableRecordsError(
            f"{record.get('case', 'record')} ran another protocol than its baseline: "
            f"{protocol.describe(diffs, 'in the record', 'in the baseline')}; run the suite as the baseline did, or "
            f"rebuild the baseline with {UPDATE_COMMAND} in a commit that says why the protocol changed")


def gate(record: Mapping, baseline: Mapping, suites: int | None = None) -> list[Finding]:
    """Compare a record's metrics with a baseline, metric by metric.

    The record is schema-checked (a NaN, an infinity or a value outside [0, 1] is
    a :class:`RecordError`), its test sets and protocol must be the baseline's
    (:func:`check_same_test_sets`, :func:`check_same_protocol`), and every
    headline must be measured. A seeded
    baseline (:func:`tvcore.baselines.baseline_from_records`) fails headline
    metrics that fall beyond their tolerance or improve suspiciously, and
    untouched ones that change (exactly, on the baseline's hardware); the rest are
    reported. A single-seed baseline (the first format) is still read: every
    metric gated with its stored tolerance, and each finding says the SD is
    unknown and how to rebuild.

    ``suites``: the number of suites gated together (CI's family); given, a seeded
    baseline's stored seeds are judged by the current rule
    (:func:`tvcore.baselines.under_current_rule`): its headlines and tolerances
    follow this tvcore whatever tvcore wrote the file."""
    validate_baseline(baseline)
    if suites is not None:
        baseline = under_current_rule(baseline, suites)
    validate_record(record, f"record {record.get('case', '?')}")
    check_same_test_sets(record, baseline)
    check_same_protocol(record, baseline)
    measured = record["metrics"]
    if is_seeded(baseline):
        values = measure(record, baseline)
        missing = [n for n in baseline.get("headline", []) if values.get(n) is None]
        if missing:
            raise RecordError(f"{record.get('case', 'record')}: headline {missing[0]!r} of the baseline is not "
                              "measured by the record; run the suite that wrote the baseline")
        findings = judge(values, baseline, same_hardware(fingerprint(record), baseline.get("fingerprint")))
        known = set(baseline["metrics"]) | {n for m in baseline["metrics"].values() for n in m.get("members", [])}
    else:
        rule = f"single-seed baseline, SD unknown: test-set rule; rebuild with {UPDATE_COMMAND}"
        findings = [_judge(name, measured[name]["value"] if name in measured else None, base, base["tolerance"],
                           "gated", rule) for name, base in sorted(baseline["metrics"].items())]
        known = set(baseline["metrics"])
    for name in sorted(set(measured) - known):
        findings.append(Finding(name, "new", None, measured[name]["value"], None))
    return findings


def failures(findings: list[Finding], accept_improvements: bool = False) -> list[Finding]:
    """The findings that fail the suite: gated metrics regressed, changed (gated
    both ways) or missing, and headlines improved suspiciously unless
    ``accept_improvements``."""
    bad = {"regressed", "changed", "missing"} | (set() if accept_improvements else {"suspicious"})
    return [f for f in findings if f.status in bad and f.gated]


def suspicious(findings: list[Finding]) -> list[Finding]:
    """Headlines that improved by more than :data:`SUSPICIOUS` tolerances."""
    return [f for f in findings if f.status == "suspicious"]


def reported(findings: list[Finding]) -> list[Finding]:
    """Reported (not gated) metrics that fell beyond their tolerance or are missing."""
    return [f for f in findings if not f.gated and f.status in ("regressed", "changed", "missing")]
