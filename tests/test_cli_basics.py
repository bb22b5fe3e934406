"""What a newcomer expects of any command-line tool: a licence, a changelog, a version,
``python -m``, help that lists the choices, and the right usage on a wrong option."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import tvcore
from tvcore.cli import main

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def test_license_file_is_the_mit_licence_pyproject_declares():
    text = (ROOT / "LICENSE").read_text()
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    assert text.startswith("MIT License") and "tvcore developers" in text


def test_changelog_names_the_current_version():
    assert f"## [{tvcore.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_version_option_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"tvcore {tvcore.__version__}"


def test_python_dash_m_runs_the_command_line():
    out = subprocess.run([sys.executable, "-m", "tvcore", "--version"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"tvcore {tvcore.__version__}"


def test_unknown_option_shows_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "negation-micro", "--bogus"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("usage: tvcore run ") and "tvcore run: error: unrecognized arguments: --bogus" in err


def test_unknown_option_of_a_nested_subcommand_shows_its_usage(capsys):
    with pytest.raises(SystemExit):
        main(["data", "summary", "MNIST", "--bogus"])
    assert capsys.readouterr().err.startswith("usage: tvcore data summary ")


def test_run_help_lists_every_suite_unbroken(capsys, monkeypatch):
    from tvcore.experiments import SUITES

    monkeypatch.setenv("COLUMNS", "50")  # a narrow terminal must not split a name at its hyphens
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "..." not in help_text
    for suite in SUITES:
        assert re.search(rf"\b{re.escape(suite)}\b", help_text), suite


def test_every_run_option_has_help():
    from tvcore.cli import build_parser

    parser = build_parser()
    run = next(a for a in parser._actions if a.dest == "command").choices["run"]
    undocumented = [a.option_strings[0] for a in run._actions if a.option_strings and not a.help]
    assert undocumented == []


def test_the_entry_point_runs_main_with_the_collector_frozen_at_exit(monkeypatch):
    import atexit
    import gc

    import tvcore.cli as cli

    registered = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(cli.freeze_at_exit, "registered", False, raising=False)
    monkeypatch.setattr(cli, "main", lambda: 3)
    assert cli.entry() == 3
    assert registered == [gc.freeze]
    assert gc.get_freeze_count() == 0  # nothing frozen before the exit


def test_the_exit_handler_is_registered_once(monkeypatch):
    import atexit

    import tvcore.cli as cli

    registered = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(cli.freeze_at_exit, "registered", False, raising=False)
    cli.freeze_at_exit()
    cli.freeze_at_exit()
    assert len(registered) == 1


def test_a_pytest_session_with_the_plugin_freezes_the_collector_at_exit(pytester, monkeypatch):
    import atexit
    import gc

    import tvcore.cli as cli

    registered = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(cli.freeze_at_exit, "registered", False, raising=False)
    pytester.makepyfile("def test_x():\n    pass\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert gc.freeze in registered


def test_main_called_from_python_leaves_the_collector_alone(tmp_path, capsys, monkeypatch):
    import gc

    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path))
    assert main(["cache", "list"]) == 0
    assert gc.get_freeze_count() == 0


def test_the_console_script_and_python_dash_m_start_at_the_entry_point():
    assert 'tvcore = "tvcore.cli:entry"' in (ROOT / "pyproject.toml").read_text()
    assert "sys.exit(entry())" in (ROOT / "tvcore" / "__main__.py").read_text()


@pytest.mark.parametrize("device, started", [("cuda", ["cuda"]), ("cuda:1", ["cuda:1"]), ("cpu", []), ("mps", [])])
def test_a_cuda_device_is_started_on_a_background_thread(monkeypatch, device, started):
    """``tvcore eval`` and ``tvcore run`` start CUDA beside OpenCLIP's import and the
    model's build; the thread is not a daemon (no exit halfway through the driver's
    start), and an error there is left to the command's own first use to raise."""
    import threading

    import torch

    from tvcore.cli import start_device_in_background

    seen, threads, thread = [], [], threading.Thread

    def zeros(*args, device=None, **kwargs):
        seen.append(device)
        raise RuntimeError("no CUDA here")  # swallowed: the model's move raises it, in the main thread

    def recording(*args, **kwargs):
        threads.append(thread(*args, **kwargs))
        return threads[-1]

    monkeypatch.setattr(torch, "zeros", zeros)
    monkeypatch.setattr(threading, "Thread", recording)
    start_device_in_background(device)
    for t in threads:
        t.join()
    assert seen == started
    assert [(t.name, t.daemon) for t in threads] == [("tvcore-device-start", False)] * len(started)
    monkeypatch.setenv("TVCORE_DEVICE_START", "first-use")  # left to the first use: no thread
    start_device_in_background(device)
    assert len(threads) == len(started)


def test_a_device_start_that_is_neither_background_nor_first_use_is_refused(monkeypatch):
    from tvcore.cli import start_device_in_background
    from tvcore.errors import UsageError

    monkeypatch.setenv("TVCORE_DEVICE_START", "early")
    with pytest.raises(UsageError, match="TVCORE_DEVICE_START=early: use background"):
        start_device_in_background("cuda")


def test_eval_starts_the_device_after_checking_its_inputs(tmp_path, monkeypatch, capsys):
    import tvcore.cli as cli

    started = []
    monkeypatch.setattr(cli, "start_device_in_background", started.append)
    from tvcore.experiments.common import TINY

    results = tmp_path / "a-file"
    results.write_text("")
    tiny = ["--arch", TINY.arch, "--weights", TINY.pretrained, "--quiet"]
    assert main(["eval", "digits", *tiny, "--results-dir", str(results)]) != 0
    assert started == []
    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path / "cache"))
    assert main(["eval", "digits", *tiny, "--results-dir", str(tmp_path / "results")]) == 0
    assert started == ["cpu"]
