"""The BI-RADS class-imbalance experiment, with its controls.

Fine-tune the imbalanced 4-class baseline and the two one-vs-rest focus tasks;
build the enhancement vector ``E = tau(5-focus) - tau(2-focus)``; sweep the
enhanced model ``theta_baseline + alpha * E`` over an alpha grid and report overall
and per-class accuracy with intervals and confusion matrices.

The test and validation cases are carved once for the whole experiment (see
``data.protocols.apply_protocol``): no task trains on a case any task is judged
on, and a leak check across the three tasks is run and recorded.

Is a gain on the minority grade more than a shift of the decision boundary? Beside
``baseline + alpha * E``, at every alpha:

* a random vector with E's per-tensor norms (seeded): what any edit of that size does;
* a prior shift: the baseline's logits with a bias on the minority class, the bias
  chosen on validation to match the enhanced model's minority recall there, at
  the chosen alpha and at the fixed alpha = 1.0;
* McNemar's test of enhanced vs baseline on the same test images, with the case
  as unit (clustered when a case holds several views; the record names the test).

The experiment's claim is judged within the run: paired counts of grade 5 and
overall correctness at alpha 0 and 1.0 (``paired``), and the sweep's direction as
a case-level slope of correctness on alpha (``trend``).

Alpha is chosen on validation by balanced accuracy (predicting the minority grade
everywhere would win a minority-recall rule); the experiment's own table is at
the fixed alpha = 1.0, reported as fixed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data.protocols import check_no_leak_across
from ..evaluate import paired_change
from ..stats import paired_mcnemar, paired_trend
from ..vectors import TaskVector
from .common import Context, split_fingerprints


@dataclass
class BiradsConfig:
    baseline: str = "mini-ddsm/baseline"
    focus_low: str = "mini-ddsm/focus-2"   # the majority-grade focus task ("2 vs rest")
    focus_high: str = "mini-ddsm/focus-5"  # the minority-grade focus task ("5 vs rest")
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.25, 1.5])
    report_alpha: float = 1.0
    control_seed: int = 0


def random_like(vector: TaskVector, seed: int) -> TaskVector:
    """Gaussian noise with the vector's per-tensor norms: an edit of the same size
    and no direction."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(vector.keys()):
        t = vector[key]
        noise = torch.randn(t.shape, generator=gen, dtype=torch.float32)
        scale = t.float().norm() / noise.norm() if noise.norm() > 0 else torch.tensor(0.0)
        out[key] = (noise * scale).to(t.dtype)
    return TaskVector(out, name=f"random like {vector.name}")


def prior_shift_bias(labels: np.ndarray, logits: np.ndarray, cls: int, target_recall: float) -> float:
    """The smallest bias on class ``cls``'s logit whose recall of ``cls`` on these
    (validation) images reaches ``target_recall``."""
    others = np.delete(logits, cls, axis=1).max(axis=1)
    needed = np.sort(np.maximum(others - logits[:, cls], 0.0)[labels == cls])
    if needed.size == 0:
        return 0.0
    k = int(np.ceil(target_recall * needed.size - 1e-9))  # images of cls that must flip to cls
    if k <= 0:
        return 0.0
    b = float(needed[min(k, needed.size) - 1])
    return b + 1e-6 * max(1.0, abs(b))


