"""Every error a TaskVector raises, and the behaviours the laws do not cover."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from tvcore import (
    CheckpointError,
    EmptyTaskVectorError,
    NonFiniteError,
    TaskVector,
    TaskVectorMismatchError,
)


def sd(**shapes):
    gen = torch.Generator().manual_seed(0)
    return {k.replace("__", "."): torch.randn(s, generator=gen) for k, s in shapes.items()}


@pytest.fixture
def pre():
    return {"visual.proj": torch.randn(4, 2), "visual.ln.weight": torch.ones(4),
            "position_ids": torch.arange(5)}


@pytest.fixture
def ft(pre):
    out = {k: v.clone() for k, v in pre.items()}
    out["visual.proj"] += 0.5
    out["visual.ln.weight"] -= 0.25
    return out


# ------------------------------------------------------------------ mismatches

def test_missing_key_names_the_key_and_both_vectors(pre, ft):
    a = TaskVector.from_state_dicts(pre, ft, name="svhn")
    b = TaskVector({"visual.ln.weight": torch.zeros(4)}, name="mnist")
    with pytest.raises(TaskVectorMismatchError, match=r"'visual.proj' missing from 'mnist' \(present in 'svhn'\)"):
        a + b
    with pytest.raises(ValueError):  # the error is a ValueError too
        b - a


def test_shape_mismatch_names_key_and_shapes(pre, ft):
    a = TaskVector.from_state_dicts(pre, ft, name="a")
    b = TaskVector({"visual.proj": torch.zeros(2, 4), "visual.ln.weight": torch.zeros(4)}, name="b")
    with pytest.raises(TaskVectorMismatchError, match=r"'visual.proj': \(4, 2\) in 'a' vs \(2, 4\) in 'b'"):
        a + b


def test_dtype_mismatch_names_key_and_dtypes(pre, ft):
    a = TaskVector.from_state_dicts(pre, ft, name="a")
    b = a.to(dtype=torch.float16)
    b.name = "b"
    with pytest.raises(TaskVectorMismatchError, match=r"dtype differs for 'visual.ln.weight': torch.float32 in 'a'"):
        a + b


def test_checkpoints_with_different_keys_are_refused(pre, ft):
    del ft["visual.ln.weight"]
    with pytest.raises(TaskVectorMismatchError, match="'visual.ln.weight' missing from 'finetuned'"):
        TaskVector.from_state_dicts(pre, ft)


def test_integer_buffer_must_exist_on_both_sides(pre, ft):
    del ft["position_ids"]
    with pytest.raises(TaskVectorMismatchError, match="position_ids"):
        TaskVector.from_state_dicts(pre, ft)


def test_apply_to_base_missing_a_vector_key(pre, ft):
    tv = TaskVector.from_state_dicts(pre, ft, name="cars")
    base = {k: v for k, v in pre.items() if k != "visual.proj"}
    for strict in (True, False):
        with pytest.raises(TaskVectorMismatchError, match="'visual.proj' missing from 'base model'"):
            tv.apply_to(base, strict=strict)


def test_apply_to_base_with_uncovered_float_key_needs_strict_false(pre, ft):
    tv = TaskVector.from_state_dicts(pre, ft, name="cars")
    base = dict(pre, **{"text.proj": torch.ones(3)})
    with pytest.raises(TaskVectorMismatchError, match="'text.proj' missing from 'cars'"):
        tv.apply_to(base)
    out = tv.apply_to(base, strict=False)
    assert torch.equal(out["text.proj"], torch.ones(3))
    assert torch.allclose(out["visual.proj"], ft["visual.proj"])


def test_apply_to_base_of_other_dtype_is_refused(pre, ft):
    tv = TaskVector.from_state_dicts(pre, ft)
    base = {k: (v.half() if v.is_floating_point() else v) for k, v in pre.items()}
    with pytest.raises(TaskVectorMismatchError, match="dtype differs"):
        tv.apply_to(base)
    out = tv.to(dtype=torch.float16).apply_to(base)
    assert out["visual.proj"].dtype == torch.float16


def test_vector_cannot_hold_integer_tensors():
    with pytest.raises(TaskVectorMismatchError, match="'ids' are not floating point"):
        TaskVector({"w": torch.zeros(2), "ids": torch.arange(2)})


# ------------------------------------------------------------------ non-finite and empty

@pytest.mark.parametrize("alpha", [math.nan, math.inf, -math.inf])
def test_non_finite_alpha_is_refused(pre, ft, alpha):
    tv = TaskVector.from_state_dicts(pre, ft)
    with pytest.raises(NonFiniteError, match="alpha must be finite"):
        tv * alpha
    with pytest.raises(NonFiniteError):
        alpha * tv
    with pytest.raises(NonFiniteError):
        tv.apply_to(pre, alpha)
    with pytest.raises(NonFiniteError):
        tv / alpha


def test_non_numeric_alpha_is_refused(pre, ft):
    tv = TaskVector.from_state_dicts(pre, ft)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        tv.apply_to(pre, "0.5")
    with pytest.raises(ValueError, match="scalar"):
        tv * torch.ones(2)


def test_division_by_zero(pre, ft):
    with pytest.raises(ZeroDivisionError):
        TaskVector.from_state_dicts(pre, ft) / 0


@pytest.mark.parametrize("side", ["pretrained", "finetuned"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_weights_are_refused(pre, ft, side, bad):
    target = pre if side == "pretrained" else ft
    target["visual.proj"][0, 0] = bad
    with pytest.raises(NonFiniteError, match=f"the {side} state dict holds NaN or Inf in 'visual.proj'"):
        TaskVector.from_state_dicts(pre, ft)


def test_overflowing_difference_is_refused():
    pre = {"w": torch.tensor([-60000.0], dtype=torch.float16)}
    ft = {"w": torch.tensor([60000.0], dtype=torch.float16)}
    with pytest.raises(NonFiniteError, match="'w'"):
        TaskVector.from_state_dicts(pre, ft)


def test_empty_vector_is_refused():
    with pytest.raises(EmptyTaskVectorError):
        TaskVector({})
    with pytest.raises(EmptyTaskVectorError, match="no floating-point tensors"):
        TaskVector.from_state_dicts({"ids": torch.arange(3)}, {"ids": torch.arange(3)})


# ------------------------------------------------------------------ dtypes

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_fp32_and_keeps_dtype(dtype):
    gen = torch.Generator().manual_seed(1)
    pre = {"w": torch.randn(64, generator=gen).to(dtype)}
    ft = {"w": torch.randn(64, generator=gen).to(dtype)}
    tv = TaskVector.from_state_dicts(pre, ft)
    assert tv.dtype == dtype
    assert torch.equal(tv["w"], (ft["w"].float() - pre["w"].float()).to(dtype))
    out = tv.apply_to(pre, 0.3)
    assert out["w"].dtype == dtype
    assert torch.equal(out["w"], (pre["w"].float() + 0.3 * tv["w"].float()).to(dtype))


# ------------------------------------------------------------------ modules

def test_apply_to_module_returns_edited_copy():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ft = {k: (v + 1 if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    tv = TaskVector.from_state_dicts(model, ft)
    assert "1.num_batches_tracked" in tv.excluded_keys and "1.num_batches_tracked" not in tv
    before = {k: v.clone() for k, v in model.state_dict().items()}
    edited = tv.apply_to(model, 1.0)
    assert edited is not model
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # the original is untouched
    for k, v in edited.state_dict().items():
        assert torch.allclose(v.float(), ft[k].float())


def test_apply_to_module_in_place():
    model = torch.nn.Linear(3, 2)
    weight = model.weight
    tv = TaskVector({"weight": torch.ones(2, 3), "bias": torch.ones(2)})
    expected = weight.detach().clone() + 0.5
    out = tv.apply_to(model, 0.5, inplace=True)
    assert out is model and model.weight is weight
    assert torch.allclose(model.weight, expected)


def test_apply_to_state_dict_in_place_edits_the_given_tensors(pre, ft):
    tv = TaskVector.from_state_dicts(pre, ft)
    base = {k: v.clone() for k, v in pre.items()}
    proj = base["visual.proj"]
    out = tv.apply_to(base, 1.0, inplace=True)
    assert out is base and out["visual.proj"] is proj
    assert torch.allclose(proj, ft["visual.proj"])


# ------------------------------------------------------------------ files

def test_from_checkpoints_reads_safetensors_and_pt(tmp_path, pre, ft):
    save_file(pre, str(tmp_path / "pre.safetensors"))
    torch.save(ft, tmp_path / "ft.pt")
    tv = TaskVector.from_checkpoints(tmp_path / "pre.safetensors", tmp_path / "ft.pt")
    assert tv.name == "ft"
    assert torch.allclose(tv["visual.proj"], torch.full((4, 2), 0.5))


def test_from_checkpoints_unwraps_a_state_dict_key(tmp_path, pre, ft):
    torch.save({"state_dict": pre, "epoch": 3}, tmp_path / "pre.bin")
    torch.save(ft, tmp_path / "ft.bin")
    assert len(TaskVector.from_checkpoints(tmp_path / "pre.bin", tmp_path / "ft.bin")) == 2


def test_pickled_module_is_refused_with_export_hint(tmp_path, pre):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")
    torch.save(pre, tmp_path / "pre.pt")
    with pytest.raises(CheckpointError, match=r"model\.state_dict\(\)"):
        TaskVector.from_checkpoints(tmp_path / "pre.pt", tmp_path / "model.pt")


def test_missing_checkpoint_fails_fast(tmp_path, pre):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        TaskVector.from_checkpoints(tmp_path / "nope.safetensors", tmp_path / "nope2.safetensors")


def test_unknown_suffix_is_refused(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"x")
    (tmp_path / "v.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown weights format '.npz'"):
        TaskVector.from_checkpoints(tmp_path / "w.npz", tmp_path / "v.npz")


def test_load_refuses_a_plain_checkpoint(tmp_path, pre):
    save_file({k: v for k, v in pre.items()}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a tvcore task vector file"):
        TaskVector.load(tmp_path / "plain.safetensors")


def test_load_refuses_a_corrupt_file(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        TaskVector.load(tmp_path / "bad.safetensors")


def test_saved_metadata_records_format_dtype_and_base(tmp_path, pre, ft):
    from tvcore.vectors import read_metadata
    tv = TaskVector.from_state_dicts(pre, ft, name="dtd", base_model="ViT-B-32:openai")
    tv.save(tmp_path / "dtd.safetensors")
    meta = read_metadata(tmp_path / "dtd.safetensors")
    assert meta["format"] == "tvcore.taskvector" and meta["format_version"] == "1"
    assert meta["dtype"] == "float32" and meta["base_model"] == "ViT-B-32:openai"
    assert meta["excluded_keys"] == "position_ids"


# ------------------------------------------------------------------ the small API

def test_container_api(pre, ft):
    tv = TaskVector.from_state_dicts(pre, ft)
    assert set(tv.keys()) == {"visual.proj", "visual.ln.weight"}
    assert len(tv) == 2 and tv.numel() == 12
    assert math.isclose(tv.norm(), math.sqrt(8 * 0.25 + 4 * 0.0625), rel_tol=1e-6)
    assert math.isclose(tv.dot(tv), tv.norm() ** 2)


# ------------------------------------------------------------ one tower of a whole model

WHOLE = {"visual.conv1.weight": torch.zeros(2, 2), "visual.transformer.w": torch.zeros(3),
         "transformer.w": torch.zeros(3), "ln_final.weight": torch.zeros(3)}
ENCODER_TAU = TaskVector({"conv1.weight": torch.ones(2, 2), "transformer.w": torch.ones(3)}, name="mnist")


def test_an_encoder_vector_on_a_whole_model_is_refused_when_strict_in_one_line():
    with pytest.raises(TaskVectorMismatchError, match=r"^vector 'mnist' covers the image encoder only .*--partial"):
        ENCODER_TAU.apply_to(WHOLE)


def test_an_encoder_vector_on_a_whole_model_edits_its_visual_tower_when_not_strict():
    out = ENCODER_TAU.apply_to(WHOLE, 0.5, strict=False)
    assert torch.equal(out["visual.conv1.weight"], torch.full((2, 2), 0.5))
    assert torch.equal(out["visual.transformer.w"], torch.full((3,), 0.5))
    assert torch.equal(out["transformer.w"], torch.zeros(3))  # the text tower's key of the same name


def test_a_shape_mismatch_names_the_first_key_and_counts_the_others():
    other = TaskVector({f"k{i}": torch.zeros(2) for i in range(5)}, name="a")
    wide = TaskVector({f"k{i}": torch.zeros(3) for i in range(5)}, name="b")
    with pytest.raises(TaskVectorMismatchError) as info:
        other + wide
    assert str(info.value) == "shape differs for 'k0': (2,) in 'a' vs (3,) in 'b' (and 4 other keys)"
