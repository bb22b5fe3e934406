"""Result records: the JSON a suite case writes.

A *record* says what ran (config, versions, git commit), on what (hardware,
determinism flags, test-set hashes), what it measured (metrics with 95% intervals)
and how long it took. This module writes, reads and schema-checks records and
reads the hardware fingerprint they carry. Baselines (:mod:`tvcore.baselines`),
the gate (:mod:`tvcore.gate`) and the comparison of two records
(:mod:`tvcore.compare`) build on it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .errors import RecordError
from .outputs import atomic_write

RECORD_FORMAT = "tvcore.record/1"

# ------------------------------------------------------------------ environment

def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def git_state(repo: Path | None = None) -> dict:
    """The commit and dirty flag, read once per process: a session that writes
    baselines must not see its own writes as local changes."""
    repo = repo or Path(__file__).resolve().parents[1]
    commit = _run(["git", "rev-parse", "HEAD"], repo)
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], repo)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in ("tvcore", "torch", "open_clip_torch", "numpy", "safetensors", "scikit-learn", "pytest",
                 "pytest-benchmark", "hypothesis"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def environment() -> dict:
    import torch

    from .finetune import determinism_flags

    hw = {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
          "platform": platform.platform(), "cuda_available": torch.cuda.is_available(),
          "cuda": torch.version.cuda, "gpu": None, "driver": None}
    if torch.cuda.is_available():
        hw["gpu"] = torch.cuda.get_device_name()
        hw["driver"] = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return {"versions": _versions(), "hardware": hw, "determinism": determinism_flags(), "git": git_state()}


def finalize(record: dict, case: str, seed: int | None = None) -> dict:
    out = {"format": RECORD_FORMAT, "case": case, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if seed is not None:
        out["seed"] = seed
    out.update(record)
    out["environment"] = environment()
    # The flags at the end say nothing of how a pool-served vector was trained: a
    # run's own account (tvcore.experiments.common.Context.describe) takes their place.
    run_determinism = (record.get("context") or {}).get("determinism")
    if run_determinism is not None:
        out["environment"]["determinism"] = run_determinism
    return out


def write_json(data: Mapping, path: str | os.PathLike) -> Path:
    """Write JSON atomically (see :func:`tvcore.outputs.atomic_write`). The text is
    made before the file is opened, so data that cannot be written leaves nothing."""
    path = Path(path)
    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"
    with atomic_write(path, what="JSON file") as tmp:
        tmp.write_text(text)
    return path


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def read_json(path: str | os.PathLike, what: str = "record", error: type[RecordError] = RecordError) -> dict:
    """A JSON object from ``path``; anything else is ``error`` naming the file."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {path} is a directory; give the .json file")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"no such {what}: {path}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not text (a binary file?); give the .json file") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{what} {path} holds a JSON {type(data).__name__}, not an object")
    return data


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_metrics(data: Mapping, source: str, error: type[RecordError], fields: Mapping[str, Callable],
                   fix: str) -> None:
    """Every schema check of a metrics table: present, non-empty, one object per
    metric with the given fields. ``fix`` tells the user how to get a good file."""
    metrics = data.get("metrics")
    if metrics is None:
        raise error(f"{source}: no 'metrics'; {fix}")
    if not isinstance(metrics, dict):
        raise error(f"{source}: 'metrics' is a JSON {type(metrics).__name__}, not an object; {fix}")
    if not metrics:
        raise error(f"{source}: 'metrics' is empty and would gate nothing; {fix}")
    for name, m in metrics.items():
        if not isinstance(m, dict):
            raise error(f"{source}: metric {name!r} is not an object; {fix}")
        for field_name, valid in fields.items():
            if field_name not in m:
                raise error(f"{source}: metric {name!r} has no {field_name!r}; {fix}")
            if not valid(m[field_name]):
                raise error(f"{source}: metric {name!r} has {field_name} {m[field_name]!r}, which is not "
                            f"{valid.__doc__}; {fix}")


def _proportion(v) -> bool:
    """a proportion in [0, 1]"""
    return _is_number(v) and 0 <= v <= 1


def _count(v) -> bool:
    """a count >= 1"""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _non_negative(v) -> bool:
    """a number >= 0"""
    return _is_number(v) and v >= 0


RECORD_FIELDS = {"value": _proportion, "total": _count}

_RECORD_FIX = "write records with 'tvcore run' or 'pytest bench/'"


def validate_record(record: Mapping, source: str = "record") -> Mapping:
    """Raise :class:`RecordError` unless ``record`` has a non-empty ``metrics``
    table whose every metric has a ``value`` in [0, 1] and a test-set size ``total``."""
    _check_metrics(record, source, RecordError, RECORD_FIELDS, _RECORD_FIX)
    return record


def read_record(path: str | os.PathLike) -> dict:
    """A result record, schema-checked (:func:`validate_record`)."""
    return validate_record(read_json(path, "record"), str(path))



def seed_spread(records: Sequence[Mapping]) -> dict:
    """A suite's training spread over its fine-tuning seeds, as a record carries it
    (``seed_spread``, read by :func:`tvcore.verdicts.training_spread`): every metric
    the records share, its per-seed values and SD. ``records`` are the suite's runs
    of seeds 0..N-1, in order."""
    import statistics

    names = sorted(set.intersection(*(set(r["metrics"]) for r in records)))
    values = {k: [r["metrics"][k]["value"] for r in records] for k in names}
    return {"n_seeds": len(records), "seeds": list(range(len(records))), "values": values,
            "sd": {k: statistics.stdev(v) for k, v in values.items()},
            "what": "fine-tuning seeds of this suite; the data splits stay fixed"}


def fingerprint(record: Mapping) -> dict:
    """What decides the bits of a deterministic evaluation: CPU model, torch
    version and GPU (None on a machine without one), as :func:`environment` recorded them."""
    env = record.get("environment") or {}
    hw, versions = env.get("hardware") or {}, env.get("versions") or {}
    return {"cpu": hw.get("cpu"), "torch": versions.get("torch"), "gpu": hw.get("gpu")}


def same_hardware(a: Mapping | None, b: Mapping | None) -> bool:
    """Equal fingerprints that name a CPU and a torch version (an unknown machine
    is never the same one)."""
    return bool(a and b and a == b and a.get("cpu") and a.get("torch"))




def first_different_split(ours: Mapping, theirs: Mapping) -> tuple[str, str] | None:
    """The first split (in sorted order) whose test-data hash differs between two
    ``split_hashes`` tables, with how: 'only in ours', 'only in theirs' or
    'different contents'; None when they agree."""
    for split in sorted(set(ours) | set(theirs)):
        if ours.get(split) != theirs.get(split):
            return split, ("only in ours" if split not in theirs else "only in theirs" if split not in ours
                           else "different contents")
    return None
