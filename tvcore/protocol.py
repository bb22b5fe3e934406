"""A run's protocol: what two runs must share for their numbers to measure the same
experiment. The experiment and its config (tasks, lambda grid, methods, ...), the
fine-tuning recipe less its seed, the pre-trained weights (by content), QuickGELU,
the rehearsal cap, a published fine-tuned set, and per task its classes, image
counts per split, cap and prompts. Not the device, the evaluation's precision or
batch, timings or the seed: those may change and the numbers still mean the same
thing (the gate's tolerances and ``tvcore compare`` judge what they do to them).

The test data themselves are compared by their hashes
(:func:`tvcore.gate.check_same_test_sets`); this compares everything else that
defines the run. Only the fields both sides record are compared, so a record
written by another tvcore version is judged on what the two have in common.
"""

from __future__ import annotations

import json
from typing import Mapping

# Per task, what defines it beside its test images' hashes.
TASK_FIELDS = ("classes", "images", "capped_at", "prompt_fingerprint")
# The recipe's fields that vary between runs of one protocol.
RECIPE_VARIES = ("seed",)


def _quick_gelu(model: Mapping) -> object:
    value = model.get("quick_gelu")
    return value.get("value") if isinstance(value, Mapping) else value


def protocol(experiment: str | None, config: Mapping | None, context: Mapping | None) -> dict[str, object]:
    """The protocol as flat ``field -> value`` pairs (``config.lambdas``,
    ``recipe.steps``, ``tasks[digits/rot90].prompt_fingerprint``, ...)."""
    context = context or {}
    out: dict[str, object] = {} if experiment is None else {"experiment": experiment}
    out.update({f"config.{k}": v for k, v in (config or {}).items()})
    out.update({f"recipe.{k}": v for k, v in (context.get("recipe") or {}).items() if k not in RECIPE_VARIES})
    for key in ("base_weights", "rehearsal_cap", "finetuned_set"):
        if key in context:
            out[key] = context[key]
    if isinstance(context.get("model"), Mapping) and "quick_gelu" in context["model"]:
        out["model.quick_gelu"] = _quick_gelu(context["model"])
    for task, info in (context.get("tasks") or {}).items():
        out.update({f"tasks[{task}].{k}": info[k] for k in TASK_FIELDS if k in info})
    return out


def of_record(record: Mapping) -> dict[str, object]:
    return protocol(record.get("experiment"), record.get("config"), record.get("context"))


def of_baseline(baseline: Mapping) -> dict[str, object]:
    """A baseline's protocol: the config and context of the records it pooled."""
    made = baseline.get("config") or {}
    return protocol(made.get("experiment", baseline.get("experiment")), made.get("config"), made.get("context"))


def _same(a: object, b: object) -> bool:
    # Through JSON, as records are stored: a tuple and a list of the same values agree.
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def differences(ours: Mapping[str, object], theirs: Mapping[str, object]) -> list[tuple[str, object, object]]:
    """``(field, our value, their value)`` for every field both protocols record
    with different values, in field order."""
    return [(k, ours[k], theirs[k]) for k in sorted(set(ours) & set(theirs)) if not _same(ours[k], theirs[k])]


def describe(diffs: list[tuple[str, object, object]], ours: str, theirs: str, most: int = 3) -> str:
    """``"recipe.steps 300 in the record, 150 in the baseline; ..."`` for ``ours``
    "in the record" and ``theirs`` "in the baseline"."""
    def short(value: object) -> str:
        text = json.dumps(value, sort_keys=True)
        return text if len(text) <= 60 else text[:57] + "..."

    shown = [f"{k} {short(a)} {ours}, {short(b)} {theirs}" for k, a, b in diffs[:most]]
    more = f" (and {len(diffs) - most} more)" if len(diffs) > most else ""
    return "; ".join(shown) + more
