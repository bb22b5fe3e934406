"""The embedded micro-reproduction: the real experiment code on the tiny OpenCLIP
model and digits, gated against the committed baselines.

Each case runs its experiment once per session (the fine-tuned vectors are shared
between cases), writes its record and plot under --results-dir, and fails when a
metric regresses beyond its statistical tolerance. The qualitative claims of the
paper and of the BI-RADS experiment that the micro setup reproduces are asserted
below; those it does not reproduce are reported in the records and the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.micro

from tvcore.experiments import GATED_SUITES

MICRO_SUITES = list(GATED_SUITES)  # every micro suite is gated, in one family


@pytest.mark.parametrize("suite", MICRO_SUITES)
def test_micro_suite_against_baseline(suite, tvcore_runs, tvcore_seed):
    """Gated on the baseline's most central seed (tvcore_runs.ci_seed), or seed 0
    when writing baselines; with --seeds N the other seeds run and are recorded."""
    run = tvcore_runs.run(suite, tvcore_seed)
    assert run.path.is_file() and run.path.with_suffix(".png").is_file()
    if run.seed != tvcore_runs.ci_seed(suite):
        return
    tvcore_runs.gate(run)


def test_merging_micro_merges_and_scores_every_registered_method(tvcore_runs):
    from tvcore.merging import METHODS

    rec = tvcore_runs.run("merging-micro").record
    tasks = rec["config"]["tasks"]
    for method in METHODS:
        for task in tasks:
            m = rec["metrics"][f"merged[{method}][{task}]"]
            assert 0 <= m["value"] <= 1 and m["total"] > 0, (method, task)
    assert rec["selection"]["split"] == "val"


def test_micro_tasks_leave_headroom(tvcore_runs):
    """As in the paper (48 zero-shot vs 90 fine-tuned on average), fine-tuning must
    have far to go from the pre-trained model on the target tasks."""
    s = tvcore_runs.run("negation-micro").record["summary"]
    assert s["pretrained"]["target"] < 0.5
    assert s["finetuned"]["target"] > 0.85
    assert s["pretrained"]["control"] > 0.9


def test_negation_forgets_targets_and_keeps_control(tvcore_runs):
    """Paper, Table 1: negative task vectors lower target accuracy while control
    accuracy stays near the pre-trained model's."""
    s = tvcore_runs.run("negation-micro").record["summary"]
    assert s["negative task vector"]["target"] < s["pretrained"]["target"]
    assert s["negative task vector"]["control"] >= 0.9 * s["pretrained"]["control"]


def test_table_1_controls_a_random_vector_changes_little_and_ascent_destroys_the_control(tvcore_runs):
    """Paper, Table 1's control rows (reported, never gated): a random vector of the
    task vectors' norms leaves the model as it was (within 3 points, on the same
    images); gradient ascent on the targets wrecks the control (below half the
    pre-trained model's), as negation does not. Over 10 seeds: random 27.7 / 99.6
    against 27.6 / 99.6 pre-trained, ascent's control 19.8 +- 1.3."""
    s = tvcore_runs.run("negation-micro").record["summary"]
    for part in ("target", "control"):
        assert abs(s["random vector"][part] - s["pretrained"][part]) <= 0.03, (part, s["random vector"])
    assert s["gradient ascent"]["control"] < 0.5 * s["pretrained"]["control"], s["gradient ascent"]
    assert s["gradient ascent"]["target"] < s["negative task vector"]["target"], s["gradient ascent"]


def test_addition_builds_one_model_better_than_pretrained_on_every_task(tvcore_runs):
    rec = tvcore_runs.run("addition-micro").record
    for row in rec["table"]:
        assert row["merged"] > row["pretrained"], row
    assert rec["selection"]["split"] == "val"


def test_analogy_improves_the_unseen_target(tvcore_runs):
    m = tvcore_runs.run("analogy-micro").record["metrics"]
    assert m["analogy.target"]["value"] > m["pretrained.target"]["value"]


def test_birads_baseline_underserves_the_minority_class(tvcore_runs):
    """The experiment's premise: trained on 800/800/800/300, the minority grade is
    the worst-recognized class."""
    rec = tvcore_runs.run("birads-micro").record
    names = rec["class_names"]
    per_class = {n: rec["metrics"][f"baseline.class[{n}]"]["value"] for n in names}
    assert min(per_class, key=per_class.get) == names[-1]


def test_birads_overall_accuracy_falls_as_alpha_grows(tvcore_runs):
    """Seed README: overall accuracy at alpha = 1.0 is below the baseline's."""
    sweep = tvcore_runs.run("birads-micro").record["sweep"]
    at = {r["alpha"]: r["test"]["overall"]["value"] for r in sweep}
    assert at[1.0] < at[0.0]


