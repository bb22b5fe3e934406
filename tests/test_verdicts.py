"""Reference checks, judged by simulation through the same functions the real
suites call (tvcore.verdicts.*_verdict) and records shaped like theirs.

Each scenario is a named result, right or wrong; each is replicated many times
(test-set noise at the published test sizes, training noise at the stated
allowance, and a reference that is itself one such draw), and the share of
replications called reproduced / contradicted / inconclusive is measured. The
targets: an exact replication is called contradicted at most 5% of the time;
every wrong result is called reproduced at most 10% of the time.

``python -m pytest tests/test_verdicts.py -k table -s`` prints the README's table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tvcore import references, verdicts
from tvcore.errors import RecordError
from tvcore.evaluate import Accuracy, cluster_design_effect, paired_change

RUNS = 1000                       # replications of an exact result
WRONG_RUNS = 400                  # replications of each wrong result
CLASSES = ["BI-RADS 2", "BI-RADS 3", "BI-RADS 4", "BI-RADS 5"]
VIEWS = 4                         # mammogram views per case
CASES_PER_CLASS = 100 // VIEWS    # 100 test images per class (references.BIRADS["test_size"])
FOCUS_CASES = 120 // VIEWS
CHURN = 0.05                      # images that flip each way between baseline and alpha 1, beyond the net change

_CM = {k: np.asarray(v) for k, v in references.BIRADS["confusion"].items()}
BIRADS_TRUTH = {"baseline": np.diag(_CM["baseline"]) / 100, "enhanced": np.diag(_CM["alpha=1"]) / 100,
                "focus_low": references.BIRADS["metrics"]["focus_low.accuracy"],
                "focus_high": references.BIRADS["metrics"]["focus_high.accuracy"]}


def outcome_shares(verdict_list) -> dict[str, float]:
    outs = [v.outcome for v in verdict_list]
    return {w: outs.count(w) / len(outs) for w in (verdicts.REPRODUCED, verdicts.CONTRADICTED, verdicts.INCONCLUSIVE)}


# ------------------------------------------------------------------ BI-RADS simulator

def clustered(rng, probs: np.ndarray, cases: int, rho: float) -> np.ndarray:
    """Outcome category per image, shape (runs, cases, VIEWS), from per-run category
    probabilities (runs, C): with probability rho all views of a case share one draw
    (intra-case correlation rho, design effect 1 + 3 rho)."""
    runs = probs.shape[0]
    cum = np.cumsum(probs, axis=1)[:, None, None, :-1]
    own = (rng.random((runs, cases, VIEWS))[..., None] > cum).sum(-1)
    shared = (rng.random((runs, cases, 1))[..., None] > cum).sum(-1)
    return np.where(rng.random((runs, cases, 1)) < rho, shared, own)


def _joint(a: np.ndarray, b: np.ndarray, churn: float) -> np.ndarray:
    """Probabilities of (both right, only baseline right, only enhanced right, both wrong)."""
    a, b = np.clip(a, churn + 0.01, 0.99 - churn), np.clip(b, churn + 0.01, 0.99 - churn)
    return np.stack([np.minimum(a, b) - churn, np.maximum(a - b, 0) + churn,
                     np.maximum(b - a, 0) + churn, 1 - np.maximum(a, b) - churn], axis=1)


def _confusion(correct_per_class: np.ndarray) -> list[list[int]]:
    """A confusion matrix with the given diagonal; wrong answers go to the next grade."""
    k = len(correct_per_class)
    cm = np.zeros((k, k), dtype=int)
    for i, c in enumerate(correct_per_class):
        cm[i, i], cm[i, (i + 1) % k] = c, 100 - c
    return cm.tolist()


def _acc(case_correct: np.ndarray) -> dict:
    """Accuracy record entry from one run's per-case correct counts (VIEWS images per case)."""
    total = case_correct.size * VIEWS
    correct = int(case_correct.sum())
    # The record's own entry; the verdicts never read the interval, so it is not bootstrapped here.
    return Accuracy(correct, total, "case-bootstrap", correct / total, correct / total, case_correct.size,
                    float(cluster_design_effect(case_correct, VIEWS))).as_dict()


