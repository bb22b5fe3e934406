"""Tables, confusion matrices and alpha-sweep plots of result records."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from tabulate import tabulate

from .outputs import atomic_write


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def confusion_text(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """A confusion matrix in the BI-RADS experiment's layout::

        Pred:       2   3   4   5
        True 2:    71  24   5   0
    """
    short = [str(label).split()[-1] for label in labels]
    width = max(4, *(len(s) + 1 for s in short), *(len(str(v)) + 1 for row in matrix for v in row))
    head_w = max(len(f"True {s}:") for s in short) + 1
    lines = ["Pred:".ljust(head_w) + "".join(s.rjust(width) for s in short)]
    for s, row in zip(short, matrix):
        lines.append(f"True {s}:".ljust(head_w) + "".join(str(int(v)).rjust(width) for v in row))
    return "\n".join(lines)


def metrics_table(metrics: Mapping[str, Mapping]) -> str:
    """Metrics with their 95% intervals: Wilson for independent images, a case-level
    bootstrap where a case (patient) has several images."""
    rows = [[name, pct(m["value"]), f"[{pct(m['low'])}, {pct(m['high'])}]", m.get("interval", "wilson"),
             f"{m['correct']}/{m['total']}" + (f" ({m['cases']} cases)" if m.get("cases") else "")]
            for name, m in metrics.items()]
    return tabulate(rows, headers=["metric", "acc %", "95% interval", "method", "n"], tablefmt="github")


def birads_report(record: Mapping) -> str:
    names = record["class_names"]
    out = [f"BI-RADS experiment ({record.get('suite', '')}); labels: {record.get('label_notes', '')}"]
    rows = []
    for r in record["sweep"]:
        t = r["test"]
        rows.append([r["alpha"], pct(t["overall"]["value"]), *[pct(t["per_class"][n]["value"]) for n in names],
                     pct(r["val"]["per_class"][names[-1]]["value"])])
    out.append(tabulate(rows, headers=["alpha", "overall", *names, f"val {names[-1]}"], tablefmt="github"))
    sel = record["selection"]
    minority = sel.get("minority_test_at_alpha") or {}
    out.append(f"alpha chosen on {sel['split']} ({sel['rule']}): {sel['alpha']:g} -> test overall "
               f"{pct(sel['test_at_alpha']['value'])}%, {names[-1]} {pct(minority.get('value'))}%; "
               f"the experiment's own alpha {sel.get('fixed_alpha', record['config']['report_alpha']):g} is fixed")
    controls = record.get("controls")
    if controls:
        rows = [[c["alpha"], pct(c["test"]["overall"]["value"]),
                 *[pct(c["test"]["per_class"].get(n, {}).get("value")) for n in names]]
                for c in controls["random_vector"]["sweep"]]
        out.append("control: a random vector with E's per-tensor norms (test)")
        out.append(tabulate(rows, headers=["alpha", "overall", *names], tablefmt="github"))
        shifts = controls["prior_shift"].get("at") or {"chosen": controls["prior_shift"]}
        for label, prior in shifts.items():
            out.append(f"control: prior shift matched at the {label} alpha {prior.get('alpha', 0):g} (bias "
                       f"{prior['bias']:.3g} on {names[-1]}, val recall {pct(prior['matched_val_recall'])}%): test "
                       f"overall {pct(prior['test']['overall']['value'])}%, "
                       f"{names[-1]} {pct(prior['test']['per_class'].get(names[-1], {}).get('value'))}%")
    for label, t in record.get("paired_tests", {}).items():
        out.append(f"{t.get('test', 'exact McNemar')}, enhanced at alpha {t['alpha']:g} ({label}) vs baseline: "
                   f"enhanced-only right {t['only_a_correct']}, baseline-only right {t['only_b_correct']}, "
                   f"p = {t['p_value']:.3g}")
    if record.get("leak_check"):
        lc = record["leak_check"]
        out.append(f"leak check across {len(lc['tasks'])} tasks: {lc['result']} ({lc['judged_cases']} judged cases "
                   "never trained on)")
    m = record["metrics"]
    out.append(f"focus tasks (binary test accuracy): low {pct(m['focus_low.accuracy']['value'])}%, "
               f"high {pct(m['focus_high.accuracy']['value'])}%")
    first = record["sweep"][0]
    out.append(f"Baseline (Overall: {pct(first['test']['overall']['value'])}%)")
    out.append(confusion_text(first["test"]["confusion_matrix"], names))
    for r in record["sweep"]:
        if r["alpha"] == record["config"]["report_alpha"]:
            out.append(f"alpha={r['alpha']:g} (Overall: {pct(r['test']['overall']['value'])}%)")
            out.append(confusion_text(r["test"]["confusion_matrix"], names))
    return "\n".join(out)


def negation_report(record: Mapping) -> str:
    m = record["metrics"]
    reported = record.get("reported", {})
    controls = "controls" in record
    rows = []
    for target, sel in record["selection"]["per_task"].items():
        row = [target, pct(m[f"pretrained[{target}].target"]["value"]),
               pct(m[f"finetuned[{target}].target"]["value"]), sel["lambda"],
               pct(m[f"negated[{target}].target"]["value"]), pct(m[f"negated[{target}].control"]["value"])]
        if controls:
            random_lambda = record["controls"]["random_vector"]["per_task"][target]["lambda"]
            row += [random_lambda, *[pct(reported.get(f"{kind}[{target}].{part}", {}).get("value"))
                                     for kind in ("random", "ascent") for part in ("target", "control")]]
        rows.append(row)
    s = record["summary"]
    average = ["average", pct(s["pretrained"]["target"]), pct(s["finetuned"]["target"]), "",
               pct(s["negative task vector"]["target"]), pct(s["negative task vector"]["control"])]
    headers = ["target", "pre-trained", "fine-tuned", "lambda (val)", "negated target", "negated control"]
    if controls:
        average += ["", *[pct(s[row][part]) for row in ("random vector", "gradient ascent")
                          for part in ("target", "control")]]
        headers += ["random lambda (val)", "random target", "random control", "ascent target", "ascent control"]
    rows.append(average)
    out = [f"Negation ({record.get('suite', '')}); control pre-trained: {pct(s['pretrained']['control'])}%",
           tabulate(rows, headers=headers, tablefmt="github")]
    if controls:
        # Table 1's layout: one row per method, averaged over the targets.
        table = [[method, pct(s[key]["target"]), pct(s[key].get("control"))]
                 for method, key in (("pre-trained", "pretrained"), ("fine-tuned", "finetuned"),
                                     ("gradient ascent", "gradient ascent"), ("random vector", "random vector"),
                                     ("negative task vector", "negative task vector"))]
        out.append(f"Table 1 (average over {len(record['selection']['per_task'])} targets; control "
                   f"{record['config']['control']})")
        out.append(tabulate(table, headers=["method", "target %", "control %"], tablefmt="github"))
        ascent = record["controls"]["gradient_ascent"]
        diverged = [t for t, r in ascent["per_task"].items() if not r["finite"]]
        out.append(f"gradient ascent stopped at {ascent['stopping']}"
                   + (f"; non-finite weights (not evaluated, left out of the average): {', '.join(diverged)}"
                      if diverged else ""))
    return "\n".join(out)


def addition_report(record: Mapping) -> str:
    rows = [[r["task"], pct(r["pretrained"]), pct(r["finetuned"]), pct(r["merged"]), pct(r["normalized"])]
            for r in record["table"]]
    s = record["summary"]
    rows.append(["average", pct(s["pretrained"]), pct(s["finetuned"]), pct(s["merged"]), pct(s["normalized"])])
    return (f"Addition ({record.get('suite', '')}); lambda chosen on val: {record['selection']['lambda']:g}\n"
            + tabulate(rows, headers=["task", "pre-trained", "fine-tuned", "merged", "normalized"],
                       tablefmt="github"))


def analogy_report(record: Mapping) -> str:
    c, sel = record["config"], record["selection"]
    head = (f"Analogy ({record.get('suite', '')}): {c['c']} + {c['b']} - {c['a']} -> {c['target']}; "
            f"lambda chosen on val: {sel['lambda']:g} ({sel.get('rule', 'max target accuracy')})")
    if c.get("control"):
        floor = sel.get("control_floor")
        head += f"\ncontrol: {c['control']}" + (f", val floor {pct(floor)}%" if floor is not None else "")
    out = head + "\n" + metrics_table(record["metrics"])
    if record.get("reported"):
        c_only = record.get("controls", {}).get("c_only", {})
        out += (f"\nreported, not gated: tau_C alone ({c['c']}), lambda {c_only.get('lambda', float('nan')):g} "
                "by the same rule\n" + metrics_table(record["reported"]))
    return out


def merging_report(record: Mapping) -> str:
    """Method x task test accuracy (%), with the average and the mean normalized
    accuracy; the hyperparameters each method chose on val."""
    tasks, s = record["config"]["tasks"], record["summary"]
    m = record["metrics"]
    rows = [[label, *(pct(m[f"{label}[{t}]"]["value"]) for t in tasks), pct(s[label]["absolute"]), "-"]
            for label in ("pretrained", "finetuned")]
    for name in record["config"]["methods"]:
        rows.append([name, *(pct(m[f"merged[{name}][{t}]"]["value"]) for t in tasks), pct(s[name]["absolute"]),
                     pct(s[name]["normalized"])])
    chosen = "; ".join(f"{name}: " + (", ".join(f"{k}={v:g}" for k, v in sel["chosen"].items()
                                                if isinstance(v, (int, float)) and not isinstance(v, bool))
                                      or "no hyperparameter")
                       for name, sel in record["selection"]["methods"].items())
    return (f"Merging ({record.get('suite', '')}); test accuracy, hyperparameters chosen on val by "
            f"{record['selection']['score']}\n"
            + tabulate(rows, headers=["method", *tasks, "average", "normalized"], tablefmt="github")
            + f"\nchosen: {chosen}")


def seed_table(records: Sequence[Mapping]) -> str:
    """Mean, standard deviation and range of every metric over runs with different seeds."""
    import statistics

    rows = []
    for name in records[0]["metrics"]:
        values = [r["metrics"][name]["value"] for r in records if name in r["metrics"]]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append([name, pct(statistics.fmean(values)), pct(sd), f"{pct(min(values))} - {pct(max(values))}"])
    return tabulate(rows, headers=["metric", "mean %", "sd", "range"], tablefmt="github")


def eval_report(record: Mapping) -> str:
    r = record["result"]
    c = record["config"]
    out = [f"{record['model_label']} on {c['task']}:{c['split']}", metrics_table(record["metrics"]),
           confusion_text(r["confusion_matrix"], r["class_names"]) if len(r["class_names"]) <= 20
           else f"confusion matrix ({len(r['class_names'])} classes): in the record"]
    return "\n".join(out)


REPORTS = {"eval": eval_report, "birads": birads_report, "negation": negation_report, "addition": addition_report,
           "analogy": analogy_report, "merging": merging_report}


def render(record: Mapping) -> str:
    return REPORTS[record["experiment"]](record)


SPLIT_NAMES = {"val": "validation", "test": "test", "train": "training"}
# Every sweep plot shows the sweep that chooses the coefficient: validation
# accuracy (the paper chooses its scaling coefficient on held-out validation
# data, Ilharco et al. 2023, Sec. 2); test accuracy at the chosen point is in the tables.
SWEEP_SPLIT = "val"
CHOSEN = "chosen"  # the gid of every chosen-point marker, so a figure says which artist it is


def accuracy_label(split: str, quantity: str = "accuracy") -> str:
    """``"validation accuracy"`` for split "val": an axis names the split it shows."""
    return f"{SPLIT_NAMES.get(split, split)} {quantity}"


def _mark_chosen(ax, x: float, y: float, first: bool = True, color: str = "k") -> None:
    """The point chosen on validation: a star on the curve it was chosen by."""
    ax.plot([x], [y], linestyle="none", marker="*", ms=13, color=color, mec="k", zorder=5, gid=CHOSEN,
            label="chosen on validation" if first else "_nolegend_")


def _row_at(rows: Sequence[Mapping], key: str, value: float) -> Mapping:
    return next(r for r in rows if r[key] == value)


def _plot_birads(fig, record: Mapping) -> None:
    ax = fig.subplots()
    names, rows = record["class_names"], record["sweep"]
    alphas = [r["alpha"] for r in rows]
    # The rule's quantity (balanced accuracy) and each class's recall, on validation.
    balanced = [r["val"]["balanced_accuracy"] for r in rows]
    ax.plot(alphas, balanced, "k-o", lw=2, label="balanced (the rule)")
    ax.plot(alphas, [r["val"]["overall"]["value"] for r in rows], "k:", label="overall")
    for n in names:
        ax.plot(alphas, [r["val"]["per_class"][n]["value"] for r in rows], "--.", label=n)
    chosen = record["selection"]["alpha"]
    _mark_chosen(ax, chosen, _row_at(rows, "alpha", chosen)["val"]["balanced_accuracy"])
    fixed = record["selection"].get("fixed_alpha")
    if fixed is not None:
        ax.axvline(fixed, color="grey", ls=":", label=f"fixed alpha {fixed:g} (the experiment's table)")
    ax.set_xlabel("alpha (baseline + alpha * E)")
    ax.set_ylabel(accuracy_label(SWEEP_SPLIT))


def _plot_negation(fig, record: Mapping) -> None:
    ax = fig.subplots()
    for i, (target, sel) in enumerate(record["selection"]["per_task"].items()):
        rows = sel["val_sweep"]
        lams = [r["lambda"] for r in rows]
        line, = ax.plot(lams, [r["target"] for r in rows], "-", label=f"{target} target")
        ax.plot(lams, [r["control"] for r in rows], ":", color=line.get_color(), label=f"{target} control")
        _mark_chosen(ax, sel["lambda"], _row_at(rows, "lambda", sel["lambda"])["target"], i == 0, line.get_color())
    ax.axhline(record["selection"]["control_floor"], color="grey", ls="--", label="control floor")
    ax.set_xlabel("lambda (pre-trained - lambda * tau)")
    ax.set_ylabel(accuracy_label(SWEEP_SPLIT) + " (dotted: control)")


def _plot_addition(fig, record: Mapping) -> None:
    """Two panels, one quantity each: the mean normalized accuracy that chooses
    lambda, and each task's absolute accuracy."""
    norm_ax, abs_ax = fig.subplots(1, 2, sharex=True)
    rows, chosen = record["selection"]["val_sweep"], record["selection"]["lambda"]
    lams = [r["lambda"] for r in rows]
    norm_ax.plot(lams, [r["normalized"] for r in rows], "k-o", ms=3, label="mean normalized")
    _mark_chosen(norm_ax, chosen, _row_at(rows, "lambda", chosen)["normalized"])
    norm_ax.set_ylabel(accuracy_label(SWEEP_SPLIT, "normalized accuracy (merged / fine-tuned)"))
    for t in record["config"]["tasks"]:
        abs_ax.plot(lams, [r["val"][t] for r in rows], "--", label=t)
    abs_ax.axvline(chosen, color="grey", ls=":", label="chosen lambda")
    abs_ax.set_ylabel(accuracy_label(SWEEP_SPLIT))
    for ax in (norm_ax, abs_ax):
        ax.set_xlabel("lambda (pre-trained + lambda * sum tau)")


