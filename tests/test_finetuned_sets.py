"""``--finetuned DIR``: the published sets of fine-tuned encoders, read in place.

Each layout is written here in its publisher's exact form, on the tiny model: the
task-arithmetic paper's pickled ``ImageEncoder`` modules (``<Task>/finetuned.pt``,
``zeroshot.pt``; the class's module is gone when they are read), the TALL-masks/TSV
state dicts (``<Task>Val/nonlinear_finetuned.pt``), fusion_bench's Hugging Face
``CLIPVisionModel`` folders (``clip-vit-base-patch32_<task>``, via transformers'
``save_pretrained``) and tvcore's own ``<task>.safetensors``.
"""

from __future__ import annotations

import hashlib
import sys

import pytest
import torch
from safetensors.torch import save_file

from fixtures.paper_modules import PaperModules
from tvcore import CheckpointError
from tvcore.finetuned_sets import MAX_RELATIVE_CHANGE, relative_change
from tvcore.models import load_model
from tvcore.pool import ModelPool

from .conftest import TINY_CONFIG

TASKS = ["Cars", "MNIST"]
LAYOUTS = ["task_vectors", "tall_masks", "fusion_bench", "tvcore"]


def open_clip_model(seed: int, quick_gelu: bool = False):
    import open_clip

    from tvcore.models import quiet_openclip, register_config

    torch.manual_seed(seed)
    with quiet_openclip():
        return open_clip.create_model(register_config(TINY_CONFIG), force_quick_gelu=quick_gelu).eval()


def nudged(model, seed: int, scale: float = 0.01, frozen_proj: bool = False):
    """A copy of ``model`` whose image encoder moved by about ``scale`` of its norm,
    as a fine-tune moves it (``frozen_proj``: all but the projection, as
    fusion_bench fine-tunes)."""
    import copy

    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in out.visual.named_parameters():
            if frozen_proj and name == "proj":
                continue
            p.add_(torch.randn(p.shape, generator=g) * scale * p.detach().abs().mean().clamp_min(1e-3))
    return out


def hf_vision_state(model) -> dict[str, torch.Tensor]:
    """An OpenCLIP image tower under Hugging Face CLIPVisionModel's names (no projection)."""
    v = {k: t.detach().clone() for k, t in model.visual.state_dict().items()}
    out = {"vision_model.embeddings.class_embedding": v["class_embedding"],
           "vision_model.embeddings.patch_embedding.weight": v["conv1.weight"],
           "vision_model.embeddings.position_embedding.weight": v["positional_embedding"]}
    for a, b in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for w in ("weight", "bias"):
            out[f"vision_model.{b}.{w}"] = v[f"{a}.{w}"]
    for i in range(len(model.visual.transformer.resblocks)):
        src, dst = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for w in ("weight", "bias"):
            q, k, val = v[f"{src}attn.in_proj_{w}"].chunk(3)
            out.update({f"{dst}self_attn.q_proj.{w}": q, f"{dst}self_attn.k_proj.{w}": k,
                        f"{dst}self_attn.v_proj.{w}": val})
            for a, b in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                         ("mlp.c_proj", "mlp.fc2"), ("attn.out_proj", "self_attn.out_proj")):
                out[f"{dst}{b}.{w}"] = v[f"{src}{a}.{w}"]
    return {k: t.contiguous() for k, t in out.items()}