def simulate_birads(rng, truth: dict, runs: int = RUNS, rho: float = 1 / 3, churn: float = CHURN,
                    training: float = 1.0, paired: bool = True, flat: bool = False) -> list[dict]:
    """``runs`` records of the BI-RADS suite. Training noise (at ``training`` x the
    stated allowance): per class, the baseline moves by N(0, sd/sqrt 2) and the
    enhancement adds its own N(0, sd/sqrt 2), so the enhanced accuracy moves by sd;
    focus accuracies by their sd. ``flat``: the enhanced model is the baseline."""
    sd_c, sd_f = training * references.TRAINING_SD["birads.class"], training * references.TRAINING_SD["birads.focus"]
    eps_base = rng.normal(0, sd_c / math.sqrt(2), (runs, 4))
    a = truth["baseline"] + eps_base
    b = a if flat else truth["enhanced"] + eps_base + rng.normal(0, sd_c / math.sqrt(2), (runs, 4))
    cats = [clustered(rng, _joint(a[:, k], b[:, k], 0.0 if flat else churn), CASES_PER_CLASS, rho) for k in range(4)]
    base = np.stack([(c == 0) | (c == 1) for c in cats], axis=1)   # (runs, class, case, view)
    enh = np.stack([(c == 0) | (c == 2) for c in cats], axis=1)
    focus = {}
    for key in ("focus_low", "focus_high"):
        p = np.clip(truth[key] + rng.normal(0, sd_f, runs), 0.01, 0.99)
        focus[key] = (clustered(rng, np.stack([p, 1 - p], axis=1), FOCUS_CASES, rho) == 0).sum(-1)
    case_ids = np.repeat(np.arange(4 * CASES_PER_CLASS), VIEWS)
    records = []
    for r in range(runs):
        base_cases, enh_cases = base[r].sum(-1), enh[r].sum(-1)   # (class, case)
        metrics = {"baseline.overall": _acc(base_cases.ravel()), "enhanced[alpha=1].overall": _acc(enh_cases.ravel()),
                   "focus_low.accuracy": _acc(focus["focus_low"][r]),
                   "focus_high.accuracy": _acc(focus["focus_high"][r])}
        for k, name in enumerate(CLASSES):
            metrics[f"baseline.class[{name}]"] = _acc(base_cases[k])
            metrics[f"enhanced[alpha=1].class[{name}]"] = _acc(enh_cases[k])
        record = {"metrics": metrics,
                  "sweep": [{"alpha": 0.0, "test": {"confusion_matrix": _confusion(base_cases.sum(-1))}},
                            {"alpha": 1.0, "test": {"confusion_matrix": _confusion(enh_cases.sum(-1))}}]}
        if paired:
            ids5 = case_ids[: CASES_PER_CLASS * VIEWS]
            record["paired"] = {
                "enhanced[alpha=1].overall vs baseline.overall": paired_change(base[r].ravel(), enh[r].ravel(),
                                                                               case_ids),
                "enhanced[alpha=1].class[BI-RADS 5] vs baseline.class[BI-RADS 5]":
                    paired_change(base[r, 3].ravel(), enh[r, 3].ravel(), ids5)}
        records.append(record)
    return records


def as_reference(record: dict) -> dict:
    """A simulated record read as the published reference: its nine figures, test
    sizes and confusion matrices."""
    ref = references.BIRADS
    return {**ref, "source": "simulated reference",
            "metrics": {k: record["metrics"][k]["value"] for k in ref["metrics"]},
            "confusion": {"baseline": record["sweep"][0]["test"]["confusion_matrix"],
                          "alpha=1": record["sweep"][1]["test"]["confusion_matrix"]}}


