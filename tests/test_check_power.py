"""The power of each asserted check: for every check that decides a suite, one named
wrong result aimed at it, simulated through the same functions and noise model as
tests/test_verdicts.py and tests/test_merging_verdict.py (test-set noise at the
published sizes, training noise at the stated allowance, the reference itself one
simulated draw), and the share of replications in which that check, and the suite,
is called reproduced.

A check that no simulated wrong result can fail would pass whatever tvcore
measured; so every asserted check the verdict functions produce must have a wrong
result here, and each wrong result must leave its check, and its suite, reproduced
at most 10% of the time.

Each wrong result moves its check's quantity beyond the claim: past the margin
for an equivalence (about two to three margins, or the distance the margin's
reason names), to or past zero for a direction. Where a wrong result makes two
models of a run the same model (a coefficient of 0), the record carries the same
counts for both, as a real run would.

``python -m pytest tests/test_check_power.py -k readme -s`` prints the README's table."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from tests import test_merging_verdict as merging_sim
from tests import test_verdicts as paper_sim
from tests.readme_tables import README, TOLERANCE_PP
from tvcore import references, verdicts

RUNS = 300                   # replications of each wrong result
AT_MOST = 0.10               # the target: a wrong result reproduced at most 10% of the time
TASKS = paper_sim.TASKS
PRE, NEG = references.PRETRAINED_B32["per_task"], references.NEGATION_B32["per_task_target"]
FT, MERGED = references.FINETUNED_B32["per_task"], references.ADDITION_B32["per_task"]
PRE_CONTROL = references.PRETRAINED_B32["control"]
KEEP = references.NEGATION_B32["control_keep"]
MERGING_SUITES = {"A": "merging (set A)", "A-own": "merging (set A, tvcore's own fine-tunes)",
                  "F": "merging (set F)", "T": "merging (set T)"}

Simulate = Callable[[int, int], list]   # (seed, runs) -> the verdicts of that many replications


@dataclass(frozen=True)
class Wrong:
    """A named wrong result aimed at one asserted check of one suite."""

    suite: str
    check: str
    name: str
    simulate: Simulate

    @property
    def seed(self) -> int:
        # Stable under reordering or adding wrong results: the README's figures stay put.
        return zlib.crc32(f"{self.suite}|{self.check}|{self.name}".encode())


def same_model(record: dict, copy: Callable[[str], str | None]) -> dict:
    """The record with each metric ``name`` for which ``copy(name)`` names another
    metric replaced by that metric's entry: two models of one run that are the same
    model score the same images the same way."""
    metrics = record["metrics"]
    changed = {name: dict(metrics[src]) for name in metrics if (src := copy(name)) is not None}
    return {**record, "metrics": {**metrics, **changed}}


# ------------------------------------------------------------------ the paper's tasks

def paper(suite: str, copy: Callable[[str], str | None] | None = None, **changes) -> Simulate:
    """Negation or addition records of a truth that differs from the paper's by
    ``changes`` (keyword arguments of test_verdicts.simulate_paper), each judged
    against a reference that is an exact replication."""
    truth = {**paper_sim.PAPER_TRUTH, **changes}
    judge, pick = {"addition": (verdicts.addition_verdict, 0), "negation": (verdicts.negation_verdict, 1)}[suite]

    def simulate(seed: int, runs: int) -> list:
        rng = np.random.default_rng(seed)
        measured = paper_sim.simulate_paper(rng, runs, **truth)[pick]
        ref_add, ref_neg = paper_sim.simulate_paper(rng, runs, **paper_sim.PAPER_TRUTH)
        out = []
        for record, ra, rn in zip(measured, ref_add, ref_neg):
            refs = paper_sim.paper_references(ra, rn)
            record = same_model(record, copy) if copy else record
            out.append(judge(record, refs[suite], refs["pretrained"], refs["finetuned"]))
        return out

    return simulate


def merged_is_pretrained(name: str) -> str | None:
    return f"pretrained[{name[len('merged['):-1]}]" if name.startswith("merged[") else None


NEGATION = [
    # Table 1's 24.0 is (by the margin's reason) a third of the way short of half the
    # effect at 4 points; a coefficient a third too small leaves 8 points more.
    Wrong("negation", "average negated target", "negation a third weaker: targets 8 points high",
          paper("negation", negated={t: NEG[t] + (PRE[t] - NEG[t]) / 3 for t in TASKS})),
    # The margin's reason: a control at 90% of pre-trained sits 3.8 points below 60.9.
    Wrong("negation", "average negated control", "coefficient rule holding 90% of pre-trained, not 95%",
          paper("negation", control={t: 0.90 * PRE_CONTROL for t in TASKS})),
    Wrong("negation", "average pretrained target", "pre-trained weights without QuickGELU: zero-shot 3 points low",
          paper("negation", pretrained={t: PRE[t] - 0.03 for t in TASKS})),
    # CLIP (Radford et al. 2021, section 3.1.4): ensembling 80 prompts adds 3.5 points
    # on ImageNet over the single default prompt.
    Wrong("negation", "pretrained.control", "ImageNet head from one template, not 80: control 3.5 points low",
          paper("negation", pretrained_control=PRE_CONTROL - 0.035)),
    # The paper's recipe is 2,000 steps (design card); a tenth of them, 4 points short.
    Wrong("negation", "average finetuned target", "fine-tuned with a tenth of the steps: 4 points low",
          paper("negation", finetuned={t: FT[t] - 0.04 for t in TASKS})),
    # A key mix-up: {t} is negated with another task's vector, a model of its own
    # (training noise applies) that leaves {t} where zero-shot has it, on average.
    *[Wrong("negation", f"negation lowers {t} below pretrained",
            f"{t} negated with another task's vector: {t} stays at zero-shot",
            paper("negation", negated={**NEG, t: PRE[t]})) for t in TASKS],
    # The margin's reason: the rule may leave the control a point under 95% on test, not more.
    Wrong("negation", f"average control kept >= {KEEP:g} x pretrained", "control kept at 92% of pre-trained",
          paper("negation", control={t: 0.92 * PRE_CONTROL for t in TASKS})),
]

ADDITION = [
    # The margin's reason: weight averaging sits 4.3 points below (65.8, AdaMerging Table 2).
    Wrong("addition", "average merged", "weight averaging, not task arithmetic (65.8)",
          paper("addition", merged=paper_sim.WA)),
    Wrong("addition", "average pretrained", "pre-trained weights without QuickGELU: zero-shot 3 points low",
          paper("addition", pretrained={t: PRE[t] - 0.03 for t in TASKS})),
    Wrong("addition", "average finetuned", "fine-tuned with a tenth of the steps: 4 points low",
          paper("addition", finetuned={t: FT[t] - 0.04 for t in TASKS})),
    # The margin's reason: a loss of 7 points below zero-shot separates a run from the paper's.
    *[Wrong("addition", f"merged not worse than pretrained on {t}", f"merged {t} 7 points below zero-shot",
            paper("addition", merged={**MERGED, t: PRE[t] - 0.07})) for t in TASKS],
    Wrong("addition", "merged beats pretrained on average", "coefficient 0 chosen: merged is the pre-trained model",
          paper("addition", copy=merged_is_pretrained)),
]


# ------------------------------------------------------------------ BI-RADS

def birads(truth: dict) -> Simulate:
    def simulate(seed: int, runs: int) -> list:
        rng = np.random.default_rng(seed)
        measured = paper_sim.simulate_birads(rng, truth, runs=runs)
        refs = paper_sim.simulate_birads(rng, paper_sim.BIRADS_TRUTH, runs=runs)
        return [verdicts.birads_verdict(m, paper_sim.as_reference(r)) for m, r in zip(measured, refs)]

    return simulate


_GRADE5, _OVERALL = (name for _, name, _ in verdicts.BIRADS_CLAIM)
BIRADS = [
    Wrong("BI-RADS", _GRADE5, "grade 5 stays at 35", birads(paper_sim.BIRADS_SCENARIOS["grade 5 stays at 35"])),
    Wrong("BI-RADS", _OVERALL, "accuracy-neutral edit (predictions change, accuracies do not)",
          birads(paper_sim.BIRADS_SCENARIOS["accuracy-neutral edit (predictions change, accuracies do not)"])),
]


# ------------------------------------------------------------------ merging

def merging(key: str, copy: Callable[[str], str | None] | None = None, **changes: float) -> Simulate:
    """Merging records of checkpoint set ``key`` ("A-own": tvcore's own fine-tunes
    against set A) whose methods' averages differ from the published ones by
    ``changes``, as test_merging_verdict.shares draws them."""
    own = key == "A-own"
    set_key = "A" if own else key
    exact = merging_sim.truth_of(references.MERGING_B32[set_key]["average"])
    wrong = {**exact, **{m: merging_sim.per_task(m if m in ("pretrained", "finetuned") else "merged", v)
                         for m, v in changes.items()}}
    layout = None if own else merging_sim.LAYOUT[set_key]

    def simulate(seed: int, runs: int) -> list:
        rng = np.random.default_rng(seed)
        measured = merging_sim.draw_records(rng, wrong, runs, layout, training=own)
        published = merging_sim.draw_records(rng, exact, runs, layout, training=own)
        return [verdicts.merging_verdict(same_model(m, copy) if copy else m, merging_sim.published_from(p, set_key))
                for m, p in zip(measured, published)]

    return simulate


def method_is_pretrained(method: str) -> Callable[[str], str | None]:
    """``method``'s model is the pre-trained one."""
    prefix = f"merged[{method}]["
    return lambda name: f"pretrained[{name[len(prefix):-1]}]" if name.startswith(prefix) else None


