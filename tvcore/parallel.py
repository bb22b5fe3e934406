"""Several fine-tunes at once: a suite's pool entries trained side by side before
its sweeps run.

The paper's suites need 8 independent fine-tunes (16 with gradient ascent) of
batch 128, each too small to fill an H100. :func:`train_entries` counts the
entries a suite would train (the plan's counting, :func:`tvcore.plan.count_suite`),
then starts ``jobs`` worker processes per device, each with its own context
(model, tasks, pool over the same folder). The workers take entries from one
queue, longest first, and write them into the pool as a sequential run would;
the suite then runs as usual and finds every encoder in the pool.

Workers are started with ``spawn``: the parent holds threads (PyTorch's, the data
loaders'), and fork would copy their locks in whatever state they were. An entry
is trained under its lock (:func:`tvcore.pool.entry_lock`), so no two processes
train the same one, and a worker killed mid-way loses only the steps since its
last checkpoint: the next run resumes there.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from typing import Callable, Sequence

from .errors import TvcoreError, UsageError


NO_POOL = "--jobs N trains fine-tunes side by side into the pool; pass --pool DIR or --results-dir DIR"


class WorkerError(TvcoreError, RuntimeError):
    """A worker could not train an entry."""


def default_devices(device: str) -> list[str]:
    """Every visible GPU when ``device`` is plain ``cuda``; otherwise ``device`` alone."""
    if device == "cuda":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or [device]
    return [device]


def plan_devices(device: str, jobs: int) -> int:
    """How many devices a run's fine-tunes are spread over: every visible GPU with
    ``--jobs`` above 1 (:func:`train_entries`), else the one device."""
    return len(default_devices(device)) if jobs > 1 else 1


def entries_to_train(suite, options: dict) -> list[dict]:
    """The pool entries ``suite`` would fine-tune with these :func:`context_for`
    options (those already in the pool excluded), longest first: task, recipe, key, steps."""
    from .experiments import context_for
    from .plan import count_suite

    ctx = context_for(suite, **{**options, "progress": False})
    if ctx.pool.directory is None:
        raise UsageError(NO_POOL)
    todo = count_suite(suite, ctx).to_train
    return sorted(todo, key=lambda t: -t["steps"])


def train_entries(suite, options: dict, jobs: int = 2, devices: Sequence[str] | None = None,
                  say: Callable[[str], None] | None = None, ctx=None) -> list[dict]:
    """Train every pool entry of ``suite`` that is not in the pool yet, ``jobs``
    processes at a time on each of ``devices`` (default: every visible GPU for
    ``device="cuda"``, else the options' device). ``options`` are the keyword
    arguments of :func:`tvcore.experiments.context_for` the run uses (a pool folder
    among them). ``ctx``: the run's own context; it is planned
    (:func:`tvcore.plan.plan_suite`: the counts, and the record's predicted
    seconds), and its pool is told that its entries are fresh now (so ``fresh``
    does not retrain them). Returns one dict
    per entry: task, key, source (trained, resumed, pool), device, seconds."""
    import multiprocessing as mp

    import torch

    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: give 1 or more fine-tunes at once")
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    devices = list(devices or default_devices(str(options.get("device", "cpu"))))
    if ctx is not None:  # the run's own context: planned (the record gets the prediction), then left as it was
        from .plan import plan_suite

        if ctx.pool.directory is None:
            raise UsageError(NO_POOL)
        todo = sorted(plan_suite(suite, ctx).to_train, key=lambda t: -t["steps"])
    else:
        todo = entries_to_train(suite, options)
    done: list[dict] = []
    if todo:
        workers = min(len(todo), jobs * len(devices))
        # A GPU worker gets its share of the cores for its CPU-side work. A CPU worker keeps
        # this process's thread count: the order of CPU float sums follows it, and AdamW
        # carries a last-bit difference into the weights, so any other count would not
        # reproduce a sequential run (nor the committed CPU baselines).
        threads = [torch.get_num_threads() if not d.startswith("cuda") else max(1, (os.cpu_count() or 1) // workers)
                   for d in devices]
        say(f"parallel: {len(todo)} fine-tunes of {suite.name}, {workers} at once on {', '.join(devices)}")
        spawn = mp.get_context("spawn")
        tasks, results = spawn.Queue(), spawn.Queue()
        for item in todo:
            tasks.put(item)
        procs = []
        for i in range(workers):
            device = devices[i % len(devices)]
            tasks.put(None)  # one stop sign per worker
            proc = spawn.Process(target=_worker, args=(suite, options, device, threads[i % len(devices)], tasks,
                                                       results),
                                 name=f"tvcore-train-{i}", daemon=True)
            proc.start()
            procs.append(proc)
        errors = _collect(todo, procs, results, done, say)
        for proc in procs:
            proc.join()
        if errors:
            raise WorkerError(f"{len(errors)} of {len(todo)} fine-tunes of {suite.name} failed: " + "; ".join(errors)
                              + " (entries that finished are in the pool; rerun to train the rest)")
    if ctx is not None:
        ctx.pool.fresh = False  # its entries were just written (with fresh, from scratch)
    return done


def _collect(todo: list[dict], procs, results, done: list[dict], say) -> list[str]:
    """Results as workers report them, until every entry is reported or every worker is gone."""
    errors: list[str] = []
    failed = 0
    while len(done) + failed < len(todo):
        try:
            kind, payload = results.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                lost = len(todo) - len(done) - failed
                codes = sorted({p.exitcode for p in procs})
                errors.append(f"{lost} entr{'y' if lost == 1 else 'ies'} not reported (worker exit codes {codes})")
                break
            continue
        if kind == "done":
            done.append(payload)
            say(f"parallel: {payload['task']} {payload['source']} on {payload['device']} in "
                f"{payload['seconds']:.0f} s ({len(done)}/{len(todo)})")
        else:
            failed += kind == "failed"  # "dead": a worker that could not start (the others go on)
            errors.append(payload)
    return errors


def _worker(suite, options: dict, device: str, threads: int, tasks, results) -> None:
    """One worker: its own context on ``device``, then entries from ``tasks`` until a stop sign."""
    import torch

    torch.set_num_threads(threads)
    try:
        from .experiments import context_for

        ctx = context_for(suite, **{**options, "device": device, "progress": False})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        results.put(("dead", f"a worker on {device} could not start: {type(exc).__name__}: {exc}"))
        return
    while True:
        item = tasks.get()
        if item is None:
            return
        t0 = time.perf_counter()
        try:
            info = ctx.pool.ensure(item["task"], ctx.tasks, item["recipe"])
        except Exception as exc:  # noqa: BLE001
            results.put(("failed", f"{item['task']} on {device}: {type(exc).__name__}: {exc}"))
            continue
        results.put(("done", {"task": item["task"], "key": item["key"], "source": info["source"], "device": device,
                              "seconds": time.perf_counter() - t0}))


__all__ = ["train_entries", "entries_to_train", "default_devices", "WorkerError"]
