"""Merging: every registered merging method on the same task vectors, one merged
model per method, judged on every task.

Each task's fine-tuned model is evaluated on val (to normalize) and test (for the
table). Each method's hyperparameters are chosen over its grid by
:func:`tvcore.merging.select` with the score the eight-task benchmark uses: the
mean normalized *validation* accuracy (merged / fine-tuned, per task; Ilharco et
al., ICLR 2023, Section 5, and the merging papers after it); test accuracy,
absolute and normalized, is reported at the chosen point only.

RegMean and Fisher merging need data: each task's statistics are taken on that
task's fine-tuned encoder over a few training batches (Jin et al., ICLR 2023,
Section 3: Grams of each linear layer's inputs; Matena & Raffel, NeurIPS 2022,
Section 2.2: the diagonal Fisher of the fine-tuned classifier, here the encoder
under the task's frozen zero-shot head).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Mapping, Sequence

import torch

from ..errors import UsageError
from ..merging import METHODS, diagonal_fisher, linear_input_grams, method_named, select
from .addition import normalized
from .common import Context, split_fingerprints

SCORE = "mean normalized validation accuracy (merged / fine-tuned, per task)"


@dataclass
class MergingConfig:
    tasks: list[str]
    methods: tuple[str, ...] = tuple(METHODS)
    # Training batches (of the recipe's batch size) per task for RegMean's and Fisher's statistics.
    stats_batches: int = 4
    # method -> {hyperparameter: values}: replaces that method's published grid
    # (a one-value tuple pins it); None or a method left out: the published grid.
    grids: Mapping[str, Mapping[str, tuple]] | None = None

    def __post_init__(self):
        self.methods = tuple(self.methods)
        for name in self.methods:
            method_named(name)
        unknown = sorted(set(self.grids or {}) - set(self.methods))
        if unknown:
            raise UsageError(f"merging: grids given for {', '.join(unknown)}, which is not among the methods run "
                             f"({', '.join(self.methods)}); drop it or add it to methods")
        if self.stats_batches < 1:
            raise UsageError(f"merging: stats_batches must be at least 1, got {self.stats_batches}")

    def grid(self, name: str) -> Mapping[str, tuple] | None:
        return (self.grids or {}).get(name)

    def only(self, methods: Sequence[str]) -> "MergingConfig":
        """The same config for a subset of its methods (their grids kept)."""
        methods = tuple(dict.fromkeys(methods))
        missing = [m for m in methods if m not in self.methods]
        if missing:
            method_named(missing[0])  # an unknown name: the registry's own error, listing the methods
            raise UsageError(f"merging: {missing[0]} is not among this suite's methods ({', '.join(self.methods)})")
        grids = {m: g for m, g in (self.grids or {}).items() if m in methods} or None
        return replace(self, methods=methods, grids=grids)

    def shortened(self, lams: Sequence[float], iterations: int = 2) -> "MergingConfig":
        """A dry run's config: each method's ``lam`` over ``lams`` where its grid has
        one, every other hyperparameter at its default, WUDI's optimization cut to
        ``iterations`` steps, one statistics batch per task."""
        grids = {}
        for name in self.methods:
            method = METHODS[name]
            g = {"lam": tuple(lams)} if "lam" in method.grid else {}
            if "iterations" in method.defaults:
                g["iterations"] = (iterations,)
            grids[name] = g
        return replace(self, grids=grids, stats_batches=1)


def training_batches(ctx: Context, task: str, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of the recipe's batch size from the task's train split (the
    evaluation transform, on the device): examples drawn by the recipe's seed, so a
    split stored class by class gives every class; only the drawn rows are kept."""
    size, total = ctx.recipe.batch_size, len(ctx.task(task)["train"])
    wanted = torch.zeros(total, dtype=torch.bool)
    wanted[torch.randperm(total, generator=torch.Generator().manual_seed(ctx.recipe.seed))[:n * size]] = True
    images, labels, start = [], [], 0
    for x, y in ctx.tasks.batches(task, "train"):
        keep = wanted[start:start + len(y)]
        start += len(y)
        if keep.any():
            images.append(x[keep.to(x.device)])
            labels.append(y[keep.to(y.device)])
    return list(zip(torch.cat(images).split(size), torch.cat(labels).split(size)))


