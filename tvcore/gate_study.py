"""Measure the baseline gate, not guess it: its false-alarm rate and its power on
fine-tuning seeds the baseline never saw.

Given records of one suite for some seeds (the baseline's) and for others (held
out), the study builds the baseline as ``pytest bench/ --update-baselines`` would
(:func:`tvcore.results.baseline_from_records`) and judges every held-out run
against it:

* **false-alarm rate**: the share of held-out runs of unchanged code that fail
  the gate, per suite and for the whole CI verdict (any suite failing);
* **power**: for each headline metric and held-out run, the smallest degradation
  ``d`` (1, 2, ... percentage points, made worse in the metric's direction) of the
  run's measured value that fails the gate.

Records are read from a results folder as the plugin writes them: ``<suite>.json``
for seed 0, ``<suite>-seed<k>.json`` for seed k. For example, after
``pytest bench/ -m micro --seeds 10 --results-dir R``::

    python -m tvcore.gate_study --results-dir R --baseline-seeds 0-4 --heldout-seeds 5-9

Or from the committed baselines themselves, which keep every seed's measurements:
each seed in turn is held out and judged against a baseline of the others, under
the rule CI applies (``--from-baselines baselines``).

A held-out study also judges **named wrong results** (:data:`WRONG_RESULTS`): each
held-out run altered as a broken tvcore would alter it (the edit not applied, every
merging method 10 points lower, the analogy's control 10 points lower, ...), so
the table says, for results that must fail, on how many seeds they do.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from . import results
from .baselines import _matcher
from .errors import RecordError, TvcoreError, UsageError

POINT = 0.01  # one percentage point
_SEED_FILE = re.compile(r"^(?P<suite>.+)-seed(?P<seed>\d+)\.json$")


def record_path(results_dir: str | Path, suite: str, seed: int) -> Path:
    """Where the plugin writes the record of ``suite`` run with ``seed``."""
    return Path(results_dir) / (f"{suite}.json" if seed == 0 else f"{suite}-seed{seed}.json")


def suites_in(results_dir: str | Path) -> list[str]:
    """The suites of a results folder that were run with more than one seed."""
    return sorted({m.group("suite") for p in Path(results_dir).glob("*-seed*.json")
                   if (m := _SEED_FILE.match(p.name))})


def read_records(results_dir: str | Path, suite: str, seeds: Sequence[int]) -> list[dict]:
    """The records of ``suite`` for ``seeds``, each checked to be that seed's."""
    out = []
    for seed in seeds:
        path = record_path(results_dir, suite, seed)
        if not path.is_file():
            raise RecordError(f"no record of {suite} seed {seed} at {path}; run: pytest bench/ -m micro "
                              f"--seeds {max(seeds) + 1} --results-dir {results_dir}")
        record = results.read_record(path)
        if record.get("seed", seed) != seed:
            raise RecordError(f"{path} holds seed {record.get('seed')!r}, not seed {seed}")
        out.append(record)
    return out


@dataclass
class HeadlinePower:
    """How large a drop of one headline metric the gate catches."""
    metric: str
    better: str
    mean: float
    sd: float | None
    tolerance: float
    # Per held-out seed: the smallest drop in points that fails the gate (None:
    # none does before the metric's range ends).
    smallest_drop: dict[int, int | None] = field(default_factory=dict)

    @property
    def caught_on_every_seed(self) -> int | None:
        """The drop (points) the gate catches whichever held-out seed ran."""
        drops = list(self.smallest_drop.values())
        return None if not drops or None in drops else max(drops)


@dataclass
class SuiteStudy:
    suite: str
    baseline_seeds: list[int]
    heldout_seeds: list[int]
    failed: dict[int, list[str]]  # held-out seed -> gated metrics that failed
    reported: dict[int, list[str]]  # held-out seed -> reported metrics beyond tolerance
    same_machine: dict[int, bool]  # held-out seed -> its fingerprint is the baseline's
    power: list[HeadlinePower]

    @property
    def false_alarms(self) -> int:
        return sum(1 for names in self.failed.values() if names)

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / len(self.heldout_seeds)


