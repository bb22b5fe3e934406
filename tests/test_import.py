"""Importing published checkpoints into the OpenCLIP image encoder's state dict.

Every file here is built the way its publisher writes it: the paper's pickled
``ImageEncoder`` (a class from a module that no longer exists, holding an
OpenCLIP CLIP model, ``torch.save``'d in the zip and the legacy format), Hugging
Face folders written by ``save_pretrained``, and OpenCLIP's own state dicts.
"""

from __future__ import annotations

import json
import os
import sys
import types
import zipfile

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fixtures.paper_modules import PaperModules
from tvcore import CheckpointError
from tvcore.importers import import_checkpoint, load_pickle_restricted, read_image_encoder, read_provenance

from .conftest import TINY_CONFIG


def open_clip_model(config: str = TINY_CONFIG, seed: int = 0, quick_gelu: bool = False):
    import open_clip

    from tvcore.models import register_config

    torch.manual_seed(seed)
    return open_clip.create_model(register_config(config), force_quick_gelu=quick_gelu).eval()


@pytest.fixture
def tiny_clip():
    return open_clip_model(seed=1)


@pytest.fixture
def fake_src_module():
    """A throwaway ``src.modeling`` with the paper's ImageEncoder class: present while
    saving, gone when loading (as for any user without the paper's code)."""
    with PaperModules() as image_encoder:
        yield image_encoder


def save_paper_encoder(cls, model, path, legacy=False):
    torch.save(cls(model), path, _use_new_zipfile_serialization=not legacy)
    return path


def visual_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.visual.state_dict().items()}


def assert_same_tensors(got: dict, want: dict):
    assert sorted(got) == sorted(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


# ------------------------------------------------------------------ the paper's pickled ImageEncoder

@pytest.mark.filterwarnings("ignore:Couldn't retrieve source code")  # torch's legacy save, for a test class
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_paper_image_encoder_imports_to_the_visual_state_dict(tmp_path, tiny_clip, fake_src_module, legacy):
    want = visual_state(tiny_clip)
    src = save_paper_encoder(fake_src_module, tiny_clip, tmp_path / "finetuned.pt", legacy)
    assert zipfile.is_zipfile(src) is not legacy
    del sys.modules["src.modeling"], sys.modules["src"]  # the user has no `src` package
    record = import_checkpoint(src, tmp_path / "out.safetensors", arch=TINY_CONFIG)
    assert_same_tensors(load_file(str(tmp_path / "out.safetensors")), want)
    assert record["kind"] == "pickled-module" and record["root_class"] == "src.modeling.ImageEncoder"
    assert record["mapping"]["name"] == "strip prefix 'model.visual.'"
    assert "open_clip.model.CLIP" in record["pickled_classes"]


def test_pickled_encoder_is_read_without_importing_what_it_names(tmp_path, tiny_clip, fake_src_module):
    src = save_paper_encoder(fake_src_module, tiny_clip, tmp_path / "finetuned.pt")
    del sys.modules["src.modeling"], sys.modules["src"]
    obj, named = load_pickle_restricted(src)
    assert "src" not in sys.modules
    assert type(obj).__module__ == "tvcore.importers" and obj.pickled_name == "src.modeling.ImageEncoder"
    assert "src.modeling.ImageEncoder" in named


def test_unsafe_globals_torch_reports_match_the_stand_ins(tmp_path, tiny_clip, fake_src_module):
    # Pins torch's static listing against what the restricted unpickler stood in for.
    src = save_paper_encoder(fake_src_module, tiny_clip, tmp_path / "finetuned.pt")
    listed = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(src)))
    _, named = load_pickle_restricted(src)
    assert "src.modeling.ImageEncoder" in listed
    assert listed - {"copyreg._reconstructor"} <= set(named)


