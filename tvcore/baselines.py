"""Baselines: the metrics of several fine-tuning seeds of one suite, pooled, and
the tolerances the gate (:mod:`tvcore.gate`) judges a new run with.

A *baseline* (``baselines/<case>.json``) pools the records of several fine-tuning
seeds (``pytest bench/ --update-baselines --seeds N``, written atomically): per
metric the seeds' values, mean, SD, test-set size, direction, role and tolerance.
A few *headline* metrics per suite are gated, with the false-alarm rate of every
gated suite together split between them; metrics of the pre-trained model, which
no seed touches, are gated exactly on the baseline's hardware; every other metric
is *reported*. Single-seed baselines of the first format are still read, with the
single-seed test-set rule. :mod:`tvcore.gate_study` measures the gate's
false-alarm rate and power on held-out seeds.
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Callable, Mapping, Sequence

from . import protocol
from .errors import BaselineError, RecordError
from .records import (_check_metrics, _count, _is_number, _non_negative, _proportion, fingerprint, read_json,
                      validate_record)
from .stats import Z95

BASELINE_FORMAT = "tvcore.baseline/2"  # seeded: pooled over fine-tuning seeds
SINGLE_SEED_FORMAT = "tvcore.baseline/1"  # one seed, value and tolerance per metric
TOLERANCE_RULE = ("two-sided 95% bound on the difference of two proportions measured on the same test-set "
                  "size n: 1.96 * sqrt(2 p (1 - p) / n), at least 1/n")


def _direction(v) -> bool:
    """'higher', 'lower' or 'either' (a change that must not move either way)"""
    return v in DIRECTIONS


def _role(v) -> bool:
    """'headline', 'untouched' or 'reported'"""
    return v in ROLES


def _seed_values(v) -> bool:
    """a non-empty list of proportions, one per seed"""
    return isinstance(v, list) and bool(v) and all(_proportion(x) for x in v)


def _signed(v) -> bool:
    """a number in [-1, 1] (a change of accuracy)"""
    return _is_number(v) and -1 <= v <= 1


def _signed_values(v) -> bool:
    """a non-empty list of changes in [-1, 1], one per seed"""
    return isinstance(v, list) and bool(v) and all(_signed(x) for x in v)


def _sd(v) -> bool:
    """null (one seed) or a number >= 0"""
    return v is None or _non_negative(v)


# The single-seed baselines written before seeds were pooled: value and tolerance.
SINGLE_SEED_FIELDS = {"value": _proportion, "tolerance": _non_negative}
BASELINE_FIELDS = {"value": _proportion, "tolerance": _non_negative, "floor": _non_negative, "role": _role,
                   "values": _seed_values, "mean": _proportion, "sd": _sd, "n_seeds": _count, "n": _count,
                   "better": _direction}
# A change between two metrics of one run (``change(A, B)`` = A - B) may be negative.
CHANGE_FIELDS = {**BASELINE_FIELDS, "value": _signed, "mean": _signed, "values": _signed_values}
DIRECTIONS = ("higher", "lower", "either")
UPDATE_COMMAND = "pytest bench/ --update-baselines --seeds N"
_BASELINE_FIX = f"rebuild the baselines with: {UPDATE_COMMAND}"


def is_seeded(baseline: Mapping) -> bool:
    """Whether ``baseline`` pools several seeds (format :data:`BASELINE_FORMAT`)
    rather than being a single-seed baseline of the first format."""
    return baseline.get("format") == BASELINE_FORMAT


def validate_baseline(baseline: Mapping, source: str = "baseline") -> Mapping:
    """Raise :class:`BaselineError` unless ``baseline`` is one this tvcore can gate.

    A single-seed baseline (format ``tvcore.baseline/1``, or no format) needs a
    non-empty ``metrics`` table whose every metric has a ``value``, a ``tolerance``
    and (if given) a direction ``better`` of 'higher' or 'lower'. A seeded baseline
    (:data:`BASELINE_FORMAT`) also needs, per metric, its ``role``, the per-seed
    ``values`` (as many as ``n_seeds``), their ``mean`` and ``sd``, test-set size ``n``, ``floor`` and
    ``better``; a headline mean names its ``members``; the ``headline`` list names
    exactly the metrics whose role is 'headline'."""
    fmt = baseline.get("format", SINGLE_SEED_FORMAT) if isinstance(baseline, Mapping) else None
    if fmt not in (BASELINE_FORMAT, SINGLE_SEED_FORMAT):
        raise BaselineError(f"{source}: format {fmt!r} is not one this tvcore reads ({BASELINE_FORMAT} or "
                            f"{SINGLE_SEED_FORMAT}); {_BASELINE_FIX}")
    seeded = fmt == BASELINE_FORMAT
    metrics = baseline.get("metrics")
    changes = {n: m for n, m in metrics.items() if isinstance(m, dict) and m.get("combine") == "change"} \
        if seeded and isinstance(metrics, dict) else {}
    _check_metrics({"metrics": {n: m for n, m in metrics.items() if n not in changes}} if changes else baseline,
                   source, BaselineError, BASELINE_FIELDS if seeded else SINGLE_SEED_FIELDS, _BASELINE_FIX)
    if changes:
        _check_metrics({"metrics": changes}, source, BaselineError, CHANGE_FIELDS, _BASELINE_FIX)
    for name, m in baseline["metrics"].items():
        if "better" in m and not _direction(m["better"]):
            raise BaselineError(f"{source}: metric {name!r} has better {m['better']!r}, which is not "
                                f"'higher', 'lower' or 'either'; {_BASELINE_FIX}")
        if not seeded:
            continue
        if len(m["values"]) != m["n_seeds"]:
            raise BaselineError(f"{source}: metric {name!r} has {len(m['values'])} values for n_seeds "
                                f"{m['n_seeds']}; {_BASELINE_FIX}")
        members = m.get("members")
        if members is not None and not (isinstance(members, list) and members
                                        and all(isinstance(x, str) for x in members)):
            raise BaselineError(f"{source}: metric {name!r} has members {members!r}, which is not a non-empty "
                                f"list of metric names; {_BASELINE_FIX}")
    if seeded:
        headline = baseline.get("headline")
        roles = sorted(n for n, m in baseline["metrics"].items() if m["role"] == "headline")
        if not isinstance(headline, list) or sorted(headline) != roles:
            raise BaselineError(f"{source}: 'headline' {headline!r} does not list the metrics whose role is "
                                f"'headline' ({roles}); {_BASELINE_FIX}")
        if not isinstance(baseline.get("fingerprint"), (dict, type(None))):
            raise BaselineError(f"{source}: 'fingerprint' is not an object; {_BASELINE_FIX}")
    return baseline


def read_baseline(path: str | os.PathLike) -> dict:
    """A baseline file, schema-checked (:func:`validate_baseline`)."""
    return validate_baseline(read_json(path, "baseline", BaselineError), str(path))


# ------------------------------------------------------------------ tolerances

def tolerance(p: float, n: int) -> float:
    """The single-seed rule, :data:`TOLERANCE_RULE`: used only where the seed
    spread is unknown (a baseline of one seed)."""
    if n <= 0:
        raise ValueError("a tolerance needs a test-set size > 0")
    return max(Z95 * math.sqrt(2 * p * (1 - p) / n), 1.0 / n)


def sampling_floor(ps: Sequence[float], ns: Sequence[int], design_effects: Sequence[float] | None = None) -> float:
    """The least tolerance a metric gets: one standard error of its test-set
    estimate, and never less than one image.

    Runs of the gate share one test set, so test-set sampling does not move a
    metric from run to run and the seed spread alone sets the tolerance. The floor
    is there because a spread estimated from a few seeds can be 0 or too small
    (metrics are counts of images: five seeds can agree on 56 of 60 by chance):
    a change smaller than one standard error is below what the test set resolves,
    and a one-image change is the smallest a metric can move. For a mean of k
    metrics (a headline such as the negated targets' average), the standard error
    of the mean and the change one image makes in it. Clustered test sets (several
    views per case) widen the standard error by their design effect, floored at 1."""
    k = len(ps)
    if k == 0 or len(ns) != k or min(ns) <= 0:
        raise ValueError("a floor needs one test-set size > 0 per proportion")
    deffs = design_effects or [1.0] * k
    var = sum(max(1.0, d) * p * (1 - p) / n for p, n, d in zip(ps, ns, deffs)) / k ** 2
    return max(math.sqrt(var), 1.0 / (k * max(ns)))


def prediction_factor(n_seeds: int, level: float) -> float:
    """``t_{N-1, 1-level} * sqrt(1 + 1/N)``: times the seed SD, the one-sided
    ``1 - level`` prediction bound for one new run around the mean of ``N`` runs
    (the new run's own spread and the mean's uncertainty; Student's t because the
    SD is estimated from the same ``N`` runs)."""
    from scipy.stats import t

    if n_seeds < 2:
        raise ValueError("a seed spread needs at least 2 seeds")
    if not 0 < level < 1:
        raise ValueError(f"level {level} is not in (0, 1)")
    return float(t.ppf(1 - level, n_seeds - 1)) * math.sqrt(1 + 1 / n_seeds)


def seed_tolerance(sd: float, n_seeds: int, level: float, floor: float = 0.0) -> float:
    """How far one new run may fall below the seeds' mean before it fails: the
    prediction bound (:func:`prediction_factor`) times ``sd``, at least ``floor``."""
    return max(prediction_factor(n_seeds, level) * sd, floor)


def directions(record: Mapping) -> dict[str, str]:
    return dict(record.get("directions", {}))


# ------------------------------------------------------------------ baselines

FALSE_ALARM_RATE = 0.05
ROLES = ("headline", "untouched", "reported")
# Metrics of the pre-trained model: no fine-tuning seed touches them.
UNTOUCHED_PREFIX = "pretrained"

# The claims each experiment makes, gated; every other metric is reported. A
# name is a metric; "mean(pattern)" is the mean of the metrics it matches ("*"
# matches any text), taken per run; "change(A, B)" is A - B of one run, gated both
# ways. A record may name its own list under "headline". Few headlines keep the
# gate's power: the false-alarm rate of all gated suites together is split between
# their headlines (Bonferroni), a change's share between its two sides.
HEADLINES: dict[str, Callable[[Mapping], list[str]]] = {
    # Overall accuracy of the imbalanced baseline, and the enhancement itself: the
    # paired change of overall accuracy from the baseline to alpha 1 on the same test
    # images, gated both ways (an edit that stops moving predictions fails as surely
    # as one that breaks the model). The minority grade's own change is reported: it
    # moves by 17 points (sd) between micro seeds, so no tolerance that keeps false
    # alarms rare could see a regression there.
    "birads": lambda r: ["baseline.overall", "change(enhanced[alpha=1].overall, baseline.overall)"],
    # Table 1: targets forgotten, control kept (means over the negated tasks).
    "negation": lambda r: ["mean(negated[*].target)", "mean(negated[*].control)"],
    # One merged model for all tasks: its mean accuracy over them.
    "addition": lambda r: ["mean(merged[*])"],
    # The unseen task gained by analogy, and the control kept: without the control,
    # an analogy that wrecks the control task (60 points down) passed.
    "analogy": lambda r: ["analogy.target", "analogy.control"],
    # Every merging method's one merged model: its mean accuracy over the tasks, as
    # a paired change from task arithmetic's in the same run (gated both ways). The
    # pairing takes out what every method shares, the fine-tuned vectors: a seed whose
    # vectors merge badly moves all methods together (3 points on one of the micro
    # seeds), which no tolerance on each method's own accuracy can allow for while
    # keeping the family's 5%. What they share is gated once, as one method's own
    # mean (MERGING_ANCHORS): with the changes alone, a regression every method
    # shares (the suite's vectors, heads or evaluation) passed at any size, 20 points
    # included. A run without task arithmetic gates each method's own mean.
    "merging": lambda r: _merging_headlines(_merging_methods(r)),
}

# The method every other merging method is paired with in the merging headlines.
MERGING_REFERENCE = "task-arithmetic"
# The method whose own mean gates what every method shares, the first the run has.
# Weight averaging first: it has no coefficient chosen on validation, so its seeds
# spread smoothly. Task arithmetic's lambda, chosen from a grid, put one micro seed
# five of the other nine's SDs below them (57.7 against 60.1-62.3): gated on its own
# mean, that seed held out failed, while weight averaging's seeds sit within 1.6 SDs.
MERGING_ANCHORS = ("weight-averaging", MERGING_REFERENCE)


def _merging_headlines(methods: Sequence[str]) -> list[str]:
    def mean(m: str) -> str:
        return f"mean(merged[{m}][*])"

    if MERGING_REFERENCE not in methods:
        return [mean(m) for m in methods]
    anchor = next(m for m in MERGING_ANCHORS if m in methods)
    return [mean(anchor)] + [f"change({mean(m)}, {mean(MERGING_REFERENCE)})" for m in methods
                             if m != MERGING_REFERENCE]


def _merging_methods(record: Mapping) -> list[str]:
    """The methods a merging record ran: its config's list, else (a baseline's
    measurements) the methods its ``merged[<method>][<task>]`` metrics name."""
    given = (record.get("config") or {}).get("methods")
    if given:
        return list(given)
    return sorted({n[len("merged["):].split("][", 1)[0] for n in record.get("metrics", {})
                   if n.startswith("merged[") and "][" in n})

TOLERANCE_RULES = {
    "seeds": ("headline and reported metrics: one-sided prediction bound for one new run from the seeds' mean "
              "and sample SD, t_{N-1, 1 - a/(k m)} * sd * sqrt(1 + 1/N), with a = false_alarm_rate for all k "
              "gated suites together split over each suite's m headline metrics (Bonferroni; a change gated "
              "both ways splits its share between the two sides); at least the test-set floor (one standard "
              "error of the test-set estimate, at least one image; one image for a change)"),
    "exact": ("metrics of the pre-trained model (no seed touches them): exact on the baseline's hardware "
              "fingerprint (CPU model, torch, GPU), the test-set floor elsewhere"),
    "single-seed": "one seed, SD unknown: " + TOLERANCE_RULE,
}

_MEAN = re.compile(r"^mean\((.+)\)$")
_CHANGE = re.compile(r"^change\(([^,]+),\s*([^,]+)\)$")


def _matcher(pattern: str) -> re.Pattern:
    return re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")


def headline_specs(record: Mapping) -> list[str]:
    """The headline metrics of ``record``'s experiment: the record's own
    ``headline`` list, else :data:`HEADLINES`; an experiment with neither gates
    every metric not of the pre-trained model."""
    given = record.get("headline")
    if given is not None:
        if not (isinstance(given, list) and given and all(isinstance(x, str) for x in given)):
            raise RecordError(f"record {record.get('case')!r}: 'headline' {given!r} is not a non-empty list of "
                              "metric names")
        return list(given)
    rule = HEADLINES.get(record.get("experiment"))
    if rule is not None:
        return rule(record)
    names = sorted(record["metrics"])
    return [n for n in names if not n.startswith(UNTOUCHED_PREFIX)] or names


def change_sides(spec: str, metric_names, case: str = "record") -> tuple[list[str], list[str]]:
    """The two sides of ``change(A, B)``: each a metric name or a ``mean(pattern)``,
    resolved to its metrics (the change is mean(A's) - mean(B's), per run)."""
    change = _CHANGE.match(spec)
    if not change:
        raise BaselineError(f"{case}: headline {spec!r} is not a change(A, B)")
    sides = []
    for side in (change.group(1).strip(), change.group(2).strip()):
        if not _MEAN.match(side) and side not in metric_names:
            raise BaselineError(f"{case}: headline {spec!r} needs metric {side!r}, which the record does not "
                                "have; name the record's metrics in tvcore.baselines.HEADLINES")
        sides.append(resolve_headline(side, metric_names, case))
    return sides[0], sides[1]


def resolve_headline(spec: str, metric_names, case: str = "record") -> list[str]:
    """The metrics a headline is made of: ``[spec]`` for a metric name, the
    matching metrics (sorted) for ``mean(pattern)``, A's then B's for
    ``change(A, B)`` (:func:`change_sides`)."""
    mean, change = _MEAN.match(spec), _CHANGE.match(spec)
    if change:
        first, second = change_sides(spec, metric_names, case)
        members = first + second
    elif mean:
        pattern = _matcher(mean.group(1))
        members = [n for n in sorted(metric_names) if pattern.match(n)]
    else:
        members = [spec] if spec in metric_names else []
    if not members:
        raise BaselineError(f"{case}: headline {spec!r} matches no metric of the record; name the record's "
                            "metrics in tvcore.results.HEADLINES or the record's 'headline'")
    return members


def change_value(values: Mapping[str, float], members: Sequence[str], split: int = 1) -> float:
    """A change headline's value in one run: the mean of its first ``split``
    members less the mean of the rest."""
    return (statistics.fmean(values[n] for n in members[:split])
            - statistics.fmean(values[n] for n in members[split:]))


def _check_same_measurements(records: Sequence[Mapping], case: str) -> None:
    first = records[0]
    for r in records[1:]:
        seed = r.get("seed", "?")
        if r.get("experiment") != first.get("experiment"):
            raise BaselineError(f"{case}: seed {seed} ran experiment {r.get('experiment')!r}, seed "
                                f"{first.get('seed', '?')} {first.get('experiment')!r}; pool seeds of one suite")
        if (r.get("split_hashes") or {}) != (first.get("split_hashes") or {}):
            raise BaselineError(f"{case}: seed {seed} was measured on other test data than seed "
                                f"{first.get('seed', '?')} (split_hashes differ); pool seeds of one test set")
        if set(r["metrics"]) != set(first["metrics"]):
            odd = sorted(set(r["metrics"]) ^ set(first["metrics"]))[0]
            raise BaselineError(f"{case}: metric {odd!r} is measured by only some seeds; pool records of "
                                "one version of the suite")
        diffs = protocol.differences(protocol.of_record(r), protocol.of_record(first))
        if diffs:
            raise BaselineError(f"{case}: seed {seed} ran another protocol than seed {first.get('seed', '?')}: "
                                f"{protocol.describe(diffs, f'in seed {seed}', 'in the other')}; pool seeds "
                                "of one protocol")


def _entry(values: list[float], ps_ns: list[tuple[list[float], list[int], list[float]]], better: str, role: str,
           level: float, change: bool = False) -> dict:
    """One baseline metric from its per-seed ``values``; ``ps_ns`` gives per seed
    the member proportions, test-set sizes and design effects (for the floor). A
    change of two metrics of one run has the one-image floor (its paired variance
    is not in the records)."""
    n_seeds = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n_seeds > 1 else None
    members_p = [statistics.fmean(ps[i] for ps, _, _ in ps_ns) for i in range(len(ps_ns[0][0]))]
    ns, deffs = ps_ns[0][1], [statistics.fmean(d[i] for _, _, d in ps_ns) for i in range(len(ps_ns[0][0]))]
    floor = 1.0 / max(ns) if change else sampling_floor(members_p, ns, deffs)
    if better == "either":
        level /= 2
    out = {"values": values, "n_seeds": n_seeds, "mean": mean, "sd": sd, "n": sum(ns), "better": better,
           "role": role, "floor": floor}
    if role == "untouched":
        out.update(value=values[0], tolerance=0.0, rule="exact")
    elif sd is None:
        out.update(value=mean, tolerance=max(tolerance(mean, sum(ns)), floor), rule="single-seed")
    else:
        out.update(value=mean, tolerance=seed_tolerance(sd, n_seeds, level, floor), rule="seeds")
    return out


def baseline_from_records(records: Sequence[Mapping], false_alarm_rate: float = FALSE_ALARM_RATE,
                          suites: int = 1) -> dict:
    """A baseline from the records of one suite run with several fine-tuning seeds.

    Per metric: the seeds' values, mean, sample SD, test-set size, direction, role
    and tolerance (:data:`TOLERANCE_RULES`). The headline metrics
    (:func:`headline_specs`) fail the gate; the suite's false-alarm rate
    ``false_alarm_rate`` is split evenly between them (Bonferroni: valid whatever
    their correlation), and over the ``suites`` suites gated together, so a new
    seed of unchanged code fails any of them with at most that probability. Metrics of the pre-trained model whose value every seed
    shares are 'untouched' and gated exactly on the same hardware (they cost no
    false alarms there: they do not vary). Every other metric is 'reported': judged
    with the same per-metric level and shown, never failing the suite. With one
    seed the SD is unknown and the single-seed rule applies."""
    if not records:
        raise BaselineError(f"no records to build a baseline from; {_BASELINE_FIX}")
    for r in records:
        validate_record(r, f"record {r.get('case')!r}")
    first = records[0]
    case = first.get("suite") or first.get("case")
    _check_same_measurements(records, case)
    names = sorted(first["metrics"])
    dirs = directions(first)
    headlines = {spec: resolve_headline(spec, names, case) for spec in headline_specs(first)}
    if suites < 1:
        raise BaselineError(f"{case}: a baseline is gated in a family of at least one suite")
    level = false_alarm_rate / (suites * len(headlines))
    prints = [fingerprint(r) for r in records]
    common = prints[0] if all(p == prints[0] for p in prints) else None

    def parts(members):
        return [([r["metrics"][n]["value"] for n in members], [r["metrics"][n]["total"] for n in members],
                 [r["metrics"][n].get("design_effect", 1.0) for n in members]) for r in records]

    metrics = {}
    for name in names:
        values = [r["metrics"][name]["value"] for r in records]
        untouched = name.startswith(UNTOUCHED_PREFIX) and len(set(values)) == 1
        role = "headline" if headlines.get(name) == [name] else "untouched" if untouched else "reported"
        metrics[name] = _entry(values, parts([name]), dirs.get(name, "higher"), role, level)
        if name.startswith(UNTOUCHED_PREFIX) and not untouched and role == "reported":
            metrics[name]["note"] = "a pre-trained-model metric that varied across seeds: reported, not gated"
    for spec, members in headlines.items():
        if members == [spec]:
            continue
        if _CHANGE.match(spec):
            split = len(change_sides(spec, names, case)[0])
            values = [change_value({n: r["metrics"][n]["value"] for n in members}, members, split) for r in records]
            metrics[spec] = dict(_entry(values, parts(members), "either", "headline", level, change=True),
                                 members=members, combine="change", split=split)
            continue
        better = {dirs.get(n, "higher") for n in members}
        if len(better) != 1:
            raise BaselineError(f"{case}: headline {spec!r} averages metrics where higher is better with ones "
                                "where lower is better; give it members of one direction")
        values = [statistics.fmean(r["metrics"][n]["value"] for n in members) for r in records]
        metrics[spec] = dict(_entry(values, parts(members), better.pop(), "headline", level), members=members)
    env = first.get("environment", {})
    return {
        "format": BASELINE_FORMAT,
        "case": case,
        "experiment": first.get("experiment"),
        "seeds": [r.get("seed") for r in records],
        "n_seeds": len(records),
        "false_alarm_rate": false_alarm_rate,
        "suites_in_family": suites,
        "correction": (f"Bonferroni over {suites} gated suite(s) x {len(headlines)} headline metric(s): {level:.4g} "
                       "each, one-sided (a change: half on each side)"),
        "headline": sorted(headlines),
        # Named by the records themselves, the list is kept as it is by the current rule.
        "headline_source": "record" if first.get("headline") is not None else "experiment",
        "fingerprint": common,
        "tolerance_rule": TOLERANCE_RULES,
        "metrics": metrics,
        "config": {"experiment": first.get("experiment"), "config": first.get("config"),
                   "context": first.get("context")},
        "data_hashes": first.get("split_hashes", {}),
        "source": {"created": [r.get("created") for r in records], "git": env.get("git"),
                   "hardware": env.get("hardware", {}).get("cpu")},
        "update_command": UPDATE_COMMAND,
    }


def under_current_rule(baseline: Mapping, suites: int) -> dict:
    """A seeded baseline's stored seeds judged by this tvcore's rule: the headlines
    :data:`HEADLINES` names for its experiment (a headline the file lacks is built
    from its members' per-seed values: a mean per seed, or a change per seed), and
    every tolerance recomputed from the stored SD, seed count and floor with the
    false-alarm rate split over ``suites`` gated suites and the headlines. The
    measurements never change; only the rule applied to them, which lives in code.
    A single-seed baseline is returned as it is."""
    import copy

    if not is_seeded(baseline):
        return dict(baseline)
    out = copy.deepcopy(dict(baseline))
    metrics = out["metrics"]
    measured = [n for n, m in metrics.items() if "members" not in m]
    named = out.get("headline") if out.get("headline_source") == "record" else None
    specs = headline_specs({"experiment": out.get("experiment"), "metrics": {n: None for n in measured},
                            "headline": named})
    level = out.get("false_alarm_rate", FALSE_ALARM_RATE) / (suites * len(specs))
    for spec in specs:
        if spec in metrics:
            continue
        members = resolve_headline(spec, measured, out.get("case", "baseline"))
        parts = [metrics[n] for n in members]
        k = len(parts[0]["values"])
        if _CHANGE.match(spec):
            split = len(change_sides(spec, measured, out.get("case", "baseline"))[0])
            values = [change_value({n: metrics[n]["values"][i] for n in members}, members, split) for i in range(k)]
            better, floor, extra = "either", 1.0 / max(m["n"] for m in parts), {"combine": "change", "split": split}
        else:
            values = [statistics.fmean(m["values"][i] for m in parts) for i in range(k)]
            better = parts[0].get("better", "higher")
            floor = max(math.sqrt(sum(m["floor"] ** 2 for m in parts)) / len(parts),
                        1.0 / (len(parts) * max(m["n"] for m in parts)))
            extra = {}
        metrics[spec] = {"values": values, "n_seeds": k, "mean": statistics.fmean(values),
                         "sd": statistics.stdev(values) if k > 1 else None, "n": sum(m["n"] for m in parts),
                         "better": better, "role": "headline", "floor": floor, "members": members,
                         "value": statistics.fmean(values), "tolerance": 0.0, "rule": "seeds", **extra}
    for name, m in metrics.items():
        if name in specs:
            m["role"] = "headline"
        elif m["role"] == "headline":
            m["role"] = "reported"
        if m["role"] == "untouched" or m.get("sd") is None:
            continue
        m["tolerance"] = seed_tolerance(m["sd"], m["n_seeds"], level / (2 if m.get("better") == "either" else 1),
                                        m["floor"])
    out["headline"] = sorted(specs)
    out["suites_in_family"] = suites
    out["correction"] = (f"Bonferroni over {suites} gated suite(s) x {len(specs)} headline metric(s): {level:.4g} "
                         "each, one-sided (a change: half on each side); applied by the gate to the stored seeds")
    return out


def central_seed(baseline: Mapping) -> int:
    """The baseline's seed whose headline values sit nearest the seeds' means (the
    least largest distance in SDs), the headlines those of the current rule
    (:func:`under_current_rule`): the seed CI runs, so that a change of a few
    images cannot fail it. Seed 0 for a baseline of one seed."""
    seeds = baseline.get("seeds") or [0]
    if not is_seeded(baseline) or len(seeds) < 2:
        return seeds[0] if seeds[0] is not None else 0
    baseline = under_current_rule(baseline, baseline.get("suites_in_family") or 1)

    def distance(i: int) -> float:
        out = 0.0
        for name in baseline.get("headline", []):
            m = baseline["metrics"][name]
            if m.get("sd"):
                out = max(out, abs(m["values"][i] - m["mean"]) / m["sd"])
        return out

    best = min(range(len(seeds)), key=lambda i: (distance(i), i))
    return int(seeds[best])


def baseline_from_record(record: Mapping) -> dict:
    """A baseline from one run: :func:`baseline_from_records` with one seed."""
    return baseline_from_records([record])


