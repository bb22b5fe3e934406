"""``tvcore compare``: agree, differ or inconclusive, judged by simulation through
the same function (tvcore.compare.compare_records) on records shaped like the
suites'.

Four record shapes: the negation micro suite's (17 metrics on 225 test images each),
the paper's addition suite at its published test-set sizes (pre-trained, fine-tuned
and merged accuracy on eight tasks and ImageNet: 27 metrics on 1,880 to 50,000
images), the BI-RADS analogue's (four views a case, 15 cases a grade) and
Mini-DDSM's (two to four views a case, 30 cases a grade). Replications: *the same
model on another machine* answers 0.5% of
the images differently (borderline images under other arithmetic); *a second
fine-tune of the recipe* answers 4% differently, with the same expected accuracy;
both on the same test images with the per-image outcomes tvcore's records keep,
and the second fine-tune also without them (records of older versions) and on an
independent draw of test images (the case the two-sample bound is built for). A
*wrong result* moves the second run's true accuracy. Targets: a replication is
called "differ" at most 5% of the time, and a result wrong by more than the margin
is called "agree" at most 5% of the time.

``python -m pytest tests/test_compare.py -k readme -s`` prints the README's rows."""

from __future__ import annotations

import numpy as np
import pytest

from tvcore import compare, references
from tvcore.cli import main
from tvcore.errors import IncomparableRecordsError, RecordError, UsageError
from tvcore.outcomes import FIELD, encode_outcomes

RUNS = 1000
CHURN = 0.04  # images answered differently by two runs of one recipe

# (metric, accuracy, test images): a negation-micro record's shape.
NEGATION_MICRO = [(f"{kind}[digits/{task}].target", p, 225) for kind, row in (
    ("finetuned", (0.96, 0.94, 0.96, 0.95)), ("negated", (0.29, 0.11, 0.31, 0.04)),
    ("pretrained", (0.36, 0.16, 0.52, 0.07))) for task, p in zip(("mirror", "negative", "rot180", "rot90"), row)]
NEGATION_MICRO += [(f"negated[digits/{t}].control", p, 225)
                   for t, p in zip(("mirror", "negative", "rot180", "rot90"), (0.97, 0.97, 0.91, 0.99))]
NEGATION_MICRO += [("pretrained.control", 0.99, 225)]

# The paper's addition suite at its test-set sizes: Table 7's zero-shot and
# fine-tuned rows are not in tvcore.references, so they are set from the merged row.
_MERGED = dict(references.ADDITION_B32["per_task"], ImageNet=0.55)
ADDITION_REAL = [(f"{kind}[{task}]", min(0.99, p + shift), references.PAPER_TEST_SIZES[task])
                 for task, p in _MERGED.items()
                 for kind, shift in (("pretrained", -0.15), ("finetuned", 0.2), ("merged", 0.0))]

SHAPES = {"negation-micro": NEGATION_MICRO, "addition, paper's test sets": ADDITION_REAL}


def records(rng, shape, shift=None, same_images=True, churn=CHURN, keep_outcomes=True):
    """Two records of one suite: B's true accuracy is A's plus ``shift[metric]``. On the
    same images each record keeps its per-image outcomes (as tvcore writes them)
    unless ``keep_outcomes`` is False (records of older versions)."""
    shift = shift or {}
    a, b = {}, {}
    for name, p, n in shape:
        q = min(max(p + shift.get(name, 0.0), 0.0), 1.0)
        if same_images:  # one multinomial over (both right, only A, only B, both wrong)
            disagree = max(churn, abs(p - q) + churn / 2)
            only_a, only_b = (disagree + (p - q)) / 2, (disagree - (p - q)) / 2
            both = p - only_a
            cells = np.clip([both, only_a, only_b, 1 - both - only_a - only_b], 0, None)
            counts = rng.multinomial(n, cells / cells.sum())
            ca, cb = counts[0] + counts[1], counts[0] + counts[2]
        else:
            ca, cb = rng.binomial(n, p), rng.binomial(n, q)
        a[name] = {"value": ca / n, "correct": int(ca), "total": n, "low": 0.0, "high": 1.0}
        b[name] = {"value": cb / n, "correct": int(cb), "total": n, "low": 0.0, "high": 1.0}
        if same_images and keep_outcomes:  # image order does not matter to a paired count
            a[name][FIELD] = encode_outcomes(np.repeat([True, True, False, False], counts))
            b[name][FIELD] = encode_outcomes(np.repeat([True, False, True, False], counts))
    return tuple({"suite": "s", "case": "c", "metrics": m, "split_hashes": {"t:test": "same" if same_images else side}}
                 for m, side in ((a, "a"), (b, "b")))


