"""Every command the README shows is one the tools accept: each ``tvcore`` line of its
code blocks (each optional part given, the first of each choice taken) and each
``tvcore`` command written out in its text parse with tvcore's own parser, and each
option of its ``pytest`` lines is one that pytest, the plugin or the bench registers.
Nothing is run: a command that drifted from the code fails here, not in a user's hands."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tvcore.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _fenced_lines(text: str) -> list[str]:
    """The lines inside the README's code blocks (of any language)."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line.strip())
    return lines


FENCED = _fenced_lines(README)


def _without_comment(line: str) -> str:
    return re.split(r"\s+#\s", line, maxsplit=1)[0].strip()


def _spelled_out(line: str) -> list[list[str]]:
    """The argument lists a synopsis line stands for. ``[...]`` parts are given (their
    brackets dropped), ``a|b`` takes ``a``, ``...`` is dropped, a count ``N`` is 2 and
    ``POINTS`` 1, and
    ``x | y | z`` (the subcommand alternatives of ``tvcore cache``) gives one list per
    alternative."""
    words = shlex.split(_without_comment(line).replace("[", " ").replace("]", " "))[1:]
    words = [w.split("|")[0] if "|" in w and w != "|" else w for w in words if w != "..."]
    words = [{"N": "2", "POINTS": "1"}.get(w, w) for w in words]
    if "|" not in words:
        return [words]
    head = words[:words.index("|") - 1]
    alternatives, current = [], []
    for word in words[len(head):]:
        if word == "|":
            alternatives.append(current)
            current = []
        else:
            current.append(word)
    return [head + alt for alt in alternatives + [current]]


def _inline_commands() -> list[str]:
    """``tvcore`` commands written out in the text with their arguments (names of a
    command alone, such as ``tvcore data summary``, are not commands)."""
    spans = [" ".join(m.split()) for m in re.findall(r"`(tvcore [^`]+)`", README)]
    return [s for s in spans if len(s.split()) > 3 and "|" not in s]


TVCORE_LINES = [line for line in FENCED if line.startswith("tvcore ")] + _inline_commands()


def test_the_readme_shows_tvcore_commands():
    assert len(TVCORE_LINES) >= 15
    assert any(line.startswith("tvcore vector merge") for line in TVCORE_LINES)


@pytest.mark.parametrize("line", TVCORE_LINES)
def test_a_tvcore_command_of_the_readme_parses(line):
    if _without_comment(line) == "tvcore --version":
        return  # argparse's version action exits by design; the option is asserted below
    for argv in _spelled_out(line):
        try:
            args, unknown = build_parser().parse_known_args(argv)
        except SystemExit:
            pytest.fail(f"README: {line!r}: tvcore's parser refuses {argv}")
        assert unknown == [], f"README: {line!r}: unknown arguments {unknown}"
        assert callable(args.func)


def test_tvcore_has_the_version_option_the_readme_shows():
    assert any(line.startswith("tvcore --version") for line in FENCED)
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0


def test_a_refused_command_is_caught():
    """The check can fail: a misspelt option and a missing subcommand are refused."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "negation-micro", "--sedes", "3"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["vector", "combine", "a", "b"])


PYTEST_LINES = [_without_comment(line) for line in FENCED if line.startswith("pytest ")]


@pytest.fixture(scope="module")
def pytest_help() -> str:
    """``pytest bench/ --help`` as a user runs it: pytest's, the plugin's and the bench's options."""
    out = subprocess.run([sys.executable, "-m", "pytest", "bench/", "--help", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_every_option_of_the_readmes_pytest_lines_is_registered(pytest_help):
    assert len(PYTEST_LINES) >= 5
    options = sorted({word.split("=")[0] for line in PYTEST_LINES for word in shlex.split(line)
                      if word.startswith("--")})
    assert "--gpu" in options and "--data-root" in options
    registered = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", pytest_help))
    assert [o for o in options if o not in registered] == []
    assert "--not-an-option" not in registered
