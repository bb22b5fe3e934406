"""Nothing left behind: pytest removes a passing test's temporary folder, so a run of
the suites does not leave gigabytes of ViT-B-32 files and pixel caches on disk."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INNER = '''
def test_writes_a_large_file(tmp_path):
    (tmp_path / "weights.bin").write_bytes(bytes(1 << 20))

def test_fails_and_keeps_its_folder(tmp_path):
    (tmp_path / "evidence.txt").write_text("look here")
    assert False
'''


def test_pytest_options_keep_only_the_last_failing_session():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["tmp_path_retention_policy"] == "failed"
    assert options["tmp_path_retention_count"] == 1


def test_a_passing_tests_folder_is_removed_and_a_failing_ones_kept(tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER)
    basetemp = tmp_path / "base"
    out = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
                          str(tmp_path), "-p", "no:cacheprovider", "-p", "no:tvcore", "--basetemp", str(basetemp),
                          "-q", str(tmp_path / "test_inner.py")], capture_output=True, text=True, timeout=300)
    assert "1 failed, 1 passed" in out.stdout, out.stdout[-2000:]
    assert not list(basetemp.rglob("weights.bin"))
    assert [p.read_text() for p in basetemp.rglob("evidence.txt")] == ["look here"]
