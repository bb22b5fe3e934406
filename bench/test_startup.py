"""The start of a ``tvcore`` process: what a short command costs beyond its work.

``tvcore eval digits`` on the tiny model with its pixel cache built (its work is a
fraction of a second) against the floor every OpenCLIP tool pays: a Python process
that imports torch and torchvision (OpenCLIP imports both) and exits. Medians of
three runs, each in a fresh process, in the same session; the ratio goes to the
speed table printed at the end and to results/speed.json. Nothing here fails on a
time: the test asserts only that every run gave the same result.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.speed

RUNS = 3


def wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-2000:]
    return seconds


def test_tvcore_eval_start_against_importing_torch_and_torchvision(tmp_path, speed_table):
    from tvcore.experiments.common import TINY_CHECKPOINT, TINY_CONFIG

    env = {**os.environ, "TVCORE_CACHE": str(tmp_path / "cache")}
    results = tmp_path / "r"

    def eval_cmd(name):
        return [sys.executable, "-m", "tvcore", "eval", "digits", "--arch", str(TINY_CONFIG), "--weights",
                str(TINY_CHECKPOINT), "--results-dir", str(results), "--name", name, "--quiet"]

    wall(eval_cmd("warm"), env)  # builds the pixel cache and the head
    floor = [wall([sys.executable, "-c", "import torch, torchvision"], env) for _ in range(RUNS)]
    runs = [wall(eval_cmd(f"run{i}"), env) for i in range(RUNS)]
    metrics = [json.loads((results / f"{name}.json").read_text())["metrics"]
               for name in ["warm"] + [f"run{i}" for i in range(RUNS)]]
    assert all(m == metrics[0] for m in metrics)
    speed_table["startup"] = {"tvcore_eval_s": statistics.median(runs), "floor_s": statistics.median(floor),
                              "ratio_to_floor": statistics.median(runs) / statistics.median(floor), "runs": RUNS}
