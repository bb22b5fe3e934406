"""Analogies: ``tau_C + tau_B - tau_A`` for a target task that no model was
fine-tuned on ("A is to B as C is to target"). The control is a task outside the
analogy (none of A, B, C or the target), so it shows what the edit costs
elsewhere. Lambda is chosen on validation as negation chooses it
(:func:`tvcore.experiments.selection.choose_lambda`), in the other direction:
the highest target accuracy among the lambdas whose control accuracy stays at or
above ``control_keep`` times the pre-trained model's; without a control, the
highest target accuracy. The target's test accuracy is compared with the
pre-trained model and with a model fine-tuned on the target itself (the oracle).

What the analogy adds over C alone: ``tau_C`` by itself, chosen by the same
grid and rule, is reported beside the gated metrics (``reported``, never gated),
so a gain that ``tau_C`` makes on its own is not credited to ``tau_B - tau_A``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import UsageError
from ..vectors import TaskVector
from .common import PAPER_GRID, Context, split_fingerprints
from .selection import choose_lambda


@dataclass
class AnalogyConfig:
    a: str
    b: str
    c: str
    target: str
    control: str | None = None
    lambdas: list[float] = field(default_factory=lambda: list(PAPER_GRID))
    oracle: bool = True
    control_keep: float = 0.95

    def __post_init__(self):
        inside = {"a": self.a, "b": self.b, "c": self.c, "target": self.target}
        clash = [k for k, v in inside.items() if v == self.control]
        if clash:
            raise UsageError(f"analogy control {self.control!r} is also task {', '.join(clash)}; "
                             "choose a control outside the analogy (it would move with the edit)")


def _chosen(ctx: Context, config: AnalogyConfig, vector: TaskVector, floor: float | None, prefix: str,
            out: dict) -> tuple[list[dict], dict]:
    """Sweep ``theta_pre + lambda * vector`` on validation, choose lambda, and put
    the target's (and control's) test metrics there and at lambda 0 into ``out``
    under ``<prefix>.target`` / ``<prefix>.control``."""
    with ctx.edits(vector) as edit:
        rows = []
        for lam in config.lambdas:
            edit.set(lam)
            row = {"lambda": lam, "target": ctx.accuracy(config.target, "val")}
            if config.control:
                row["control"] = ctx.accuracy(config.control, "val")
            rows.append(row)
        if config.control:
            best = choose_lambda(rows, floor, goal="higher")
        else:
            best = max(rows, key=lambda r: (r["target"], -r["lambda"]))
        edit.set(best["lambda"])
        out[f"{prefix}.target"] = ctx.evaluate(config.target, "test").overall.as_dict()
        if config.control:
            out[f"{prefix}.control"] = ctx.evaluate(config.control, "test").overall.as_dict()
    return rows, best


def run(config: AnalogyConfig, ctx: Context) -> dict:
    ctx.check_finetuned([config.a, config.b, config.c])  # a published set's files, all checked before any evaluation
    floor = None
    metrics: dict[str, dict] = {}
    ctx.load(ctx.pretrained_state)
    metrics["pretrained.target"] = ctx.evaluate(config.target, "test").overall.as_dict()
    if config.control:
        floor = config.control_keep * ctx.accuracy(config.control, "val")
        metrics["pretrained.control"] = ctx.evaluate(config.control, "test").overall.as_dict()
    vector = ctx.vector(config.c) + ctx.vector(config.b) - ctx.vector(config.a)
    rows, best = _chosen(ctx, config, vector, floor, "analogy", metrics)
    reported: dict[str, dict] = {}
    c_rows, c_best = _chosen(ctx, config, ctx.vector(config.c), floor, "c_only", reported)
    if config.oracle:
        metrics["oracle.target"] = ctx.evaluate_finetuned(config.target)["test"].overall.as_dict()
    tasks = [config.target] + ([config.control] if config.control else [])
    rule = (f"max target acc with control >= {config.control_keep} x pretrained" if config.control
            else "max target accuracy")
    return {
        "experiment": "analogy",
        "config": asdict(config),
        "metrics": metrics,
        "reported": reported,
        "selection": {"split": "val", "rule": rule, "control_floor": floor, "lambda": best["lambda"],
                      "val_sweep": rows},
        "controls": {"c_only": {"what": "tau_C alone, lambda chosen on val by the same grid and rule",
                                "lambda": c_best["lambda"], "val_sweep": c_rows}},
        "split_hashes": split_fingerprints(ctx, tasks),
    }
