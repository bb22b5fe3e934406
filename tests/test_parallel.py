"""Fine-tunes side by side (tvcore.parallel): worker processes train a suite's pool
entries to the same vectors as one process training them in turn, and an entry's
lock keeps two processes from training it twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["digits/rot90", "digits/mirror"]


@pytest.fixture(scope="module")
def suite():
    from tvcore.experiments import Suite
    from tvcore.experiments.common import TINY
    from tvcore.experiments.negation import NegationConfig
    from tvcore.finetune import Recipe

    recipe = Recipe(lr=1e-3, batch_size=16, steps=6, warmup_steps=2)
    return Suite("negation-pair", "negation", NegationConfig(TASKS, "digits/upright", lambdas=[0.0, 1.0],
                                                             controls=False), TINY, recipe)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One head and pixel cache for the module, seen by the spawned workers too."""
    path = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("TVCORE_CACHE", str(path))
    yield path
    mp.undo()


def _vectors(suite, pool: Path) -> tuple[dict, dict]:
    from tvcore.experiments import context_for

    ctx = context_for(suite, pool=str(pool), workers=0, progress=False)
    return {t: ctx.vector(t).state_dict() for t in TASKS}, {t: ctx.pool.provenance[t]["source"] for t in TASKS}


@pytest.fixture(scope="module")
def sequential(suite, cache, tmp_path_factory):
    return _vectors(suite, tmp_path_factory.mktemp("sequential"))[0]


@pytest.fixture(scope="module")
def parallel(suite, cache, tmp_path_factory):
    from tvcore.parallel import train_entries

    pool = tmp_path_factory.mktemp("parallel")
    lines: list[str] = []
    done = train_entries(suite, {"pool": str(pool), "workers": 0}, jobs=2, devices=["cpu"], say=lines.append)
    vectors, sources = _vectors(suite, pool)
    return {"done": done, "lines": lines, "vectors": vectors, "sources": sources}


def test_two_workers_train_both_entries(parallel):
    assert sorted(d["task"] for d in parallel["done"]) == sorted(TASKS)
    assert {d["source"] for d in parallel["done"]} == {"trained"}
    assert parallel["lines"][0].startswith("parallel: 2 fine-tunes of negation-pair, 2 at once on cpu")


def test_the_run_after_them_is_served_from_the_pool(parallel):
    assert parallel["sources"] == {t: "pool" for t in TASKS}


def test_workers_give_the_vectors_of_sequential_training(parallel, sequential):
    import torch

    for task in TASKS:
        got, want = parallel["vectors"][task], sequential[task]
        assert got.keys() == want.keys()
        # Same seeds, data and CPU thread count: the same floats.
        assert all(torch.equal(got[k], want[k]) for k in want), task


def test_entries_in_the_pool_are_not_trained_again(suite, parallel, cache, tmp_path):
    from tvcore.parallel import entries_to_train, train_entries

    pool = tmp_path / "warm"
    train_entries(suite, {"pool": str(pool), "workers": 0}, jobs=1, devices=["cpu"], say=lambda line: None)
    assert entries_to_train(suite, {"pool": str(pool), "workers": 0}) == []
    assert train_entries(suite, {"pool": str(pool), "workers": 0}, jobs=2, devices=["cpu"]) == []


def test_without_a_pool_folder_parallel_training_is_a_usage_error(suite, cache):
    from tvcore.errors import UsageError
    from tvcore.parallel import train_entries

    with pytest.raises(UsageError, match="--pool DIR"):
        train_entries(suite, {"workers": 0}, jobs=2, devices=["cpu"])


# ------------------------------------------------------------------ the entry lock

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tvcore.pool import entry_lock
    with entry_lock(Path(sys.argv[1]), say=lambda line: print(line, flush=True)):
        print("held", flush=True)
        if sys.argv[2] == "hold":
            time.sleep(600)
""")


def _locker(entry: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(entry), mode], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_process_asking_for_a_locked_entry_waits_for_its_holder(tmp_path):
    from tvcore.pool import entry_lock

    entry = tmp_path / "entry"
    with entry_lock(entry):
        proc = _locker(entry, "release")
        first = proc.stdout.readline().strip()
        assert first == f"pool: waiting for {entry} (being trained by pid {os.getpid()})"
        assert proc.poll() is None, "the second process went on while the lock was held"
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.strip() == "held"


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path):
    from tvcore.pool import entry_lock

    entry = tmp_path / "entry"
    proc = _locker(entry, "hold")
    assert proc.stdout.readline().strip() == "held"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    said: list[str] = []
    with entry_lock(entry, say=said.append):
        assert (entry / "train.lock").read_text() == str(os.getpid())
    assert said == [], "the dead holder's lock made this process wait"


def test_a_second_pool_uses_the_entry_the_first_finished(suite, cache, tmp_path, capsys):
    from tvcore.experiments import context_for

    first = context_for(suite, pool=str(tmp_path), workers=0, progress=False)
    assert first.pool.ensure(TASKS[0], first.tasks, first.recipe)["source"] == "trained"
    second = context_for(suite, pool=str(tmp_path), workers=0, progress=True)
    capsys.readouterr()
    assert second.pool.ensure(TASKS[0], second.tasks, second.recipe)["source"] == "pool"
    assert f"pool: {TASKS[0]} served from {tmp_path}" in capsys.readouterr().err


def test_a_run_handed_to_train_entries_is_planned_and_then_served_even_when_fresh(suite, cache, tmp_path):
    """What ``tvcore run --jobs N`` does: plan the run's own context (the record gets
    the prediction), train in workers, then run; ``--fresh`` clears each entry once
    (in its worker), not again in the run."""
    from tvcore.experiments import context_for, run_suite
    from tvcore.parallel import train_entries

    options = {"pool": str(tmp_path), "workers": 0, "fresh": True}
    ctx = context_for(suite, progress=False, **options)
    done = train_entries(suite, options, jobs=2, devices=["cpu"], say=lambda line: None, ctx=ctx)
    assert sorted(d["task"] for d in done) == sorted(TASKS)
    record = run_suite(suite, ctx)
    assert {record["context"]["vectors"][t]["source"] for t in TASKS} == {"pool"}
    assert record["timings"]["predicted"]["total"] > 0