def _plot_analogy(fig, record: Mapping) -> None:
    ax = fig.subplots()
    sel = record["selection"]
    rows = sel["val_sweep"]
    ax.plot([r["lambda"] for r in rows], [r["target"] for r in rows], "k-o", ms=3, label="target")
    if rows and "control" in rows[0]:
        ax.plot([r["lambda"] for r in rows], [r["control"] for r in rows], "k:", label="control")
    if sel.get("control_floor") is not None:
        ax.axhline(sel["control_floor"], color="grey", ls="--", label="control floor")
    _mark_chosen(ax, sel["lambda"], _row_at(rows, "lambda", sel["lambda"])["target"])
    ax.set_xlabel("lambda")
    ax.set_ylabel(accuracy_label(SWEEP_SPLIT))


def _plot_merging(fig, record: Mapping) -> None:
    # Each method's validation score along its lam, its other hyperparameters at
    # their chosen values; a method with one lam, a dashed line at its chosen score.
    ax = fig.subplots()
    marked = False
    for i, (name, sel) in enumerate(record["selection"]["methods"].items()):
        style = {"color": f"C{i % 10}", "ls": "-" if i < 10 else "-."}
        rows = [r for r in sel["grid"] if all(r["hyperparameters"].get(k) == v
                                              for k, v in sel["chosen"].items() if k != "lam")]
        if "lam" in sel["chosen"] and len(rows) > 1:
            ax.plot([r["hyperparameters"]["lam"] for r in rows], [r["normalized"] for r in rows], marker="o",
                    ms=3, label=name, **style)
            _mark_chosen(ax, sel["chosen"]["lam"], sel["val_normalized"], not marked, style["color"])
            marked = True
        else:
            ax.axhline(sel["val_normalized"], lw=1, label=f"{name} (no lam)", **{**style, "ls": "--"})
    ax.set_xlabel("lam (the merged update's scale)")
    ax.set_ylabel(accuracy_label(SWEEP_SPLIT, "mean normalized accuracy"))