def shares(pairs, margin, allow_different_data=False) -> dict:
    """How often compare calls pairs of records agree, differ or inconclusive, under
    the README's column names."""
    said = [compare.overall(compare.compare_records(a, b, margin=margin, allow_different_data=allow_different_data))
            for a, b in pairs]
    return {"reproduced": said.count(compare.AGREE) / len(said),
            "contradicted": said.count(compare.DIFFER) / len(said),
            "inconclusive": said.count(compare.INCONCLUSIVE) / len(said)}


def rates(shape, runs=RUNS, seed=0, margin=compare.DEFAULT_MARGIN, **kw) -> dict:
    rng = np.random.default_rng(seed)
    return shares((records(rng, SHAPES[shape], **kw) for _ in range(runs)), margin,
                  allow_different_data=not kw.get("same_images", True))


def one_task(shape, metric_prefix, points):
    return {name: points / 100 for name, _, _ in SHAPES[shape] if name.startswith(metric_prefix)}


def every(shape, points):
    return {name: points / 100 for name, _, _ in SHAPES[shape]}


# (shape, simulated result, rates keyword arguments)
SAME_MODEL = 0.005  # the same model evaluated elsewhere: a few borderline images answered differently

SCENARIOS = [
    ("negation-micro", "the same model on another machine", {"churn": SAME_MODEL}),
    ("negation-micro", "a second fine-tune of the recipe", {}),
    ("negation-micro", "a second fine-tune, records without per-image outcomes", {"keep_outcomes": False}),
    ("negation-micro", "a second fine-tune, independent test draws", {"same_images": False}),
    ("negation-micro", "the same model, margin 5 points", {"churn": SAME_MODEL, "margin": 0.05}),
    ("negation-micro", "one task's negated target 10 points higher",
     {"shift": one_task("negation-micro", "negated[digits/mirror].target", 10)}),
    ("negation-micro", "every metric 3 points lower", {"shift": every("negation-micro", -3)}),
    ("negation-micro", "every metric 6 points lower, margin 5 points",
     {"shift": every("negation-micro", -6), "margin": 0.05}),
    ("addition, paper's test sets", "the same model on another machine", {"churn": SAME_MODEL}),
    ("addition, paper's test sets", "a second fine-tune of the recipe", {}),
    ("addition, paper's test sets", "a second fine-tune, records without per-image outcomes",
     {"keep_outcomes": False}),
    ("addition, paper's test sets", "a second fine-tune, independent test draws", {"same_images": False}),
    ("addition, paper's test sets", "merged DTD 2 points lower",
     {"shift": one_task("addition, paper's test sets", "merged[DTD]", -2)}),
    ("addition, paper's test sets", "merged SUN397 1.5 points lower",
     {"shift": one_task("addition, paper's test sets", "merged[SUN397]", -1.5)}),
    ("addition, paper's test sets", "every merged task 1.5 points lower",
     {"shift": {n: -0.015 for n, _, _ in ADDITION_REAL if n.startswith("merged")}}),
]
REPLICATIONS = [(s, n) for s, n, _ in SCENARIOS if n.startswith(("the same model", "a second fine-tune"))]


# The BI-RADS analogue's shape: four grades of 15 cases, four views a case, and the
# overall accuracy over all 240 images. Views of a case share the case's difficulty
# (a latent on the logit scale), and a second fine-tune answers a case's views
# alike: it draws a changed case's difficulty and all four views again.
BIRADS_GRADES = {"grade 2": 0.60, "grade 3": 0.55, "grade 4": 0.80, "grade 5": 0.35}
CASES_PER_GRADE, VIEWS, CASE_SD = 15, 4, 1.2


