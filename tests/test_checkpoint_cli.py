"""The command line's side of checkpoints: ``tvcore eval --image-encoder``, the
QuickGELU decision printed and recorded, ``--quick-gelu`` on ``run``, clashes
refused in ``vector build``, and imports without OpenCLIP's random-init notice."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from tvcore.cli import build_parser, main
from tvcore.experiments.common import TINY_CHECKPOINT, TINY_CONFIG


def test_eval_takes_an_imported_image_encoder_and_records_the_quick_gelu_decision(tmp_path, capsys, monkeypatch):
    from tvcore.models import load_model

    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path / "cache"))
    encoder = load_model(str(TINY_CONFIG), str(TINY_CHECKPOINT), quick_gelu=False).image_encoder.state_dict()
    save_file({k: v.contiguous() for k, v in encoder.items()}, str(tmp_path / "enc.safetensors"),
              metadata={"quick_gelu": "false"})
    assert main(["eval", "digits/upright", "--arch", str(TINY_CONFIG), "--weights", str(TINY_CHECKPOINT),
                 "--image-encoder", str(tmp_path / "enc.safetensors"), "--workers", "0",
                 "--results-dir", str(tmp_path / "r"), "--quiet"]) == 0
    out = capsys.readouterr().out
    (record,) = (tmp_path / "r").glob("eval-digits-upright-test-*-enc-*.json")  # named after the model
    model = json.loads(record.read_text())["context"]["model"]
    assert model["image_encoder"] == str(tmp_path / "enc.safetensors")
    assert model["quick_gelu"] == {"value": False,
                                   "source": f"weights file {tmp_path / 'enc.safetensors'} records QuickGELU off"}
    assert f"QuickGELU off: weights file {tmp_path / 'enc.safetensors'} records QuickGELU off" in out


def test_run_takes_the_quick_gelu_flag():
    args = build_parser().parse_args(["run", "negation-vit-b-32", "--quick-gelu"])
    assert args.quick_gelu is True
    assert build_parser().parse_args(["run", "negation-vit-b-32"]).quick_gelu is None


def test_the_quick_gelu_flag_on_a_suite_with_its_own_model_is_refused(tmp_path, capsys):
    assert main(["run", "negation-micro", "--quick-gelu", "--results-dir", str(tmp_path)]) == 2
    assert "leave the flag out" in capsys.readouterr().err


def test_vector_build_refuses_files_of_two_activations(tmp_path, capsys):
    from tests.test_finetuned_sets import PaperModules, open_clip_model

    with PaperModules() as ImageEncoder:
        torch.save(ImageEncoder(open_clip_model(0, quick_gelu=True)), tmp_path / "zeroshot.pt")
        torch.save(ImageEncoder(open_clip_model(0, quick_gelu=False)), tmp_path / "finetuned.pt")
    assert main(["vector", "build", str(tmp_path / "zeroshot.pt"), str(tmp_path / "finetuned.pt"), "-o",
                 str(tmp_path / "tau.safetensors"), "--arch", str(TINY_CONFIG)]) == 2
    err = capsys.readouterr().err
    assert "QuickGELU clash" in err and err.count("\n") == 1
    assert not (tmp_path / "tau.safetensors").exists()


def test_import_prints_no_random_init_notice(tmp_path, caplog, capsys):
    from tests.test_finetuned_sets import open_clip_model

    save_file({k: v.contiguous() for k, v in open_clip_model(0).state_dict().items()},
              str(tmp_path / "open_clip_model.safetensors"))
    with caplog.at_level("INFO"):
        assert main(["import", str(tmp_path / "open_clip_model.safetensors"), "-o", str(tmp_path / "enc.safetensors"),
                     "--arch", str(TINY_CONFIG)]) == 0
    assert "initialized randomly" not in caplog.text + capsys.readouterr().err
