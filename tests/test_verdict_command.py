"""``tvcore verdict RECORD...``: a record judged against the published figures
under this tvcore's rules (a record written before a rule changed is judged as a
new one would be), with the exit code of its outcome."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tests.test_verdicts import CHANCE, PAPER_TRUTH, TASKS, simulate_paper
from tvcore import verdicts
from tvcore.cli import main


def addition_record(tmp_path, truth=PAPER_TRUTH, seed=3):
    (record,), _ = simulate_paper(np.random.default_rng(seed), 1, **truth)
    record = {**record, "experiment": "addition", "case": "addition-vit-b-32"}
    path = tmp_path / "addition-vit-b-32.json"
    path.write_text(json.dumps(record))
    return path, record


def test_a_record_is_judged_by_its_experiments_verdict_and_exits_with_its_outcome(tmp_path, capsys):
    path, record = addition_record(tmp_path)
    expected = verdicts.addition_verdict(record)
    code = main(["verdict", str(path)])
    assert code == {verdicts.REPRODUCED: 0, verdicts.CONTRADICTED: 1, verdicts.INCONCLUSIVE: 3}[expected.outcome]
    assert expected.format() in capsys.readouterr().out


def test_write_puts_the_verdict_beside_the_record(tmp_path):
    path, record = addition_record(tmp_path)
    main(["verdict", str(path), "--write"])
    written = json.loads((tmp_path / "addition-vit-b-32.verdict.json").read_text())
    assert written["outcome"] == verdicts.addition_verdict(record).outcome


def test_models_at_chance_are_contradicted_and_exit_1(tmp_path):
    chance = {**PAPER_TRUTH, "merged": {t: CHANCE[t] for t in TASKS}}
    path, _ = addition_record(tmp_path, chance)
    assert main(["verdict", str(path)]) == 1


def test_a_record_without_published_figures_is_one_line_naming_its_experiment(tmp_path, capsys):
    path = tmp_path / "analogy-micro.json"
    path.write_text(json.dumps({"experiment": "analogy", "case": "analogy-micro",
                                "metrics": {"analogy.target": {"value": 0.5, "total": 225}}}))
    assert main(["verdict", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'analogy'" in err and "negation" in err


def test_a_micro_record_names_the_paper_metric_it_lacks(tmp_path, capsys):
    path = tmp_path / "negation-micro.json"
    path.write_text(json.dumps({"experiment": "negation", "case": "negation-micro",
                                "metrics": {"negated[digits/rot90].target": {"value": 0.2, "total": 225}}}))
    assert main(["verdict", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'negated[Cars].target'" in err and "negated[digits/rot90].target" in err
    assert "other tasks" in err


class RealSuiteRun:
    """Stands in for the context and the run of a real suite: the record is a
    simulated addition replication (``truth``), written where the run would."""

    def __init__(self, monkeypatch, truth=PAPER_TRUTH):
        import tvcore.experiments
        import tvcore.report

        self.truth = truth
        monkeypatch.setattr(tvcore.experiments, "context_for",
                            lambda suite, **options: SimpleNamespace(
                                evaluator=SimpleNamespace(set_precision=lambda precision: None)))
        monkeypatch.setattr(tvcore.experiments, "run_and_record", self.run_and_record)
        monkeypatch.setattr(tvcore.report, "render", lambda record: "")
        monkeypatch.setattr("tvcore.cli.quick_gelu_line", lambda record: "")

    def run_and_record(self, suite, ctx, case, results_dir, seed=0):
        (record,), _ = simulate_paper(np.random.default_rng(seed + 5), 1, **self.truth)
        record = {**record, "experiment": "addition", "case": case, "seed": seed}
        path = Path(results_dir) / f"{case}.json"
        path.write_text(json.dumps(record))
        return record, path


def test_tvcore_run_of_a_real_suite_prints_and_writes_its_verdict_and_exits_by_it(tmp_path, monkeypatch, capsys):
    RealSuiteRun(monkeypatch)
    (tmp_path / "w.safetensors").write_bytes(b"")
    code = main(["run", "addition-vit-b-32", "--results-dir", str(tmp_path), "--no-gate",
                 "--weights", str(tmp_path / "w.safetensors"), "--data-root", str(tmp_path)])
    written = json.loads((tmp_path / "addition-vit-b-32.verdict.json").read_text())
    assert code == {verdicts.REPRODUCED: 0, verdicts.CONTRADICTED: 1, verdicts.INCONCLUSIVE: 3}[written["outcome"]]
    assert "addition: " + written["outcome"].upper() in capsys.readouterr().out


def test_tvcore_run_of_a_real_suite_at_chance_exits_1(tmp_path, monkeypatch):
    RealSuiteRun(monkeypatch, {**PAPER_TRUTH, "merged": {t: CHANCE[t] for t in TASKS}})
    (tmp_path / "w.safetensors").write_bytes(b"")
    assert main(["run", "addition-vit-b-32", "--results-dir", str(tmp_path), "--no-gate",
                 "--weights", str(tmp_path / "w.safetensors"), "--data-root", str(tmp_path)]) == 1


def test_tvcore_run_with_seeds_judges_the_first_seed_with_the_measured_training_spread(tmp_path, monkeypatch):
    RealSuiteRun(monkeypatch)
    (tmp_path / "w.safetensors").write_bytes(b"")
    main(["run", "addition-vit-b-32", "--seeds", "3", "--results-dir", str(tmp_path), "--no-gate",
          "--weights", str(tmp_path / "w.safetensors"), "--data-root", str(tmp_path)])
    record = json.loads((tmp_path / "addition-vit-b-32.json").read_text())
    assert record["seed_spread"]["n_seeds"] == 3
    written = json.loads((tmp_path / "addition-vit-b-32.verdict.json").read_text())
    assert {c["allowance"] for c in written["checks"] if c["name"].startswith("merged")} == {"measured over 3 seeds"}
    assert not (tmp_path / "addition-vit-b-32-seed1.verdict.json").exists()
