"""The command line as a newcomer meets it: records never overwrite each other,
build -> apply -> eval closes, messages name flags (not Python), `tvcore run` takes
the pytest plugin's options and gates, TaskVector.apply_to takes load_model()'s
result, and every file tvcore writes has one mode.

Suite runs are stood in for (the names, seeds, devices and the gate are the
claims); evaluations run for real on the embedded tiny model."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import ROOT, TINY_CONFIG
from tvcore.cli import build_parser, main

TINY_WEIGHTS = str(ROOT / "fixtures" / "tvcore-tiny-digits.safetensors")


class FakeRuns:
    """Stands in for the experiments' context and run: records each case and the
    context's options, returns a record whose one metric is ``value``."""

    def __init__(self, monkeypatch, value: float = 0.9, notice: bool = False):
        import tvcore.experiments
        import tvcore.report

        self.value, self.notice, self.cases, self.contexts = value, notice, [], []
        monkeypatch.setattr(tvcore.experiments, "context_for", self.context_for)
        monkeypatch.setattr(tvcore.experiments, "run_and_record", self.run_and_record)
        monkeypatch.setattr(tvcore.report, "render", lambda record: f"table of {record['case']}")

    def context_for(self, suite, **options):
        self.contexts.append({"suite": suite.name, **options})
        if self.notice:  # as a model load says what it decided on its own
            import sys
            import warnings

            print("tvcore: QuickGELU is off for tvcore-tiny: nothing records it", file=sys.stderr)
            warnings.warn("a library's warning")
        return SimpleNamespace(evaluator=SimpleNamespace(set_precision=lambda precision: None))

    def run_and_record(self, suite, ctx, case, results_dir, seed=0):
        self.cases.append(case)
        record = {"case": case, "seed": seed, "experiment": "negation",
                  "metrics": {"test.acc": {"value": self.value, "total": 100}}}
        return record, Path(results_dir) / f"{case}.json"


@pytest.fixture
def encoders(tmp_path):
    """The tiny checkpoint's image encoder, and a nudged copy (a pool-style
    fine-tuned encoder file, keys as in model.visual.state_dict())."""
    state = load_file(TINY_WEIGHTS)
    pre = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    save_file(pre, str(tmp_path / "pre_encoder.safetensors"))
    save_file({k: v + 0.01 for k, v in pre.items()}, str(tmp_path / "ft_encoder.safetensors"))
    return tmp_path / "pre_encoder.safetensors", tmp_path / "ft_encoder.safetensors"


def _one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    return err


# 1. Records are never overwritten by another run's.

def test_a_rehearsal_writes_its_own_record_not_the_real_runs(tmp_path, monkeypatch):
    runs = FakeRuns(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "negation-micro", "--rehearsal", "--results-dir", str(tmp_path)]) == 0
    assert runs.cases == ["negation-micro-rehearsal"]


def test_eval_names_its_record_after_the_model_evaluated(tmp_path, monkeypatch, encoders):
    runs = FakeRuns(monkeypatch)
    tau = tmp_path / "tau.safetensors"
    base = ["eval", "digits/rot90", "--arch", TINY_CONFIG, "--weights", TINY_WEIGHTS, "--results-dir", str(tmp_path)]
    for extra in ([], ["--vector", str(tau), "--alpha", "1"], ["--vector", str(tau), "--alpha", "0.5"],
                  ["--image-encoder", str(encoders[1])]):
        assert main(base + extra) == 0
    zero_shot, alpha1, alpha05, encoder = runs.cases
    assert len(set(runs.cases)) == 4
    assert "tau" in alpha1 and "alpha1" in alpha1 and "ft_encoder" in encoder


def test_eval_of_two_weights_files_with_one_stem_writes_two_records(tmp_path, monkeypatch):
    runs = FakeRuns(monkeypatch)
    for task in ("MNIST", "SVHN"):
        (tmp_path / task).mkdir()
        (tmp_path / task / "finetuned.safetensors").write_bytes(b"")
        assert main(["eval", "digits/rot90", "--weights", str(tmp_path / task / "finetuned.safetensors"),
                     "--results-dir", str(tmp_path)]) == 0
    assert runs.cases[0] != runs.cases[1]