def upper_bound(failures: int, runs: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen ``failures`` times in
    ``runs``: with few held-out seeds, 0 false alarms is weak evidence."""
    from scipy.stats import beta

    return 1.0 if failures >= runs else float(beta.ppf(confidence, failures + 1, runs - failures))


def degraded(value: float, better: str, points: int, low: float = 0.0) -> float | None:
    """``value`` made worse by ``points`` percentage points; None outside [low, 1]
    (``low`` -1 for a change of accuracy, which may be negative)."""
    out = value - points * POINT if better == "higher" else value + points * POINT
    return out if low - results.EXACT <= out <= 1 + results.EXACT else None


def smallest_failing_drop(values: Mapping[str, float | None], baseline: Mapping, metric: str, same_machine: bool,
                          max_points: int = 100) -> int | None:
    """The smallest whole number of points that, taken from ``metric``'s measured
    value in the worse direction, makes the gate fail that metric."""
    better = baseline["metrics"][metric]["better"]
    better = "higher" if better == "either" else better  # a change gated both ways: measured as a drop
    low = -1.0 if baseline["metrics"][metric].get("combine") == "change" else 0.0
    for d in range(1, max_points + 1):
        worse = degraded(values[metric], better, d, low)
        if worse is None:
            return None
        judged = results.judge({**values, metric: worse}, baseline, same_machine)
        if any(f.metric == metric and f.status in ("regressed", "changed") for f in judged):
            return d
    return None


def study_suite(suite: str, baseline_records: Sequence[Mapping], heldout_records: Sequence[Mapping],
                false_alarm_rate: float = results.FALSE_ALARM_RATE, family: int | None = None) -> SuiteStudy:
    """Build the baseline from ``baseline_records`` as CI's are built (the
    false-alarm rate split over the ``family`` of gated suites, default all of
    them) and judge each held-out run."""
    from .experiments import GATED_SUITES

    if not heldout_records:
        raise UsageError(f"{suite}: no held-out records to judge")
    baseline = results.baseline_from_records(baseline_records, false_alarm_rate,
                                             suites=family or len(GATED_SUITES))
    study = SuiteStudy(suite, [r.get("seed") for r in baseline_records], [], {}, {}, {},
                       [HeadlinePower(name, m["better"], m["mean"], m["sd"], m["tolerance"])
                        for name, m in sorted(baseline["metrics"].items()) if m["role"] == "headline"])
    for i, record in enumerate(heldout_records):
        seed = record.get("seed", f"#{i}")
        findings = results.gate(record, baseline)
        same = results.same_hardware(results.fingerprint(record), baseline.get("fingerprint"))
        study.heldout_seeds.append(seed)
        study.failed[seed] = [f.metric for f in results.failures(findings)]
        study.reported[seed] = [f.metric for f in results.reported(findings)]
        study.same_machine[seed] = same
        values = results.measure(record, baseline)
        for power in study.power:
            if values.get(power.metric) is None:
                power.smallest_drop[seed] = None
                continue
            power.smallest_drop[seed] = smallest_failing_drop(values, baseline, power.metric, same)
    return study


def study(results_dir: str | Path, baseline_seeds: Sequence[int], heldout_seeds: Sequence[int],
          suites: Sequence[str] | None = None, false_alarm_rate: float = results.FALSE_ALARM_RATE
          ) -> list[SuiteStudy]:
    """:func:`study_suite` for every suite of ``results_dir`` run with several seeds
    (or those named)."""
    overlap = sorted(set(baseline_seeds) & set(heldout_seeds))
    if overlap:
        raise UsageError(f"seed {overlap[0]} is both a baseline seed and a held-out seed; hold out other seeds")
    if len(baseline_seeds) < 2:
        raise UsageError("a baseline needs at least 2 seeds to have a spread")
    suites = list(suites) if suites else suites_in(results_dir)
    if not suites:
        raise UsageError(f"no records of several seeds in {results_dir} (<suite>-seed<k>.json); run: "
                         f"pytest bench/ -m micro --seeds N --results-dir {results_dir}")
    return [study_suite(s, read_records(results_dir, s, baseline_seeds), read_records(results_dir, s, heldout_seeds),
                        false_alarm_rate) for s in suites]


def records_from_baseline(baseline: Mapping) -> list[dict]:
    """One record per seed of a seeded baseline, from the measurements it keeps
    (each measured metric's per-seed value and test-set size, the test-set hashes
    and hardware fingerprint): what the seeds' records said of those metrics."""
    if not results.is_seeded(baseline):
        raise UsageError(f"{baseline.get('case')}: a single-seed baseline keeps no seeds to hold out")
    measured = {n: m for n, m in baseline["metrics"].items() if "members" not in m}
    fp = baseline.get("fingerprint") or {}
    env = {"hardware": {"cpu": fp.get("cpu"), "gpu": fp.get("gpu")}, "versions": {"torch": fp.get("torch")}}
    dirs = {n: m["better"] for n, m in measured.items() if m.get("better") in ("higher", "lower")}
    out = []
    for i, seed in enumerate(baseline["seeds"]):
        out.append({"case": baseline["case"] if seed == 0 else f"{baseline['case']}-seed{seed}",
                    "suite": baseline["case"], "seed": seed, "experiment": baseline.get("experiment"),
                    "directions": dirs, "split_hashes": baseline.get("data_hashes") or {}, "environment": env,
                    "metrics": {n: {"value": m["values"][i], "total": m["n"]} for n, m in measured.items()}})
    return out


