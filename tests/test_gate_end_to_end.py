"""The gate end to end, through the pytest plugin in a subprocess session: no
baseline, the update command, a run against its own baseline, an edited baseline
(reported, untouched and suspicious findings), --accept-improvements, and a
regression of the code that must fail."""

from __future__ import annotations

import json

import pytest

from tvcore import results


PROBE_CONFTEST = """
import os
from tvcore.experiments import SUITES, Suite, MICRO_RECIPE
from tvcore.experiments.common import TINY
from tvcore.experiments.negation import NegationConfig

if os.environ.get("TVCORE_PROBE_WORSE"):  # a regression of the code, the protocol unchanged: heads answer backwards
    from tvcore.models import ClassificationHead

    forward = ClassificationHead.forward
    ClassificationHead.forward = lambda self, features: -forward(self, features)
SUITES["gate-probe"] = Suite("gate-probe", "negation",
                             NegationConfig(["digits/rot90"], "digits/upright", lambdas=[0.0, 0.5], controls=False),
                             TINY, MICRO_RECIPE.with_(steps=3, warmup_steps=1))
"""

PROBE_TEST = """
def test_probe(tvcore_runs):
    tvcore_runs.gate(tvcore_runs.run("gate-probe"))
"""


@pytest.fixture
def probe(pytester):
    pytester.makeconftest(PROBE_CONFTEST)
    pytester.makepyfile(test_probe=PROBE_TEST)
    return pytester


def run_probe(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--baselines-dir", "baselines",
                                         "--results-dir", "results", *args)


def test_suite_gate_end_to_end(probe, monkeypatch):
    # No baseline yet: the case fails and says how to make one.
    res = run_probe(probe)
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*no baseline for gate-probe*pytest bench/ --update-baselines --seeds N*"])

    # The update pools seeds 0, 1 and 2 into one baseline (two seeds leave a t with
    # one degree of freedom: tolerances too wide to show a reported metric falling).
    res = run_probe(probe, "--update-baselines", "--seeds", "3")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*gate-probe*baseline written (3 seeds)*"])
    baseline_path = probe.path / "baselines" / "gate-probe.json"
    baseline = json.loads(baseline_path.read_text())
    assert baseline["seeds"] == [0, 1, 2] and baseline["format"] == results.BASELINE_FORMAT
    assert (probe.path / "results" / "gate-probe-seed1.json").is_file()

    # The same code and weights pass against their own baseline, and the session
    # says which activation the model ran with and why.
    res = run_probe(probe)
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["QuickGELU o*: *"])

    # An edited baseline: a reported metric (fine-tuned accuracy claimed 50 points
    # higher) is shown and passes; an untouched one (the pre-trained control claimed
    # one image higher) fails, exactly, with both values; and a run far better than
    # its baseline (the negated target claimed 25 points worse) fails as a suspicious
    # improvement.
    edited = json.loads(baseline_path.read_text())
    reported = edited["metrics"]["finetuned[digits/rot90].target"]
    reported["value"] = min(1.0, reported["value"] + 0.5)
    untouched = edited["metrics"]["pretrained.control"]
    measured = untouched["value"]
    assert untouched["role"] == "untouched" and measured < 1
    untouched["value"] = measured + 1 / untouched["n"]
    target = edited["metrics"]["mean(negated[*].target)"]
    target["value"] = target["mean"] = min(1.0, target["value"] + 0.25)
    baseline_path.write_text(json.dumps(edited))
    res = run_probe(probe)
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*gate-probe*: 2 metric(s) beyond tolerance*"])
    res.stdout.fnmatch_lines([f"*pretrained.control: measured {measured:.4f} vs baseline {untouched['value']:.4f}*"
                              "exact on this hardware*regressed*"])
    res.stdout.fnmatch_lines(["*mean(negated[[]*[]].target)*suspicious improvement*--accept-improvements*"])
    res.stdout.fnmatch_lines(["*reported: finetuned[[]digits/rot90[]].target*(reported, not gated)*"])

    # Accepted, the improvement passes.
    leak = json.loads(json.dumps(baseline))
    leak["metrics"]["mean(negated[*].target)"] = target
    baseline_path.write_text(json.dumps(leak))
    run_probe(probe, "--accept-improvements").assert_outcomes(passed=1)

    # A deliberately worsened code (every head answering backwards) fails against the
    # true baseline.
    baseline_path.write_text(json.dumps(baseline))
    monkeypatch.setenv("TVCORE_PROBE_WORSE", "1")
    res = run_probe(probe)
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*gate-probe*: * metric(s) beyond tolerance*",
                              "*pretrained.control: measured * vs baseline 0.99*regressed*"])