# 2. build -> apply -> eval closes.

def test_vector_build_of_a_whole_model_against_an_encoder_names_the_mismatch_and_arch(tmp_path, capsys, encoders):
    assert main(["vector", "build", TINY_WEIGHTS, str(encoders[1]), "-o", str(tmp_path / "tau.safetensors")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "74 tensors (a whole CLIP model)" in err and "44 tensors (an image encoder)" in err
    assert "'visual.conv1.weight'" in err and "'conv1.weight'" in err and "--arch" in err
    assert len(err) < 600


def test_vector_apply_partial_edits_the_image_encoder_of_a_whole_model(tmp_path, encoders):
    tau = tmp_path / "tau.safetensors"
    assert main(["vector", "build", str(encoders[0]), str(encoders[1]), "-o", str(tau)]) == 0
    out = tmp_path / "merged.safetensors"
    assert main(["vector", "apply", TINY_WEIGHTS, str(tau), "--partial", "--alpha", "0.5", "-o", str(out)]) == 0
    base, merged, vector = load_file(TINY_WEIGHTS), load_file(str(out)), load_file(str(tau))
    assert merged.keys() == base.keys()
    assert torch.allclose(merged["visual.conv1.weight"], base["visual.conv1.weight"] + 0.5 * vector["conv1.weight"])
    assert torch.equal(merged["transformer.resblocks.0.ln_1.weight"], base["transformer.resblocks.0.ln_1.weight"])


def test_vector_apply_of_an_encoder_vector_to_a_whole_model_without_partial_names_the_flag(tmp_path, capsys,
                                                                                           encoders):
    tau = tmp_path / "tau.safetensors"
    assert main(["vector", "build", str(encoders[0]), str(encoders[1]), "-o", str(tau)]) == 0
    capsys.readouterr()
    assert main(["vector", "apply", TINY_WEIGHTS, str(tau), "-o", str(tmp_path / "m.safetensors")]) == 2
    assert "--partial" in _one_line(capsys.readouterr().err)


def test_eval_of_an_image_encoder_file_as_weights_points_to_image_encoder(tmp_path, capsys, encoders, monkeypatch):
    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path / "cache"))
    assert main(["eval", "digits/rot90", "--arch", TINY_CONFIG, "--weights", str(encoders[1]),
                 "--results-dir", str(tmp_path / "r"), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "pass it as --image-encoder" in err.splitlines()[-1]


def test_eval_of_a_merged_image_encoder_runs_with_image_encoder(tmp_path, capsys, encoders, monkeypatch):
    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path / "cache"))
    tau, merged = tmp_path / "tau.safetensors", tmp_path / "merged_encoder.safetensors"
    assert main(["vector", "build", str(encoders[0]), str(encoders[1]), "-o", str(tau)]) == 0
    assert main(["vector", "apply", str(encoders[0]), str(tau), "--alpha", "0.5", "-o", str(merged)]) == 0
    capsys.readouterr()
    assert main(["eval", "digits/rot90", "--arch", TINY_CONFIG, "--weights", TINY_WEIGHTS, "--image-encoder",
                 str(merged), "--results-dir", str(tmp_path / "r"), "--workers", "0"]) == 0
    captured = capsys.readouterr()
    (record,) = (tmp_path / "r").glob("eval-digits-rot90-test-*merged_encoder*.json")
    assert json.loads(record.read_text())["metrics"]["test.overall"]["total"] > 0
    # 3. the project's own checkpoint is no case for the QuickGELU warning
    assert "QuickGELU is off" not in captured.err


# 3. Messages name flags, not Python; the reference layout is built quietly.

