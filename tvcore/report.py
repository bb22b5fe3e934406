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


def sweep_plot(record: Mapping, path: str | Path) -> Path:
    """The accuracy-versus-coefficient plot of a record, as PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    exp = record["experiment"]
    if exp == "birads":
        names = record["class_names"]
        alphas = [r["alpha"] for r in record["sweep"]]
        ax.plot(alphas, [r["test"]["overall"]["value"] for r in record["sweep"]], "k-o", lw=2, label="overall")
        for n in names:
            ax.plot(alphas, [r["test"]["per_class"][n]["value"] for r in record["sweep"]], "--.", label=n)
        ax.axvline(record["selection"]["alpha"], color="grey", ls=":", label="chosen on val")
        ax.set_xlabel("alpha (baseline + alpha * E)")
        ax.set_ylabel("test accuracy")
    elif exp == "negation":
        for target, sel in record["selection"]["per_task"].items():
            lams = [r["lambda"] for r in sel["val_sweep"]]
            line, = ax.plot(lams, [r["target"] for r in sel["val_sweep"]], "-", label=f"{target} target")
            ax.plot(lams, [r["control"] for r in sel["val_sweep"]], ":", color=line.get_color())
        ax.axhline(record["selection"]["control_floor"], color="grey", ls="--", label="control floor")
        ax.set_xlabel("lambda (pre-trained - lambda * tau)")
        ax.set_ylabel("validation accuracy (dotted: control)")
    elif exp == "eval":
        per_class = record["result"]["per_class"]
        ax.bar(range(len(per_class)), [v["value"] for v in per_class.values()], color="steelblue")
        ax.axhline(record["result"]["overall"]["value"], color="k", ls="--", label="overall")
        ax.set_xlabel("class")
        ax.set_ylabel("accuracy")
    elif exp == "addition":
        rows = record["selection"]["val_sweep"]
        ax.plot([r["lambda"] for r in rows], [r["normalized"] for r in rows], "k-o", label="mean normalized")
        for t in record["config"]["tasks"]:
            ax.plot([r["lambda"] for r in rows], [r["val"][t] for r in rows], "--", label=t)
        ax.set_xlabel("lambda (pre-trained + lambda * sum tau)")
        ax.set_ylabel("validation accuracy")
    elif exp == "merging":
        # Each method's validation score along its lam, its other hyperparameters at
        # their chosen values; a method with one lam, a dashed line at its chosen score.
        for i, (name, sel) in enumerate(record["selection"]["methods"].items()):
            style = {"color": f"C{i % 10}", "ls": "-" if i < 10 else "-."}
            rows = [r for r in sel["grid"] if all(r["hyperparameters"].get(k) == v
                                                  for k, v in sel["chosen"].items() if k != "lam")]
            if "lam" in sel["chosen"] and len(rows) > 1:
                ax.plot([r["hyperparameters"]["lam"] for r in rows], [r["normalized"] for r in rows], marker="o",
                        ms=3, label=name, **style)
            else:
                ax.axhline(sel["val_normalized"], lw=1, label=f"{name} (no lam)", **{**style, "ls": "--"})
        ax.set_xlabel("lam (the merged update's scale)")
        ax.set_ylabel("mean normalized validation accuracy")
    else:
        rows = record["selection"]["val_sweep"]
        ax.plot([r["lambda"] for r in rows], [r["target"] for r in rows], "k-o", label="target")
        if rows and "control" in rows[0]:
            ax.plot([r["lambda"] for r in rows], [r["control"] for r in rows], "k:", label="control")
        if record["selection"].get("control_floor") is not None:
            ax.axhline(record["selection"]["control_floor"], color="grey", ls="--", label="control floor")
        ax.set_xlabel("lambda")
        ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"{record.get('suite', exp)}")
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_write(path, what="plot") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
