"""The pytest plugin's options: usage errors, not silent skips."""

from __future__ import annotations


import pytest

pytest_plugins = ["pytester"]


def test_gpu_without_cuda_is_a_usage_error(pytester):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest_subprocess("--gpu", "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--gpu was given but CUDA is not available*"])


def test_seeds_must_be_positive(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest_subprocess("--seeds", "0", "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--seeds must be at least 1*"])


def test_seeds_parametrize_the_seed_fixture(pytester):
    pytester.makepyfile("def test_x(tvcore_seed):\n    assert tvcore_seed in (0, 1, 2)\n")
    res = pytester.runpytest_subprocess("--seeds", "3", "-p", "no:cacheprovider", "-v")
    res.assert_outcomes(passed=3)
    res.stdout.fnmatch_lines(["*test_x?seed2?*PASSED*"])


def test_without_seeds_each_suite_runs_the_seed_its_baseline_gates(pytester):
    pytester.makepyfile("def test_x(tvcore_seed):\n    assert tvcore_seed is None\n")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*test_x?ci-seed?*PASSED*"])


def test_markers_are_registered(pytester):
    res = pytester.runpytest_subprocess("--markers")
    res.stdout.fnmatch_lines(["*@pytest.mark.speed*", "*@pytest.mark.micro*", "*@pytest.mark.real*"])


def test_run_options_reach_the_session_options(pytester):
    pytester.mkdir("ft")
    pytester.makepyfile("""
def test_x(tvcore_options):
    o = tvcore_options
    assert (o.workers, o.pool, o.fresh, o.finetuned) == (2, "pool", True, "ft")
""")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--workers", "2", "--pool", "pool", "--fresh",
                                        "--finetuned", "ft")
    res.assert_outcomes(passed=1)


def test_results_dir_that_is_a_file_stops_the_session_before_it_runs(pytester):
    pytester.makefile(".json", results="{}")
    pytester.makepyfile("def test_x():\n    raise AssertionError('must not run')\n")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--results-dir", "results.json")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--results-dir results.json is a file, not a folder*"])


def seed_runs(runs, suite, values):
    from tvcore.pytest_plugin import CaseRun

    for seed, v in enumerate(values):
        record = {"case": suite if seed == 0 else f"{suite}-seed{seed}", "suite": suite, "seed": seed,
                  "metrics": {"acc": {"value": v, "total": 200}}}
        path = runs.options.results_dir / f"{record['case']}.json"
        runs.runs[(suite, seed)] = CaseRun(record["case"], seed, record, path, 1.0, suite=suite)


def test_update_baselines_pools_every_seed_into_the_suite_baseline(tmp_path):
    from tvcore import results
    from tvcore.pytest_plugin import Options, Runs

    runs = Runs(Options("cpu", None, None, True, tmp_path / "results", tmp_path / "baselines", 3))
    seed_runs(runs, "s", [0.80, 0.82, 0.78])
    runs.gate(runs.runs[("s", 0)])
    base = results.read_baseline(tmp_path / "baselines" / "s.json")
    assert base["seeds"] == [0, 1, 2] and base["metrics"]["acc"]["values"] == [0.80, 0.82, 0.78]
    assert runs.runs[("s", 0)].gate == "baseline written (3 seeds)"


def test_seeds_write_each_metrics_seed_spread_into_the_record(tmp_path):
    import json

    from tvcore.pytest_plugin import Options, Runs

    runs = Runs(Options("cpu", None, None, True, tmp_path / "results", tmp_path / "baselines", 3))
    seed_runs(runs, "s", [0.80, 0.82, 0.78])
    runs.gate(runs.runs[("s", 0)])
    written = json.loads((tmp_path / "results" / "s.json").read_text())["seed_spread"]
    assert written["n_seeds"] == 3 and written["values"]["acc"] == [0.80, 0.82, 0.78]
    assert written["sd"]["acc"] == pytest.approx(0.02)


def test_seed_zero_is_gated_against_the_pooled_baseline(tmp_path):
    from tvcore.pytest_plugin import Options, Runs

    writer = Runs(Options("cpu", None, None, True, tmp_path / "results", tmp_path / "baselines", 3))
    seed_runs(writer, "s", [0.80, 0.82, 0.78])
    writer.gate(writer.runs[("s", 0)])
    ci = Runs(Options("cpu", None, None, False, tmp_path / "results", tmp_path / "baselines", 1))
    seed_runs(ci, "s", [0.80])
    ci.gate(ci.runs[("s", 0)])
    assert ci.runs[("s", 0)].gate == "passed"
    seed_runs(ci, "s", [0.50])
    with pytest.raises(pytest.fail.Exception, match=r"(?s)s: 1 metric\(s\) beyond tolerance.*acc: measured 0.5000"):
        ci.gate(ci.runs[("s", 0)])


def test_a_session_without_gpu_on_a_machine_with_cuda_says_the_gpu_is_unused(pytester, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "a test GPU")
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest("-p", "no:cacheprovider")
    res.stdout.fnmatch_lines(["*CUDA is available (a test GPU) but unused*pass --gpu*"])


def test_a_session_on_a_machine_without_cuda_says_nothing_of_it(pytester, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest("-p", "no:cacheprovider")
    assert "CUDA is available" not in res.stdout.str()


def test_progress_bars_written_to_a_log_redraw_rarely(monkeypatch):
    import io
    import os

    from tvcore.pytest_plugin import _paced_bars_off_a_terminal

    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # a log, not a terminal
    with _paced_bars_off_a_terminal(30):
        assert os.environ["TQDM_MININTERVAL"] == "30"
    assert "TQDM_MININTERVAL" not in os.environ
    monkeypatch.setenv("TQDM_MININTERVAL", "1")  # the user's own choice wins
    with _paced_bars_off_a_terminal(30):
        assert os.environ["TQDM_MININTERVAL"] == "1"
