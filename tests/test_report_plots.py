"""The plots of result records, read from their matplotlib figures (never pixels):
the point chosen on validation starred on every sweep, one quantity per axis,
legends over no data, the split named on every axis, and the eval bar chart's
classes and intervals. Records are built by hand in the shape the experiments write."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from tvcore import report  # noqa: E402

LAMBDAS = [0.0, 0.25, 0.5, 0.75, 1.0]
TASKS = ["digits/rot90", "digits/mirror"]


def _acc(value: float, half: float = 0.05) -> dict:
    return {"value": value, "low": max(0.0, value - half), "high": min(1.0, value + 2 * half), "correct": 1,
            "total": 10, "interval": "wilson"}


def negation_record() -> dict:
    per_task = {t: {"lambda": chosen, "val_sweep": [{"lambda": lam, "target": 0.9 - 0.8 * lam + 0.05 * i,
                                                     "control": 0.95 - 0.3 * lam} for lam in LAMBDAS]}
                for i, (t, chosen) in enumerate(zip(TASKS, (0.5, 0.75)))}
    return {"experiment": "negation", "suite": "negation-case",
            "selection": {"split": "val", "control_floor": 0.8, "per_task": per_task}}


def addition_record() -> dict:
    rows = [{"lambda": lam, "normalized": 0.5 + 0.3 * lam - 0.3 * lam * lam,
             "val": {t: 0.4 + 0.2 * lam + 0.1 * i for i, t in enumerate(TASKS)}} for lam in LAMBDAS]
    return {"experiment": "addition", "suite": "addition-case", "config": {"tasks": TASKS},
            "selection": {"split": "val", "lambda": 0.5, "val_sweep": rows}}


def analogy_record() -> dict:
    rows = [{"lambda": lam, "target": 0.3 + 0.4 * lam, "control": 0.95 - 0.2 * lam} for lam in LAMBDAS]
    return {"experiment": "analogy", "suite": "analogy-case",
            "selection": {"split": "val", "lambda": 0.75, "control_floor": 0.8, "val_sweep": rows}}


def merging_record() -> dict:
    methods = {
        "task-arithmetic": {"grid": [{"hyperparameters": {"lam": lam}, "normalized": 0.5 + 0.2 * lam}
                                     for lam in (0.25, 0.5, 0.75)],
                            "chosen": {"lam": 0.75}, "val_normalized": 0.65},
        "ties": {"grid": [{"hyperparameters": {"lam": lam, "k": k}, "normalized": 0.4 + 0.1 * lam + k}
                          for lam in (0.5, 1.0) for k in (0.1, 0.2)],
                 "chosen": {"lam": 1.0, "k": 0.2}, "val_normalized": 0.7},
        "wudi": {"grid": [{"hyperparameters": {"iterations": 10}, "normalized": 0.6}],
                 "chosen": {"iterations": 10}, "val_normalized": 0.6},
    }
    return {"experiment": "merging", "suite": "merging-case", "selection": {"methods": methods}}


def birads_record() -> dict:
    names = ["grade 2", "grade 3", "grade 4", "grade 5"]
    sweep = [{"alpha": a, "val": {"balanced_accuracy": 0.6 - 0.1 * a, "overall": _acc(0.6 - 0.1 * a),
                                  "per_class": {n: _acc(0.5 + 0.1 * i - 0.1 * a) for i, n in enumerate(names)}}}
             for a in (0.0, 0.5, 1.0)]
    return {"experiment": "birads", "suite": "birads-case", "class_names": names, "sweep": sweep,
            "selection": {"split": "val", "alpha": 0.5, "fixed_alpha": 1.0}}


def eval_record(n_classes: int = 30, split: str = "test") -> dict:
    per_class = {f"class number {i}": _acc(0.3 + 0.6 * i / n_classes) for i in range(n_classes)}
    return {"experiment": "eval", "model_label": "base", "config": {"task": "many/classes", "split": split},
            "result": {"overall": _acc(0.6), "per_class": per_class}}


# The coefficient each sweep chose on validation, as the record says it.
SWEEPS = {
    "negation": (negation_record, lambda r: [s["lambda"] for s in r["selection"]["per_task"].values()]),
    "addition": (addition_record, lambda r: [r["selection"]["lambda"]]),
    "analogy": (analogy_record, lambda r: [r["selection"]["lambda"]]),
    "merging": (merging_record, lambda r: [m["chosen"]["lam"] for m in r["selection"]["methods"].values()
                                           if "lam" in m["chosen"]]),
    "birads": (birads_record, lambda r: [r["selection"]["alpha"]]),
}


@pytest.fixture
def figure():
    made = []

    def make(record):
        fig = report.sweep_figure(record)
        fig.canvas.draw()  # lays out the figure, so extents are final
        made.append(fig)
        return fig

    yield make
    for fig in made:
        plt.close(fig)


def _chosen_markers(fig):
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == report.CHOSEN]


@pytest.mark.parametrize("experiment", sorted(SWEEPS))
def test_every_sweep_plot_stars_each_point_chosen_on_validation(figure, experiment):
    build, chosen = SWEEPS[experiment]
    record = build()
    markers = _chosen_markers(figure(record))
    assert sorted(x for m in markers for x in m.get_xdata()) == sorted(chosen(record))
    assert all(m.get_marker() == "*" and m.get_linestyle() == "None" for m in markers)


def test_the_chosen_star_sits_on_the_curve_it_was_chosen_by(figure):
    record = addition_record()
    star, = _chosen_markers(figure(record))
    row = next(r for r in record["selection"]["val_sweep"] if r["lambda"] == record["selection"]["lambda"])
    assert list(star.get_ydata()) == [row["normalized"]]


def test_the_addition_plot_puts_normalized_and_absolute_accuracy_on_separate_axes(figure):
    normalized_ax, absolute_ax = figure(addition_record()).axes
    assert "normalized" in normalized_ax.get_ylabel() and "normalized" not in absolute_ax.get_ylabel()
    assert {line.get_label() for line in normalized_ax.get_lines()} == {"mean normalized", "chosen on validation"}
    assert set(TASKS) <= {line.get_label() for line in absolute_ax.get_lines()}
    assert not set(TASKS) & {line.get_label() for line in normalized_ax.get_lines()}


@pytest.mark.parametrize("experiment", [*sorted(SWEEPS), "eval"])
def test_the_legend_lies_outside_every_axes_so_it_covers_no_data(figure, experiment):
    fig = figure(eval_record() if experiment == "eval" else SWEEPS[experiment][0]())
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends
    for legend in legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent()), f"{experiment}: the legend overlaps an axes"


@pytest.mark.parametrize("experiment", sorted(SWEEPS))
def test_every_sweep_axis_and_title_name_the_validation_split(figure, experiment):
    fig = figure(SWEEPS[experiment][0]())
    assert all(ax.get_ylabel().startswith("validation ") for ax in fig.axes)
    title = fig.get_suptitle()
    assert "validation accuracy" in title and "chooses" in title and "test accuracy" not in title


@pytest.mark.parametrize("split, label", [("test", "test accuracy"), ("val", "validation accuracy")])
def test_the_eval_plot_names_the_split_it_shows(figure, split, label):
    fig = figure(eval_record(split=split))
    assert fig.axes[0].get_xlabel() == label and label in fig.get_suptitle()


def test_the_eval_plot_names_every_class(figure):
    record = eval_record(n_classes=30)
    ax = figure(record).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(record["result"]["per_class"])


def test_the_eval_plot_draws_each_class_interval(figure):
    record = eval_record(n_classes=12)
    ax = figure(record).axes[0]
    bars, = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    segments = bars.lines[2][0].get_segments()
    spans = [bound for s in segments for bound in (min(s[:, 0]), max(s[:, 0]))]
    expected = [bound for m in record["result"]["per_class"].values() for bound in (m["low"], m["high"])]
    assert spans == pytest.approx(expected)


def test_sweep_plot_writes_the_figure_as_png(tmp_path):
    path = report.sweep_plot(negation_record(), tmp_path / "n.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matplotlib_is_imported_in_the_background_once_and_plots_as_before(tmp_path, monkeypatch):
    """``tvcore eval`` and ``tvcore run`` start the import when they begin; the plot
    drawn at the end is the same PNG file."""
    import threading

    monkeypatch.setattr(report.import_plotting_in_background, "started", False, raising=False)
    names, thread = [], threading.Thread

    def recording(*args, **kwargs):
        names.append(kwargs.get("name"))
        return thread(*args, **kwargs)

    monkeypatch.setattr(threading, "Thread", recording)
    report.import_plotting_in_background()
    report.import_plotting_in_background()
    assert names == ["tvcore-import-matplotlib"]
    path = report.sweep_plot(negation_record(), tmp_path / "n.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.get_backend().lower() == "agg"
