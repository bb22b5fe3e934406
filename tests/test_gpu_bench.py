"""The device script bench/gpu/run.py: its CPU smoke mode runs every section of the
GPU run on the tiny model, and without CUDA the full run skips cleanly."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu" / "run.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("tvcore_gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(gpu_bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-bench")
    assert gpu_bench.main(["--smoke", "--out", str(out)]) == 0
    return json.loads((out / "gpu_bench.json").read_text())


def test_smoke_runs_every_cpu_section_without_error(smoke):
    assert smoke["errors"] == {}
    assert set(smoke["sections"]) == {"flops", "train.bare.foreach", "train.bare.fused",
                                      "train.tvcore.off.deterministic", "train.tvcore.repeat", "eval.bare.fp32",
                                      "eval.bare.bf16",
                                      "eval.tvcore.auto", "eval.tvcore.first_pass", "eval.tvcore.auto.deterministic",
                                      "eval.tvcore.auto.deterministic.fill", "eval.tvcore.end_to_end",
                                      "train.concurrent.1", "train.concurrent.2", "plan.paper"}


def test_smoke_prints_tvcore_over_bare_ratios(smoke):
    ratios = smoke["ratios"]
    assert ratios["train.tvcore.off.deterministic / best bare"] > 0
    assert ratios["eval.tvcore.auto / bare bf16"] > 0
    assert ratios["eval.tvcore.auto.deterministic / bare bf16"] > 0


def test_flops_are_counted_a_training_step_near_three_forwards(smoke):
    """A backward costs about two forwards (gradients of activations and of weights)."""
    flops = smoke["sections"]["flops"]
    assert 2.5 < flops["train_step_per_image"] / flops["forward_per_image"] < 3.5


def test_tvcore_eval_end_to_end_runs_again_on_the_cached_split(smoke):
    """The figure is the median of the runs after the first (one in the smoke)."""
    e2e = smoke["sections"]["eval.tvcore.end_to_end"]
    assert e2e["first_s"] > 0 and e2e["cached_s"] == e2e["cached0_s"] > 0
    assert "load_model_s" in e2e["cached0_timings"]


def test_the_end_to_end_section_compares_the_device_started_in_the_background_and_at_first_use(smoke):
    """Each cached run is followed by one with TVCORE_DEVICE_START=first-use: both
    medians, and their ratio, from the same machine."""
    e2e = smoke["sections"]["eval.tvcore.end_to_end"]
    assert e2e["cached_first_use_s"] == e2e["cached_first_use0_s"] > 0
    assert "load_model_parts" in e2e["cached_first_use0_timings"]
    ratio = smoke["ratios"]["eval.tvcore.end_to_end device started in the background / at first use"]
    assert ratio == pytest.approx(e2e["cached_s"] / e2e["cached_first_use_s"])


def test_the_end_to_end_section_records_the_interpreter_it_ran_under(smoke):
    """Whether torch had bytecode decides seconds of every process start."""
    python = smoke["sections"]["eval.tvcore.end_to_end"]["python"]
    assert isinstance(python["torch_has_bytecode"], bool) and "pycache_prefix" in python


def test_the_end_to_end_section_times_the_records_plot_in_a_fresh_process(smoke):
    """matplotlib's import and two plots of the record the cached run wrote."""
    plot = smoke["sections"]["eval.tvcore.end_to_end"]["plot"]
    assert "error" not in plot, plot.get("error")
    assert plot["import_s"] > 0 and plot["first_plot_s"] > 0 and plot["second_plot_s"] > 0


def test_a_profiled_end_to_end_run_says_how_long_it_ran_outside_the_profile(smoke):
    """The interpreter's start and exit, which cProfile does not see (the smoke
    profiles the first run only; the device run profiles a cached one too)."""
    e2e = smoke["sections"]["eval.tvcore.end_to_end"]
    assert 0 < e2e["first_outside_profile_s"] < e2e["first_s"]
    assert "cached_profiled_s" not in e2e


def test_the_end_to_end_section_probes_the_floor_of_a_process_start(smoke):
    """A process that imports torch and torchvision and starts the device: what
    no tvcore code can shorten."""
    e2e = smoke["sections"]["eval.tvcore.end_to_end"]
    assert e2e["python_torch_torchvision_device_start_s"] > 0
    assert "python_torch_device_start_s" not in e2e  # the smoke's one probe; the device run has three


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip where no CUDA device is present")
def test_without_cuda_the_full_run_skips_cleanly(gpu_bench, tmp_path, capsys):
    assert gpu_bench.main(["--out", str(tmp_path)]) == 0
    assert "no CUDA device" in capsys.readouterr().out and not (tmp_path / "gpu_bench.json").exists()


def test_two_deterministic_fine_tunes_repeat_bitwise(smoke):
    assert smoke["sections"]["train.tvcore.repeat"]["bitwise_equal"] is True


def test_concurrent_fine_tunes_are_measured_one_and_several_at_once(smoke):
    one, two = smoke["sections"]["train.concurrent.1"], smoke["sections"]["train.concurrent.2"]
    assert (one["jobs"], two["jobs"]) == (1, 2)
    assert two["images"] == 2 * one["images"] and len(two["per_job_images_per_s"]) == 2
    assert smoke["ratios"]["train.concurrent 2 jobs / 1 job (images/s total)"] > 0


def test_the_paper_suites_plan_counts_each_fine_tune_once_for_both(smoke):
    """Addition's eight fine-tunes are negation's (the same pool entries); negation
    adds a gradient-ascent vector per task (the paper's Table 1)."""
    plan = smoke["sections"]["plan.paper"]
    negation, addition = plan["negation-vit-b-32"], plan["addition-vit-b-32"]
    assert negation["fine_tunes"] == 16 and addition["fine_tunes"] == 8
    assert plan["together"]["fine_tunes"] == 16
    assert plan["together"]["steps"] == negation["finetune_steps"]
    assert negation["predicted_s"]["total"] > 0 and smoke["ratios"]["plan: paper negation + addition fine-tuning h"] > 0


def test_every_evaluation_pass_sees_the_same_images_and_labels(smoke):
    ev = smoke["sections"]["eval.tvcore.auto"]
    assert ev["passes_agree"] is True and ev["labels_are_the_cache"] is True


def test_a_splits_first_pass_is_measured_beside_a_pass_over_blocks_already_pinned(smoke):
    """And beside a pass read into pageable memory; the three see the same rows."""
    first = smoke["sections"]["eval.tvcore.first_pass"]
    assert first["images_per_s"] > 0 and first["blocks_pinned_images_per_s"] > 0 and first["images"] == 48
    assert first["pageable_images_per_s"] > 0 and first["passes_agree"] is True
    assert smoke["ratios"]["eval.tvcore.first_pass / bare bf16"] > 0