def save_hf_vision(model, folder, hidden_act: str = "quick_gelu") -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPVisionConfig(hidden_size=96, intermediate_size=384, num_hidden_layers=3,
                                           num_attention_heads=3, image_size=32, patch_size=8, projection_dim=64,
                                           hidden_act=hidden_act)
    hf = transformers.CLIPVisionModel(config)
    state = hf_vision_state(model)
    # transformers 5 keeps CLIPVisionModel's keys without the "vision_model." prefix
    # that the published (transformers 4) files carry; take whichever this one uses.
    bare = not any(k.startswith("vision_model.") for k in hf.state_dict())
    missing, unexpected = hf.load_state_dict({k.removeprefix("vision_model.") if bare else k: v
                                              for k, v in state.items()}, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    hf.save_pretrained(folder)
    # The published model.safetensors: vision_model.* keys, as transformers 4 wrote them.
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def write_set(layout: str, root, pre, finetuned: dict, quick_gelu: bool = False) -> None:
    """``finetuned`` (task -> OpenCLIP model) in ``layout``'s published form under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    if layout == "task_vectors":
        with PaperModules() as ImageEncoder:
            torch.save(ImageEncoder(nudged(pre, 0, 0.0)), root / "zeroshot.pt")
            for task, model in finetuned.items():
                (root / task).mkdir()
                torch.save(ImageEncoder(model), root / task / "finetuned.pt")
    elif layout == "tall_masks":
        # tall_masks src/utils/utils.py torch_save: the ImageEncoder's state_dict (model.* keys)
        for task, model in finetuned.items():
            (root / f"{task}Val").mkdir()
            for name, m in (("nonlinear_finetuned.pt", model), ("nonlinear_zeroshot.pt", pre)):
                state = {f"model.{k}": v for k, v in m.state_dict().items() if not k.startswith("transformer.")}
                torch.save(state, root / f"{task}Val" / name)
    elif layout == "fusion_bench":
        from tvcore.finetuned_sets import fusion_bench_name

        for task, model in finetuned.items():
            save_hf_vision(model, root / f"clip-vit-base-patch32_{fusion_bench_name(task)}",
                           "quick_gelu" if quick_gelu else "gelu")
    else:
        for task, model in finetuned.items():
            save_file({k: v.contiguous() for k, v in model.visual.state_dict().items()},
                      str(root / f"{task}.safetensors"), metadata={"quick_gelu": str(quick_gelu).lower()})


@pytest.fixture(scope="module")
def pre_model():
    return open_clip_model(seed=0)


@pytest.fixture(scope="module")
def loaded(pre_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "base.safetensors"
    save_file({k: v.contiguous() for k, v in pre_model.state_dict().items()}, str(path),
              metadata={"quick_gelu": "false"})
    return load_model(TINY_CONFIG, path)


def expected_vector(pre, model) -> dict[str, torch.Tensor]:
    a, b = pre.visual.state_dict(), model.visual.state_dict()
    return {k: b[k] - a[k] for k in a}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_published_layout_gives_the_exact_task_vectors(tmp_path, pre_model, loaded, layout):
    models = {t: nudged(pre_model, i + 1, frozen_proj=layout == "fusion_bench") for i, t in enumerate(TASKS)}
    write_set(layout, tmp_path / "set", pre_model, models)
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    assert pool.finetuned.layout == layout
    pool.check_finetuned(TASKS)
    for task, model in models.items():
        got = pool._vectors[task].state_dict()
        want = expected_vector(pre_model, model)
        assert got.keys() == want.keys()
        for k in want:  # ft - pre taken again from the files: exact up to one rounding
            torch.testing.assert_close(got[k], want[k], atol=1e-6, rtol=0)
        assert pool.provenance[task]["set"] == layout


def test_fusion_bench_folders_are_matched_by_their_whole_task_name(tmp_path, pre_model, loaded):
    mnist, fashion = nudged(pre_model, 1, frozen_proj=True), nudged(pre_model, 2, frozen_proj=True)
    write_set("fusion_bench", tmp_path / "set", pre_model, {"MNIST": mnist, "FashionMNIST": fashion})
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    assert pool.finetuned.locate("MNIST").name == "clip-vit-base-patch32_mnist"
    assert pool.finetuned.locate("FashionMNIST").name == "clip-vit-base-patch32_fashion_mnist"


def test_fusion_bench_models_in_a_hugging_face_cache_are_found(tmp_path, pre_model, loaded):
    snapshot = tmp_path / "hub" / "models--tanganke--clip-vit-base-patch32_mnist" / "snapshots" / "abc123"
    save_hf_vision(nudged(pre_model, 1, frozen_proj=True), snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    pool = ModelPool(loaded, finetuned=tmp_path / "hub")
    assert pool.finetuned.layout == "fusion_bench" and pool.finetuned.locate("MNIST") == snapshot


def test_the_paper_set_is_read_with_its_module_class_missing(tmp_path, pre_model, loaded):
    write_set("task_vectors", tmp_path / "set", pre_model, {"MNIST": nudged(pre_model, 1)})
    assert "src" not in sys.modules
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    pool.check_finetuned(["MNIST"])
    assert "src" not in sys.modules
    assert pool.finetuned.describe()["zeroshot"]["relative_difference"] == 0.0


def test_the_set_may_sit_under_an_architecture_folder(tmp_path, pre_model, loaded):
    write_set("task_vectors", tmp_path / "set" / "tvcore-tiny", pre_model, {"MNIST": nudged(pre_model, 1)})
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    assert pool.finetuned.root == tmp_path / "set" / "tvcore-tiny"


def test_tvcore_per_task_folders_are_a_tvcore_set(tmp_path, pre_model, loaded):
    (tmp_path / "set" / "digits-rot90").mkdir(parents=True)
    model = nudged(pre_model, 1)
    save_file({k: v.contiguous() for k, v in model.visual.state_dict().items()},
              str(tmp_path / "set" / "digits-rot90" / "encoder.safetensors"))
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    pool.check_finetuned(["digits/rot90"])
    assert pool.finetuned.layout == "tvcore" and pool.provenance["digits/rot90"]["path"].endswith("encoder.safetensors")


def test_a_folder_of_no_known_layout_names_the_layouts(tmp_path, loaded):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="no fine-tuned checkpoints in a known layout; expected .*finetuned.pt"
                                              ".*nonlinear_finetuned.pt.*CLIPVisionModel.*safetensors"):
        ModelPool(loaded, finetuned=tmp_path)


def test_every_missing_or_unreadable_file_is_listed_in_one_error(tmp_path, pre_model, loaded):
    tasks = ["Cars", "DTD", "MNIST", "SVHN"]
    write_set("task_vectors", tmp_path / "set", pre_model, {t: nudged(pre_model, 1) for t in ("Cars", "SVHN")})
    (tmp_path / "set" / "SVHN" / "finetuned.pt").write_bytes(b"PK\x03\x04 truncated")
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    with pytest.raises(CheckpointError) as exc:
        pool.check_finetuned(tasks)
    message = str(exc.value)
    assert "\n" not in message and "3 problems found before any evaluation" in message
    assert "missing DTD (DTD/finetuned.pt), MNIST (MNIST/finetuned.pt)" in message
    assert "SVHN: " in message and "not a readable torch.save file" in message
    assert "Cars" not in message.split("problems", 1)[1]


def test_a_file_fine_tuned_from_another_base_is_refused_naming_its_task(tmp_path, pre_model, loaded):
    other = open_clip_model(seed=5)
    write_set("tvcore", tmp_path / "set", pre_model, {"Cars": nudged(pre_model, 1), "MNIST": nudged(other, 2)})
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    with pytest.raises(CheckpointError, match=r"MNIST: .*MNIST.safetensors differs from the pretrained encoder by "
                                              r"[\d.]+ of its norm .* over 0.5 means another base"):
        pool.check_finetuned(["Cars", "MNIST"])


def test_the_threshold_separates_fine_tunes_from_other_bases(pre_model):
    pre = pre_model.visual.state_dict()
    assert relative_change(nudged(pre_model, 1, 0.05).visual.state_dict(), pre) < 0.1 * MAX_RELATIVE_CHANGE
    assert relative_change(open_clip_model(seed=9).visual.state_dict(), pre) > 2 * MAX_RELATIVE_CHANGE


def test_a_zeroshot_base_other_than_the_weights_is_refused(tmp_path, pre_model, loaded):
    other = open_clip_model(seed=5)
    write_set("task_vectors", tmp_path / "set", other, {"MNIST": nudged(other, 1)})
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    with pytest.raises(CheckpointError, match=r"zeroshot.pt: the set's base .* differs from the --weights image "
                                              r"encoder by [\d.]+ of its norm"):
        pool.check_finetuned(["MNIST"])


def test_the_record_names_the_set_and_fingerprints_its_files(tmp_path, pre_model, loaded):
    from tvcore.checkpoints import sha256_file

    write_set("tvcore", tmp_path / "set", pre_model, {t: nudged(pre_model, i) for i, t in enumerate(TASKS)})
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    pool.check_finetuned(TASKS)
    described = pool.finetuned.describe()
    hashes = sorted(sha256_file(tmp_path / "set" / f"{t}.safetensors") for t in TASKS)
    assert described["layout"] == "tvcore"
    assert described["fingerprint"] == hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    assert set(described["tasks"]) == set(TASKS)


def test_the_fingerprint_changes_with_any_file(tmp_path, pre_model, loaded):
    prints = []
    for seed in (1, 2):
        root = tmp_path / f"set{seed}"
        write_set("tvcore", root, pre_model, {"Cars": nudged(pre_model, 1), "MNIST": nudged(pre_model, seed)})
        pool = ModelPool(loaded, finetuned=root)
        pool.check_finetuned(TASKS)
        prints.append(pool.finetuned.describe()["fingerprint"])
    assert prints[0] != prints[1]


# ------------------------------------------------------------------ QuickGELU of a set and of the model

def _context(tmp_path, weights, finetuned, quick_gelu=None):
    from tvcore.experiments.common import Context, ModelSpec
    from tvcore.finetune import Recipe

    return Context(ModelSpec(TINY_CONFIG, str(weights), quick_gelu=quick_gelu), Recipe(steps=1), progress=False,
                   finetuned=str(finetuned), head_cache=str(tmp_path / "heads"), pixel_cache=str(tmp_path / "px"))


def test_the_model_takes_the_quick_gelu_a_set_records(tmp_path, pre_model):
    save_file({k: v.contiguous() for k, v in pre_model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    write_set("fusion_bench", tmp_path / "set", pre_model, {"MNIST": nudged(pre_model, 1, frozen_proj=True)},
              quick_gelu=True)
    ctx = _context(tmp_path, tmp_path / "w.safetensors", tmp_path / "set")
    decided = ctx.describe()["model"]["quick_gelu"]
    assert decided["value"] is True and "clip-vit-base-patch32_mnist" in decided["source"]


def test_a_set_whose_quick_gelu_clashes_with_the_weights_is_refused_in_one_line(tmp_path, pre_model):
    save_file({k: v.contiguous() for k, v in pre_model.state_dict().items()}, str(tmp_path / "w.safetensors"),
              metadata={"quick_gelu": "false"})
    write_set("fusion_bench", tmp_path / "set", pre_model, {"MNIST": nudged(pre_model, 1)}, quick_gelu=True)
    with pytest.raises(CheckpointError, match=r"^QuickGELU clash: weights file .*w.safetensors records QuickGELU off "
                                              r"but fine-tuned encoder .*_mnist records QuickGELU on") as exc:
        _context(tmp_path, tmp_path / "w.safetensors", tmp_path / "set")
    assert "\n" not in str(exc.value)


def test_a_paper_set_trained_with_quick_gelu_clashes_with_a_gelu_flag(tmp_path):
    pre = open_clip_model(seed=0, quick_gelu=True)
    save_file({k: v.contiguous() for k, v in pre.state_dict().items()}, str(tmp_path / "w.safetensors"))
    write_set("task_vectors", tmp_path / "set", pre, {"MNIST": nudged(pre, 1)})
    with pytest.raises(CheckpointError, match=r"^--no-quick-gelu contradicts what the weights say \(fine-tuned "
                                              r"encoder .*finetuned.pt records QuickGELU on\)"):
        _context(tmp_path, tmp_path / "w.safetensors", tmp_path / "set", quick_gelu=False)


@pytest.mark.filterwarnings("ignore:Couldn't retrieve source code")  # torch's legacy save of a test class
def test_a_set_with_quick_gelu_unknown_at_first_glance_is_still_checked_on_reading(tmp_path, pre_model, loaded):
    # A legacy-format pickle names no classes until it is read: the full read compares.
    quick = open_clip_model(seed=0, quick_gelu=True)
    quick.load_state_dict(pre_model.state_dict())
    with PaperModules() as ImageEncoder:
        (tmp_path / "set" / "MNIST").mkdir(parents=True)
        torch.save(ImageEncoder(nudged(quick, 1)), tmp_path / "set" / "MNIST" / "finetuned.pt",
                   _use_new_zipfile_serialization=False)
    pool = ModelPool(loaded, finetuned=tmp_path / "set")
    assert pool.finetuned.quick_gelu_records() == {f"fine-tuned encoder {tmp_path / 'set' / 'MNIST' / 'finetuned.pt'}":
                                                   None}
    with pytest.raises(CheckpointError, match=r"MNIST: .*finetuned.pt records QuickGELU on \(the pickled module's "
                                              r"QuickGELU activation\) but the model runs with it off"):
        pool.check_finetuned(["MNIST"])


# ------------------------------------------------------------------ the suites check before they evaluate

@pytest.mark.parametrize("suite", ["negation", "addition"])
def test_the_suites_check_every_file_before_any_evaluation(tmp_path, monkeypatch, suite):
    from tvcore.experiments import addition, negation
    from tvcore.experiments.common import TINY, Context
    from tvcore.finetune import Recipe

    (tmp_path / "set").mkdir()
    pre = load_model(TINY.arch, TINY.pretrained, quick_gelu=False)
    save_file({k: v.contiguous() for k, v in pre.image_encoder.state_dict().items()},
              str(tmp_path / "set" / "digits-rot90.safetensors"))
    ctx = Context(TINY, Recipe(steps=1), progress=False, finetuned=str(tmp_path / "set"),
                  head_cache=str(tmp_path / "heads"), pixel_cache=str(tmp_path / "px"))
    monkeypatch.setattr(ctx.evaluator, "evaluate", lambda *a, **k: pytest.fail("evaluated before the check"))
    tasks = ["digits/rot90", "digits/mirror", "digits/negative"]
    run, config = {"negation": (negation.run, negation.NegationConfig(tasks, "digits/upright")),
                   "addition": (addition.run, addition.AdditionConfig(tasks))}[suite]
    with pytest.raises(CheckpointError, match=r"missing digits/mirror \(digits-mirror.safetensors\), digits/negative"):
        run(config, ctx)