def leave_one_out(suite: str, records: Sequence[Mapping], false_alarm_rate: float = results.FALSE_ALARM_RATE,
                  family: int | None = None) -> list[SuiteStudy]:
    """Each record in turn held out and judged against a baseline of the others."""
    return [study_suite(suite, [r for j, r in enumerate(records) if j != i], [records[i]], false_alarm_rate, family)
            for i in range(len(records))]


# ---------------------------------------------------------------- named wrong results

# An alteration maps a run's metric values to the values of the wrong result (only
# the metrics it changes); values are clipped to [0, 1].
Alteration = Callable[[Mapping[str, float]], dict[str, float]]


def _shifted(pattern: str, points: float) -> Alteration:
    """Every metric matching ``pattern`` (``*`` any text, as in a headline) moved by ``points``."""
    rx = _matcher(pattern)
    return lambda v: {n: x + points * POINT for n, x in v.items() if rx.match(n)}


def _edit_not_applied(v: Mapping[str, float]) -> dict[str, float]:
    """BI-RADS: the model at alpha 1 is the baseline."""
    prefix = "enhanced[alpha=1]."
    pairs = {n: "baseline." + n[len(prefix):] for n in v if n.startswith(prefix)}
    return {n: v[b] for n, b in pairs.items() if b in v}


def _minority_down(points: float) -> Alteration:
    """BI-RADS: the enhanced model's grade 5 ``points`` lower, its overall accuracy
    lower by that grade's share of a balanced test split."""
    def alter(v):
        grades = [n for n in v if n.startswith("enhanced[alpha=1].class[")]
        return {"enhanced[alpha=1].class[grade 5]": v["enhanced[alpha=1].class[grade 5]"] - points * POINT,
                "enhanced[alpha=1].overall": v["enhanced[alpha=1].overall"] - points * POINT / len(grades)}
    return alter


def _negation_towards_pretrained(share: float) -> Alteration:
    """Negation: each negated model's target (and, for the whole way, control)
    moved ``share`` of the way back to the pre-trained model's."""
    def alter(v):
        out = {}
        for n in v:
            m = re.fullmatch(r"negated\[(.+)\]\.(target|control)", n)
            if m and (m.group(2) == "target" or share == 1):
                pre = v[f"pretrained[{m.group(1)}].target"] if m.group(2) == "target" else v["pretrained.control"]
                out[n] = v[n] + share * (pre - v[n])
        return out
    return alter


def _scores_as_pretrained(prefix: str = "merged[") -> Alteration:
    """Every merged model whose metric starts with ``prefix`` (``merged[t]`` or
    ``merged[method][t]``) scores as the pre-trained model on its task."""
    return lambda v: {n: v[f"pretrained[{n.rsplit('[', 1)[1]}"] for n in v if n.startswith(prefix)}


def _one_task_at_chance(v: Mapping[str, float]) -> dict[str, float]:
    """The first merged task (by name) at 10%, the chance level of ten digits."""
    first = min(n for n in v if n.startswith("merged["))
    return {first: 0.10}


def _analogy_not_applied(v: Mapping[str, float]) -> dict[str, float]:
    return {"analogy.target": v["pretrained.target"], "analogy.control": v["pretrained.control"]}