def merging_wrongs(key: str) -> list[Wrong]:
    suite = MERGING_SUITES[key]
    avg = references.MERGING_B32["A" if key == "A-own" else key]["average"]
    out = [Wrong(suite, "average pretrained", "wrong base: zero-shot 3 points low",
                 merging(key, pretrained=avg["pretrained"] - 0.03)),
           Wrong(suite, "task arithmetic beats pretrained on average",
                 "coefficient 0 chosen: task arithmetic is the pre-trained model",
                 merging(key, method_is_pretrained("task-arithmetic"))),
           Wrong(suite, "TSV-M beats task arithmetic on average", "TSV-M no better than task arithmetic",
                 merging(key, **{"tsv-m": avg["task-arithmetic"] if "task-arithmetic" in avg
                                 else merging_sim.FILLER["task-arithmetic"]}))]
    if key == "T":
        out += [Wrong(suite, "average weight-averaging", "weight averaging is task arithmetic",
                      merging(key, **{"weight-averaging": avg["task-arithmetic"]})),
                # Task arithmetic at lambda 1/8 over eight vectors is weight averaging.
                Wrong(suite, "average task-arithmetic", "coefficient fixed at 1/8: task arithmetic is weight averaging",
                      merging(key, **{"task-arithmetic": avg["weight-averaging"]})),
                Wrong(suite, "average consensus-ta", "Consensus TA is task arithmetic",
                      merging(key, **{"consensus-ta": avg["task-arithmetic"]})),
                Wrong(suite, "average tsv-m", "TSV-M 4 points low", merging(key, **{"tsv-m": avg["tsv-m"] - 0.04}))]
    else:
        out += [Wrong(suite, "average weight-averaging", "weight averaging is task arithmetic at 0.3",
                      merging(key, **{"weight-averaging": avg["task-arithmetic"]})),
                Wrong(suite, "average finetuned", "fine-tuned with a tenth of the steps: 4 points low"
                      if key == "A-own" else "fine-tuned on other test splits, 2 points low",
                      merging(key, finetuned=avg["finetuned"] - (0.04 if key == "A-own" else 0.02)))]
    return out


