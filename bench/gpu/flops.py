"""FLOPs of a model's step, counted by ``torch.utils.flop_counter.FlopCounterMode``
rather than assumed: a multiply-accumulate is two FLOPs (the counter's convention,
and the one peak tensor-core figures use), so a ViT-B/32 forward at 224 px is about
8.8 GFLOP, not the 4.4 G that model tables list (those count MACs)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

# Peak dense bf16 tensor-core FLOP/s from the vendors' data sheets (SXM parts).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def peak_bf16(device_name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in device_name), None)


def forward_flops(model, images: torch.Tensor) -> float:
    """FLOPs per image of one forward pass (no gradients)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops() / len(images)


def step_flops(step: Callable[[], object], images: int) -> float:
    """FLOPs per image of ``step()`` (a training step's forward and backward) over a
    batch of ``images``; an optimizer's elementwise work is not matrix work and the
    counter leaves it out, as MFU does."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / images


def training_flops(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """FLOPs per image of a classifier's cross-entropy forward and backward."""
    def step():
        F.cross_entropy(model(images).float(), labels).backward()

    flops = step_flops(step, len(images))
    model.zero_grad(set_to_none=True)
    return flops
