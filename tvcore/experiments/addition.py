"""Addition: one model for many tasks, ``theta_pre + lambda * sum(tau_i)``.

Lambda is chosen on the validation splits over {0, 0.05, ..., 1} by the mean
normalized accuracy (merged accuracy / fine-tuned accuracy, per task). Test
accuracy, absolute and normalized, is reported per task at that lambda.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .common import PAPER_GRID, Context, split_fingerprints


@dataclass
class AdditionConfig:
    tasks: list[str]
    lambdas: list[float] = field(default_factory=lambda: list(PAPER_GRID))


def normalized(accs: dict, finetuned: dict) -> float:
    """Mean of merged / fine-tuned accuracy over the tasks. A task whose fine-tuned
    model scores 0 has no ratio and is left out of the mean (0 if no task has one)."""
    ratios = [accs[t] / finetuned[t] for t in accs if finetuned[t] > 0]
    return sum(ratios) / len(ratios) if ratios else 0.0


def run(config: AdditionConfig, ctx: Context) -> dict:
    ctx.check_finetuned(config.tasks)  # a published set's files, all checked before any evaluation
    taus = [ctx.vector(t) for t in config.tasks]
    total = sum(taus)
    # Each task's own fine-tuned model, on val (for normalizing) and test (for the table).
    finetuned = {t: ctx.evaluate_finetuned(t, ("val", "test")) for t in config.tasks}
    ft_val = {t: finetuned[t]["val"].overall.value for t in config.tasks}
    rows = []
    with ctx.edits(total) as edit:
        for lam in config.lambdas:
            edit.set(lam)
            accs = {t: ctx.accuracy(t, "val") for t in config.tasks}
            rows.append({"lambda": lam, "val": accs, "normalized": normalized(accs, ft_val)})
        best = max(rows, key=lambda r: (r["normalized"], -r["lambda"]))
        edit.set(best["lambda"])
        merged = {t: ctx.evaluate(t, "test").overall for t in config.tasks}
        edit.set(0.0)
        zero_shot = {t: ctx.evaluate(t, "test").overall for t in config.tasks}
    metrics, table = {}, []
    for t in config.tasks:
        m, zs, ft = merged[t], zero_shot[t], finetuned[t]["test"].overall
        metrics[f"merged[{t}]"] = m.as_dict()
        metrics[f"finetuned[{t}]"] = ft.as_dict()
        metrics[f"pretrained[{t}]"] = zs.as_dict()
        table.append({"task": t, "pretrained": zs.value, "finetuned": ft.value, "merged": m.value,
                      "normalized": m.value / ft.value if ft.value else None})
    n = len(table)
    summary = {k: sum(r[k] for r in table) / n for k in ("pretrained", "finetuned", "merged")}
    summary["normalized"] = normalized({r["task"]: r["merged"] for r in table},
                                       {r["task"]: r["finetuned"] for r in table})
    return {
        "experiment": "addition",
        "config": asdict(config),
        "metrics": metrics,
        "table": table,
        "summary": summary,
        "selection": {"split": "val", "rule": "max mean normalized accuracy", "lambda": best["lambda"],
                      "normalized_over": [t for t in config.tasks if ft_val[t] > 0],
                      "val_sweep": rows},
        "cosines": {f"{a.name}|{b.name}": a.cosine(b) for i, a in enumerate(taus) for b in taus[i + 1:]},
        "split_hashes": split_fingerprints(ctx, config.tasks),
    }