WRONG = NEGATION + ADDITION + BIRADS + [w for key in MERGING_SUITES for w in merging_wrongs(key)]

# An exact replication of each suite, whose verdict names the checks it asserts.
EXACT = {"negation": paper("negation"), "addition": paper("addition"),
         "BI-RADS": birads(paper_sim.BIRADS_TRUTH),
         **{suite: merging(key) for key, suite in MERGING_SUITES.items()}}


# ------------------------------------------------------------------ measured

OUTCOMES = (verdicts.REPRODUCED, verdicts.CONTRADICTED, verdicts.INCONCLUSIVE)


def power(wrong: Wrong, runs: int = RUNS) -> dict[str, float]:
    """Shares of runs in which the wrong result's check is called each word, and in
    which its suite is called reproduced ("suite")."""
    judged = wrong.simulate(wrong.seed, runs)
    words = [next(c for c in v.checks if c.name == wrong.check).outcome for v in judged]
    shares = {w: words.count(w) / runs for w in OUTCOMES}
    shares["suite"] = sum(v.outcome == verdicts.REPRODUCED for v in judged) / runs
    return shares


@pytest.fixture(scope="module")
def measured() -> dict[Wrong, dict[str, float]]:
    return {w: power(w) for w in WRONG}


def row(wrong: Wrong, shares: dict[str, float]) -> str:
    cells = [f"{100 * shares[k]:.1f}%" for k in (*OUTCOMES, "suite")]
    return f"| {wrong.suite} | {wrong.check} | {wrong.name} | " + " | ".join(cells) + " |"