def birads_records(rng, changed_cases=0.15, shift=None, cases_per_grade=CASES_PER_GRADE, views=None):
    """Two records of the BI-RADS analogue on the same images, through the functions
    a record's design effect comes from (tvcore.evaluate). ``views``: each case's
    number of images (default four each)."""
    from tvcore.evaluate import _case_totals, cluster_design_effect

    shift = shift or {}
    n_cases = cases_per_grade * len(BIRADS_GRADES)
    views = np.full(n_cases, VIEWS) if views is None else np.asarray(views)
    real = np.arange(views.max())[None, :] < views[:, None]  # (case, view slot) holds an image
    grade = np.repeat(np.arange(len(BIRADS_GRADES)), cases_per_grade)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    base = np.array([logit(p) for p in BIRADS_GRADES.values()])[grade]
    moved = np.array([logit(min(max(p + shift.get(g, 0.0), 0.01), 0.99))
                      for g, p in BIRADS_GRADES.items()])[grade]

    def draw(centre):
        latent = centre + rng.normal(0, CASE_SD, n_cases)
        return rng.random(real.shape) < 1 / (1 + np.exp(-latent[:, None]))

    a = draw(base)
    b = np.where(((rng.random(n_cases) < changed_cases) | (moved != base))[:, None], draw(moved), a)
    case_of = np.broadcast_to(np.arange(n_cases)[:, None], real.shape)

    def metrics(right):
        out = {}
        for name, mask in [("overall", np.ones(n_cases, bool))] + [
                (f"class[{g}]", grade == k) for k, g in enumerate(BIRADS_GRADES)]:
            x, c = right[mask][real[mask]], case_of[mask][real[mask]]
            out[f"baseline.{name}"] = {"value": x.mean(), "correct": int(x.sum()), "total": x.size, "low": 0.0,
                                       "high": 1.0, "cases": int(mask.sum()),
                                       "design_effect": float(cluster_design_effect(*_case_totals(x, c))),
                                       FIELD: encode_outcomes(x)}
        return out

    return ({"suite": "s", "case": "c", "metrics": metrics(a)}, {"suite": "s", "case": "c", "metrics": metrics(b)})


# Mini-DDSM's shape: a case holds two to four views (fixed here, seeded), 30 cases a
# grade, about 100 test images a grade as in the experiment.
MINI_DDSM = {"cases_per_grade": 30, "views": np.random.default_rng(7).integers(2, 5, 30 * len(BIRADS_GRADES))}


BIRADS = "birads-micro, 4 views a case"
MINI = "Mini-DDSM, 2-4 views a case"
CLUSTERED_SCENARIOS = [
    (BIRADS, "a second fine-tune (15% of cases answered anew), margin 10 points", {}),
    (BIRADS, "the same model, margin 10 points", {"changed_cases": 0.0}),
    (BIRADS, "grade 5 20 points lower, margin 10 points", {"shift": {"grade 5": -0.20}}),
    (BIRADS, "grade 5 30 points lower, margin 10 points", {"shift": {"grade 5": -0.30}}),
    (MINI, "a second fine-tune (15% of cases answered anew), margin 10 points", MINI_DDSM),
    (MINI, "grade 5 20 points lower, margin 10 points", {**MINI_DDSM, "shift": {"grade 5": -0.20}}),
]


def birads_rates(runs, seed, **kw) -> dict:
    rng = np.random.default_rng(seed)
    return shares((birads_records(rng, **kw) for _ in range(runs)), margin=0.10)


@pytest.fixture(scope="module")
def outcomes():
    out = {(shape, name): rates(shape, runs=RUNS, seed=i, **kw) for i, (shape, name, kw) in enumerate(SCENARIOS)}
    for i, (shape, name, kw) in enumerate(CLUSTERED_SCENARIOS):
        out[shape, name] = birads_rates(RUNS, 100 + i, **kw)
    return out


@pytest.mark.parametrize("shape", [BIRADS, MINI])
def test_a_second_fine_tune_of_clustered_views_rarely_differs(outcomes, shape):
    assert outcomes[shape, "a second fine-tune (15% of cases answered anew), margin 10 points"]["contradicted"] <= 0.05


@pytest.mark.parametrize("shape, name", [(s, n) for s, n, _ in CLUSTERED_SCENARIOS if n.startswith("grade")])
def test_a_grade_far_off_rarely_agrees(outcomes, shape, name):
    assert outcomes[shape, name]["reproduced"] <= 0.05


@pytest.mark.parametrize("key", REPLICATIONS)
def test_a_replication_rarely_differs(outcomes, key):
    assert outcomes[key]["contradicted"] <= 0.05


@pytest.mark.parametrize("key", [(s, n) for s, n, _ in SCENARIOS if (s, n) not in REPLICATIONS])
def test_a_result_wrong_by_more_than_the_margin_rarely_agrees(outcomes, key):
    assert outcomes[key]["reproduced"] <= 0.05


def test_the_same_model_on_the_papers_test_sets_agrees(outcomes):
    assert outcomes["addition, paper's test sets", "the same model on another machine"]["reproduced"] >= 0.8


def test_without_per_image_outcomes_225_images_cannot_show_agreement_within_one_point(outcomes):
    """Honest, not useful: two independent samples of 225 images are too few."""
    assert outcomes["negation-micro", "a second fine-tune, records without per-image outcomes"][
        "inconclusive"] >= 0.95