# Per experiment: the wrong results the gate must fail, and two it is known to miss
# (a grade-5 collapse of the enhanced model, TIES 5 points lower), named so the
# table says so.
WRONG_RESULTS: dict[str, list[tuple[str, Alteration]]] = {
    "birads": [("the edit not applied (the model at alpha 1 is the baseline)", _edit_not_applied),
               ("every model 5 points lower", lambda v: {**_shifted("baseline.*", -5)(v),
                                                         **_shifted("enhanced[alpha=1].*", -5)(v)}),
               ("the enhanced model's grade 5 20 points lower", _minority_down(20))],
    "negation": [("the negation not applied (negated = pre-trained)", _negation_towards_pretrained(1)),
                 ("half the negation's effect on the targets", _negation_towards_pretrained(0.5)),
                 ("the control 3 points lower", _shifted("negated[*].control", -3))],
    "addition": [("the merged model is the pre-trained one", _scores_as_pretrained()),
                 ("one task at chance", _one_task_at_chance),
                 ("every task 3 points lower", _shifted("merged[*]", -3))],
    "analogy": [("the analogy not applied (lambda 0)", _analogy_not_applied),
                ("the control 10 points lower", _shifted("analogy.control", -10)),
                ("the target 5 points lower", _shifted("analogy.target", -5))],
    "merging": [("every method is the pre-trained model", _scores_as_pretrained()),
                ("every method 10 points lower (a regression they share)", _shifted("merged[*]", -10)),
                ("every method 5 points lower", _shifted("merged[*]", -5)),
                ("TIES is the pre-trained model", _scores_as_pretrained("merged[ties][")),
                ("TIES 5 points lower", _shifted("merged[ties][*]", -5))],
}


def altered(record: Mapping, alteration: Alteration) -> dict:
    """``record`` as the wrong result would have measured it: the altered metrics
    keep their test-set size and lose what only the true value had (counts,
    per-image outcomes)."""
    out = copy.deepcopy(dict(record))
    values = {n: m["value"] for n, m in record["metrics"].items()}
    for name, value in alteration(values).items():
        out["metrics"][name] = {"value": min(1.0, max(0.0, value)), "total": record["metrics"][name].get("total")}
    return out


def _applies(alteration: Alteration, record: Mapping) -> bool:
    """Whether ``record`` measures what ``alteration`` reads and changes."""
    try:
        return bool(alteration({n: m["value"] for n, m in record["metrics"].items()}))
    except (KeyError, ValueError):
        return False


@dataclass
class WrongResultStudy:
    suite: str
    what: str
    failed: dict[int, list[str]]  # held-out seed -> gated metrics that failed

    @property
    def caught(self) -> int:
        return sum(1 for names in self.failed.values() if names)


def wrong_results(suite: str, records: Sequence[Mapping], false_alarm_rate: float = results.FALSE_ALARM_RATE,
                  family: int | None = None) -> list[WrongResultStudy]:
    """Each named wrong result of ``suite``'s experiment applied to each record in
    turn, judged against a baseline of the other records (leave one out)."""
    from .experiments import GATED_SUITES

    named = [(what, alteration) for what, alteration in WRONG_RESULTS.get(records[0].get("experiment"), [])
             if records and _applies(alteration, records[0])]
    out = [WrongResultStudy(suite, what, {}) for what, _ in named]
    for i, record in enumerate(records):
        baseline = results.baseline_from_records([r for j, r in enumerate(records) if j != i], false_alarm_rate,
                                                 suites=family or len(GATED_SUITES))
        for study_, (_, alteration) in zip(out, named):
            findings = results.gate(altered(record, alteration), baseline)
            study_.failed[record.get("seed", i)] = [f.metric for f in results.failures(findings)]
    return out


def render_wrong_results(studies: Sequence[WrongResultStudy]) -> str:
    from tabulate import tabulate

    rows = [[s.suite, s.what, f"{s.caught} of {len(s.failed)}"] for s in studies]
    return tabulate(rows, headers=["suite", "named wrong result", "held-out seeds failing"], tablefmt="github")