def run(config: BiradsConfig, ctx: Context) -> dict:
    ctx.check_finetuned([config.baseline, config.focus_low, config.focus_high])  # a published set's files, all checked before any evaluation
    tasks = [ctx.task(t) for t in (config.baseline, config.focus_low, config.focus_high)]
    leak_check = check_no_leak_across(tasks)
    tau_base = ctx.vector(config.baseline)
    tau_low = ctx.vector(config.focus_low)
    tau_high = ctx.vector(config.focus_high)
    enhancement = tau_high - tau_low
    control = random_like(enhancement, config.control_seed)
    baseline_state = tau_base.apply_to(ctx.pretrained_state)
    names = ctx.task(config.baseline).class_names
    minority = len(names) - 1
    if 0.0 not in config.alphas:
        raise ValueError("the alpha grid must include 0 (the baseline itself)")

    metrics, sweep, controls = {}, [], []
    for key, task in (("focus_low", config.focus_low), ("focus_high", config.focus_high)):
        metrics[f"{key}.accuracy"] = ctx.evaluate_finetuned(task)["test"].overall.as_dict()

    test_preds, labels_test = {}, None
    with ctx.edits(enhancement, base=baseline_state) as edit:
        for alpha in config.alphas:
            edit.set(alpha)
            val = ctx.evaluate(config.baseline, "val")
            labels_test, preds = ctx.evaluator.predictions(config.baseline, "test")
            test = ctx.evaluator.metrics(config.baseline, "test", labels_test, preds)
            test_preds[alpha] = preds
            sweep.append({"alpha": alpha, "val": val.as_dict(), "test": test.as_dict()})
            prefixes = (["baseline"] if alpha == 0 else []) + (
                [f"enhanced[alpha={alpha:g}]"] if alpha == config.report_alpha else [])
            for prefix in prefixes:
                metrics[f"{prefix}.overall"] = test.overall.as_dict()
                for name, acc in test.per_class.items():
                    metrics[f"{prefix}.class[{name}]"] = acc.as_dict()
    with ctx.edits(control, base=baseline_state) as edit:
        for alpha in config.alphas:
            edit.set(alpha)
            val = ctx.evaluate(config.baseline, "val")
            test = ctx.evaluate(config.baseline, "test")
            controls.append({"alpha": alpha, "val_balanced": val.balanced, "test": test.as_dict()})

    # Chosen on validation by balanced accuracy; the smallest such alpha on ties.
    best = max(sweep, key=lambda r: (r["val"]["balanced_accuracy"], -r["alpha"]))
    chosen = best["alpha"]

    # The prior shift, matched on validation minority recall at the chosen alpha and
    # at the fixed alpha (where the chosen alpha is 0, the first is the baseline itself).
    ctx.load(baseline_state)
    val_labels, val_logits = ctx.evaluator.scores(config.baseline, "val")
    test_labels, test_logits = ctx.evaluator.scores(config.baseline, "test")

    def prior_shift(row: dict) -> dict:
        per_class = row["val"]["per_class"]
        target = per_class[names[minority]]["value"] if names[minority] in per_class else 0.0
        bias = prior_shift_bias(val_labels, val_logits, minority, target)
        shifted = test_logits.copy()
        shifted[:, minority] += bias
        prior = ctx.evaluator.metrics(config.baseline, "test", test_labels, shifted.argmax(axis=1))
        return {"alpha": row["alpha"], "bias": bias, "matched_val_recall": target, "test": prior.as_dict()}

    fixed_row = next((r for r in sweep if r["alpha"] == config.report_alpha), None)
    prior_shifts = {"chosen": prior_shift(best)}
    if fixed_row is not None:
        prior_shifts["fixed"] = prior_shift(fixed_row)

    cases = np.array([s.case for s in ctx.task(config.baseline)["test"].samples])

    def paired(alpha: float) -> dict:
        enhanced_ok = test_preds[alpha] == labels_test
        baseline_ok = test_preds[0.0] == labels_test
        return {"alpha": alpha, **paired_mcnemar(enhanced_ok, baseline_ok, cases).as_dict(),
                "reading": "only_a_correct: enhanced right, baseline wrong; only_b_correct: the reverse"}

    paired_tests = {"chosen": paired(chosen)}
    # Paired counts for the verdict: the same test images at alpha 0 and at the
    # experiment's fixed alpha, overall and on the minority grade; and the sweep's
    # direction from 0 to the fixed alpha, case-level.
    paired_counts, trend = {}, {}
    mask = labels_test == minority
    if config.report_alpha in test_preds:
        paired_tests["fixed"] = paired(config.report_alpha)
        base_ok, enh_ok = test_preds[0.0] == labels_test, test_preds[config.report_alpha] == labels_test
        fixed = f"enhanced[alpha={config.report_alpha:g}]"
        paired_counts[f"{fixed}.overall vs baseline.overall"] = paired_change(base_ok, enh_ok, cases)
        paired_counts[f"{fixed}.class[{names[minority]}] vs baseline.class[{names[minority]}]"] = paired_change(
            base_ok[mask], enh_ok[mask], cases[mask])
        grid = sorted(a for a in test_preds if 0.0 <= a <= config.report_alpha)
        correct = np.stack([test_preds[a] == labels_test for a in grid])
        trend["overall"] = paired_trend(correct, grid, cases)
        if mask.any():
            trend[names[minority]] = paired_trend(correct[:, mask], grid, cases[mask])
    return {
        "experiment": "birads",
        "config": asdict(config),
        "metrics": metrics,
        "sweep": sweep,
        "selection": {"split": "val", "rule": "max balanced accuracy", "alpha": chosen,
                      "test_at_alpha": best["test"]["overall"],
                      "minority_test_at_alpha": best["test"]["per_class"].get(names[minority]),
                      "fixed_alpha": config.report_alpha,
                      "fixed_alpha_note": "the experiment's own table; fixed in advance, not chosen"},
        "controls": {
            "random_vector": {"what": "Gaussian noise with E's per-tensor norms, same alphas",
                              "seed": config.control_seed, "sweep": controls},
            "prior_shift": {"what": "baseline logits + bias on the minority class, bias chosen on val to match "
                                    "the enhanced model's val minority recall at the chosen and at the fixed alpha",
                            **prior_shifts["chosen"], "at": prior_shifts},
        },
        "paired_tests": paired_tests,
        "paired": paired_counts,
        "trend": trend,
        "leak_check": leak_check,
        "vector_norms": {"baseline": tau_base.norm(), "focus_low": tau_low.norm(), "focus_high": tau_high.norm(),
                         "enhancement": enhancement.norm(), "random control": control.norm(),
                         "cos(focus_low, focus_high)": tau_low.cosine(tau_high)},
        "class_names": names,
        "label_notes": ctx.task(config.baseline).notes,
        "split_hashes": split_fingerprints(ctx, [config.baseline, config.focus_low, config.focus_high]),
    }