@pytest.mark.parametrize("key", [("negation-micro", "one task's negated target 10 points higher"),
                                 ("addition, paper's test sets", "every merged task 1.5 points lower")])
def test_a_large_wrong_result_is_found_to_differ(outcomes, key):
    assert outcomes[key]["contradicted"] >= 0.5


def test_the_readme_rows_of_compare(outcomes, capsys):
    """The README's rows are what these simulations measure now (to half a point)."""
    from tests.readme_tables import printed_and_stale

    rows = {(f"compare ({shape})", name): r for (shape, name), r in outcomes.items()}
    assert printed_and_stale(rows, capsys) == []


# ------------------------------------------------------------------ one metric, by hand

def record(total=10_000, suite="s", **values):
    return {"suite": suite, "case": "c", "metrics": {
        k: {"value": v, "total": total, "correct": round(v * total), "low": 0, "high": 1} for k, v in values.items()}}


def test_within_the_margin_on_a_large_test_set_agrees():
    (row,) = compare.compare_records(record(total=100_000, x=0.700), record(total=100_000, x=0.702))
    assert row.outcome == compare.AGREE and row.interval_90[0] > -0.01 and row.interval_90[1] < 0.01
    assert not row.paired


def with_outcomes(rec, name, outcomes):
    outcomes = np.asarray(outcomes, dtype=bool)
    rec["metrics"][name].update(correct=int(outcomes.sum()), value=float(outcomes.mean()), total=outcomes.size,
                                correct_bits=encode_outcomes(outcomes))
    return rec


def test_the_same_answers_on_the_same_images_agree_where_two_samples_could_not_tell():
    right = np.random.default_rng(0).random(2000) < 0.7
    (two_sample,) = compare.compare_records(record(total=2000, x=right.mean()), record(total=2000, x=right.mean()))
    (paired,) = compare.compare_records(with_outcomes(record(x=0.7), "x", right),
                                        with_outcomes(record(x=0.7), "x", right))
    assert two_sample.outcome == compare.INCONCLUSIVE
    assert paired.paired and paired.outcome == compare.AGREE and paired.sd < two_sample.sd / 5


def test_the_same_accuracy_from_different_answers_is_not_an_agreement():
    """Equal counts, but the two models answer 400 of 2,000 images differently."""
    right = np.random.default_rng(0).random(2000) < 0.7
    other = right.copy()
    flip_right, flip_wrong = np.flatnonzero(right)[:200], np.flatnonzero(~right)[:200]
    other[flip_right], other[flip_wrong] = False, True
    (row,) = compare.compare_records(with_outcomes(record(x=0.7), "x", right),
                                     with_outcomes(record(x=0.7), "x", other))
    assert row.paired and row.difference == 0 and row.outcome == compare.INCONCLUSIVE


def test_outcomes_are_paired_only_on_the_same_test_images():
    right = np.random.default_rng(0).random(2000) < 0.7
    a = dict(with_outcomes(record(x=0.7), "x", right), split_hashes={"t:test": "aa"})
    b = dict(with_outcomes(record(x=0.7), "x", right), split_hashes={"t:test": "bb"})
    (row,) = compare.compare_records(a, b, allow_different_data=True)
    assert not row.paired


def test_outcomes_that_do_not_match_the_count_are_refused():
    right = np.random.default_rng(0).random(2000) < 0.7
    a = with_outcomes(record(x=0.7), "x", right)
    b = with_outcomes(record(x=0.7), "x", right)
    x, kept = b["metrics"]["x"], dict(b["metrics"]["x"])
    x.update(correct=x["correct"] + 1, value=(x["correct"] + 1) / x["total"])
    with pytest.raises(RecordError, match="metric 'x' has .* right in its correct_bits but 'correct'"):
        compare.compare_records(a, b)
    x.update(kept, value=kept["value"] + 0.01)
    with pytest.raises(RecordError, match="metric 'x' has value .* but .* right; the record was altered"):
        compare.compare_records(a, b)
    x.update(kept, correct_bits="not base64!")
    with pytest.raises(RecordError, match="unreadable correct_bits"):
        compare.compare_records(a, b)


def test_far_beyond_the_bound_differs():
    (row,) = compare.compare_records(record(x=0.70), record(x=0.75))
    assert row.outcome == compare.DIFFER and abs(row.difference) > row.bound


