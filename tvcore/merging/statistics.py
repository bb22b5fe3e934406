"""The data hook of the data-dependent merges: per-task statistics from a model
and a few batches of that task's training data.

* :func:`linear_input_grams` (for RegMean): forward hooks on every
  :class:`torch.nn.Linear` sum the Gram matrix ``X^T X`` of the layer's inputs over
  all rows (examples, and tokens for a transformer), keyed ``<layer>.weight``;
  a forward pre-hook on every self-attention :class:`torch.nn.MultiheadAttention`
  does the same for its packed input projection, keyed ``<layer>.in_proj_weight``.
  Its output projection is called inside PyTorch's fused attention, where no hook
  sees its input: RegMean averages it.
* :func:`diagonal_fisher` (for Fisher merging): the mean over examples of the
  squared gradient of ``log p(y | x)`` for every trainable parameter.

``batches`` is an iterable of inputs or of ``(inputs, labels)`` pairs (a
DataLoader will do); ``model(inputs)`` must return logits for Fisher. Keys are the
model's own names with ``prefix`` put in front, so they match task vectors built
from a larger state dict (e.g. ``prefix="visual."`` for an image tower whose vector
was taken from the whole CLIP model). Give each task the model fine-tuned on it and
the same number of examples: RegMean weighs tasks by their Grams' size, as the
paper does (Jin et al., ICLR 2023).

:func:`save_statistics` writes one task's statistics as safetensors and
:func:`read_statistics` opens them lazily (one tensor read per key when merged),
so ``tvcore vector merge --method regmean --stats ...`` streams them too.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterable, Iterator, Mapping

import torch
from torch import nn

from ..errors import UsageError


def _inputs_and_labels(batch):
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


@contextmanager
def _evaluating(model: nn.Module):
    """The model in eval mode (no dropout) for the duration, its mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _param_key(prefix: str, module_name: str, param: str) -> str:
    return f"{prefix}{module_name}.{param}" if module_name else f"{prefix}{param}"


def _accumulate(grams: dict, key: str, x: torch.Tensor, width: int) -> None:
    rows = x.detach().reshape(-1, width).to(torch.float64)
    gram = rows.T @ rows
    grams[key] = gram if key not in grams else grams[key] + gram


def linear_input_grams(model: nn.Module, batches: Iterable, *, prefix: str = "",
                       dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """``{"<prefix><layer>.weight": X^T X}`` over the inputs each linear layer saw
    while ``model`` ran on ``batches`` (accumulated in fp64, returned in ``dtype``)."""
    grams: dict[str, torch.Tensor] = {}
    handles = []

    def linear_hook(name, width):
        return lambda module, args, output: _accumulate(grams, _param_key(prefix, name, "weight"), args[0], width)

    def attention_hook(name, width):
        def hook(module, args, kwargs):
            names = ("query", "key", "value")
            q, k, v = (args[i] if len(args) > i else kwargs.get(n) for i, n in enumerate(names))
            if k is q and v is q:  # self-attention: one input through the packed projection
                _accumulate(grams, _param_key(prefix, name, "in_proj_weight"), q, width)
        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook(name, module.in_features)))
        elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            handles.append(module.register_forward_pre_hook(attention_hook(name, module.embed_dim),
                                                            with_kwargs=True))
    try:
        with _evaluating(model), torch.no_grad():
            for batch in batches:
                model(_inputs_and_labels(batch)[0])
    finally:
        for h in handles:
            h.remove()
    if not grams:
        raise UsageError("linear_input_grams: no linear layer ran; is the iterable of batches empty?")
    return {k: g.to(dtype) for k, g in grams.items()}


def diagonal_fisher(model: nn.Module, batches: Iterable, *, labels: str = "sampled", seed: int = 0,
                    prefix: str = "") -> dict[str, torch.Tensor]:
    """``{"<prefix><param>": E_x[(d log p(y | x) / d param)^2]}`` over the examples of ``batches``.

    ``labels="sampled"`` draws ``y`` from the model's own predictive distribution
    (seeded), the Fisher information as Matena & Raffel (NeurIPS 2022)
    define it; ``labels="empirical"`` uses the batches' labels (the empirical
    Fisher, which FusionBench computes). One backward pass per example, since the
    squares of per-example gradients do not add up like gradients.
    """
    if labels not in ("sampled", "empirical"):
        raise UsageError(f"diagonal_fisher: labels must be 'sampled' or 'empirical', got {labels!r}")
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    gen = torch.Generator().manual_seed(seed)
    count = 0
    with _evaluating(model), torch.enable_grad():
        for batch in batches:
            inputs, targets = _inputs_and_labels(batch)
            if labels == "empirical" and targets is None:
                raise UsageError("diagonal_fisher: labels='empirical' needs (inputs, labels) batches")
            for i in range(len(inputs)):
                log_probs = torch.log_softmax(model(inputs[i:i + 1]).float(), dim=-1)[0]
                if labels == "sampled":
                    y = torch.multinomial(log_probs.detach().exp().cpu(), 1, generator=gen).item()
                else:
                    y = int(targets[i])
                grads = torch.autograd.grad(log_probs[y], list(params.values()), allow_unused=True)
                for (name, _), g in zip(params.items(), grads):
                    if g is not None:
                        fisher[name] += g.detach().float() ** 2
                count += 1
    if count == 0:
        raise UsageError("diagonal_fisher: no examples; is the iterable of batches empty?")
    return {f"{prefix}{name}": f / count for name, f in fisher.items()}


def save_statistics(stats: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Write one task's statistics (Grams or Fishers) as safetensors, atomically and
    with the mode of every file tvcore writes."""
    from ..checkpoints import save_state_dict

    save_state_dict(stats, path)


def read_statistics(path: str | os.PathLike) -> "StatisticsFile":
    """One task's statistics file, opened lazily."""
    return StatisticsFile(path)


class StatisticsFile(Mapping):
    """One task's statistics file, read one tensor at a time on access."""

    def __init__(self, path: str | os.PathLike):
        from safetensors import safe_open

        self.path = str(path)
        self._file = safe_open(self.path, framework="pt")
        self._keys = list(self._file.keys())

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        return self._file.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
