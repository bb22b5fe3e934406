"""``tvcore data summary``: what a user sees when some of the datasets are missing or wrong."""

from __future__ import annotations

import pytest

from fixtures import fake_trees as ft
from tvcore.cli import main


@pytest.fixture
def two_tasks(tmp_path):
    """MNIST readable, DTD in a broken layout (its test folder gone), the rest absent."""
    ft.write_task(tmp_path, "MNIST", "torchvision", images_per_class=2)
    ft.write_task(tmp_path, "DTD", "generic", images_per_class=2)
    (tmp_path / "DTD" / "test").rename(tmp_path / "DTD" / "held-out")
    return tmp_path


def test_failed_tasks_are_error_lines_and_the_exit_status_is_not_zero(two_tasks, capsys):
    assert main(["data", "summary", "paper-tasks", "--root", str(two_tasks)]) == 1
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 8  # every task but MNIST
    assert "not found:" not in out.replace("folder not found:", "").replace("split not found:", "")
    assert next(line for line in out.splitlines() if line.startswith("| MNIST "))


def test_an_error_line_names_its_task_once(two_tasks, capsys):
    main(["data", "summary", "paper-tasks", "--root", str(two_tasks)])
    dtd = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error: DTD")]
    assert len(dtd) == 1 and "DTD: DTD" not in dtd[0] and "DTD test split not found" in dtd[0]


def test_without_a_root_one_short_line_says_what_to_pass(monkeypatch, capsys):
    monkeypatch.delenv("TVCORE_DATA", raising=False)
    assert main(["data", "summary", "paper-tasks"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 160
    assert "--root DIR" in err and "TVCORE_DATA" in err and "None" not in err


def test_the_root_defaults_to_tvcore_data(two_tasks, monkeypatch, capsys):
    monkeypatch.setenv("TVCORE_DATA", str(two_tasks))
    assert main(["data", "summary", "MNIST"]) == 0
    assert "| MNIST " in capsys.readouterr().out


def test_help_names_paper_tasks_and_the_environment_variable(capsys):
    with pytest.raises(SystemExit):
        main(["data", "summary", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "paper-tasks" in help_text and "$TVCORE_DATA" in help_text