def test_a_small_test_set_is_inconclusive_and_says_what_would_decide():
    (row,) = compare.compare_records(record(total=200, x=0.50), record(total=200, x=0.51))
    assert row.outcome == compare.INCONCLUSIVE
    assert row.needed_total > 200
    (at_that_size,) = compare.compare_records(record(total=row.needed_total, x=0.50),
                                              record(total=row.needed_total, x=0.50))
    assert at_that_size.outcome == compare.AGREE


def test_a_design_effect_widens_the_interval():
    a, b = record(total=4000, x=0.700), record(total=4000, x=0.702)
    (plain,) = compare.compare_records(a, b)
    for r in (a, b):
        r["metrics"]["x"]["design_effect"] = 4.0
    (clustered,) = compare.compare_records(a, b)
    assert clustered.sd == pytest.approx(2 * plain.sd, rel=0.01)


def test_the_bound_for_differ_grows_with_the_metrics_compared():
    one = compare.compare_records(record(x=0.7), record(x=0.7))[0]
    many = compare.compare_records(record(**{f"m{i}": 0.7 for i in range(40)}),
                                   record(**{f"m{i}": 0.7 for i in range(40)}))[0]
    assert many.bound > one.bound


def test_a_metric_in_one_record_only_differs():
    rows = compare.compare_records(record(x=0.7, y=0.5), record(x=0.7))
    assert {r.metric: r.outcome for r in rows}["y"] == compare.DIFFER


def test_the_records_outcome_is_the_worst_of_its_metrics():
    big = record(total=100_000, x=0.7, y=0.7)
    assert compare.overall(compare.compare_records(big, big)) == compare.AGREE
    assert compare.overall(compare.compare_records(big, record(total=100_000, x=0.7, y=0.6))) == compare.DIFFER
    small = record(total=100, y=0.7)
    assert compare.overall(compare.compare_records(big, big) +
                           compare.compare_records(small, small)) == compare.INCONCLUSIVE


@pytest.mark.parametrize("margin", [0, -0.01, 1.5])
def test_a_margin_outside_0_to_1_is_refused(margin):
    with pytest.raises(UsageError, match="margin"):
        compare.compare_records(record(x=0.7), record(x=0.7), margin=margin)


def test_compare_refuses_records_of_different_suites_unless_allowed():
    a, b = record(100_000, "negation-micro", x=0.5), record(100_000, "addition-micro", x=0.5)
    with pytest.raises(IncomparableRecordsError, match="'negation-micro'.*'addition-micro'"):
        compare.compare_records(a, b)
    assert compare.compare_records(a, b, allow_different_data=True)[0].outcome == compare.AGREE


def test_compare_refuses_records_measured_on_different_test_sets():
    a = dict(record(x=0.5), split_hashes={"t:test": "aa"})
    with pytest.raises(IncomparableRecordsError, match="'t:test' has different contents"):
        compare.compare_records(a, dict(a, split_hashes={"t:test": "bb"}))
    with pytest.raises(IncomparableRecordsError, match="'u:test' is only in one record"):
        compare.compare_records(a, dict(a, split_hashes={"t:test": "aa", "u:test": "cc"}))


# ------------------------------------------------------------------ the command

@pytest.mark.parametrize("b_value, total, margin, code, word", [
    (0.701, 100_000, "1", 0, "agree:"), (0.80, 10_000, "1", 1, "differ:"), (0.71, 200, "1", 3, "inconclusive:"),
    (0.71, 200, "20", 0, "agree:")])
def test_the_command_says_the_outcome_and_exits_by_it(tmp_path, capsys, b_value, total, margin, code, word):
    from tvcore.records import write_json

    write_json(record(total=total, x=0.70), tmp_path / "a.json")
    write_json(record(total=total, x=b_value), tmp_path / "b.json")
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--margin", margin]) == code
    assert capsys.readouterr().out.splitlines()[-1].startswith(word)


def test_the_command_names_the_protocol_fields_in_which_the_two_runs_differ(tmp_path, capsys):
    from tvcore.records import write_json

    a = dict(record(total=10_000, x=0.70), experiment="negation",
             context={"recipe": {"steps": 150, "seed": 0}, "device": "cpu"})
    b = dict(a, context={"recipe": {"steps": 300, "seed": 1}, "device": "cuda"})
    write_json(a, tmp_path / "a.json")
    write_json(b, tmp_path / "b.json")
    main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "the two runs' protocols differ: recipe.steps 150 in A, 300 in B"
    write_json(dict(a, context={"recipe": {"steps": 150, "seed": 1}, "device": "cuda"}), tmp_path / "b.json")
    main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert "protocols differ" not in capsys.readouterr().out
