"""Speed and memory of tvcore's task arithmetic on ViT-B-32-shaped weights.

Each group times tvcore beside the reference written the way the paper's code
does it (bench/reference_impl.py), in the same run, and beside the
memory-bandwidth floor: the bytes the operation must move at the bandwidth of a
streaming add measured in this run. Ratios go to ``extra_info`` and to the table
printed at the end of the session (and results/speed.json). Peak RSS of the
streaming merge and of the reference is measured in fresh processes. Nothing
here fails on a time; the tests assert only that each implementation computes
the same thing.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from tvcore import TaskVector
from tvcore.merging import merge, merge_files, merge_into, task_arithmetic

import rss_probe
from reference_impl import ReferenceTaskVector, reference_merge_files

pytestmark = pytest.mark.speed

N_VECTORS = 8
LAM = 0.3

# Bytes each operation must move, in units of one model's floating-point weights.
STREAMS = {"build": 3, "sum8": 9, "apply": 3, "sweep_step": 3, "sum8_apply": 10, "stream_merge8": 9}


def model_bytes(state) -> int:
    return sum(t.numel() * t.element_size() for t in state.values() if t.is_floating_point())


@pytest.fixture(scope="module")
def vectors(vit_b32_pretrained):
    gen = torch.Generator().manual_seed(1)
    return [TaskVector({k: 1e-3 * torch.randn(v.shape, generator=gen) for k, v in vit_b32_pretrained.items()},
                       name=f"t{i}") for i in range(N_VECTORS)]


@pytest.fixture(scope="module")
def references(vectors):
    return [ReferenceTaskVector(vector=v.state_dict()) for v in vectors]


@pytest.fixture(scope="module")
def files(tmp_path_factory, vit_b32_pretrained, vectors):
    d = tmp_path_factory.mktemp("speed")
    base_pt = d / "base.pt"
    torch.save(vit_b32_pretrained, base_pt)
    st = [v.save(d / f"t{i}.safetensors") for i, v in enumerate(vectors)]
    pt = []
    for i, v in enumerate(vectors):
        torch.save(v.state_dict(), d / f"t{i}.pt")
        pt.append(d / f"t{i}.pt")
    yield {"dir": d, "base_pt": base_pt, "safetensors": st, "pt": pt}
    shutil.rmtree(d, ignore_errors=True)  # GBs of ViT-B-32 files: gone with the module, pass or fail


@pytest.fixture(scope="module")
def target(vit_b32_pretrained):
    """A model's weights to write results into (as an evaluation loop would)."""
    return {k: v.clone() for k, v in vit_b32_pretrained.items()}