_ROW = re.compile(r"^\| (?P<suite>[^|]+?) \| (?P<check>[^|]+?) \| (?P<name>[^|]+?) \| "
                  r"(?P<r>[\d.]+)% \| (?P<c>[\d.]+)% \| (?P<i>[\d.]+)% \| (?P<s>[\d.]+)% \|$")


def readme_rows() -> dict[tuple[str, str, str], tuple[float, ...]]:
    """The README's rows of this table: (suite, check, wrong result) -> the four shares in percent."""
    rows = {}
    for line in README.read_text().splitlines():
        match = _ROW.match(line.strip())
        if match:
            rows[match["suite"], match["check"], match["name"]] = tuple(float(match[k]) for k in "rcis")
    return rows


# ------------------------------------------------------------------ the claims

def asserted_checks(suite: str) -> set[str]:
    return {c.name for c in EXACT[suite](1, 1)[0].asserted}


@pytest.mark.parametrize("suite", list(EXACT))
def test_every_asserted_check_has_a_wrong_result_aimed_at_it(suite):
    aimed = {w.check for w in WRONG if w.suite == suite}
    assert sorted(asserted_checks(suite) - aimed) == []


@pytest.mark.parametrize("suite", list(EXACT))
def test_every_wrong_result_is_aimed_at_a_check_the_suite_asserts(suite):
    aimed = {w.check for w in WRONG if w.suite == suite}
    assert sorted(aimed - asserted_checks(suite)) == []


# Where the nearest plausible wrong result passes more often than the target: a
# strict xfail stating the share measured (a fix of the verdict turns it into a pass,
# and strict turns that into a failure to remove the mark), never hidden behind a
# farther wrong result. None today: before the checks inside one run counted the
# change's training spread (tvcore.verdicts.change_spread), 17 check rows passed
# their wrong result in 12-41% of runs, and the negation suite its SUN397 miss in 12%.
CHECK_EXCEEDS: dict[tuple[str, str], str] = {}
SUITE_EXCEEDS: dict[tuple[str, str], str] = {}


def _param(w: Wrong, exceeds: dict[tuple[str, str], str]):
    reason = exceeds.get((w.suite, w.check))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(w, marks=marks, id=f"{w.suite}: {w.check}")


@pytest.mark.parametrize("wrong", [_param(w, CHECK_EXCEEDS) for w in WRONG])
def test_a_wrong_result_leaves_its_check_reproduced_at_most_10_percent(measured, wrong):
    assert measured[wrong][verdicts.REPRODUCED] <= AT_MOST


@pytest.mark.parametrize("wrong", [_param(w, SUITE_EXCEEDS) for w in WRONG])
def test_a_wrong_result_leaves_its_suite_reproduced_at_most_10_percent(measured, wrong):
    assert measured[wrong]["suite"] <= AT_MOST


def test_every_exception_names_a_wrong_result():
    keys = {(w.suite, w.check) for w in WRONG}
    assert sorted((set(CHECK_EXCEEDS) | set(SUITE_EXCEEDS)) - keys) == []


def test_the_readme_table_of_check_power(measured, capsys):
    """The README's table is what these simulations measure now (to half a point), row for row."""
    with capsys.disabled():
        print()
        for w, shares in measured.items():
            print(row(w, shares))
    shown = readme_rows()
    stale = []
    for w, shares in measured.items():
        now = tuple(100 * shares[k] for k in (*OUTCOMES, "suite"))
        said = shown.pop((w.suite, w.check, w.name), None)
        if said is None or any(abs(a - b) > TOLERANCE_PP for a, b in zip(now, said)):
            stale.append(f"{w.suite} | {w.check} | {w.name}: README {said}, "
                         f"simulated {tuple(round(x, 1) for x in now)}")
    stale += [f"{key}: in the README, no longer simulated" for key in shown]
    assert stale == []