def test_torch_hook_still_routes_every_global_through_the_restricted_unpickler(tmp_path):
    # torch.load(pickle_module=...) must use our Unpickler for the main object.
    class Marked:
        pass

    Marked.__module__, Marked.__qualname__ = "tvcore_test_absent", "Marked"
    sys.modules["tvcore_test_absent"] = types.SimpleNamespace(Marked=Marked)
    try:
        torch.save({"w": torch.ones(2), "obj": Marked()}, tmp_path / "m.pt")
    finally:
        del sys.modules["tvcore_test_absent"]
    obj, named = load_pickle_restricted(tmp_path / "m.pt")
    assert named == ["tvcore_test_absent.Marked"]
    assert torch.equal(obj["w"], torch.ones(2))


class Exploit:
    """Pickles to a call that writes a marker file when unpickled by plain pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class OpenExploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("exploit", [Exploit, OpenExploit], ids=["os.system", "open"])
def test_a_pickle_that_would_run_code_does_not(tmp_path, legacy, exploit):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": exploit(marker)}, path,
               _use_new_zipfile_serialization=not legacy)
    obj, named = load_pickle_restricted(path)
    assert not marker.exists()
    assert named and all(n.split(".")[0] in ("posix", "os", "nt", "builtins", "io") for n in named)
    with pytest.raises(CheckpointError):
        import_checkpoint(path, tmp_path / "out.safetensors", arch=TINY_CONFIG)
    assert not marker.exists()


def test_an_encoder_carrying_a_payload_imports_without_running_it(tmp_path, tiny_clip, fake_src_module):
    marker = tmp_path / "marker"
    encoder = fake_src_module(tiny_clip)
    encoder.cache_dir = Exploit(marker)
    torch.save(encoder, tmp_path / "finetuned.pt")
    import_checkpoint(tmp_path / "finetuned.pt", tmp_path / "out.safetensors", arch=TINY_CONFIG)
    assert not marker.exists()
    assert_same_tensors(load_file(str(tmp_path / "out.safetensors")), visual_state(tiny_clip))


def test_zeroshot_is_checked_against_the_base(tmp_path, tiny_clip, fake_src_module):
    base = tmp_path / "base.safetensors"
    save_file(tiny_clip.state_dict(), str(base))
    zs = save_paper_encoder(fake_src_module, tiny_clip, tmp_path / "zeroshot.pt")
    record = import_checkpoint(zs, tmp_path / "zs.safetensors", arch=TINY_CONFIG, base=base)
    assert record["base_check"] == {"atol": 0.0, "max_abs_diff": 0.0, "differing_keys": 0}


def test_zeroshot_differing_from_the_base_is_refused(tmp_path, tiny_clip, fake_src_module):
    other = open_clip_model(seed=2)
    base = tmp_path / "base.safetensors"
    save_file(other.state_dict(), str(base))
    zs = save_paper_encoder(fake_src_module, tiny_clip, tmp_path / "zeroshot.pt")
    with pytest.raises(CheckpointError, match=r"zeroshot.pt: image weights differ from the base .* in \d+ of "):
        import_checkpoint(zs, tmp_path / "zs.safetensors", arch=TINY_CONFIG, base=base)
    assert not (tmp_path / "zs.safetensors").exists()


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_pickled_encoder_records_its_activation(tmp_path, fake_src_module, quick_gelu):
    model = open_clip_model(seed=3, quick_gelu=quick_gelu)
    src = save_paper_encoder(fake_src_module, model, tmp_path / "finetuned.pt")
    record = import_checkpoint(src, tmp_path / "out.safetensors", arch=TINY_CONFIG)
    assert record["quick_gelu"] is quick_gelu
    with safe_open(str(tmp_path / "out.safetensors"), framework="pt") as fh:
        assert fh.metadata()["quick_gelu"] == ("true" if quick_gelu else "false")


# ------------------------------------------------------------------ OpenCLIP's own files

@pytest.mark.parametrize("form", ["safetensors", "bin", "ddp", "wrapper", "tower_only"])
def test_openclip_forms_import_to_the_same_tensors(tmp_path, tiny_clip, form):
    full = tiny_clip.state_dict()
    if form == "safetensors":
        path = tmp_path / "open_clip_model.safetensors"
        save_file(full, str(path))
    else:
        obj = {"bin": full, "ddp": {f"module.{k}": v for k, v in full.items()},
               "wrapper": {"state_dict": full, "epoch": 3},
               "tower_only": tiny_clip.visual.state_dict()}[form]
        path = tmp_path / "open_clip_pytorch_model.bin"
        torch.save(obj, path)
    record = import_checkpoint(path, tmp_path / "out.safetensors", arch=TINY_CONFIG)
    assert_same_tensors(load_file(str(tmp_path / "out.safetensors")), visual_state(tiny_clip))
    assert record["kind"] == ("image-tower" if form == "tower_only" else "open_clip-full")
    assert record["quick_gelu"] is None


def test_provenance_is_stored_in_the_output(tmp_path, tiny_clip):
    from tvcore.checkpoints import sha256_file

    path = tmp_path / "open_clip_model.safetensors"
    save_file(tiny_clip.state_dict(), str(path))
    record = import_checkpoint(path, tmp_path / "out.safetensors", arch=TINY_CONFIG, quick_gelu=True)
    assert read_provenance(tmp_path / "out.safetensors") == record
    assert record["source_sha256"] == {str(path): sha256_file(path)}
    assert record["arch"] == "tvcore-tiny" and record["quick_gelu"] is True
    assert record["quick_gelu_source"] == "given when importing"


def test_architecture_mismatch_names_keys_shapes_and_kind(tmp_path, tiny_clip):
    path = tmp_path / "w.safetensors"
    save_file(tiny_clip.visual.state_dict(), str(path))
    with pytest.raises(CheckpointError, match=r"image tower only .* does not fit the image encoder of ViT-B-32: "
                                              r"missing \d+ keys .*transformer.resblocks.10.*shapes differ .*conv1"):
        import_checkpoint(path, tmp_path / "out.safetensors", arch="ViT-B-32")


def test_a_corrupt_file_is_a_checkpoint_error(tmp_path):
    (tmp_path / "finetuned.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="finetuned.pt"):
        import_checkpoint(tmp_path / "finetuned.pt", tmp_path / "out.safetensors", arch=TINY_CONFIG)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_archive_is_named_as_such(tmp_path):
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    scripted.save(str(tmp_path / "ViT-B-32.pt"))
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        import_checkpoint(tmp_path / "ViT-B-32.pt", tmp_path / "out.safetensors", arch=TINY_CONFIG)


def test_full_model_in_the_wrong_architecture_says_open_clip_full(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(open_clip_model(seed=0).state_dict(), str(path))
    small = tmp_path / "smaller.json"
    cfg = json.loads(open(TINY_CONFIG).read())
    cfg["vision_cfg"]["layers"] = 2
    small.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"OpenCLIP full model .* unexpected \d+ keys .*resblocks.2"):
        import_checkpoint(path, tmp_path / "out.safetensors", arch=str(small))


# ------------------------------------------------------------------ Hugging Face

HF_VISION = dict(hidden_size=96, intermediate_size=384, num_hidden_layers=3, num_attention_heads=3,
                 image_size=32, patch_size=8, projection_dim=64)


def matching_open_clip(tmp_path, quick_gelu: bool) -> str:
    """An OpenCLIP config with the same image tower as HF_VISION (3 heads of 32)."""
    cfg = json.loads(open(TINY_CONFIG).read())
    path = tmp_path / "tvcore-hf-tiny.json"
    cfg["quick_gelu"] = quick_gelu
    path.write_text(json.dumps(cfg))
    return str(path)


def hf_clip(kind: str, hidden_act: str = "quick_gelu"):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(7)
    vision = transformers.CLIPVisionConfig(**HF_VISION, hidden_act=hidden_act)
    if kind == "CLIPVisionModel":
        return transformers.CLIPVisionModel(vision).eval()
    text = transformers.CLIPTextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                       num_attention_heads=2, max_position_embeddings=16, projection_dim=64)
    config = transformers.CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=64)
    return transformers.CLIPModel(config).eval()


def hf_image_features(model, images, proj=None):
    """The pooled, projected image embedding (what OpenCLIP's encode_image returns)."""
    with torch.no_grad():
        if proj is None:
            return model.visual_projection(model.vision_model(pixel_values=images).pooler_output)
        return model(pixel_values=images).pooler_output @ proj


def load_into_open_clip(config: str, weights, quick_gelu: bool):
    model = open_clip_model(config, seed=99, quick_gelu=quick_gelu)
    model.visual.load_state_dict(load_file(str(weights)), strict=True)
    return model


@pytest.mark.parametrize("hidden_act", ["quick_gelu", "gelu"])
def test_hf_clip_model_imports_with_equal_image_features(tmp_path, hidden_act):
    hf = hf_clip("CLIPModel", hidden_act)
    hf.save_pretrained(tmp_path / "hf")
    quick = hidden_act == "quick_gelu"
    config = matching_open_clip(tmp_path, quick)
    record = import_checkpoint(tmp_path / "hf", tmp_path / "out.safetensors", arch=config)
    assert record["kind"] == "hf-clip" and record["quick_gelu"] is quick
    model = load_into_open_clip(config, tmp_path / "out.safetensors", quick)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = model.encode_image(images)
    torch.testing.assert_close(got, hf_image_features(hf, images), atol=1e-5, rtol=0)


def test_hf_vision_model_takes_its_projection_from_the_base(tmp_path):
    hf = hf_clip("CLIPVisionModel")
    hf.save_pretrained(tmp_path / "hf")
    config = matching_open_clip(tmp_path, True)
    base_model = open_clip_model(config, seed=5, quick_gelu=True)
    save_file(base_model.state_dict(), str(tmp_path / "base.safetensors"))
    record = import_checkpoint(tmp_path / "hf", tmp_path / "out.safetensors", arch=config,
                               base=tmp_path / "base.safetensors")
    assert record["kind"] == "hf-clip-vision" and record["mapping"]["from_base"] == ["proj"]
    model = load_into_open_clip(config, tmp_path / "out.safetensors", True)
    assert torch.equal(model.visual.proj, base_model.visual.proj)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model.encode_image(images)
    torch.testing.assert_close(got, hf_image_features(hf, images, base_model.visual.proj), atol=1e-5, rtol=0)


def test_hf_vision_model_without_a_base_says_to_pass_one(tmp_path):
    hf_clip("CLIPVisionModel").save_pretrained(tmp_path / "hf")
    with pytest.raises(CheckpointError, match="no image projection; pass --base,"):
        import_checkpoint(tmp_path / "hf", tmp_path / "out.safetensors", arch=matching_open_clip(tmp_path, True))


def test_hf_keys_without_the_vision_model_prefix_map_the_same(tmp_path):
    hf = hf_clip("CLIPVisionModel")
    hf.save_pretrained(tmp_path / "hf")
    state = load_file(str(tmp_path / "hf" / "model.safetensors"))
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    save_file({k.removeprefix("vision_model."): v for k, v in state.items()}, str(bare / "model.safetensors"))
    prefixed, _ = read_image_encoder(tmp_path / "hf")
    unprefixed, _ = read_image_encoder(bare)
    assert_same_tensors(unprefixed, prefixed)


def test_hf_pytorch_model_bin_is_read_weights_only(tmp_path):
    # pytorch_model.bin, as transformers wrote it before safetensors: torch.save of the state dict.
    hf = hf_clip("CLIPModel")
    hf.save_pretrained(tmp_path / "st")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    from_st, _ = read_image_encoder(tmp_path / "st")
    from_bin, _ = read_image_encoder(tmp_path / "bin")
    assert_same_tensors(from_bin, from_st)


def test_hf_checkpoint_of_another_size_says_hugging_face(tmp_path):
    hf_clip("CLIPModel").save_pretrained(tmp_path / "hf")
    with pytest.raises(CheckpointError, match=r"Hugging Face CLIPModel .* does not fit .*ViT-B-32"):
        import_checkpoint(tmp_path / "hf", tmp_path / "out.safetensors", arch="ViT-B-32")


# ------------------------------------------------------------------ at ViT-B-32's names and shapes

def vit_b_32_half():
    """ViT-B-32's modules, filled cheaply (distinct values per tensor) in half precision:
    random init of 150M parameters would dominate the test's time."""
    import open_clip

    with torch.device("meta"):
        model = open_clip.create_model("ViT-B-32", device="meta")
    del model.transformer  # as the paper's ImageEncoder does
    model = model.to_empty(device="cpu").half()
    pattern = torch.randn(2 * 4099, generator=torch.Generator().manual_seed(0)).half()
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            start = (i * 131) % 4099
            tile = pattern[start:start + 4099]
            p.view(-1).copy_(tile.repeat(-(-p.numel() // 4099))[: p.numel()])
    return model


def test_vit_b_32_paper_encoder_imports_to_the_same_tensors(tmp_path, fake_src_module):
    model = vit_b_32_half()
    want = visual_state(model)
    src = save_paper_encoder(fake_src_module, model, tmp_path / "finetuned.pt")
    del sys.modules["src.modeling"], sys.modules["src"]
    record = import_checkpoint(src, tmp_path / "out.safetensors", arch="ViT-B-32")
    assert record["keys"] == len(want) == 152
    assert_same_tensors(load_file(str(tmp_path / "out.safetensors")), want)


# ------------------------------------------------------------------ ViT-B-32 in every published form

VIT_B_32_HF = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   image_size=224, patch_size=32, projection_dim=512)


def test_vit_b_32_hugging_face_vision_model_imports_with_equal_image_features(tmp_path):
    """A random CLIPVisionModel of ViT-B/32's shape, as later benchmarks publish their
    fine-tunes, against OpenCLIP's ViT-B-32 (QuickGELU, as OpenAI's weights)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(3)
    hf = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**VIT_B_32_HF, hidden_act="quick_gelu")).eval()
    hf.save_pretrained(tmp_path / "hf")
    base = open_clip_model("ViT-B-32", seed=4, quick_gelu=True)
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(tmp_path / "base.safetensors"))
    record = import_checkpoint(tmp_path / "hf", tmp_path / "out.safetensors", arch="ViT-B-32",
                               base=tmp_path / "base.safetensors")
    assert record["kind"] == "hf-clip-vision" and record["quick_gelu"] is True and record["keys"] == 152
    base.visual.load_state_dict(load_file(str(tmp_path / "out.safetensors")), strict=True)
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = base.encode_image(images)
    torch.testing.assert_close(got, hf_image_features(hf, images, base.visual.proj), atol=1e-5, rtol=0)


@pytest.mark.parametrize("form", ["safetensors", "ddp", "wrapper", "tower_only"])
def test_vit_b_32_openclip_forms_import_to_the_same_tensors(tmp_path, form):
    model = open_clip_model("ViT-B-32", seed=6)
    full = {k: v.contiguous() for k, v in model.state_dict().items()}
    if form == "safetensors":
        path = tmp_path / "open_clip_model.safetensors"
        save_file(full, str(path))
    else:
        obj = {"ddp": {f"module.{k}": v for k, v in full.items()}, "wrapper": {"state_dict": full, "epoch": 3},
               "tower_only": model.visual.state_dict()}[form]
        path = tmp_path / "open_clip_pytorch_model.bin"
        torch.save(obj, path)
    import_checkpoint(path, tmp_path / "out.safetensors", arch="ViT-B-32")
    assert_same_tensors(load_file(str(tmp_path / "out.safetensors")), visual_state(model))