def _plot_eval(fig, record: Mapping) -> None:
    """Per-class accuracy with each class's 95% interval, every class named:
    horizontal bars, so a long list of class names stays readable."""
    ax = fig.subplots()
    result, split = record["result"], record["config"]["split"]
    names = list(result["per_class"])
    per_class = [result["per_class"][n] for n in names]
    values = [m["value"] for m in per_class]
    errors = [[m["value"] - m["low"] for m in per_class], [m["high"] - m["value"] for m in per_class]]
    ax.barh(range(len(names)), values, xerr=errors, color="steelblue", ecolor="k", capsize=2,
            label=f"per class, 95% interval ({per_class[0].get('interval', 'wilson') if per_class else 'wilson'})")
    ax.set_yticks(range(len(names)), labels=[str(n) for n in names], fontsize=max(4, min(8, 400 // max(len(names), 1))))
    ax.invert_yaxis()  # the first class on top, as the record lists them
    ax.axvline(result["overall"]["value"], color="k", ls="--", label="overall")
    ax.set_ylabel("class")
    ax.set_xlabel(accuracy_label(split))
    ax.set_xlim(0, 1.02)


_PLOTS = {"birads": _plot_birads, "negation": _plot_negation, "addition": _plot_addition,
          "analogy": _plot_analogy, "merging": _plot_merging, "eval": _plot_eval}


def _title(record: Mapping) -> str:
    exp, suite = record["experiment"], record.get("suite", record["experiment"])
    if exp == "eval":
        split = record["config"]["split"]
        return f"{record.get('model_label', '')} on {record['config']['task']}: {accuracy_label(split)}"
    coefficient = {"birads": "alpha", "merging": "each method's hyperparameters"}.get(exp, "lambda")
    return f"{suite}: {accuracy_label(SWEEP_SPLIT)}, the sweep that chooses {coefficient}"


def import_plotting_in_background() -> None:
    """Start importing matplotlib (the Agg backend and pyplot) on a background
    thread, for a process that plots when its work ends (``tvcore eval``, ``tvcore
    run``): the import, half a second to a second, then runs while the process waits
    for the device and the disk instead of after the work. Plotting later waits for
    the import where it is not done (Python's import lock). Once per process."""
    import threading

    if getattr(import_plotting_in_background, "started", False):
        return
    import_plotting_in_background.started = True

    def load():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401

    # Not a daemon: a process that ends early (a bad input) waits for the import to
    # finish rather than killing the thread in the middle of it.
    threading.Thread(target=load, name="tvcore-import-matplotlib").start()


def sweep_figure(record: Mapping):
    """The figure of a record: accuracy versus the coefficient on the validation
    sweep that chooses it, the chosen point starred (an ``eval`` record: per-class
    accuracy with intervals). Every legend sits outside its axes, so it covers no
    data. The caller closes it (``matplotlib.pyplot.close``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exp = record["experiment"]
    n_classes = len(record["result"]["per_class"]) if exp == "eval" else 0
    width = 11.0 if exp == "addition" else 8.0
    height = max(4.2, 0.6 + 0.16 * n_classes)
    fig = plt.figure(figsize=(width, height), dpi=110, layout="constrained")
    _PLOTS[exp](fig, record)
    for ax in fig.axes:
        ax.grid(alpha=0.3)
        if exp != "eval":
            ax.set_ylim(0, 1.02)
    # Legends to the right of the last axes: outside every axes, over no data.
    handles, labels = [], []
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.axes[-1].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                            borderaxespad=0.0)
    fig.suptitle(_title(record), fontsize=10)
    return fig


def sweep_plot(record: Mapping, path: str | Path) -> Path:
    """The figure of :func:`sweep_figure`, as PNG, written atomically."""
    import matplotlib.pyplot as plt

    fig = sweep_figure(record)
    path = Path(path)
    try:
        with atomic_write(path, what="plot") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
