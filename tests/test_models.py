"""OpenCLIP loading (configs, local files, tags offline) and the zero-shot head."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from tvcore import CheckpointError, OfflineError
from tvcore.checkpoints import load_state_dict
from tvcore.models import (
    ClassificationHead,
    classifier,
    load_model,
    state_fingerprint,
    zero_shot_head,
)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("tvcore tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_json_config_builds_both_towers_with_openclip_tokenizer(tiny_model):
    assert tiny_model.arch == "tvcore-tiny" and tiny_model.pretrained == "none"
    tokens = tiny_model.tokenizer(["a handwritten digit 3."])
    assert tokens.shape == (1, 16)
    with torch.no_grad():
        assert tiny_model.model.encode_text(tokens).shape == (1, 64)
        assert tiny_model.model.encode_image(torch.zeros(1, 3, 32, 32)).shape == (1, 64)


def test_the_tokenizer_is_openclips_built_at_its_first_use(tiny_config):
    """A run whose heads all come from the head cache never builds it."""
    from tvcore.openclip import open_clip_module

    loaded = load_model(str(tiny_config))
    assert loaded.tokenizer._tokenizer is None
    texts = ["a handwritten digit 3.", "the digit 7."]
    assert torch.equal(loaded.tokenizer(texts), open_clip_module().get_tokenizer(loaded.arch)(texts))
    assert loaded.tokenizer._tokenizer is not None


def test_uncached_tag_fails_fast_without_touching_the_network(tmp_path, monkeypatch, no_network):
    monkeypatch.delenv("TVCORE_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(OfflineError, match="pass a local file instead .*TVCORE_WEIGHTS"):
        load_model("ViT-B-32", "openai", cache_dir=str(tmp_path))


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(ValueError, match="no pretrained tag 'nonsense' \\(known: .*openai"):
        load_model("ViT-B-32", "nonsense")


def test_unknown_architecture_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="unknown OpenCLIP architecture"):
        load_model("ViT-Q-99")
    with pytest.raises(FileNotFoundError, match="model config not found"):
        load_model(str(tmp_path / "nope.json"))
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_model("ViT-B-32", str(tmp_path / "weights.safetensors"))


def test_local_weights_file_round_trips(tiny_config, tiny_model, tmp_path, no_network):
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_model.model.state_dict().items()}, str(path))
    again = load_model(tiny_config, str(path))
    assert again.pretrained == str(path)
    assert state_fingerprint(again.model.state_dict()) == state_fingerprint(tiny_model.model.state_dict())


def test_weights_of_another_architecture_are_refused(tiny_config, tmp_path):
    path = tmp_path / "wrong.safetensors"
    save_file({"visual.proj": torch.zeros(2, 2)}, str(path))
    with pytest.raises(CheckpointError, match="does not fit this architecture: .*missing from .*wrong.safetensors"):
        load_model(tiny_config, str(path))


def test_head_matches_a_direct_computation(tiny_model, tmp_path):
    classes, templates = ["3", "7"], ["a handwritten digit {}.", "the number {}."]
    head = zero_shot_head(tiny_model, classes, templates, cache_dir=tmp_path)
    model = tiny_model.model
    with torch.no_grad():
        rows = []
        for c in classes:
            e = model.encode_text(tiny_model.tokenizer([t.format(c) for t in templates]))
            e = e / e.norm(dim=-1, keepdim=True)
            m = e.mean(0)
            rows.append(m / m.norm())
        expected = torch.stack(rows) * model.logit_scale.exp()
    torch.testing.assert_close(head.weight, expected)
    assert not any(p.requires_grad for p in head.parameters())


def test_head_is_cached_on_disk_by_model_classes_and_templates(tiny_model, tmp_path, monkeypatch):
    head = zero_shot_head(tiny_model, ["a", "b"], ["{}."], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    monkeypatch.setattr("tvcore.models.build_head_weights",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert torch.equal(zero_shot_head(tiny_model, ["a", "b"], ["{}."], cache_dir=tmp_path).weight, head.weight)
    monkeypatch.undo()
    zero_shot_head(tiny_model, ["a", "b"], ["{}!"], cache_dir=tmp_path)
    zero_shot_head(tiny_model, ["b", "a"], ["{}."], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 3


@pytest.mark.parametrize("damage", [b"", b"not a safetensors file", "truncated"])
def test_a_cached_head_that_cannot_be_read_is_built_again_and_replaced(tiny_model, tmp_path, damage):
    head = zero_shot_head(tiny_model, ["a", "b"], ["{}."], cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.safetensors")
    entry.write_bytes(entry.read_bytes()[:40] if damage == "truncated" else damage)
    again = zero_shot_head(tiny_model, ["a", "b"], ["{}."], cache_dir=tmp_path)
    assert torch.equal(again.weight, head.weight)
    assert torch.equal(load_state_dict(entry)["weight"], head.weight)  # the entry is readable again


def test_head_rejects_templates_without_placeholder(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="placeholder"):
        zero_shot_head(tiny_model, ["a"], ["no slot"], cache_dir=tmp_path)


def test_classifier_normalizes_features_and_trains_only_the_encoder(tiny_model, tmp_path):
    clf = classifier(tiny_model, ["a", "b"], ["{}."], cache_dir=tmp_path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = F.normalize(clf.image_encoder(x), dim=-1) @ clf.head.weight.T
        torch.testing.assert_close(clf(x), expected)
    assert clf.image_encoder is not tiny_model.image_encoder  # a copy: the loaded model stays pretrained
    assert [n for n, _ in clf.named_parameters() if n.startswith("head")] == []


def test_head_module_without_normalization():
    head = ClassificationHead(torch.eye(2) * 2, normalize=False)
    assert torch.equal(head(torch.tensor([[1.0, 3.0]])), torch.tensor([[2.0, 6.0]]))


# ------------------------------------------------------------------ DDP files, image encoders, QuickGELU

def _is_quick_gelu(loaded) -> bool:
    from open_clip.transformer import QuickGELU

    return isinstance(loaded.model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)


@pytest.mark.parametrize("wrap", ["ddp", "state_dict"])
def test_wrapped_and_ddp_weights_files_load(tiny_config, tiny_model, tmp_path, wrap):
    state = tiny_model.model.state_dict()
    obj = {f"module.{k}": v for k, v in state.items()} if wrap == "ddp" else {"state_dict": state, "epoch": 1}
    torch.save(obj, tmp_path / "w.pt")
    loaded = load_model(tiny_config, tmp_path / "w.pt", quick_gelu=False)
    assert state_fingerprint(loaded.model.state_dict()) == state_fingerprint(state)


def test_an_image_encoder_file_is_refused_as_the_whole_model(tiny_config, tiny_model, tmp_path):
    save_file(tiny_model.image_encoder.state_dict(), str(tmp_path / "enc.safetensors"))
    with pytest.raises(CheckpointError, match="image encoder only .* pass it as --image-encoder, .* as --weights"):
        load_model(tiny_config, tmp_path / "enc.safetensors")


def test_image_encoder_file_replaces_the_visual_tower_only(tiny_config, tiny_model, tmp_path):
    save_file(tiny_model.model.state_dict(), str(tmp_path / "base.safetensors"))
    torch.manual_seed(4)
    other = load_model(tiny_config)
    save_file(other.image_encoder.state_dict(), str(tmp_path / "enc.safetensors"))
    loaded = load_model(tiny_config, tmp_path / "base.safetensors", image_encoder=tmp_path / "enc.safetensors",
                        quick_gelu=False)
    assert state_fingerprint(loaded.image_encoder.state_dict()) == state_fingerprint(other.image_encoder.state_dict())
    text = {k: v for k, v in tiny_model.model.state_dict().items() if not k.startswith("visual.")}
    got = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("visual.")}
    assert state_fingerprint(got) == state_fingerprint(text)


@pytest.mark.parametrize("recorded", [True, False])
def test_quick_gelu_follows_the_weights_files_record(tiny_config, tiny_model, tmp_path, recorded):
    save_file(tiny_model.model.state_dict(), str(tmp_path / "w.safetensors"),
              metadata={"quick_gelu": "true" if recorded else "false"})
    loaded = load_model(tiny_config, tmp_path / "w.safetensors")
    assert loaded.info["quick_gelu"] is recorded and _is_quick_gelu(loaded) is recorded
    assert loaded.info["quick_gelu_source"].startswith(f"weights file {tmp_path / 'w.safetensors'} records")


def test_quick_gelu_of_an_imported_image_encoder_applies(tiny_config, tiny_model, tmp_path):
    save_file(tiny_model.model.state_dict(), str(tmp_path / "base.safetensors"))
    save_file(tiny_model.image_encoder.state_dict(), str(tmp_path / "enc.safetensors"), metadata={"quick_gelu": "true"})
    loaded = load_model(tiny_config, tmp_path / "base.safetensors", image_encoder=tmp_path / "enc.safetensors")
    assert _is_quick_gelu(loaded)


def test_a_quick_gelu_flag_contradicting_the_file_is_refused_in_cli_terms(tiny_config, tiny_model, tmp_path):
    save_file(tiny_model.model.state_dict(), str(tmp_path / "w.safetensors"), metadata={"quick_gelu": "true"})
    with pytest.raises(CheckpointError, match=r"^--no-quick-gelu contradicts what the weights say \(weights file "
                                              r".*w.safetensors records QuickGELU on\); drop the flag"):
        load_model(tiny_config, tmp_path / "w.safetensors", quick_gelu=False)


def test_unrecorded_quick_gelu_defaults_off_and_says_so_on_stderr_with_the_flag(tiny_config, tiny_model, tmp_path,
                                                                                capfd):
    save_file(tiny_model.model.state_dict(), str(tmp_path / "w.safetensors"))
    loaded = load_model(tiny_config, tmp_path / "w.safetensors")
    err = capfd.readouterr().err
    assert loaded.info["quick_gelu"] is False and not _is_quick_gelu(loaded)
    assert loaded.info["quick_gelu_source"].startswith("default off")
    assert "QuickGELU is off for tvcore-tiny" in err and "pass --quick-gelu" in err
    assert "quick_gelu=True" not in err


def test_a_given_flag_decides_when_nothing_records_it_and_says_so(tiny_config, tiny_model, tmp_path, capfd):
    save_file(tiny_model.model.state_dict(), str(tmp_path / "w.safetensors"))
    loaded = load_model(tiny_config, tmp_path / "w.safetensors", quick_gelu=True)
    assert _is_quick_gelu(loaded) and loaded.info["quick_gelu_source"] == "--quick-gelu given"
    assert "QuickGELU" not in capfd.readouterr().err


# The one rule, source by source (decide_quick_gelu is what every entry point calls).

def test_the_openai_tag_means_quick_gelu_and_a_laion_tag_means_gelu():
    from tvcore.models import decide_quick_gelu

    assert decide_quick_gelu("ViT-B-32", tag="openai").value is True
    assert decide_quick_gelu("ViT-B-32", tag="laion2b_s34b_b79k").value is False
    assert "pretrained tag 'openai'" in decide_quick_gelu("ViT-B-32", tag="openai").source


def test_a_file_record_comes_before_the_tag_and_a_clash_between_them_is_refused():
    from tvcore.models import decide_quick_gelu

    assert decide_quick_gelu("ViT-B-32", records={"a": True}, tag="openai").source == "a records QuickGELU on"
    with pytest.raises(CheckpointError, match=r"^QuickGELU clash: a records QuickGELU off but pretrained tag "
                                              r"'openai' uses QuickGELU on"):
        decide_quick_gelu("ViT-B-32", records={"a": False}, tag="openai")


def test_two_files_that_disagree_are_refused():
    from tvcore.models import decide_quick_gelu

    with pytest.raises(CheckpointError, match="QuickGELU clash: a records QuickGELU on but b records QuickGELU off"):
        decide_quick_gelu("ViT-B-32", records={"a": True, "b": False, "c": None})


def test_an_architecture_config_that_names_quick_gelu_decides_after_files_and_tags():
    from tvcore.models import decide_quick_gelu

    decision = decide_quick_gelu("ViT-B-32-quickgelu")
    assert decision.value is True and decision.source.startswith("architecture ViT-B-32-quickgelu config")
    with pytest.raises(CheckpointError, match="^--no-quick-gelu contradicts"):
        decide_quick_gelu("ViT-B-32-quickgelu", flag=False)


def test_random_init_needs_no_announcement(capfd):
    from tvcore.models import decide_quick_gelu

    decision = decide_quick_gelu("ViT-B-32", weights_given=False)
    assert decision.value is False and "random init" in decision.source
    assert capfd.readouterr().err == ""


def test_the_real_suites_do_not_force_quick_gelu_on_a_weights_file():
    from tvcore.experiments import vit_b32

    assert vit_b32("/w/laion-gelu.safetensors").quick_gelu is None
    assert vit_b32("/w/openai.safetensors", quick_gelu=True).quick_gelu is True


def test_a_gelu_trained_file_runs_with_gelu_through_the_suites_model_spec(tiny_config, tiny_model, tmp_path):
    from tvcore.experiments import vit_b32

    save_file(tiny_model.model.state_dict(), str(tmp_path / "w.safetensors"), metadata={"quick_gelu": "false"})
    spec = vit_b32(str(tmp_path / "w.safetensors"))
    spec.arch = tiny_config  # the suites' spec, on the tiny architecture
    loaded = spec.load("cpu")
    assert not _is_quick_gelu(loaded) and loaded.info["quick_gelu"] is False


def test_loading_prints_no_random_init_notice(tiny_config, tiny_model, tmp_path, caplog):
    save_file(tiny_model.model.state_dict(), str(tmp_path / "w.safetensors"), metadata={"quick_gelu": "false"})
    with caplog.at_level("INFO"):
        load_model(tiny_config, tmp_path / "w.safetensors")
    assert "initialized randomly" not in caplog.text


def test_offline_error_speaks_cli_not_python(tmp_path, monkeypatch, no_network):
    monkeypatch.delenv("TVCORE_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(OfflineError) as exc:
        load_model("ViT-B-32", "openai", cache_dir=str(tmp_path))
    assert "--weights" in str(exc.value) and "pretrained=" not in str(exc.value)


def test_quick_gelu_is_read_from_the_openclip_config_beside_a_plain_weights_file(tmp_path):
    # OpenCLIP's Hugging Face repositories keep open_clip_config.json beside
    # open_clip_model.safetensors; its model_cfg says whether the weights need QuickGELU.
    import json

    from safetensors.torch import save_file

    from tvcore.models import HF_CONFIG_NAME, recorded_quick_gelu

    weights = tmp_path / "open_clip_model.safetensors"
    save_file({"w": torch.zeros(2)}, str(weights))
    assert recorded_quick_gelu(weights) is None
    (tmp_path / HF_CONFIG_NAME).write_text(json.dumps({"model_cfg": {"embed_dim": 512, "quick_gelu": True}}))
    assert recorded_quick_gelu(weights) is True
    tagged = tmp_path / "tagged.safetensors"
    save_file({"w": torch.zeros(2)}, str(tagged), metadata={"quick_gelu": "false"})
    assert recorded_quick_gelu(tagged) is False  # the file's own record comes first
    (tmp_path / HF_CONFIG_NAME).write_text(json.dumps({"model_cfg": {"embed_dim": 512}}))
    assert recorded_quick_gelu(weights) is None  # a config that does not say records nothing