def task_statistics(ctx: Context, task: str, tau, kind: str, n_batches: int) -> dict[str, torch.Tensor]:
    """One task's statistics for a data-dependent method, keyed like its vector:
    ``"grams"`` of the fine-tuned encoder's linear inputs, or the ``"fisher"`` of
    the fine-tuned encoder under the task's zero-shot head (its logits)."""
    batches = training_batches(ctx, task, n_batches)
    encoder = ctx.evaluator.encoder
    with ctx.edits(tau) as edit:
        edit.set(1.0)
        if kind == "grams":
            return linear_input_grams(encoder, batches)
        classifier = ctx.evaluator.classifier(task)
        prefix = "image_encoder."
        # The evaluator's encoder is frozen; the Fisher needs its gradients (and only them: no step is taken).
        trainable = {name: p.requires_grad for name, p in encoder.named_parameters()}
        encoder.requires_grad_(True)
        try:
            fisher = diagonal_fisher(classifier, batches, seed=ctx.recipe.seed)
        finally:
            for name, p in encoder.named_parameters():
                p.requires_grad_(trainable[name])
        return {k[len(prefix):]: v for k, v in fisher.items() if k.startswith(prefix)}


def run(config: MergingConfig, ctx: Context) -> dict:
    ctx.check_finetuned(config.tasks)  # a published set's files, all checked before any evaluation
    taus = [ctx.vector(t) for t in config.tasks]
    finetuned = {t: ctx.evaluate_finetuned(t, ("val", "test")) for t in config.tasks}
    ft_val = {t: finetuned[t]["val"].overall.value for t in config.tasks}
    ft_test = {t: finetuned[t]["test"].overall for t in config.tasks}
    with ctx.edits(taus[0]) as edit:
        edit.set(0.0)
        zero_shot = {t: ctx.evaluate(t, "test").overall for t in config.tasks}

    stats_cache: dict[str, list] = {}

    def stats_of(kind: str | None):
        if kind is None:
            return None
        if kind not in stats_cache:
            t0 = time.perf_counter()
            stats_cache[kind] = [task_statistics(ctx, t, tau, kind, config.stats_batches)
                                 for t, tau in zip(config.tasks, taus)]
            ctx.timings[f"statistics[{kind}]_s"] = time.perf_counter() - t0
        return stats_cache[kind]

    metrics, table, summary, selections = {}, [], {}, {}
    for t in config.tasks:
        metrics[f"finetuned[{t}]"] = ft_test[t].as_dict()
        metrics[f"pretrained[{t}]"] = zero_shot[t].as_dict()
    for name in config.methods:
        method = METHODS[name]
        grid_rows = []

        def val_score(merged):
            with ctx.edits(merged) as edit:
                edit.set(1.0)
                accs = {t: ctx.accuracy(t, "val") for t in config.tasks}
            grid_rows.append({"val": accs, "normalized": normalized(accs, ft_val)})
            return grid_rows[-1]["normalized"]

        stats = stats_of(method.statistics)
        t0 = time.perf_counter()
        chosen = select(method, taus, val_score, stats=stats, grid=config.grid(name))
        ctx.timings[f"select[{name}]_s"] = time.perf_counter() - t0
        for row, (point, _) in zip(grid_rows, chosen.scores):
            row["hyperparameters"] = point
        with ctx.edits(chosen.merged) as edit:
            edit.set(1.0)
            merged = {t: ctx.evaluate(t, "test").overall for t in config.tasks}
        for t in config.tasks:
            m, ft = merged[t], ft_test[t].value
            metrics[f"merged[{name}][{t}]"] = m.as_dict()
            table.append({"method": name, "task": t, "merged": m.value, "normalized": m.value / ft if ft else None})
        summary[name] = {"absolute": sum(m.value for m in merged.values()) / len(merged),
                         "normalized": normalized({t: m.value for t, m in merged.items()},
                                                  {t: ft_test[t].value for t in config.tasks})}
        selections[name] = {"rule": method.rule, "chosen": chosen.hyperparameters, "val_normalized": chosen.score,
                            "grid": grid_rows, "citation": method.citation,
                            "statistics": method.statistics and {"kind": method.statistics,
                                                                 "batches": config.stats_batches,
                                                                 "batch_size": ctx.recipe.batch_size}}
    n = len(config.tasks)
    summary["pretrained"] = {"absolute": sum(z.value for z in zero_shot.values()) / n}
    summary["finetuned"] = {"absolute": sum(f.value for f in ft_test.values()) / n}
    return {
        "experiment": "merging",
        "config": asdict(config),
        "metrics": metrics,
        "table": table,
        "summary": summary,
        "selection": {"split": "val", "score": SCORE, "normalized_over": [t for t in config.tasks if ft_val[t] > 0],
                      "methods": selections},
        "split_hashes": split_fingerprints(ctx, config.tasks),
    }