def render_leave_one_out(studies: Mapping[str, Sequence[SuiteStudy]]) -> str:
    """Per suite and headline: seed SD and tolerance (ranges over the held-out
    seeds), false alarms, and the smallest drop that fails."""
    from tabulate import tabulate

    rows, any_failed, seeds, by_suite = [], set(), set(), []
    for suite, runs in studies.items():
        failing = sorted({seed for s in runs for seed, names in s.failed.items() if names}, key=str)
        if failing:
            by_suite.append(f"{suite} seed{'s' if len(failing) > 1 else ''} {', '.join(map(str, failing))}")
        for seed_study in runs:
            seeds.update(seed_study.heldout_seeds)
        any_failed.update(failing)
        for k, first in enumerate(runs[0].power):
            powers = [s.power[k] for s in runs]
            sds = [p.sd for p in powers if p.sd is not None]
            tols = [p.tolerance for p in powers]
            drops = [d for p in powers for d in p.smallest_drop.values() if d is not None]
            alarms = sum(1 for s in runs for names in s.failed.values() if first.metric in names)
            rows.append([suite, first.metric, f"{100 * min(sds):.1f}-{100 * max(sds):.1f}" if sds else "-",
                         f"{100 * min(tols):.1f}-{100 * max(tols):.1f}", f"{alarms} of {len(runs)}",
                         f"{min(drops)}-{max(drops)}" if drops else "-"])
    head = ["suite", "headline", "seed sd (points)", "tolerance (points)",
            "false alarms (held-out seeds failing this headline)", "smallest drop that fails (points)"]
    return (tabulate(rows, headers=head, tablefmt="github")
            + f"\nAny suite failing: {len(any_failed)} of {len(seeds)} held-out seeds"
            + (f" ({'; '.join(by_suite)})" if by_suite else ""))


def any_suite_failed(studies: Sequence[SuiteStudy]) -> dict:
    """The CI verdict over all suites: held-out seeds for which at least one suite failed."""
    seeds = sorted(set().union(*(s.heldout_seeds for s in studies)), key=str)
    failed = [seed for seed in seeds if any(s.failed.get(seed) for s in studies)]
    return {"heldout_seeds": seeds, "failed_seeds": failed, "rate": len(failed) / len(seeds) if seeds else 0.0,
            "upper_95": upper_bound(len(failed), len(seeds)) if seeds else 1.0}


