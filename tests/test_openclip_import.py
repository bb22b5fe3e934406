"""OpenCLIP imported without the optional towers a model does not use (tvcore.openclip)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tvcore.openclip import needs

# One fresh process (this one may have imported transformers already): what it saw
# at each stage, as JSON.
PROBE = textwrap.dedent("""
    import json, sys, torch
    from tvcore.openclip import open_clip_module
    from tvcore.models import register_config
    seen = {}
    oc = open_clip_module()
    seen["lean"] = {"transformers": "transformers" in sys.modules, "timm": "timm" in sys.modules}
    register_config("ViT-B-32")
    seen["clip_vit"] = {"transformers": "transformers" in sys.modules, "timm": "timm" in sys.modules}
    register_config("convnext_base")
    with torch.device("meta"):
        model = oc.create_model("convnext_base", device="meta")
    seen["timm_tower"] = type(model.visual).__name__
    register_config("roberta-ViT-B-32")
    seen["hf_tower_ready"] = (oc.hf_model.transformers is not None
                              and oc.model.HFTextEncoder is oc.hf_model.HFTextEncoder)
    print(json.dumps(seen))
""")


@pytest.fixture(scope="module")
def probe():
    pytest.importorskip("transformers")
    pytest.importorskip("timm")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_process_imports_openclip_without_transformers_and_timm(probe):
    assert probe["lean"] == {"transformers": False, "timm": False}


def test_the_papers_clip_vits_need_neither(probe):
    assert probe["clip_vit"] == {"transformers": False, "timm": False}


def test_an_architecture_with_a_timm_tower_builds_it(probe):
    assert probe["timm_tower"] == "TimmModel"


def test_an_architecture_with_a_hugging_face_text_tower_gets_transformers(probe):
    assert probe["hf_tower_ready"] is True


def test_a_library_imported_before_openclip_is_kept():
    pytest.importorskip("transformers")
    code = ("import transformers; from tvcore.openclip import open_clip_module; "
            "oc = open_clip_module(); print(oc.hf_model.transformers is transformers)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]


@pytest.mark.parametrize("config, expected", [
    ({"vision_cfg": {"layers": 12}, "text_cfg": {"layers": 12}}, set()),
    ({"vision_cfg": {"timm_model_name": "convnext_base"}, "text_cfg": {}}, {"timm"}),
    ({"vision_cfg": {}, "text_cfg": {"hf_model_name": "roberta-base"}}, {"transformers"}),
    ({"vision_cfg": {}, "text_cfg": {"hf_tokenizer_name": "timm/ViT-B-16-SigLIP"}}, {"transformers"}),
])
def test_a_config_names_the_optional_libraries_it_uses(config, expected):
    assert needs(config) == expected


def test_tvcore_eval_of_a_clip_vit_imports_neither(tmp_path):
    """The whole command, as a user starts it: no module of either library is imported,
    nor scikit-learn (the digits are read from its data file, not through its import)."""
    pytest.importorskip("transformers")
    from tvcore.experiments.common import TINY_CHECKPOINT, TINY_CONFIG

    cmd = [sys.executable, "-X", "importtime", "-m", "tvcore", "eval", "digits", "--arch", str(TINY_CONFIG),
           "--weights", str(TINY_CHECKPOINT), "--results-dir", str(tmp_path / "r"), "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "TVCORE_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr[-2000:]
    # Each import tried is listed, the refused ones too (in microseconds); a library
    # that loads lists its submodules.
    names = [line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines()
             if line.startswith("import time:") and "|" in line]
    assert "open_clip" in names and "torch" in names
    assert [n for n in names if n.startswith(("transformers.", "timm."))] == []
    assert [n for n in names if n.split(".")[0] in ("sklearn", "scipy")] == []
