"""The experiment functions end to end on tiny budgets: the BI-RADS protocol on a
generated Mini-DDSM tree (the real data path), and the selection rules."""

from __future__ import annotations

import json

import pytest

from tvcore import verdicts
from tvcore.experiments import BiradsConfig, Context, run_suite
from tvcore.experiments.common import TINY, grid, load_task
from tvcore.experiments.negation import choose_lambda
from tvcore.finetune import Recipe
from tvcore.cli import main

QUICK = Recipe(lr=1e-3, batch_size=32, steps=3, warmup_steps=1)


def test_paper_grid_is_0_to_1_by_005():
    g = grid(0.0, 1.0, 0.05)
    assert len(g) == 21 and g[1] == 0.05 and g[-1] == 1.0


def test_negation_rule_picks_lowest_target_that_keeps_control():
    rows = [{"lambda": 0.0, "target": 0.9, "control": 0.80}, {"lambda": 0.5, "target": 0.3, "control": 0.77},
            {"lambda": 1.0, "target": 0.1, "control": 0.60}]
    assert choose_lambda(rows, 0.95 * 0.80)["lambda"] == 0.5
    with pytest.raises(ValueError, match="no lambda keeps control"):
        choose_lambda(rows, 0.99)


def test_birads_experiment_on_a_generated_mini_ddsm_tree(mini_ddsm_full, tmp_path):
    data_root = tmp_path / "data"
    (data_root).mkdir()
    (data_root / "mini-ddsm").symlink_to(mini_ddsm_full, target_is_directory=True)
    ctx = Context(TINY, QUICK, data_root=str(data_root), progress=False, head_cache=str(tmp_path / "heads"))
    from tvcore.experiments import Suite

    suite = Suite("birads-fake", "birads", BiradsConfig(alphas=[0.0, 1.0]), TINY, QUICK)
    rec = run_suite(suite, ctx)
    assert rec["class_names"] == ["BI-RADS 2", "BI-RADS 3", "BI-RADS 4", "BI-RADS 5"]
    assert "ACR breast density" in rec["label_notes"]
    assert rec["metrics"]["baseline.overall"]["total"] == 400
    assert rec["metrics"]["focus_low.accuracy"]["total"] == 120
    assert {r["alpha"] for r in rec["sweep"]} == {0.0, 1.0}
    assert rec["selection"]["split"] == "val"
    assert set(rec["split_hashes"]) >= {"mini-ddsm/baseline:test", "mini-ddsm/focus-5:val"}
    json.dumps(rec, default=str)  # a record is JSON


def test_birads_record_holds_what_its_verdict_and_controls_need(mini_ddsm_full, tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "mini-ddsm").symlink_to(mini_ddsm_full, target_is_directory=True)
    ctx = Context(TINY, QUICK, data_root=str(data_root), progress=False, head_cache=str(tmp_path / "heads"))
    from tvcore.experiments import Suite
    from tvcore.stats import CLUSTERED

    rec = run_suite(Suite("birads-fake", "birads", BiradsConfig(alphas=[0.0, 0.5, 1.0]), TINY, QUICK), ctx)
    assert set(rec["controls"]["prior_shift"]["at"]) == {"chosen", "fixed"}          # matched at alpha 1 too
    assert rec["controls"]["prior_shift"]["at"]["fixed"]["alpha"] == 1.0
    assert rec["paired_tests"]["fixed"]["test"] == CLUSTERED                         # 4 views per case
    assert {"overall", "BI-RADS 5"} <= set(rec["trend"]) and rec["trend"]["overall"]["alphas"] == [0.0, 0.5, 1.0]
    assert verdicts.birads_verdict(rec).outcome in (verdicts.REPRODUCED, verdicts.CONTRADICTED, verdicts.INCONCLUSIVE)


def test_tasks_resolve_by_name(tmp_path):
    assert load_task("digits/rot90").name == "digits/rot90"
    assert load_task("digits-grades/focus-5").class_names == ["not grade 5", "grade 5"]


def test_cli_run_writes_record_and_plot_and_compare_agrees_with_itself(tmp_path, capsys, monkeypatch):
    from tvcore.experiments import SUITES, Suite
    from tvcore.experiments.analogy import AnalogyConfig

    monkeypatch.setitem(SUITES, "analogy-quick", Suite(
        "analogy-quick", "analogy", AnalogyConfig("digits/upright", "digits/rot90", "digits/mirror",
                                                  "digits/mirror+rot90", lambdas=[0.0, 0.5], oracle=False),
        TINY, QUICK))
    assert main(["run", "analogy-quick", "--quiet", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "analogy.target" in out and (tmp_path / "analogy-quick.png").is_file()
    rec = json.loads((tmp_path / "analogy-quick.json").read_text())
    assert rec["environment"]["versions"]["torch"] and "commit" in rec["environment"]["git"]
    assert main(["compare", str(tmp_path / "analogy-quick.json"), str(tmp_path / "analogy-quick.json")]) == 0
    from tvcore.outcomes import decode_outcomes, encode_outcomes

    m = rec["metrics"]["analogy.target"]  # a model that answers every image the other way
    m.update(value=1.0 - m["value"], correct=m["total"] - m["correct"],
             correct_bits=encode_outcomes(~decode_outcomes(m["correct_bits"], m["total"])))
    (tmp_path / "b.json").write_text(json.dumps(rec))
    if abs(2 * rec["metrics"]["analogy.target"]["value"] - 1) > 0.2:
        assert main(["compare", str(tmp_path / "analogy-quick.json"), str(tmp_path / "b.json")]) == 1
        assert "DIFFER" in capsys.readouterr().out


def test_cli_run_unknown_suite(capsys):
    assert main(["run", "nope"]) == 2
    assert "unknown suite 'nope'" in capsys.readouterr().err