def _with(**changes) -> dict:
    return {**BIRADS_TRUTH, **{k: np.asarray(v, dtype=float) for k, v in changes.items()}}


_B, _E = BIRADS_TRUTH["baseline"], BIRADS_TRUTH["enhanced"]
BIRADS_SCENARIOS = {
    "exact replication": BIRADS_TRUTH,
    "grade 5 stays at 35": _with(enhanced=[*_E[:3], 0.35]),
    "grade 5 falls to 28": _with(enhanced=[*_E[:3], 0.28]),
    "accuracy-neutral edit (predictions change, accuracies do not)": _with(enhanced=_B),
    "reversed effect (grade 5 down, overall up)": _with(enhanced=np.clip(2 * _B - _E, 0.05, 0.95)),
    "baseline 13 points worse": _with(baseline=_B - 0.13),
}


def birads_shares(name: str, seed: int, runs: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    measured = simulate_birads(rng, BIRADS_SCENARIOS[name], runs=runs)
    refs = simulate_birads(rng, BIRADS_TRUTH, runs=runs)
    return outcome_shares([verdicts.birads_verdict(m, as_reference(r)) for m, r in zip(measured, refs)])


@pytest.fixture(scope="module")
def birads_outcomes() -> dict[str, dict[str, float]]:
    return {name: birads_shares(name, i, RUNS if i == 0 else WRONG_RUNS)
            for i, name in enumerate(BIRADS_SCENARIOS)}


def test_an_exact_birads_replication_is_rarely_contradicted(birads_outcomes):
    assert birads_outcomes["exact replication"][verdicts.CONTRADICTED] <= 0.05


def test_an_exact_birads_replication_can_be_reproduced(birads_outcomes):
    # The claim is decided inside one run, so exact replications can pass; about one
    # in six does with 25 cases a grade, since the enhancement's own training spread
    # (3.5 points on grade 5) joins the paired test-set noise.
    assert birads_outcomes["exact replication"][verdicts.REPRODUCED] >= 0.15


@pytest.mark.parametrize("wrong", [n for n in BIRADS_SCENARIOS if n != "exact replication"])
def test_a_wrong_birads_result_is_rarely_called_reproduced(birads_outcomes, wrong):
    assert birads_outcomes[wrong][verdicts.REPRODUCED] <= 0.10


def test_a_birads_result_against_the_claim_is_mostly_contradicted(birads_outcomes):
    assert birads_outcomes["reversed effect (grade 5 down, overall up)"][verdicts.CONTRADICTED] >= 0.75


def test_a_birads_baseline_13_points_worse_is_often_contradicted(birads_outcomes):
    # Overall accuracy then rises with the edit; with 25 cases a grade and the
    # enhancement's own training spread, two runs in five show it beyond doubt.
    assert birads_outcomes["baseline 13 points worse"][verdicts.CONTRADICTED] >= 0.3


def test_birads_false_contradictions_stay_under_5_percent_across_design_effects():
    for rho in (0.0, 0.7):
        rng = np.random.default_rng(20)
        measured = simulate_birads(rng, BIRADS_TRUTH, runs=500, rho=rho)
        refs = simulate_birads(rng, BIRADS_TRUTH, runs=500, rho=rho)
        shares = outcome_shares([verdicts.birads_verdict(m, as_reference(r)) for m, r in zip(measured, refs)])
        assert shares[verdicts.CONTRADICTED] <= 0.05, rho


def test_birads_claim_is_judged_on_paired_counts_and_refuses_a_record_without_them():
    record = simulate_birads(np.random.default_rng(5), BIRADS_TRUTH, runs=1, paired=False)[0]
    with pytest.raises(RecordError, match="paired counts"):
        verdicts.birads_verdict(record)


def test_birads_figures_are_reported_with_their_word_and_never_decide_the_suite():
    record = simulate_birads(np.random.default_rng(6), BIRADS_TRUTH, runs=1)[0]
    v = verdicts.birads_verdict(record)
    reported = [c for c in v.checks if not c.asserted]
    assert {c.name for c in reported} >= set(references.BIRADS["metrics"])
    assert all(c.outcome in (verdicts.REPRODUCED, verdicts.CONTRADICTED, verdicts.INCONCLUSIVE) for c in reported)
    assert [c.name for c in v.asserted] == [name for _, name, _ in verdicts.BIRADS_CLAIM]


def test_birads_verdict_names_a_missing_metric():
    record = simulate_birads(np.random.default_rng(6), BIRADS_TRUTH, runs=1)[0]
    del record["metrics"]["focus_low.accuracy"]
    with pytest.raises(RecordError, match="focus_low.accuracy"):
        verdicts.birads_verdict(record)


def test_a_nan_metric_is_refused_not_judged():
    record = simulate_birads(np.random.default_rng(7), BIRADS_TRUTH, runs=1)[0]
    record["metrics"]["baseline.overall"]["value"] = float("nan")
    with pytest.raises(RecordError, match="baseline.overall"):
        verdicts.birads_verdict(record)


# ------------------------------------------------------------------ the paper's tasks

TASKS = list(references.ADDITION_B32["per_task"])
N = references.PAPER_TEST_SIZES
CHANCE = {"Cars": 1 / 196, "DTD": 1 / 47, "EuroSAT": 1 / 10, "GTSRB": 1 / 43, "MNIST": 1 / 10, "RESISC45": 1 / 45,
          "SUN397": 1 / 397, "SVHN": 1 / 10, "ImageNet": 1 / 1000}


def _draw(rng, p, n: int, runs: int, sd: float = 0.0) -> np.ndarray:
    """Accuracies of ``runs`` training runs (true value moved by N(0, sd)) on n test images."""
    true = np.clip(p + rng.normal(0, sd, runs) if sd else np.broadcast_to(p, (runs,)), 0.0, 1.0)
    return rng.binomial(n, true) / n


def _entry(value: float, n: int) -> dict:
    return Accuracy(int(round(value * n)), n).as_dict()


def simulate_paper(rng, runs: int, merged: dict, negated: dict, control: dict, pretrained: dict,
                   finetuned: dict, pretrained_control: float) -> tuple[list[dict], list[dict]]:
    """Addition and negation records of ``runs`` replications from per-task true accuracies."""
    sd = references.TRAINING_SD
    cols = {}
    for t in TASKS:
        cols[f"merged[{t}]"] = (_draw(rng, merged[t], N[t], runs, sd["edited"]), N[t])
        cols[f"negated[{t}].target"] = (_draw(rng, negated[t], N[t], runs, sd["edited"]), N[t])
        cols[f"negated[{t}].control"] = (_draw(rng, control[t], N["ImageNet"], runs, sd["negated.control"]),
                                         N["ImageNet"])
        cols[f"pretrained[{t}]"] = (_draw(rng, pretrained[t], N[t], runs), N[t])
        cols[f"finetuned[{t}]"] = (_draw(rng, finetuned[t], N[t], runs, sd["finetuned"]), N[t])
    cols["pretrained.control"] = (_draw(rng, pretrained_control, N["ImageNet"], runs), N["ImageNet"])
    addition, negation = [], []
    for r in range(runs):
        e = {k: _entry(v[r], n) for k, (v, n) in cols.items()}
        addition.append({"metrics": {k: e[k] for t in TASKS for k in (f"merged[{t}]", f"pretrained[{t}]",
                                                                        f"finetuned[{t}]")}})
        neg = {"pretrained.control": e["pretrained.control"]}
        for t in TASKS:
            neg |= {f"negated[{t}].target": e[f"negated[{t}].target"],
                    f"negated[{t}].control": e[f"negated[{t}].control"],
                    f"pretrained[{t}].target": e[f"pretrained[{t}]"], f"finetuned[{t}].target": e[f"finetuned[{t}]"]}
        negation.append({"metrics": neg})
    return addition, negation


PAPER_TRUTH = dict(merged=references.ADDITION_B32["per_task"], negated=references.NEGATION_B32["per_task_target"],
                   control={t: references.NEGATION_B32["average"]["negative task vector"]["control"] for t in TASKS},
                   pretrained=references.PRETRAINED_B32["per_task"], finetuned=references.FINETUNED_B32["per_task"],
                   pretrained_control=references.PRETRAINED_B32["control"])


def paper_references(addition: dict, negation: dict) -> dict:
    """A simulated replication read as the published references."""
    m, n = addition["metrics"], negation["metrics"]
    mean = lambda keys: sum(n[k]["value"] for k in keys) / len(keys)  # noqa: E731
    return {
        "addition": {**references.ADDITION_B32, "per_task": {t: m[f"merged[{t}]"]["value"] for t in TASKS}},
        "negation": {**references.NEGATION_B32,
                     "per_task_target": {t: n[f"negated[{t}].target"]["value"] for t in TASKS},
                     "average": {**references.NEGATION_B32["average"],
                                 "negative task vector": {"control": mean([f"negated[{t}].control" for t in TASKS])}}},
        "pretrained": {**references.PRETRAINED_B32, "per_task": {t: m[f"pretrained[{t}]"]["value"] for t in TASKS},
                       "control": n["pretrained.control"]["value"]},
        "finetuned": {**references.FINETUNED_B32, "per_task": {t: m[f"finetuned[{t}]"]["value"] for t in TASKS}},
    }


WA = dict(zip(TASKS, [0.653, 0.634, 0.714, 0.717, 0.642, 0.528, 0.875, 0.501]))  # AdaMerging Table 2
PRE, NEG = references.PRETRAINED_B32["per_task"], references.NEGATION_B32["per_task_target"]
NEGATION_SCENARIOS = {
    "exact replication": PAPER_TRUTH,
    "no-op (lambda 0)": {**PAPER_TRUTH, "negated": PRE,
                         "control": {t: references.PRETRAINED_B32["control"] for t in TASKS}},
    "half the effect": {**PAPER_TRUTH, "negated": {t: (PRE[t] + NEG[t]) / 2 for t in TASKS}},
    "control at 90% of pre-trained": {**PAPER_TRUTH,
                                      "control": {t: 0.9 * references.PRETRAINED_B32["control"] for t in TASKS}},
}
MERGED = references.ADDITION_B32["per_task"]
ADDITION_SCENARIOS = {
    "exact replication": PAPER_TRUTH,
    "4 points low": {**PAPER_TRUTH, "merged": {t: MERGED[t] - 0.04 for t in TASKS}},
    "6 points low": {**PAPER_TRUTH, "merged": {t: MERGED[t] - 0.06 for t in TASKS}},
    "DTD 7 points below zero-shot": {**PAPER_TRUTH, "merged": {**MERGED, "DTD": PRE["DTD"] - 0.07}},
    "weight averaging (65.8)": {**PAPER_TRUTH, "merged": WA},
}


def paper_shares(truth: dict, seed: int, runs: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    add, neg = simulate_paper(rng, runs, **truth)
    ref_add, ref_neg = simulate_paper(rng, runs, **PAPER_TRUTH)
    va, vn = [], []
    for a, n, ra, rn in zip(add, neg, ref_add, ref_neg):
        refs = paper_references(ra, rn)
        va.append(verdicts.addition_verdict(a, refs["addition"], refs["pretrained"], refs["finetuned"]))
        vn.append(verdicts.negation_verdict(n, refs["negation"], refs["pretrained"], refs["finetuned"]))
    return outcome_shares(va), outcome_shares(vn)


@pytest.fixture(scope="module")
def paper_outcomes() -> dict[str, dict[str, dict[str, float]]]:
    out = {"negation": {}, "addition": {}}
    add, neg = paper_shares(PAPER_TRUTH, 30, RUNS)
    out["addition"]["exact replication"], out["negation"]["exact replication"] = add, neg
    for i, (name, truth) in enumerate(NEGATION_SCENARIOS.items()):
        if name != "exact replication":
            out["negation"][name] = paper_shares(truth, 31 + i, WRONG_RUNS)[1]
    for i, (name, truth) in enumerate(ADDITION_SCENARIOS.items()):
        if name != "exact replication":
            out["addition"][name] = paper_shares(truth, 41 + i, WRONG_RUNS)[0]
    return out


@pytest.mark.parametrize("suite", ["negation", "addition"])
def test_an_exact_paper_replication_is_rarely_contradicted(paper_outcomes, suite):
    assert paper_outcomes[suite]["exact replication"][verdicts.CONTRADICTED] <= 0.05


@pytest.mark.parametrize("suite", ["negation", "addition"])
def test_an_exact_paper_replication_can_be_reproduced(paper_outcomes, suite):
    # Not a verdict that can never pass: with the assumed training spread most exact
    # replications of addition are inconclusive (README), but not all.
    assert paper_outcomes[suite]["exact replication"][verdicts.REPRODUCED] >= 0.05


@pytest.mark.parametrize("suite,wrong", [("negation", n) for n in NEGATION_SCENARIOS if n != "exact replication"]
                         + [("addition", n) for n in ADDITION_SCENARIOS if n != "exact replication"])
def test_a_wrong_paper_result_is_rarely_called_reproduced(paper_outcomes, suite, wrong):
    assert paper_outcomes[suite][wrong][verdicts.REPRODUCED] <= 0.10


@pytest.mark.parametrize("suite,wrong", [("negation", "no-op (lambda 0)"), ("negation", "half the effect"),
                                         ("negation", "control at 90% of pre-trained"),
                                         ("addition", "6 points low")])
def test_a_paper_result_far_from_the_claim_is_contradicted(paper_outcomes, suite, wrong):
    assert paper_outcomes[suite][wrong][verdicts.CONTRADICTED] >= 0.85


def test_models_at_chance_are_contradicted():
    chance = dict(merged={t: CHANCE[t] for t in TASKS}, negated={t: CHANCE[t] for t in TASKS},
                  control={t: CHANCE["ImageNet"] for t in TASKS}, pretrained={t: CHANCE[t] for t in TASKS},
                  finetuned={t: CHANCE[t] for t in TASKS}, pretrained_control=CHANCE["ImageNet"])
    add, neg = paper_shares(chance, 8, 100)
    assert add[verdicts.CONTRADICTED] == 1.0 and neg[verdicts.CONTRADICTED] == 1.0


def test_the_readme_table_of_outcomes(birads_outcomes, paper_outcomes, capsys):
    """The README's table is what these simulations measure now (to half a point)."""
    from tests.readme_tables import printed_and_stale

    rows = {("BI-RADS", n): r for n, r in birads_outcomes.items()}
    rows |= {("negation", n): r for n, r in paper_outcomes["negation"].items()}
    rows |= {("addition", n): r for n, r in paper_outcomes["addition"].items()}
    assert printed_and_stale(rows, capsys) == []


# ------------------------------------------------------------------ the margins themselves

def test_sidak_z_grows_with_the_family_and_matches_the_normal_quantile():
    assert verdicts.sidak_z(1) == pytest.approx(1.959964, abs=1e-5)
    assert verdicts.sidak_z(1, two_sided=False) == pytest.approx(1.644854, abs=1e-5)
    assert verdicts.sidak_z(11) > verdicts.sidak_z(9) > verdicts.sidak_z(1)


def test_two_sample_sd_counts_both_test_sets_and_both_training_runs():
    one_side = math.sqrt(0.5 * 0.5 / 400)
    assert verdicts.two_sample_sd(0.5, 400, 0.5, 400) == pytest.approx(math.sqrt(2) * one_side)
    assert verdicts.two_sample_sd(0.5, 400, 0.5, 400, deff=2.0) == pytest.approx(2 * one_side)
    assert verdicts.two_sample_sd(0.5, 400, 0.5, 400, training_sd=0.03) == pytest.approx(
        math.sqrt(2 * one_side ** 2 + 2 * 0.03 ** 2))


def test_verdict_reports_the_per_task_table_with_deltas_and_margins():
    add, _ = simulate_paper(np.random.default_rng(11), 1, **PAPER_TRUTH)
    v = verdicts.addition_verdict(add[0])
    names = {c.name for c in v.table}
    assert {f"merged[{t}]" for t in TASKS} <= names and {f"pretrained[{t}]" for t in TASKS} <= names
    row = v.as_dict()["table"][0]
    assert {"measured", "reference", "delta", "margin", "outcome", "interval_90"} <= set(row)
    assert "merged[SUN397]" in v.format() and "normalized accuracy" in v.format()


def test_real_suite_writes_and_prints_the_verdict_of_its_record(tmp_path, capsys):
    import json
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from test_real import judged

    (tmp_path / "mini-ddsm").mkdir()
    (tmp_path / "w.safetensors").write_bytes(b"")
    record = simulate_birads(np.random.default_rng(12), BIRADS_TRUTH, runs=1)[0]
    run = SimpleNamespace(record=record, path=tmp_path / "birads.json", case="birads", notes=[])
    runs = SimpleNamespace(run=lambda suite: run, with_seed_spread=lambda r: r)
    options = SimpleNamespace(data_root=str(tmp_path), weights=str(tmp_path / "w.safetensors"))
    v = judged(runs, options, "birads-vit-b-32", verdicts.birads_verdict)
    written = json.loads((tmp_path / "birads.verdict.json").read_text())
    assert written["family"] == len(v.asserted) == 2 and written["outcome"] == v.outcome
    assert "baseline.class[BI-RADS 5]" in capsys.readouterr().out and run.notes == [v.format()]


# ------------------------------------------------------------------ three outcomes

def _check(delta: float, sd: float, side: str = "within", margin: float = 0.03, **kw) -> verdicts.Check:
    return verdicts.judge([verdicts.Claim("x", 0.5 + delta, 0.5, sd, side, margin, **kw)])[0]


def test_equivalence_is_reproduced_only_when_the_interval_lies_inside_the_margin():
    assert _check(0.0, 0.01).outcome == verdicts.REPRODUCED          # +-1.6 points inside +-3
    assert _check(0.015, 0.01).outcome == verdicts.INCONCLUSIVE      # [-0.1, 3.1]: past 3, holds 0
    assert _check(0.0, 0.03).outcome == verdicts.INCONCLUSIVE        # too noisy to tell


def test_equivalence_is_contradicted_when_the_reference_is_outside_the_interval():
    assert _check(0.08, 0.01).outcome == verdicts.CONTRADICTED
    assert _check(-0.08, 0.01).outcome == verdicts.CONTRADICTED


@pytest.mark.parametrize("side,delta,expected", [
    ("above", 0.05, verdicts.REPRODUCED), ("above", 0.0, verdicts.INCONCLUSIVE),
    ("above", -0.05, verdicts.CONTRADICTED), ("below", -0.05, verdicts.REPRODUCED),
    ("below", 0.05, verdicts.CONTRADICTED), ("at least", 0.0, verdicts.REPRODUCED),
    ("at least", -0.08, verdicts.CONTRADICTED), ("at most", 0.08, verdicts.CONTRADICTED)])
def test_directions_answer_three_ways(side, delta, expected):
    margin = 0.02 if side in ("at least", "at most") else 0.0
    assert _check(delta, 0.01, side, margin).outcome == expected


def test_an_inconclusive_check_says_what_test_size_would_decide_it():
    c = _check(0.0, 0.02, sampling_sd=0.02, n=1000)
    assert c.outcome == verdicts.INCONCLUSIVE
    assert "larger" in c.decider() and "images" in c.decider()


def test_an_inconclusive_check_says_when_no_test_size_can_decide_it():
    c = _check(0.0, 0.03, sampling_sd=0.001, n=1000)      # the training spread dominates
    assert "no test size" in c.decider()


def test_a_suite_is_reproduced_only_when_every_asserted_check_is():
    good, unsure, bad = _check(0.0, 0.01), _check(0.0, 0.03), _check(0.1, 0.01)
    reported_bad = verdicts.judge([verdicts.Claim("r", 0.9, 0.5, 0.01, asserted=False)])[0]
    assert verdicts.suite_outcome([good, reported_bad]) == verdicts.REPRODUCED
    assert verdicts.suite_outcome([good, unsure]) == verdicts.INCONCLUSIVE
    assert verdicts.suite_outcome([unsure, bad]) == verdicts.CONTRADICTED


def test_a_measured_seed_spread_replaces_the_assumed_allowance():
    record = {"metrics": {"a": _entry(0.5, 1000)}}
    sd, how = verdicts.training_spread(record, ["a"], 0.03)
    assert sd == pytest.approx(0.03) and how.startswith("assumed")
    record["seed_spread"] = {"n_seeds": 3, "values": {"a": [0.50, 0.51, 0.49]}}
    sd, how = verdicts.training_spread(record, ["a"], 0.03)
    assert sd == pytest.approx(0.01) and how == "measured over 3 seeds"


def test_comparisons_inside_one_run_carry_the_edited_models_training_spread():
    """The claim is about the method: one run's merged model sits off the method's
    mean by its training noise, which the run's own test set cannot see."""
    add, _ = simulate_paper(np.random.default_rng(13), 1, **PAPER_TRUTH)
    v = verdicts.addition_verdict(add[0])
    inside = {c.name: c for c in v.asserted if c.name.startswith("merged")}
    dtd = inside["merged not worse than pretrained on DTD"]
    assert dtd.allowance.startswith("assumed")
    assert dtd.sd ** 2 == pytest.approx(dtd.sampling_sd ** 2 + references.TRAINING_SD["edited"] ** 2)
    average = inside["merged beats pretrained on average"]
    assert average.sd ** 2 == pytest.approx(average.sampling_sd ** 2 + references.TRAINING_SD["edited"] ** 2 / 8)


def test_a_measured_seed_spread_sets_the_training_spread_of_a_change_inside_one_run():
    add, _ = simulate_paper(np.random.default_rng(13), 1, **PAPER_TRUTH)
    record = {**add[0], "seed_spread": {"n_seeds": 3, "values": {"merged[DTD]": [0.50, 0.52, 0.54]}}}
    check = next(c for c in verdicts.addition_verdict(record).asserted
                 if c.name == "merged not worse than pretrained on DTD")
    assert check.allowance == "measured over 3 seeds"
    assert check.sd ** 2 == pytest.approx(check.sampling_sd ** 2 + 0.02 ** 2)


def test_the_birads_claim_carries_the_enhancements_own_training_spread():
    record = simulate_birads(np.random.default_rng(5), BIRADS_TRUTH, runs=1)[0]
    grade5, overall = verdicts.birads_verdict(record).asserted
    for check, sd in ((grade5, references.TRAINING_SD["birads.class"]),
                      (overall, references.TRAINING_SD["birads.overall"])):
        assert check.sd ** 2 == pytest.approx(check.sampling_sd ** 2 + sd ** 2 / 2)
    enh, base = "enhanced[alpha=1].overall", "baseline.overall"
    record["seed_spread"] = {"n_seeds": 3, "values": {enh: [0.40, 0.45, 0.50], base: [0.80, 0.80, 0.80]}}
    overall = verdicts.birads_verdict(record).asserted[1]
    assert overall.allowance == "measured over 3 seeds"
    assert overall.sd ** 2 == pytest.approx(overall.sampling_sd ** 2 + 0.05 ** 2)