def record(benchmark, speed_table, group: str, impl: str, nbytes: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    median = stats.stats.median
    row = speed_table.setdefault(group, {"model_bytes": nbytes, "streams": STREAMS[group]})
    row[impl] = median
    benchmark.extra_info.update({"group": group, "impl": impl, "model_bytes": nbytes})
    if impl == "tvcore":
        if "reference" in row:
            row["speedup_vs_reference"] = row["reference"] / median
            benchmark.extra_info["speedup_vs_reference"] = round(row["speedup_vs_reference"], 2)
        if "bandwidth_Bps" in speed_table:
            row["floor"] = STREAMS[group] * nbytes / speed_table["bandwidth_Bps"]
            row["ratio_to_floor"] = median / row["floor"]
            benchmark.extra_info["ratio_to_floor"] = round(row["ratio_to_floor"], 2)


# ---------------------------------------------------------------- the floor

@pytest.mark.benchmark(group="bandwidth")
def test_bandwidth_floor(benchmark, vit_b32_pretrained, speed_table):
    """A streaming add over model-sized buffers: two reads and a write."""
    n = sum(t.numel() for t in vit_b32_pretrained.values())
    a, b, c = torch.randn(n), torch.randn(n), torch.empty(n)
    benchmark(torch.add, a, b, out=c)
    if getattr(benchmark, "stats", None) is not None:
        speed_table["bandwidth_Bps"] = 3 * n * 4 / benchmark.stats.stats.median
        benchmark.extra_info["GBps"] = round(speed_table["bandwidth_Bps"] / 1e9, 1)
    assert torch.equal(c, a + b)


# ---------------------------------------------------------------- build

@pytest.mark.benchmark(group="build")
@pytest.mark.parametrize("impl", ["reference", "tvcore"])
def test_build(benchmark, impl, vit_b32_pretrained, speed_table):
    ft = {k: v + 1e-3 for k, v in vit_b32_pretrained.items()}
    if impl == "reference":
        out = benchmark(ReferenceTaskVector, vit_b32_pretrained, ft).vector
    else:
        out = benchmark(TaskVector.from_state_dicts, vit_b32_pretrained, ft).state_dict()
    record(benchmark, speed_table, "build", impl, model_bytes(vit_b32_pretrained))
    assert out.keys() == vit_b32_pretrained.keys()


# ---------------------------------------------------------------- sum of 8

@pytest.mark.benchmark(group="sum8")
@pytest.mark.parametrize("impl", ["reference", "tvcore"])
def test_sum_of_8(benchmark, impl, vectors, references, speed_table):
    if impl == "reference":
        out = benchmark(sum, references).vector
    else:
        out = benchmark(merge, vectors, task_arithmetic()).state_dict()
    record(benchmark, speed_table, "sum8", impl, model_bytes(vectors[0].state_dict()))
    key = next(iter(out))
    torch.testing.assert_close(out[key], sum(v[key] for v in vectors))


# ---------------------------------------------------------------- apply

@pytest.mark.benchmark(group="apply")
@pytest.mark.parametrize("impl", ["reference", "tvcore"])
def test_apply(benchmark, impl, vectors, references, files, vit_b32_pretrained, speed_table):
    if impl == "reference":
        out = benchmark(references[0].apply_to, files["base_pt"], LAM)
    else:
        out = benchmark(vectors[0].apply_to, vit_b32_pretrained, LAM)
    record(benchmark, speed_table, "apply", impl, model_bytes(vit_b32_pretrained))
    key = next(iter(out))
    torch.testing.assert_close(out[key], vit_b32_pretrained[key] + LAM * vectors[0][key])


@pytest.mark.benchmark(group="sweep_step")
@pytest.mark.parametrize("impl", ["reference", "tvcore"])
def test_alpha_sweep_step(benchmark, impl, vectors, references, files, vit_b32_pretrained, speed_table):
    """One step of an alpha sweep: put base + alpha * tau into the model under test."""
    state = {k: v.clone() for k, v in vit_b32_pretrained.items()}
    if impl == "reference":
        benchmark(references[0].apply_to, files["base_pt"], LAM, _DictModel(state))
    else:
        with vectors[0].sweep(state) as sweep:
            benchmark(sweep.set, LAM)
            key = next(iter(state))
            torch.testing.assert_close(state[key], vit_b32_pretrained[key] + LAM * vectors[0][key])
        assert all(torch.equal(state[k], vit_b32_pretrained[k]) for k in state)  # restored exactly
    record(benchmark, speed_table, "sweep_step", impl, model_bytes(vit_b32_pretrained))


class _DictModel:
    """The reference loads a state dict into a model; this stands in for one."""

    def __init__(self, state):
        self.state = state

    def load_state_dict(self, new_state, strict=False):
        with torch.no_grad():
            for k, v in new_state.items():
                self.state[k].copy_(v)


# ---------------------------------------------------------------- sum of 8 + apply

@pytest.mark.benchmark(group="sum8_apply")
@pytest.mark.parametrize("impl", ["reference", "tvcore"])
def test_sum_of_8_and_apply(benchmark, impl, vectors, references, files, vit_b32_pretrained, target, speed_table):
    if impl == "reference":
        model = _DictModel(target)
        benchmark(lambda: sum(references).apply_to(files["base_pt"], LAM, model))
    else:
        benchmark(merge_into, vit_b32_pretrained, vectors, task_arithmetic(lam=LAM), out=target)
    record(benchmark, speed_table, "sum8_apply", impl, model_bytes(vit_b32_pretrained))
    key = next(iter(target))
    torch.testing.assert_close(target[key], vit_b32_pretrained[key] + LAM * sum(v[key] for v in vectors))


# ---------------------------------------------------------------- streaming merge

@pytest.mark.benchmark(group="stream_merge8")
@pytest.mark.parametrize("impl", ["reference", "tvcore"])
def test_streaming_merge_of_8(benchmark, impl, files, vectors, speed_table):
    out = files["dir"] / f"merged-{impl}"
    if impl == "reference":
        # Several seconds a call (it loads eight models whole): timed once, not in rounds.
        benchmark.pedantic(reference_merge_files, (files["pt"], out.with_suffix(".pt")), rounds=1, iterations=1)
        merged = torch.load(out.with_suffix(".pt"), weights_only=True)
    else:
        benchmark(merge_files, files["safetensors"], out.with_suffix(".safetensors"))
        merged = TaskVector.load(out.with_suffix(".safetensors")).state_dict()
    record(benchmark, speed_table, "stream_merge8", impl, model_bytes(vectors[0].state_dict()))
    key = next(iter(merged))
    torch.testing.assert_close(merged[key], sum(v[key] for v in vectors))


def test_peak_rss_of_streaming_merge(files, vectors, speed_table):
    """Peak RSS of merging 8 vector files, each mode in a fresh process, beside the
    same process doing nothing but importing torch."""
    nbytes = model_bytes(vectors[0].state_dict())
    idle, stream, reference = (r["peak_rss_bytes"] for r in rss_probe.run(
        (("idle",), None),
        (("stream", files["dir"] / "rss-stream.safetensors", *files["safetensors"]), None),
        (("reference", files["dir"] / "rss-ref.pt", *files["pt"]), None)))
    speed_table["peak_rss"] = {
        "model_bytes": nbytes, "idle_bytes": idle, "stream_bytes": stream, "reference_bytes": reference,
        "stream_x_model": stream / nbytes, "reference_x_model": reference / nbytes,
        "stream_above_idle_x_model": (stream - idle) / nbytes,
        "reference_above_idle_x_model": (reference - idle) / nbytes,
    }
    assert TaskVector.load(files["dir"] / "rss-stream.safetensors").keys() == vectors[0].keys()
