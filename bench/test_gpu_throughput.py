"""ViT-B-32 throughput on CUDA: evaluation and fine-tuning in bf16, and the
model-FLOP utilisation of fine-tuning. Runs with ``--gpu`` only.

Random-init weights (no download): throughput does not depend on the values.
FLOPs per image are counted by ``torch.utils.flop_counter`` on the model itself
(bench/gpu/flops.py): about 8.8 GFLOP for a ViT-B/32 forward at 224 px (the 4.4 G
of model tables is multiply-accumulates), and the training step's forward and
backward as counted, not assumed. MFU divides the achieved FLOP/s by the device's
peak dense bf16 FLOP/s, where the device is one we know; elsewhere the achieved
TFLOP/s is reported alone. ``python bench/gpu/run.py`` measures tvcore's own
fine-tuning and evaluation beside these bare loops.
"""

from __future__ import annotations

import time

import pytest

from gpu.flops import forward_flops, peak_bf16, step_flops

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda_vit(tvcore_options):
    if tvcore_options.device != "cuda":
        pytest.skip("GPU throughput: run with --gpu on a machine with CUDA")
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).visual.to("cuda")
    return model, torch.cuda.get_device_name()


def _timed(fn, steps: int) -> float:
    import torch

    fn()  # warm-up: kernels chosen, memory allocated
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


@pytest.mark.parametrize("mode", ["eval", "finetune"])
def test_vit_b32_throughput_in_bf16(mode, cuda_vit, speed_table):
    import torch

    model, device_name = cuda_vit
    batch, steps = 256 if mode == "eval" else 128, 20
    images = torch.randn(batch, 3, 224, 224, device="cuda")
    last = {}
    if mode == "eval":
        model.eval()

        def step():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                last["out"] = model(images)
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.1)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(images).float().pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            last["out"] = loss.detach()

    seconds = _timed(step, steps)
    per_second = batch * steps / seconds
    probe = images[:2]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        per_image = (forward_flops(model, probe) if mode == "eval" else
                     step_flops(lambda: model(probe).float().pow(2).mean().backward(), len(probe)))
    flops = per_second * per_image
    peak = peak_bf16(device_name)
    speed_table.setdefault("gpu", {})[mode] = {
        "device": device_name, "images_per_s": per_second, "flops_per_image": per_image,
        "achieved_tflops": flops / 1e12,
        "mfu": flops / peak if peak else None, "batch": batch}
    print(f"{device_name} ViT-B-32 {mode} bf16: {per_second:.0f} img/s, {flops / 1e12:.1f} TFLOP/s"
          + (f", MFU {100 * flops / peak:.1f}%" if peak else ""))
    # bf16 on this device computed real numbers (a broken autocast path gives NaN).
    assert torch.isfinite(last["out"]).all()
