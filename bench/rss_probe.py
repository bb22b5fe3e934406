"""Run one merge in a fresh process and print its peak resident set size as JSON.

    python bench/rss_probe.py idle
    python bench/rss_probe.py stream OUT FILE...
    python bench/rss_probe.py reference OUT FILE...
    python bench/rss_probe.py tvcore-eval DATA_ROOT RESULTS_DIR ARCH

``tvcore-eval`` runs the command ``tvcore eval MNIST`` on DATA_ROOT (generic
layout) with the architecture ARCH (random init), model and all: the split is
decoded into the pixel cache under ``TVCORE_CACHE``, read back, normalized and
evaluated. It reports the record's image count and the bytes of the cache entry.

The bench calls :func:`run` to start several probes at once.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path


def run(*probes: tuple[tuple, dict | None]) -> list[dict]:
    """Run probes at once, each in its own process (a peak RSS is per process), and
    return what each printed. ``probes`` are ``(args, env)`` pairs: the mode and its
    arguments, and variables added to this process's environment (or None)."""
    procs = [subprocess.Popen([sys.executable, __file__, *map(str, args)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
             for args, env in probes]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main(argv: list[str]) -> None:
    mode, rest = argv[0], argv[1:]
    import torch  # noqa: F401  (the interpreter + torch baseline is part of every mode)

    if mode == "stream":
        from tvcore.merging import merge_files

        merge_files(rest[1:], rest[0])
    elif mode == "reference":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from reference_impl import reference_merge_files

        reference_merge_files(rest[1:], rest[0])
    elif mode == "tvcore-eval":
        print(json.dumps({"mode": mode, **tvcore_eval(Path(rest[0]), Path(rest[1]), rest[2])}))
        return
    elif mode != "idle":
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps({"mode": mode, "peak_rss_bytes": peak_rss_bytes()}))


def tvcore_eval(data_root: Path, results_dir: Path, arch: str) -> dict:
    from tvcore.cli import main as tvcore_main

    code = tvcore_main(["eval", "MNIST", "--arch", arch, "--data-root", str(data_root), "--results-dir",
                        str(results_dir), "--workers", "0", "--quiet", "--name", "rss"])
    if code != 0:
        raise SystemExit(f"tvcore eval exited {code}")
    record = json.loads((results_dir / "rss.json").read_text())
    cache = Path(os.environ["TVCORE_CACHE"]) / "pixels" if os.environ.get("TVCORE_CACHE") else None
    cache_bytes = sum(f.stat().st_size for f in cache.glob("*.u8")) if cache else None
    return {"images": record["metrics"]["test.overall"]["total"], "cache_bytes": cache_bytes,
            "peak_rss_bytes": peak_rss_bytes()}


def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM). getrusage's ru_maxrss is not used:
    Linux carries it over from the parent through fork and exec, so a child of a
    large test process would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    main(sys.argv[1:])
