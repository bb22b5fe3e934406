"""A rehearsal of every real suite: exactly their code, at 224 px, end to end.

Without real data this runs on trees generated in the datasets' published
formats with a narrow 224-px OpenCLIP architecture standing in for ViT-B-32
(random init), a few fine-tuning steps, a three-point grid and splits capped at
REHEARSAL_CAP images: it proves that the readers, the pixel cache, fine-tuning,
the pool, the sweeps, the records and the reports all work together, in a few
minutes on a CPU. Its numbers mean nothing and are not checked.

With ``--data-root D`` (and ``--weights W`` or the cached 'openai' tag) the same
test is the dry run to make on a GPU box before committing hours: the real data
and weights through the same capped, shortened suites, failing fast on a wrong
tree, a missing class or a wrong weights file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tvcore import report, verdicts
from tvcore.experiments import SUITES, STAND_IN, context_for, run_and_record

REAL_SUITES = ["birads-vit-b-32", "negation-vit-b-32", "addition-vit-b-32", "merging-vit-b-32"]
VERDICTS = {"birads-vit-b-32": verdicts.birads_verdict, "negation-vit-b-32": verdicts.negation_verdict,
            "addition-vit-b-32": verdicts.addition_verdict, "merging-vit-b-32": verdicts.merging_verdict}


@pytest.fixture(scope="module")
def rehearsal_setup(tvcore_options, tmp_path_factory):
    """(data root, model spec or None for the real ViT-B-32, a context cache)."""
    if tvcore_options.data_root:
        return Path(tvcore_options.data_root), None, {}
    from fixtures.fake_trees import make_mini_ddsm_tree, make_paper_tasks_tree, protocol_sized_cases

    root = tmp_path_factory.mktemp("rehearsal-data")
    make_paper_tasks_tree(root)
    make_mini_ddsm_tree(root / "mini-ddsm", protocol_sized_cases())
    return root, STAND_IN, {}


@pytest.mark.parametrize("name", REAL_SUITES)
def test_rehearsal_writes_a_complete_record_and_report(name, rehearsal_setup, tvcore_options, tmp_path_factory,
                                                       request):
    from tvcore.cli import one_line
    from tvcore.errors import TvcoreError

    data_root, model, contexts = rehearsal_setup
    if model is None:  # the user's data: a suite whose data is absent altogether is skipped, a wrong tree fails
        from test_real import missing_data

        reason = missing_data(str(data_root), name)
        if reason:
            pytest.skip(reason)
    suite = SUITES[name].rehearsal()
    # The user's dry run keeps its records under --results-dir (rehearsal/, apart from
    # the real runs' records); CI's go to a temporary folder.
    results = (Path(tvcore_options.results_dir) / "rehearsal" if model is None
               else tmp_path_factory.mktemp("rehearsal-results"))
    key, error = repr(suite.recipe), None
    try:
        if key not in contexts:  # the paper suites share their eight fine-tuned vectors
            # On the generated trees, images are decoded in the main process: the paper's
            # recipe decodes random crops every step, and starting worker processes for
            # each 4-step fine-tune would cost more than the decoding of 32 tiny images.
            contexts[key] = context_for(suite, device=tvcore_options.device, data_root=str(data_root),
                                        weights=tvcore_options.weights, progress=False, rehearsal=True, model=model,
                                        results_dir=str(results),
                                        workers=0 if model is not None else tvcore_options.workers)
        record, path = run_and_record(suite, contexts[key], suite.name, results)
    except TvcoreError as exc:  # a wrong tree, class or weights file: one line, not a traceback
        error = f"{name}: {one_line(exc)}"
    if error:
        pytest.fail(error, pytrace=False)
    if model is None:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\nrehearsal {suite.name}: record {path}, plot {path.with_suffix('.png')}")

    assert json.loads(path.read_text())["suite"] == suite.name
    assert path.with_suffix(".png").is_file()
    metrics = record["metrics"]
    assert metrics, "no metrics recorded"
    for metric, m in metrics.items():
        assert {"value", "low", "high", "total"} <= set(m), metric
        assert 0.0 <= m["low"] <= m["value"] <= m["high"] <= 1.0, metric
    assert record["selection"]["split"] == "val"
    tasks = record["context"]["tasks"]
    assert all(t["capped_at"] and t["prompt_fingerprint"] for t in tasks.values())
    if model is not None:  # generated trees: every reader went through its published format
        assert all(t["reader"] for t in tasks.values()), tasks
    assert set(record["context"]["vectors"]) and all(v["source"] in ("trained", "pool", "resumed", "finetuned")
                                                     for v in record["context"]["vectors"].values())
    # The real suites' verdicts can be computed from this record (their outcome means nothing here).
    verdict = VERDICTS[name](record)
    assert verdict.checks and all(math.isfinite(c.margin) and c.margin >= 0 for c in verdict.checks)
    rendered = report.render(record)
    assert suite.name.split("-")[0] in rendered or record["experiment"] in rendered