def _pts(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def render(studies: Sequence[SuiteStudy]) -> str:
    from tabulate import tabulate

    rows = []
    for s in studies:
        failing = "; ".join(f"seed {seed}: {', '.join(names)}" for seed, names in s.failed.items() if names)
        rows.append([s.suite, f"{s.false_alarms}/{len(s.heldout_seeds)}", f"{100 * s.false_alarm_rate:.0f}%",
                     f"{100 * upper_bound(s.false_alarms, len(s.heldout_seeds)):.0f}%",
                     "yes" if all(s.same_machine.values()) else "no", failing or "-"])
    out = [f"False alarms: held-out seeds of unchanged code failing the gate "
           f"(baseline seeds {studies[0].baseline_seeds}, held out {studies[0].heldout_seeds})",
           tabulate(rows, headers=["suite", "failed", "rate", "95% upper", "same machine", "failing metrics"],
                    tablefmt="github")]
    total = any_suite_failed(studies)
    out.append(f"CI verdict (any suite failing): {len(total['failed_seeds'])}/{len(total['heldout_seeds'])} held-out "
               f"seeds, 95% upper bound {100 * total['upper_95']:.0f}%")
    rows = []
    for s in studies:
        for p in s.power:
            drops = [d for d in p.smallest_drop.values()]
            shown = ", ".join("-" if d is None else str(d) for d in drops)
            rows.append([s.suite, p.metric, p.better, _pts(p.mean), _pts(p.sd), _pts(p.tolerance), shown,
                         "-" if p.caught_on_every_seed is None else p.caught_on_every_seed])
    out += ["", "Power: smallest drop (points, in the worse direction) of a held-out run's headline metric that "
                "fails the gate",
            tabulate(rows, headers=["suite", "headline", "better", "mean %", "sd", "tolerance", "per held-out seed",
                                    "caught on every seed"], tablefmt="github")]
    reported = {(s.suite, n) for s in studies for names in s.reported.values() for n in names}
    if reported:
        out += ["", "Reported (not gated) metrics beyond their tolerance on some held-out seed: "
                + ", ".join(f"{suite}: {n}" for suite, n in sorted(reported))]
    return "\n".join(out)


def as_dict(studies: Sequence[SuiteStudy]) -> dict:
    return {"suites": [dict(asdict(s), false_alarms=s.false_alarms, false_alarm_rate=s.false_alarm_rate,
                            false_alarm_upper_95=upper_bound(s.false_alarms, len(s.heldout_seeds)),
                            power=[dict(asdict(p), caught_on_every_seed=p.caught_on_every_seed) for p in s.power])
                       for s in studies],
            "any_suite": any_suite_failed(studies)}


def parse_seeds(text: str) -> list[int]:
    """'0-4' or '5,6,7' (or both, comma-separated) as a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise UsageError(f"seeds {text!r}: write them as 0-4 or 5,6,7")
        seeds += list(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return seeds


def _records_in_turn(args) -> dict[str, list[dict]]:
    """Per suite, the records whose seeds are held out in turn: a baselines
    folder's stored seeds, or a results folder's records of ``--leave-one-out``."""
    if args.from_baselines:
        from .experiments import GATED_SUITES

        return {suite: records_from_baseline(results.read_baseline(Path(args.from_baselines) / f"{suite}.json"))
                for suite in args.suite or GATED_SUITES}
    seeds = parse_seeds(args.leave_one_out)
    if len(seeds) < 3:
        raise UsageError(f"--leave-one-out {args.leave_one_out}: give at least 3 seeds (each held out against a "
                         "baseline of at least 2)")
    return {suite: read_records(args.results_dir, suite, seeds) for suite in args.suite or suites_in(args.results_dir)}


def render_held_out_in_turn(records: Mapping[str, Sequence[Mapping]], false_alarm_rate: float) -> str:
    """The leave-one-out table (false alarms, power) and the named wrong results'."""
    loo = {suite: leave_one_out(suite, recs, false_alarm_rate) for suite, recs in records.items()}
    wrong = [w for suite, recs in records.items() for w in wrong_results(suite, recs, false_alarm_rate)]
    out = render_leave_one_out(loo)
    if wrong:
        out += "\n\nNamed wrong results, each held-out seed altered:\n" + render_wrong_results(wrong)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tvcore.gate_study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", help="folder of records (<suite>.json, <suite>-seed<k>.json)")
    parser.add_argument("--baseline-seeds", type=str, help="seeds that build the baseline, e.g. 0-4")
    parser.add_argument("--heldout-seeds", type=str, help="seeds judged against it, e.g. 5-9")
    parser.add_argument("--leave-one-out", metavar="SEEDS",
                        help="with --results-dir: hold out each of these seeds in turn against a baseline of the "
                             "others, e.g. 0-9 (instead of --baseline-seeds and --heldout-seeds)")
    parser.add_argument("--from-baselines", help="a baselines folder: hold out each stored seed in turn "
                                                 "(instead of --results-dir and the seed lists)")
    parser.add_argument("--suite", action="append", help="a suite to study (repeatable; default: every suite "
                                                         "of the folder run with several seeds)")
    parser.add_argument("--false-alarm-rate", type=float, default=results.FALSE_ALARM_RATE,
                        help="the suite's false-alarm rate the tolerances are set for (default 0.05)")
    parser.add_argument("--json", help="also write the study as JSON to this file")
    args = parser.parse_args(argv)
    if not 0 < args.false_alarm_rate < 1:
        parser.error(f"--false-alarm-rate {args.false_alarm_rate} is not between 0 and 1")
    from .cli import one_line

    if args.from_baselines or (args.results_dir and args.leave_one_out):
        try:
            print(render_held_out_in_turn(_records_in_turn(args), args.false_alarm_rate))
        except TvcoreError as exc:
            print(f"gate_study: error: {one_line(exc)}", file=sys.stderr)
            return 2
        return 0
    if not (args.results_dir and args.baseline_seeds and args.heldout_seeds):
        parser.error("give --results-dir with --leave-one-out SEEDS or with --baseline-seeds and --heldout-seeds, "
                     "or --from-baselines")
    try:
        studies = study(args.results_dir, parse_seeds(args.baseline_seeds), parse_seeds(args.heldout_seeds),
                        args.suite, args.false_alarm_rate)
        print(render(studies))
        if args.json:
            results.write_json(as_dict(studies), args.json)
    except TvcoreError as exc:
        print(f"gate_study: error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