def test_birads_random_vector_control_leaves_the_model_as_it_was(tvcore_runs):
    """The experiment's control: a random vector with E's per-tensor norms at alpha
    1 leaves overall accuracy within 5 points of the baseline (over 10 seeds: 82.1
    against 81.8), so the enhancement's effect is E's, not any edit of its size."""
    rec = tvcore_runs.run("birads-micro").record
    at = {r["alpha"]: r["test"]["overall"]["value"] for r in rec["controls"]["random_vector"]["sweep"]}
    edited = {r["alpha"]: r["test"]["overall"]["value"] for r in rec["sweep"]}
    assert abs(at[1.0] - edited[0.0]) <= 0.05, (at, edited[0.0])
    assert abs(edited[1.0] - edited[0.0]) > abs(at[1.0] - edited[0.0])


def test_coefficients_are_never_chosen_on_test(tvcore_runs):
    for suite in MICRO_SUITES:
        assert tvcore_runs.run(suite).record["selection"]["split"] == "val"


def test_tiny_checkpoint_matches_its_manifest():
    from tvcore.checkpoints import sha256_file

    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    manifest = json.loads((fixtures / "manifest.json").read_text())
    assert sha256_file(fixtures / manifest["file"]) == manifest["sha256"]
    assert (fixtures / manifest["file"]).stat().st_size <= 20 * 2**20


@pytest.fixture(scope="session")
def short_builds(tmp_path_factory) -> tuple[Path, Path]:
    """Two rebuilds of a few steps each, on this machine: equal bytes, a far worse model."""
    from fixtures.pretrain_tiny import SETTINGS, pretrain

    short = {**SETTINGS, "steps": 4, "warmup_steps": 2}
    folder = tmp_path_factory.mktemp("short")
    paths = (folder / "a.safetensors", folder / "b.safetensors")
    for path in paths:
        pretrain(path, short, progress=False)
    return paths


def _manifest() -> dict:
    from fixtures.pretrain_tiny import MANIFEST

    return json.loads(MANIFEST.read_text())


def _another_cpu(manifest: dict) -> dict:
    from fixtures.pretrain_tiny import machine

    return dict(manifest, built_on=dict(machine(), cpu="Another CPU 9000", cpu_flags="fpu sse2",
                                        cpu_flags_sha256="0" * 64))


def test_tiny_checkpoint_rebuilds_reproducibly(rebuilt_tiny, record_property):
    """The embedded checkpoint is reproducible: on the manifest's machine (CPU model
    and flags, torch) the rebuild has its bytes; elsewhere its zero-shot accuracies
    on the micro tasks agree with the committed checkpoint's within three points,
    image by image (tvcore compare); a check the images cannot decide is xfail."""
    from fixtures.pretrain_tiny import check_rebuild

    verdict = check_rebuild(rebuilt_tiny, _manifest())
    record_property("reproduction_check", verdict.check)
    print(verdict.summary)
    if verdict.inconclusive:
        pytest.xfail(verdict.summary)
    assert verdict.ok, verdict.summary


def test_tiny_checkpoint_rebuilt_on_another_cpu_is_checked_statistically(rebuilt_tiny, record_property):
    from fixtures.pretrain_tiny import check_rebuild

    verdict = check_rebuild(rebuilt_tiny, _another_cpu(_manifest()))
    record_property("reproduction_check", verdict.check)
    print(verdict.summary)
    assert verdict.check == "statistical"
    if verdict.inconclusive:
        pytest.xfail(verdict.summary)
    assert verdict.ok, verdict.summary


def test_tiny_checkpoint_on_its_own_machine_is_checked_by_bytes(short_builds, record_property):
    from fixtures.pretrain_tiny import check_rebuild, machine
    from tvcore.checkpoints import sha256_file

    first, second = short_builds
    verdict = check_rebuild(second, {"sha256": sha256_file(first), "built_on": machine()}, committed=first)
    record_property("reproduction_check", verdict.check)
    assert verdict.check == "bytes" and verdict.ok, verdict.summary
    assert not check_rebuild(second, {"sha256": "0" * 64, "built_on": machine()}, committed=first).ok


def test_tiny_checkpoint_statistical_check_catches_another_model(short_builds):
    """A model trained 4 steps instead of 600 is no reproduction of the committed one."""
    from fixtures.pretrain_tiny import check_rebuild

    verdict = check_rebuild(short_builds[0], _another_cpu(_manifest()))
    assert verdict.check == "statistical" and not verdict.ok
    assert verdict.outcome == "differ" and "DIFFER" in verdict.summary


def test_tiny_checkpoint_check_follows_cpu_flags_and_torch():
    from fixtures.pretrain_tiny import differences, machine

    here = machine()
    assert differences(here, here) == []
    assert differences({**here, "cpu": None}, here) == ["the CPU that built the committed checkpoint is not known"]
    assert "CPU flags differ" in differences({**here, "cpu_flags_sha256": "0" * 64}, here)[0]
    assert "torch" in differences({**here, "torch": "0.0"}, here)[0]