def test_import_check_base_without_base_names_the_flags(tmp_path, capsys, encoders):
    assert main(["import", str(encoders[1]), "--arch", TINY_CONFIG, "--check-base",
                 "-o", str(tmp_path / "out.safetensors")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "--base" in err and "base=" not in err


def test_import_quick_gelu_clash_names_the_flag(tmp_path, capsys):
    from tests.test_import import hf_clip, matching_open_clip

    hf_clip("CLIPModel", hidden_act="gelu").save_pretrained(tmp_path / "hf")
    capsys.readouterr()  # transformers' own progress bar
    assert main(["import", str(tmp_path / "hf"), "--arch", matching_open_clip(tmp_path, False), "--quick-gelu",
                 "-o", str(tmp_path / "out.safetensors")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "--quick-gelu was given" in err and "quick_gelu=" not in err


def test_import_says_the_activation_in_words(tmp_path, capsys):
    assert main(["import", TINY_WEIGHTS, "--arch", TINY_CONFIG, "-o", str(tmp_path / "out.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "QuickGELU not recorded (--quick-gelu or --no-quick-gelu records it)" in out and "None" not in out


def test_the_reference_layout_is_built_without_the_random_init_notice(caplog):
    import logging

    from tvcore.importers import reference_layout

    caplog.set_level(logging.INFO)
    reference_layout(TINY_CONFIG)
    assert "initialized randomly" not in caplog.text


def test_the_embedded_checkpoint_runs_with_plain_gelu_unless_told():
    from tvcore.cli import embedded_quick_gelu

    assert embedded_quick_gelu(TINY_WEIGHTS, None) is False
    assert embedded_quick_gelu(TINY_WEIGHTS, True) is True
    assert embedded_quick_gelu("other.safetensors", None) is None


def test_quiet_silences_notices_and_warnings(tmp_path, capsys, monkeypatch):
    FakeRuns(monkeypatch, notice=True)
    monkeypatch.chdir(tmp_path)
    import warnings

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert main(["run", "negation-micro", "--results-dir", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr().err == "" and shown == []


def test_quiet_still_shows_errors(tmp_path, capsys):
    assert main(["run", "no-such-suite", "--results-dir", str(tmp_path), "--quiet"]) == 2
    assert "unknown suite" in _one_line(capsys.readouterr().err)


# 4. data summary without a root; one-line shape mismatches.

def test_data_summary_without_a_root_says_to_pass_root_in_one_line(capsys, monkeypatch):
    monkeypatch.delenv("TVCORE_DATA", raising=False)
    assert main(["data", "summary", "paper-tasks"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "--root" in err and "None" not in err and len(err) < 200


def test_data_summary_reads_its_root_from_tvcore_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TVCORE_DATA", str(tmp_path))
    assert main(["data", "summary", "paper-tasks"]) == 2
    assert f"no task is readable under {tmp_path}" in capsys.readouterr().err


def test_data_summary_help_names_paper_tasks(capsys):
    with pytest.raises(SystemExit):
        main(["data", "summary", "--help"])
    assert "paper-tasks" in capsys.readouterr().out


def test_a_vector_of_another_architecture_is_one_line_naming_the_first_key(tmp_path, capsys):
    from tvcore import TaskVector

    base = {f"layer{i}.weight": torch.zeros(4, 4) for i in range(30)}
    TaskVector({k: torch.ones(8, 8) for k in base}, name="wide").save(tmp_path / "wide.safetensors")
    save_file(base, str(tmp_path / "base.safetensors"))
    assert main(["vector", "apply", str(tmp_path / "base.safetensors"), str(tmp_path / "wide.safetensors"),
                 "-o", str(tmp_path / "out.safetensors")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "shape differs for 'layer0.weight': (8, 8) in 'wide' vs (4, 4) in 'base model' (and 29 other keys)" in err
    assert len(err) < 250


# 5. run --help and usage.

def _subparser(*names):
    parser = build_parser()
    for name in names:
        parser = next(a for a in parser._actions if a.dest.endswith("command")).choices[name]
    return parser


def test_run_help_lists_the_real_suites(capsys):
    from tvcore.experiments import SUITES

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in SUITES) and "..." not in text


def test_every_run_option_has_help():
    assert [a.dest for a in _subparser("run")._actions if not a.help] == []


def test_an_unknown_flag_shows_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit):
        main(["vector", "apply", "base.safetensors", "t.safetensors", "-o", "x.safetensors", "--bogus"])
    err = capsys.readouterr().err
    assert "usage: tvcore vector apply" in err and "--bogus" in err


# 6. run takes the plugin's options and gates.

def test_run_seeds_writes_one_record_per_seed(tmp_path, monkeypatch):
    runs = FakeRuns(monkeypatch)
    assert main(["run", "negation-micro", "--seeds", "3", "--results-dir", str(tmp_path), "--no-gate"]) == 0
    assert runs.cases == ["negation-micro", "negation-micro-seed1", "negation-micro-seed2"]
    assert [c["seed"] for c in runs.contexts] == [0, 1, 2]


def test_run_gpu_is_device_cuda(tmp_path, monkeypatch):
    runs = FakeRuns(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert main(["run", "negation-micro", "--gpu", "--results-dir", str(tmp_path), "--no-gate"]) == 0
    assert runs.contexts[0]["device"] == "cuda"


def test_run_on_a_machine_with_cuda_says_the_gpu_is_unused(tmp_path, capsys, monkeypatch):
    runs = FakeRuns(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert main(["run", "negation-micro", "--results-dir", str(tmp_path), "--no-gate"]) == 0
    assert runs.contexts[0]["device"] == "cpu"
    assert "--gpu" in _one_line(capsys.readouterr().err)


def test_run_update_baselines_is_refused_naming_the_pytest_command(tmp_path, capsys, monkeypatch):
    runs = FakeRuns(monkeypatch)
    assert main(["run", "negation-micro", "--update-baselines", "--results-dir", str(tmp_path)]) == 2
    assert "pytest bench/ --update-baselines --seeds 10" in _one_line(capsys.readouterr().err)
    assert runs.cases == []


def _baseline(folder: Path, value: float = 0.9) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "negation-micro.json"
    path.write_text(json.dumps({"format": "tvcore.baseline/1",
                                "metrics": {"test.acc": {"value": value, "tolerance": 0.05}}}))
    return path


def test_run_fails_with_exit_1_when_the_gate_fails(tmp_path, capsys, monkeypatch):
    FakeRuns(monkeypatch, value=0.5)
    _baseline(tmp_path / "baselines")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "negation-micro", "--results-dir", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    assert "regressed FAIL" in out and "test.acc" in out and "FAILED" in out


def test_run_passes_the_gate_within_tolerance(tmp_path, capsys, monkeypatch):
    FakeRuns(monkeypatch, value=0.88)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "negation-micro", "--results-dir", str(tmp_path / "r"),
                 "--baselines", str(_baseline(tmp_path / "b").parent)]) == 0
    assert "gate: negation-micro passed" in capsys.readouterr().out


def test_run_no_gate_skips_the_gate(tmp_path, capsys, monkeypatch):
    FakeRuns(monkeypatch, value=0.5)
    _baseline(tmp_path / "baselines")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "negation-micro", "--results-dir", str(tmp_path / "r"), "--no-gate"]) == 0
    assert "gate: skipped (--no-gate)" in capsys.readouterr().out


# 7. apply_to takes what load_model returns.

def test_apply_to_a_loaded_model_edits_its_image_encoder():
    from tvcore import TaskVector
    from tvcore.models import load_model

    loaded = load_model(TINY_CONFIG, TINY_WEIGHTS, quick_gelu=False)
    encoder = loaded.model.visual.state_dict()
    multi = TaskVector({k: torch.ones_like(v) for k, v in encoder.items() if v.is_floating_point()}, name="multi")
    edited = (0.4 * multi).apply_to(loaded)
    assert torch.allclose(edited.model.visual.conv1.weight, loaded.model.visual.conv1.weight + 0.4)
    assert torch.equal(edited.model.token_embedding.weight, loaded.model.token_embedding.weight)
    assert edited.model is not loaded.model and edited.tokenizer is loaded.tokenizer


# 8. One mode for every file tvcore writes.

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_every_written_file_is_0644_under_umask_022(tmp_path, encoders, umask_022, capsys):
    tau, applied, merged = (tmp_path / f"{n}.safetensors" for n in ("tau", "applied", "merged"))
    imported = tmp_path / "imported.safetensors"
    assert main(["vector", "build", str(encoders[0]), str(encoders[1]), "-o", str(tau)]) == 0
    assert main(["vector", "apply", str(encoders[0]), str(tau), "-o", str(applied)]) == 0
    assert main(["vector", "merge", str(tau), str(tau), "-o", str(merged)]) == 0
    assert main(["import", TINY_WEIGHTS, "--arch", TINY_CONFIG, "-o", str(imported)]) == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tau, applied, merged, imported)}
    assert modes == {p.name: 0o644 for p in (tau, applied, merged, imported)}


# The merging benchmark: a subset of its methods from the command line.

def test_run_methods_runs_only_those_merging_methods_under_their_own_record_name(tmp_path, capsys, monkeypatch):
    runs = FakeRuns(monkeypatch)
    seen = []
    original = runs.context_for
    monkeypatch.setattr("tvcore.experiments.context_for",
                        lambda suite, **kw: seen.append(suite) or original(suite, **kw))
    assert main(["run", "merging-micro", "--methods", "ties,tsv-m", "--results-dir", str(tmp_path)]) == 0
    assert runs.cases == ["merging-micro-ties+tsv-m"]
    assert seen[0].config.methods == ("ties", "tsv-m") and set(seen[0].config.grids) == {"ties", "tsv-m"}
    assert "gate: skipped (--methods" in capsys.readouterr().out


def test_run_methods_on_a_suite_without_merging_is_refused(tmp_path, capsys, monkeypatch):
    FakeRuns(monkeypatch)
    assert main(["run", "negation-micro", "--methods", "ties", "--results-dir", str(tmp_path)]) == 2
    assert "not a merging suite" in _one_line(capsys.readouterr().err)


def test_run_methods_names_an_unknown_method(tmp_path, capsys, monkeypatch):
    FakeRuns(monkeypatch)
    assert main(["run", "merging-micro", "--methods", "ties,sum-all", "--results-dir", str(tmp_path)]) == 2
    assert "sum-all" in _one_line(capsys.readouterr().err)


# Fine-tunes side by side.

def test_run_jobs_trains_the_suites_entries_side_by_side_before_the_run(tmp_path, monkeypatch):
    import tvcore.parallel

    runs, calls = FakeRuns(monkeypatch), []
    monkeypatch.setattr(tvcore.parallel, "train_entries",
                        lambda suite, options, jobs, ctx=None: calls.append((suite.name, jobs, options["seed"])))
    assert main(["run", "negation-micro", "--jobs", "3", "--results-dir", str(tmp_path), "--no-gate"]) == 0
    assert calls == [("negation-micro", 3, 0)] and runs.cases == ["negation-micro"]


def test_run_jobs_below_one_is_refused(tmp_path, capsys, monkeypatch):
    FakeRuns(monkeypatch)
    assert main(["run", "negation-micro", "--jobs", "0", "--results-dir", str(tmp_path)]) == 2
    assert "--jobs 0" in _one_line(capsys.readouterr().err)


def test_run_against_a_baseline_of_another_protocol_is_one_line_naming_the_field(tmp_path, capsys, monkeypatch):
    from tvcore import results

    runs = FakeRuns(monkeypatch, value=0.9)
    made = runs.run_and_record

    def with_recipe(steps):
        def run_and_record(suite, ctx, case, results_dir, seed=0):
            record, path = made(suite, ctx, case, results_dir, seed)
            return dict(record, context={"recipe": {"steps": steps, "seed": seed}}, headline=["test.acc"]), path
        return run_and_record

    seeds = [dict(with_recipe(300)(None, None, "negation-micro", tmp_path, seed=s)[0],
                  metrics={"test.acc": {"value": v, "total": 100}}) for s, v in enumerate((0.88, 0.9, 0.92))]
    (tmp_path / "b").mkdir()
    results.write_json(results.baseline_from_records(seeds), tmp_path / "b" / "negation-micro.json")
    runs.run_and_record = with_recipe(150)
    import tvcore.experiments

    monkeypatch.setattr(tvcore.experiments, "run_and_record", runs.run_and_record)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "negation-micro", "--results-dir", str(tmp_path / "r"), "--baselines", str(tmp_path / "b")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "ran another protocol than its baseline: recipe.steps 150 in the record, 300 in the baseline" in err
    assert "--update-baselines" in err
