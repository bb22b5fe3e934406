"""The tvcore console script."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file

from tvcore.cli import main


def test_data_summary_prints_protocol_counts_and_leak_check(mini_ddsm_full, capsys):
    assert main(["data", "summary", "mini-ddsm", "--root", str(mini_ddsm_full)]) == 0
    out = capsys.readouterr().out
    assert "| train   |     2700 |" in out and "800 |" in out and "300 |" in out
    assert "leak check: passed" in out
    assert "ACR breast density" in out


def test_data_summary_of_a_wrong_tree_is_one_line(tmp_path, capsys):
    assert main(["data", "summary", "mini-ddsm", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Normal/Benign/Cancer folders" in err


def test_vector_build_and_apply(tmp_path, capsys):
    pre = {"w": torch.zeros(3), "ids": torch.arange(3)}
    ft = {"w": torch.ones(3), "ids": torch.arange(3)}
    save_file(pre, str(tmp_path / "pre.safetensors"))
    save_file(ft, str(tmp_path / "ft.safetensors"))
    assert main(["vector", "build", str(tmp_path / "pre.safetensors"), str(tmp_path / "ft.safetensors"),
                 "-o", str(tmp_path / "tau.safetensors"), "--name", "ones"]) == 0
    assert "excluded non-float buffers: ids" in capsys.readouterr().out
    assert main(["vector", "apply", str(tmp_path / "pre.safetensors"), str(tmp_path / "tau.safetensors"),
                 str(tmp_path / "tau.safetensors"), "--alpha", "0.25", "-o", str(tmp_path / "out.safetensors")]) == 0
    out = load_file(str(tmp_path / "out.safetensors"))
    assert torch.equal(out["w"], torch.full((3,), 0.5)) and torch.equal(out["ids"], torch.arange(3))


def test_vector_apply_mismatch_is_an_error_not_a_traceback(tmp_path, capsys):
    save_file({"w": torch.zeros(3)}, str(tmp_path / "a.safetensors"))
    save_file({"w": torch.zeros(4)}, str(tmp_path / "b.safetensors"))
    assert main(["vector", "build", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"),
                 "-o", str(tmp_path / "t.safetensors")]) == 2
    assert "shape differs for 'w'" in capsys.readouterr().err


def test_vector_merge_streams_ties_and_writes_a_vector(tmp_path, capsys):
    from tvcore import TaskVector
    from tvcore.merging import merge, ties

    gen = torch.Generator().manual_seed(0)
    vs = [TaskVector({"w": torch.randn(20, generator=gen)}, name=f"t{i}") for i in range(3)]
    paths = [str(v.save(tmp_path / f"t{i}.safetensors")) for i, v in enumerate(vs)]
    assert main(["vector", "merge", *paths, "--method", "ties", "--density", "0.5", "--lam", "0.7",
                 "-o", str(tmp_path / "m.safetensors")]) == 0
    assert "ties of 3 files" in capsys.readouterr().out
    assert torch.equal(TaskVector.load(tmp_path / "m.safetensors")["w"], merge(vs, ties(0.5, lam=0.7))["w"])


class _Stop(Exception):
    """Raised by a stand-in context_for: the test needs the arguments, not a run."""


def _capture_context(monkeypatch) -> dict:
    import tvcore.experiments

    seen = {}

    def fake_context_for(suite, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(tvcore.experiments, "context_for", fake_context_for)
    return seen


def test_run_passes_workers_pool_fresh_and_finetuned_to_the_context(tmp_path, monkeypatch):
    import pytest

    seen = _capture_context(monkeypatch)
    (tmp_path / "ft").mkdir()
    with pytest.raises(_Stop):
        main(["run", "negation-micro", "--results-dir", str(tmp_path / "results"), "--workers", "3",
              "--pool", str(tmp_path / "pool"), "--fresh", "--finetuned", str(tmp_path / "ft")])
    assert seen["workers"] == 3 and seen["fresh"] is True
    assert seen["pool"] == str(tmp_path / "pool") and seen["finetuned"] == str(tmp_path / "ft")
    assert not (tmp_path / "pool").exists() and not (tmp_path / "results").exists()  # checked, not made


def test_run_leaves_out_the_options_not_given(tmp_path, monkeypatch):
    import pytest

    seen = _capture_context(monkeypatch)
    with pytest.raises(_Stop):
        main(["run", "negation-micro", "--results-dir", str(tmp_path / "results")])
    assert not {"workers", "pool", "fresh", "finetuned"} & set(seen)


def test_import_writes_the_image_encoder_and_its_provenance(tmp_path, capsys):
    import json

    from tests.test_import import open_clip_model, visual_state

    model = open_clip_model()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "open_clip_model.safetensors"))
    out, record = tmp_path / "encoder.safetensors", tmp_path / "provenance.json"
    from tests.conftest import TINY_CONFIG

    assert main(["import", str(tmp_path / "open_clip_model.safetensors"), "-o", str(out), "--arch", TINY_CONFIG,
                 "--record", str(record)]) == 0
    assert "wrote" in capsys.readouterr().out
    got = load_file(str(out))
    want = visual_state(model)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert json.loads(record.read_text())["arch"]


def test_import_refuses_to_write_over_its_source(tmp_path, capsys):
    from tests.conftest import TINY_CONFIG
    from tests.test_import import open_clip_model

    src = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in open_clip_model().state_dict().items()}, str(src))
    before = src.read_bytes()
    assert main(["import", str(src), "-o", str(src), "--arch", TINY_CONFIG]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and src.read_bytes() == before


def test_vector_build_with_arch_reads_published_forms(tmp_path):
    from tests.conftest import TINY_CONFIG
    from tests.test_import import open_clip_model, visual_state
    from tvcore.vectors import TaskVector

    pre, ft = open_clip_model(seed=0), open_clip_model(seed=1)
    save_file({k: v.contiguous() for k, v in pre.state_dict().items()}, str(tmp_path / "pre.safetensors"))
    # the fine-tuned side as an image-tower-only file with a DDP prefix
    save_file({f"module.visual.{k}": v.contiguous() for k, v in visual_state(ft).items()},
              str(tmp_path / "ft.safetensors"))
    assert main(["vector", "build", str(tmp_path / "pre.safetensors"), str(tmp_path / "ft.safetensors"),
                 "--arch", TINY_CONFIG, "-o", str(tmp_path / "tau.safetensors")]) == 0
    tau = TaskVector.load(tmp_path / "tau.safetensors")
    want = visual_state(ft)["proj"] - visual_state(pre)["proj"]
    assert torch.allclose(tau["proj"], want)


def test_eval_prints_accuracy_per_class_and_confusion_and_writes_a_record(tmp_path, capsys, monkeypatch):
    import json

    from tvcore.experiments.common import TINY_CHECKPOINT, TINY_CONFIG

    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path / "cache"))
    assert main(["eval", "digits/rot90", "--arch", str(TINY_CONFIG), "--weights", str(TINY_CHECKPOINT),
                 "--workers", "1", "--results-dir", str(tmp_path / "r"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test.overall" in out and "test.class[9]" in out and "True 9:" in out
    (path,) = (tmp_path / "r").glob("eval-digits-rot90-test-tvcore-tiny-digits-*.json")
    rec = json.loads(path.read_text())
    m = rec["metrics"]["test.overall"]
    assert m["total"] == sum(sum(row) for row in rec["result"]["confusion_matrix"])
    assert rec["split_hashes"] and rec["context"]["tasks"]["digits/rot90"]["prompt_fingerprint"]


def test_eval_of_a_task_vector_at_alpha_zero_is_the_base(tmp_path, capsys, monkeypatch):
    import json

    from tvcore.experiments.common import TINY_CHECKPOINT, TINY_CONFIG
    from tvcore.models import load_model
    from tvcore.vectors import TaskVector

    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path / "cache"))
    enc = load_model(str(TINY_CONFIG), str(TINY_CHECKPOINT)).image_encoder.state_dict()
    noise = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in enc.items()}
    TaskVector.from_state_dicts(enc, noise, name="noise").save(tmp_path / "tau.safetensors")
    args = ["eval", "digits/upright", "--arch", str(TINY_CONFIG), "--weights", str(TINY_CHECKPOINT), "--workers",
            "1", "--results-dir", str(tmp_path / "r"), "--quiet"]
    assert main(args + ["--name", "base"]) == 0
    assert main(args + ["--name", "zero", "--vector", str(tmp_path / "tau.safetensors"), "--alpha", "0"]) == 0
    assert main(args + ["--name", "one", "--vector", str(tmp_path / "tau.safetensors"), "--alpha", "1"]) == 0
    acc = {n: json.loads((tmp_path / "r" / f"{n}.json").read_text())["metrics"]["test.overall"]["value"]
           for n in ("base", "zero", "one")}
    assert acc["zero"] == acc["base"] and acc["one"] < acc["base"]


def test_data_summary_of_the_paper_tasks_names_each_reader_and_fingerprint(tmp_path, capsys):
    from fixtures.fake_trees import make_paper_tasks_tree

    expected = make_paper_tasks_tree(tmp_path)
    assert main(["data", "summary", "paper-tasks", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for task, reader in expected.items():
        row = next(line for line in out.splitlines() if line.startswith(f"| {task} "))
        assert reader in row


def test_data_summary_of_an_empty_root_says_what_it_looked_for(tmp_path, capsys):
    assert main(["data", "summary", "paper-tasks", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MNIST" in err
