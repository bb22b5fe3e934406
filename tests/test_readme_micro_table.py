"""The README's micro-reproduction table states what the committed baselines hold:
every mean ± sd in it is computed here from the baselines' stored seeds, so a
baseline rebuilt without its table fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def metrics(suite: str) -> dict:
    return json.loads((ROOT / "baselines" / f"{suite}-micro.json").read_text())["metrics"]


def per_seed(m: dict, names) -> np.ndarray:
    """The mean of ``names`` in each seed, in points."""
    names = list(names)
    assert names, "no metric matched"
    return 100 * np.mean([m[n]["values"] for n in names], axis=0)


def pm(x: np.ndarray) -> str:
    return f"{x.mean():.1f} ± {x.std(ddof=1):.1f}"


def picked(m: dict, prefix: str, suffix: str = "") -> list[str]:
    return [n for n in m if n.startswith(prefix) and n.endswith(suffix)]


def negation_rows() -> list[str]:
    m = metrics("negation")
    pre = per_seed(m, picked(m, "pretrained[")).mean()
    return [f"{pre:.1f} vs {pm(per_seed(m, picked(m, 'finetuned[')))} on the four negation targets",
            f"targets {pre:.1f} -> {pm(per_seed(m, picked(m, 'negated[', '.target')))}, control "
            f"{per_seed(m, ['pretrained.control']).mean():.1f} -> {pm(per_seed(m, picked(m, 'negated[', '.control')))}"]


def addition_rows() -> list[str]:
    m = metrics("addition")
    tasks = [n[len("merged["):-1] for n in picked(m, "merged[")]
    normalized = np.mean([per_seed(m, [f"merged[{t}]"]) / per_seed(m, [f"finetuned[{t}]"]) for t in tasks], axis=0)
    return [f"merged {pm(per_seed(m, picked(m, 'merged[')))} vs {per_seed(m, picked(m, 'pretrained[')).mean():.1f} "
            "pre-trained",
            f"{pm(100 * normalized)}% ({100 * normalized.min():.1f}-{100 * normalized.max():.1f})"]


def analogy_rows() -> list[str]:
    m = metrics("analogy")
    return [f"target {per_seed(m, ['pretrained.target']).mean():.1f} -> {pm(per_seed(m, ['analogy.target']))} "
            f"(oracle {per_seed(m, ['oracle.target']).mean():.1f}), control "
            f"{per_seed(m, ['pretrained.control']).mean():.1f} -> {pm(per_seed(m, ['analogy.control']))}"]


def birads_rows() -> list[str]:
    m = metrics("birads")
    grade5 = per_seed(m, ["enhanced[alpha=1].class[grade 5]"])
    before, after = per_seed(m, ["baseline.overall"]), per_seed(m, ["enhanced[alpha=1].overall"])
    return [f"grade 5 at {pm(per_seed(m, ['baseline.class[grade 5]']))}",
            f"{pm(before)} -> {pm(after)}, in {int((after < before).sum())} of {len(before)} seeds",
            f"grade 5 falls to {pm(grade5)} ({grade5.min():.1f}-{grade5.max():.1f})",
            f"grade 2 collapses to {per_seed(m, ['enhanced[alpha=1].class[grade 2]']).mean():.1f}"]


def merging_rows() -> list[str]:
    """The merging benchmark's ranking: each method's mean test accuracy over the
    four tasks and its mean normalized accuracy (merged / fine-tuned), per seed."""
    m = json.loads((ROOT / "baselines" / "merging-micro.json").read_text())["metrics"]
    tasks = sorted({n.split("][")[1][:-1] for n in picked(m, "merged[")})
    methods = sorted({n.split("][")[0][len("merged["):] for n in picked(m, "merged[")})
    rows = []
    for method in methods:
        acc = per_seed(m, [f"merged[{method}][{t}]" for t in tasks])
        norm = 100 * np.mean([per_seed(m, [f"merged[{method}][{t}]"]) / per_seed(m, [f"finetuned[{t}]"])
                              for t in tasks], axis=0)
        rows.append((acc.mean(), method, pm(acc), f"{pm(norm)}%"))
    rows.sort(key=lambda r: -r[0])
    n = len(m[picked(m, "merged[")[0]]["values"])
    return ([f"pre-trained {per_seed(m, picked(m, 'pretrained[')).mean():.1f}, fine-tuned "
             f"{per_seed(m, picked(m, 'finetuned[')).mean():.1f}",
             f"| rank | method | accuracy (mean ± sd, {n} seeds) |"]
            + [f"| {i} | {method} | {acc} | {norm} |" for i, (_, method, acc, norm) in enumerate(rows, 1)])


@pytest.mark.parametrize("rows", [negation_rows, addition_rows, analogy_rows, birads_rows, merging_rows],
                         ids=["negation", "addition", "analogy", "birads", "merging"])
def test_the_readmes_micro_table_is_the_committed_baselines(rows):
    text = (ROOT / "README.md").read_text()
    table = "\n".join(line for line in text.splitlines() if line.startswith("| "))
    assert [row for row in rows() if row not in table and row not in " ".join(text.split())] == []
