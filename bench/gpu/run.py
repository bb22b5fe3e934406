"""tvcore's own GPU paths beside a bare bf16 loop, in one run, as ratios.

    python bench/gpu/run.py              # on a CUDA machine: ViT-B-32, under 8 minutes
    python bench/gpu/run.py --smoke      # anywhere: the same code on the tiny model, seconds
    bash bench/gpu/run.sh                # the device machine: installs carried wheels first

Measured (images per second; FLOPs counted with ``FlopCounterMode``, MFU against
the device's data-sheet bf16 peak):

* bare training loops at the paper's batch (128): bf16 autocast, AdamW foreach,
  fused, fused + ``torch.compile``, fused + CUDA graphs (compile mode
  ``reduce-overhead``); every loop clips the gradient norm as the recipe does;
* :func:`tvcore.finetune.finetune` on a pixel cache of uint8 images: eager and
  with CUDA graphs, deterministic (fused attention under the strict deterministic
  mode, and the math backend) and not; the result's ``accel`` says what ran; and
  whether two deterministic runs, eager and with CUDA graphs, give bitwise the
  same weights;
* bare evaluation fp32 and bf16 at the device's batch, and tvcore's evaluation
  (:class:`tvcore.data.loaders.EvalLoader` + :func:`tvcore.evaluate.run_classifier`):
  a split's first pass as a new process makes it (torch's pinned host blocks freed
  first: what pinning them costs), and later passes,
  also under the deterministic mode a run holds after a fine-tune, with torch's NaN
  fill of new memory off (as tvcore sets it) and on;
* ``tvcore eval`` end to end on 8,000 cached images (a generated MNIST tree and a
  random ViT-B-32 weights file): the median of three runs after the first (which
  builds the cache), beside processes that import torch (and torchvision) and start
  the device, with whether torch had bytecode; two more runs under cProfile write
  where their seconds go (``e2e-*.prof.txt`` beside the JSON), and a fresh process
  times matplotlib's import and the record's plot (``e2e-plot.prof.txt``);
* fine-tunes side by side on one device (what :mod:`tvcore.parallel` does for a
  suite's pool entries): 4 processes (1 and 2 in the smoke), each
  :func:`tvcore.finetune.finetune` at batch 128 with CUDA graphs on one shared pixel
  cache, compiled before a common start line; images/s over all of them after their
  warm-up steps, against one fine-tune alone;
* a whole micro suite (``negation-micro``) on the device: wall seconds and its
  record's timings;
* deterministic fine-tunes with each fused SDPA backend forced (flash, memory-
  efficient) under the strict mode: pace and a bitwise repeat check (last:
  ``--only train.attention``);
* ``--plan`` of the paper's negation and addition suites (:func:`tvcore.plan.plan_suite`
  on a generated tree of the nine tasks, two images a class, and the random weights
  file): fine-tuning steps and their predicted seconds (which do not depend on the
  data: 2,000 steps a task), the timed rates, and the two suites together (addition
  reuses negation's fine-tunes from the pool). Its evaluation counts are those of the
  generated tree; multiply ``eval_image_s`` by the real splits' images for theirs.

Ratios printed: tvcore fine-tuning / best bare loop, tvcore evaluation / bare bf16
at the same batch (split resident, and read from the cache file), 4 concurrent
fine-tunes / 1 (total images/s), and the paper suites' predicted hours. Random
weights: throughput does not depend on the values. Nothing here asserts a time; a
failing section prints its error and the rest run. The sections run in the order of
what matters most, and results go to ``--out`` (default ``$OUT`` or ``results/``) as
``gpu_bench.json``, rewritten after each section, so a run killed by its time limit
keeps what it measured. ``--only`` runs the sections whose names start with the
given prefixes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from flops import forward_flops, peak_bf16, training_flops  # noqa: E402


@dataclass(frozen=True)
class Size:
    arch: str  # OpenCLIP name or config path
    classes: int
    train_batch: int
    train_warmup: int  # steps before timing (compilation, CUDA graph recording)
    train_steps: int  # timed steps
    eval_batch: int
    eval_images: int  # images in the evaluation cache
    train_images: int  # images in the training cache
    variants: tuple[str, ...]  # bare training loops
    e2e_images: int  # tvcore eval end to end (0: skipped)
    concurrent_jobs: tuple[int, ...] = ()  # fine-tunes side by side, one measurement per count
    concurrent_steps: int = 0  # steps of each of them
    plan_suites: tuple[str, ...] = ()  # suites whose --plan is printed
    plan_model: str | None = None  # None: the suites' own model (ViT-B-32, the random weights file)
    micro_suite: str | None = None  # a whole micro suite run on the device (the smoke leaves it out: a minute on a CPU)
    e2e_cached_runs: int = 3  # tvcore eval end to end with its cache built: the median is the figure
    # The floor's probes (torch alone; torch and torch._dynamo, which torchvision.ops
    # imports and no evaluation uses; torch and torchvision) and a profiled cached run;
    # the smoke runs one probe and profiles the first run only: the same code, 15 s less.
    e2e_probes: tuple[str, ...] = ("torch", "torch, torch._dynamo", "torch, torchvision")
    e2e_profile_cached: bool = True


PAPER_SUITES = ("negation-vit-b-32", "addition-vit-b-32")
FULL = Size("ViT-B-32", 10, 128, 15, 150, 1024, 8192, 4096,
            ("fused", "fused+cudagraphs", "foreach", "fused+compile"), 8000, (4,), 200, PAPER_SUITES,
            micro_suite="negation-micro")
# The smoke plan runs the suites' rehearsal (batch 8, 4 steps) on the 224-px stand-in:
# a ViT-B-32 step at batch 128 takes minutes on a CPU.
SMOKE = Size(str(ROOT / "fixtures" / "models" / "tvcore-tiny.json"), 10, 8, 1, 5, 16, 48, 32,
             ("fused", "foreach"), 40, (1, 2), 6, PAPER_SUITES,
             str(ROOT / "fixtures" / "models" / "tvcore-rehearsal-224.json"), e2e_cached_runs=1,
             e2e_probes=("torch, torchvision",), e2e_profile_cached=False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / steps


def build_classifier(size: Size, device: torch.device):
    """A random-init image encoder under a random frozen head, and its input size."""
    from tvcore.models import ClassificationHead, ImageClassifier, load_model

    torch.manual_seed(0)
    loaded = load_model(size.arch)
    encoder = loaded.image_encoder
    image_size = encoder.image_size if hasattr(encoder, "image_size") else 224
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
    with torch.no_grad():
        width = encoder(torch.zeros(1, 3, image_size, image_size)).shape[-1]
    head = ClassificationHead(F.normalize(torch.randn(size.classes, width), dim=-1) * 100)
    return ImageClassifier(encoder, head).to(device), image_size, loaded


def pixel_cache(directory: Path, n: int, image_size: int, classes: int, seed: int):
    """A pixel cache entry of ``n`` random uint8 images, written directly (no decoding)."""
    from tvcore.data.cache import PixelCache

    rng = np.random.default_rng(seed)
    path = directory / f"bench-{n}-{image_size}.u8"
    shape = (n, 3, image_size, image_size)
    with open(path, "wb") as fh:
        for start in range(0, n, 256):
            fh.write(rng.integers(0, 256, (min(256, n - start), *shape[1:]), dtype=np.uint8).tobytes())
    labels = rng.integers(0, classes, n).astype(np.int64)
    return PixelCache(path, shape, labels, _bench_pixels())


def _bench_pixels():
    from tvcore.data.cache import PixelTransform

    # OpenCLIP's normalization constants (OPENAI_DATASET_MEAN / STD).
    return PixelTransform(None, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711),
                          "bench: random pixels")


# ------------------------------------------------------------------ training


def bare_train(model, variant: str, size: Size, image_size: int, device: torch.device) -> dict:
    """A bare bf16 training loop of ``model`` (a copy) on one fixed batch."""
    model = copy.deepcopy(model).train()
    params = [p for p in model.image_encoder.parameters()]
    fused = variant.startswith("fused") and device.type == "cuda"
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.1, **({"fused": True} if fused else {"foreach": True}))
    forward = model
    if variant.endswith("compile"):
        forward = torch.compile(model)
    elif variant.endswith("cudagraphs"):
        forward = torch.compile(model, mode="reduce-overhead")
    gen = torch.Generator(device="cpu").manual_seed(1)
    images = torch.randn(size.train_batch, 3, image_size, image_size, generator=gen).to(device)
    labels = torch.randint(0, size.classes, (size.train_batch,), generator=gen).to(device)
    amp = device.type == "cuda"

    def step():
        if variant.endswith("cudagraphs"):
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = forward(images)
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    t0 = time.perf_counter()
    per_step = timed(step, size.train_warmup, size.train_steps, device)
    return {"images_per_s": size.train_batch / per_step, "setup_and_warmup_s": time.perf_counter() - t0
            - per_step * size.train_steps}


def tvcore_train(model, cache, compile_mode: str, deterministic: bool, size: Size, device: torch.device,
                 attention: str = "fused") -> dict:
    """:func:`tvcore.finetune.finetune` on the cache; throughput after its first step.
    ``attention``: the deterministic attention (:class:`tvcore.finetune.Speed`)."""
    from tvcore.data.loaders import CachedTrain
    from tvcore.finetune import Recipe, Speed, finetune

    steps = size.train_warmup + size.train_steps
    recipe = Recipe(batch_size=size.train_batch, steps=steps, warmup_steps=min(10, steps))
    result = finetune(copy.deepcopy(model), CachedTrain(cache, 0), recipe, device=device, progress=False,
                      deterministic=deterministic,
                      speed=Speed(compile=compile_mode, deterministic_attention=attention))
    torch.use_deterministic_algorithms(False)
    steady = result.steady_step_s()
    return {"images_per_s": size.train_batch / steady, "first_step_s": result.first_step_s,
            "warm_s": result.warm_s, "seconds": result.seconds, "accel": result.accel,
            "final_loss": result.log[-1]["loss"]}


def same_weights(a: dict, b: dict) -> dict:
    """Whether two fine-tunes' weights are bitwise equal, and their largest difference."""
    return {"bitwise_equal": all(torch.equal(a[k], b[k]) for k in a),
            "max_abs_diff": max((a[k].double() - b[k].double()).abs().max().item() for k in a)}


def tvcore_repeat(model, cache, size: Size, device: torch.device, compile_mode: str = "off") -> dict:
    """Two deterministic fine-tunes of a few steps, as a run makes them (tvcore's
    default deterministic attention): bitwise the same weights?"""
    from tvcore.data.loaders import CachedTrain
    from tvcore.finetune import Recipe, Speed, finetune

    recipe = Recipe(batch_size=size.train_batch, steps=size.train_warmup + 5, warmup_steps=2)
    states = []
    for _ in range(2):
        result = finetune(copy.deepcopy(model), CachedTrain(cache, 0), recipe, device=device, progress=False,
                          deterministic=True, speed=Speed(compile=compile_mode))
        states.append(result.state_dict)
    torch.use_deterministic_algorithms(False)
    return {"steps": recipe.steps, **same_weights(*states), "attention": result.accel["attention"],
            "attention_fallback": result.accel["attention_fallback"], "compile": result.accel["compile"]}


def attention_backend(model, cache, backend: str, size: Size, device: torch.device) -> dict:
    """A deterministic fine-tune under the strict deterministic mode (what tvcore's
    fused deterministic attention runs) with one SDPA backend forced: its pace with
    CUDA graphs, and whether two short eager runs give bitwise the same weights.
    Which fused kernel the default's SDPA picks is PyTorch's choice; this says what
    each one is worth."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from tvcore.data.loaders import CachedTrain
    from tvcore.finetune import Accel, Recipe, finetune

    chosen = getattr(SDPBackend, backend)
    steps = size.train_warmup + size.train_steps

    def run(recipe, compile_mode):
        accel = Accel(fused_adamw=True, compile=compile_mode, attention="strict", resident_pixels=True,
                      log_every=50)
        with sdpa_kernel(chosen):
            return finetune(copy.deepcopy(model), CachedTrain(cache, 0), recipe, device=device, progress=False,
                            deterministic=True, speed=accel)

    timed = run(Recipe(batch_size=size.train_batch, steps=steps, warmup_steps=min(10, steps)), "cudagraphs")
    short = Recipe(batch_size=size.train_batch, steps=20, warmup_steps=2)
    a, b = (run(short, "off").state_dict for _ in range(2))
    torch.use_deterministic_algorithms(False)
    return {"backend": backend, "images_per_s": size.train_batch / timed.steady_step_s(),
            "first_step_s": timed.first_step_s, "attention": timed.accel["attention"],
            "attention_fallback": timed.accel["attention_fallback"], **same_weights(a, b)}


# ------------------------------------------------------------------ evaluation


def bare_eval(model, precision: str, batch: int, image_size: int, device: torch.device, size: Size,
              compiled: bool = False) -> dict:
    model = copy.deepcopy(model).eval()
    forward = torch.compile(model) if compiled else model
    images = torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(2)).to(device)
    amp = precision == "bf16"

    @torch.no_grad()
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            forward(images).argmax(-1)

    per_batch = timed(step, 3, max(3, size.train_steps // 10), device)
    return {"images_per_s": batch / per_batch, "batch": batch, "precision": precision, "compiled": compiled}


def tvcore_eval(model, cache, batch: int, device: torch.device, precision: str = "auto") -> dict:
    """tvcore's evaluation of the cached split, timed on a second pass: read from the
    cache file (``resident=False``), and as a sweep's later passes run it (the split
    held on the device after its first pass, where it fits)."""
    from tvcore.data.loaders import EvalLoader
    from tvcore.evaluate import eval_precision, run_classifier

    passes = []

    def second_pass(loader) -> float:
        passes.append(run_classifier(model, loader, device, precision=precision))  # warm-up: page cache, kernels
        sync(device)
        t0 = time.perf_counter()
        passes.append(run_classifier(model, loader, device, precision=precision))
        return len(passes[-1][0]) / (time.perf_counter() - t0)

    from_host = second_pass(EvalLoader(cache, device, batch, resident=False))
    loader = EvalLoader(cache, device, batch)
    rate = second_pass(loader)
    resident = loader.on_device
    loader.release()
    # Every pass, from the file or from the device, must see the same images and labels.
    same = all(np.array_equal(p[0], passes[0][0]) and np.array_equal(p[1], passes[0][1]) for p in passes)
    return {"images_per_s": rate, "from_host_images_per_s": from_host, "resident": resident, "batch": batch,
            "precision": eval_precision(precision, device), "images": len(cache), "passes_agree": same,
            "labels_are_the_cache": bool(np.array_equal(passes[0][0], cache.labels))}


def tvcore_eval_first_pass(model, cache, batch: int, device: torch.device) -> dict:
    """The first pass over a split, as ``tvcore eval`` makes it: a fresh loader,
    nothing of it on the device yet, and torch's cache of pinned host blocks emptied
    first, so the pass pays for pinning its read-ahead blocks as a new process does.
    Beside it, the same pass with the blocks already pinned (what pinning costs), and
    a pass read into pageable memory (``pin_memory=False``: no pinning, but each copy
    waits for the device), which a first pass could take instead."""
    from tvcore.data.loaders import EvalLoader
    from tvcore.evaluate import run_classifier

    stats = getattr(torch.cuda, "host_memory_stats", None) if device.type == "cuda" else None
    out, predicted = {}, {}
    for key, empty, pin in (("images_per_s", True, None), ("blocks_pinned_images_per_s", False, None),
                            ("pageable_images_per_s", False, False)):
        loader = EvalLoader(cache, device, batch, pin_memory=pin)
        if empty and device.type == "cuda":
            torch.cuda.synchronize(device)
            torch._C._host_emptyCache()
            if stats is not None:
                torch.cuda.reset_accumulated_host_memory_stats()
        sync(device)
        t0 = time.perf_counter()
        predicted[key] = run_classifier(model, loader, device)
        out[key] = len(cache) / (time.perf_counter() - t0)
        loader.release()
        if empty and stats is not None:
            pinned = stats()
            out["pinned_bytes"] = pinned.get("allocated_bytes.current")
            out["pinning_s"] = pinned.get("host_alloc_time.total", 0) / 1e6  # microseconds in CUDA's host alloc
    # The three passes read the same rows: the same labels and predictions, or a copy went wrong.
    first = predicted["images_per_s"]
    out["passes_agree"] = all(np.array_equal(a, b) for p in predicted.values() for a, b in zip(first, p))
    return {**out, "batch": batch, "images": len(cache)}


def tvcore_eval_deterministic(model, cache, batch: int, device: torch.device, fill: bool) -> dict:
    """:func:`tvcore_eval` under the deterministic mode a run holds after its first
    fine-tune, with torch's NaN fill of new memory as tvcore sets it (off) or on."""
    saved = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = fill
    try:
        return {**tvcore_eval(model, cache, batch, device), "fill_uninitialized_memory": fill}
    finally:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = saved


def tvcore_eval_end_to_end(loaded, arch: str, images: int, device: torch.device, work: Path,
                           profile_dir: Path | None = None, cached_runs: int = 3,
                           probes: tuple[str, ...] = ("torch", "torch, torch._dynamo", "torch, torchvision"),
                           profile_cached: bool = True) -> dict:
    """``tvcore eval MNIST`` on a generated tree of ``images`` test images and a
    random weights file: wall seconds of a first run (cache built) and of
    ``cached_runs`` more, whose median is ``cached_s``, each followed by a run with
    the device started at its first use (``TVCORE_DEVICE_START=first-use``; their
    median is ``cached_first_use_s``: what the background start is worth, measured
    on the same machine); beside them, a process that imports each of ``probes`` and
    starts the device, and (``profile_cached``) a profiled cached run."""
    from fixtures.fake_trees import write_mnist_idx

    root = work / "data"
    write_mnist_idx(root, train_per_class=5, test_per_class=images // 10)
    weights = random_weights(loaded, work)
    env = {**os.environ, "TVCORE_CACHE": str(work / "cache"), "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    # What no tvcore code can shorten: a Python process importing torch and starting the device.
    out = {"python": python_environment()}
    for imports in probes:
        key = f"python_{imports.replace(', ', '_')}_device_start_s"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {imports}; torch.zeros(1, device={device.type!r}).sum().item()"],
                       check=True, env=env)
        out[key] = time.perf_counter() - t0
    # The first run builds the cache; the cached runs give the figure; the profiled runs
    # (the first, and a cached one with profile_cached; cProfile, main process only) say
    # where a run's seconds go, in profile_dir.
    first_use = {"TVCORE_DEVICE_START": "first-use"}
    runs = [("first", True, {})]
    runs += [r for i in range(cached_runs) for r in ((f"cached{i}", False, {}), (f"cached_first_use{i}", False, first_use))]
    runs += [("cached_profiled", True, {})] if profile_cached else []
    for run, profiled, run_env in runs:
        cmd = [sys.executable] + (["-m", "cProfile", "-o", str(work / f"{run}.prof")] if profiled else [])
        cmd += ["-m", "tvcore", "eval", "MNIST", "--data-root", str(root), "--arch", arch,
                "--weights", str(weights), "--device", device.type, "--results-dir", str(work / f"results-{run}"),
                "--quiet", "--name", "eval-MNIST-test"]
        cmd += [] if arch.endswith(".json") else ["--no-quick-gelu"]  # random weights: plain GELU
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, **run_env})
        out[f"{run}_s"] = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"tvcore eval exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
        record = json.loads((work / f"results-{run}" / "eval-MNIST-test.json").read_text())
        out[f"{run}_timings"] = record.get("timings")
        if profiled:
            # What cProfile saw is the module's run; the rest of the wall time is the
            # interpreter's start and exit (the device's teardown among them).
            inside = pstats.Stats(str(work / f"{run}.prof")).total_tt
            out[f"{run}_outside_profile_s"] = out[f"{run}_s"] - inside
        if profiled and profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
            with open(profile_dir / f"e2e-{run}.prof.txt", "w") as fh:
                stats = pstats.Stats(str(work / f"{run}.prof"), stream=fh).sort_stats("cumulative")
                stats.print_stats(45)
                stats.print_stats("tvcore/", 45)  # tvcore's own functions (load_model_s: the record's parts)
                stats.sort_stats("tottime").print_stats(30)  # where the time is spent, function by function
    out["plot"] = plot_cost(work / "results-cached0" / "eval-MNIST-test.json", env, profile_dir)
    # The figure: the median of the cached runs (the machine's noise is in the list).
    for key in ("cached", "cached_first_use"):
        runs_s = sorted(out[f"{key}{i}_s"] for i in range(cached_runs))
        out[f"{key}_s"] = runs_s[len(runs_s) // 2]
    return out


# ------------------------------------------------------------------ fine-tunes side by side


PLOT_COST = """
import cProfile, io, json, pstats, sys, time
t0 = time.perf_counter()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
out = {"import_s": time.perf_counter() - t0, "cachedir": matplotlib.get_cachedir()}
from tvcore.report import sweep_plot
record = json.load(open(sys.argv[1]))
profile = cProfile.Profile()
t0 = time.perf_counter()
profile.runcall(sweep_plot, record, sys.argv[2] + "/plot-1.png")
out["first_plot_s"] = time.perf_counter() - t0
t0 = time.perf_counter()
sweep_plot(record, sys.argv[2] + "/plot-2.png")
out["second_plot_s"] = time.perf_counter() - t0
text = io.StringIO()
stats = pstats.Stats(profile, stream=text).sort_stats("cumulative")
stats.print_stats(40)
stats.sort_stats("tottime").print_stats(25)
out["profile"] = text.getvalue()
print(json.dumps(out))
"""


def plot_cost(record: Path, env: dict, profile_dir: Path | None) -> dict:
    """What drawing an eval record's plot costs in a fresh process: importing
    matplotlib, the first plot (fonts loaded, profiled) and a second."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", PLOT_COST, str(record), tmp], capture_output=True, text=True,
                              env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-400:]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    profile = out.pop("profile")
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        (profile_dir / "e2e-plot.prof.txt").write_text(profile)
    return out


def python_environment() -> dict:
    """What a process start costs depends on the interpreter's environment: whether
    torch's modules have bytecode to read (an image without it compiles every module
    of torch in every process) and where bytecode goes. (Where matplotlib keeps its
    font cache, :func:`plot_cost` asks matplotlib itself.)"""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    origin = Path(spec.origin) if spec and spec.origin else None
    prefix, sys.pycache_prefix = sys.pycache_prefix, None  # the image's own bytecode, beside the sources
    try:
        beside = bool(origin and Path(importlib.util.cache_from_source(str(origin))).is_file())
    finally:
        sys.pycache_prefix = prefix
    return {"torch_has_bytecode": beside, "torch_folder_writable": bool(origin and os.access(origin.parent, os.W_OK)),
            "dont_write_bytecode": bool(sys.flags.dont_write_bytecode), "pycache_prefix": sys.pycache_prefix,
            "image_PYTHONDONTWRITEBYTECODE": os.environ.get("TVCORE_IMAGE_DONTWRITEBYTECODE")}


def random_weights(loaded, work: Path) -> Path:
    """The random model's weights as a file (what ``--weights`` takes), written once."""
    from safetensors.torch import save_file

    path = work / "random-weights.safetensors"
    if not path.is_file():
        save_file({k: v.contiguous() for k, v in loaded.model.state_dict().items()}, str(path))
    return path


def concurrent_train(size: Size, jobs: int, cache, device: torch.device, work: Path) -> dict:
    """``jobs`` processes, each a tvcore fine-tune of ``size.concurrent_steps`` steps
    at the bench's batch on the shared ``cache``, held at a start line until all are
    ready: total images/s after the first steps, to the last end."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"concurrent-{jobs}-", dir=work))
    np.save(run_dir / "labels.npy", cache.labels)
    spec = {"arch": size.arch, "classes": size.classes, "batch": size.train_batch, "steps": size.concurrent_steps,
            "device": str(device), "cache": str(cache.path), "shape": list(cache.shape),
            "labels": str(run_dir / "labels.npy"), "go": str(run_dir / "go"),
            "threads": max(1, (os.cpu_count() or 1) // jobs),
            # What a pool entry's 2,000-step fine-tune resolves to (CUDA graphs on CUDA).
            "compile": "cudagraphs" if device.type == "cuda" else "off"}
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    procs = [subprocess.Popen([sys.executable, __file__, "--concurrent-worker",
                               json.dumps({**spec, "ready": str(run_dir / f"ready-{i}")})],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(jobs)]
    deadline = time.monotonic() + 300
    while not all((run_dir / f"ready-{i}").exists() for i in range(jobs)):
        failed = [p for p in procs if p.poll() not in (None, 0)]
        if failed or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise RuntimeError("a concurrent fine-tune did not start: "
                               + (failed[0].communicate()[1].strip()[-400:] if failed else "timed out"))
        time.sleep(0.05)
    (run_dir / "go").touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"a concurrent fine-tune exited {proc.returncode}: {err.strip()[-400:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    # After each one's warm-up steps (compilation, CUDA graph recording), as the other
    # rates here: from the last to finish warming up to the first to end, all of them run.
    warm = [r["warm_steps"] * r["batch"] for r in results]
    wall = min(r["loop_end"] for r in results) - max(r["start"] + r["warm_s"] for r in results)
    per_job = [(r["images"] - w) / (r["loop_end"] - r["start"] - r["warm_s"]) for r, w in zip(results, warm)]
    return {"jobs": jobs, "images_per_s": sum(per_job), "overlap_s": wall, "images": sum(r["images"] for r in results),
            "per_job_images_per_s": per_job, "warm_s": [r["warm_s"] for r in results],
            "first_step_s": [r["first_step_s"] for r in results], "accel": results[0]["accel"]}


def concurrent_worker(spec: dict) -> int:
    """One of :func:`concurrent_train`'s processes: build, say ready, wait for go,
    fine-tune, print its times as one JSON line."""
    from tvcore.data.cache import PixelCache
    from tvcore.data.loaders import CachedTrain
    from tvcore.finetune import WARM_STEPS, Recipe, Speed, finetune

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    size = Size(spec["arch"], spec["classes"], spec["batch"], 0, 0, 0, 0, 0, (), 0)
    model, _, _ = build_classifier(size, device)
    pixels = _bench_pixels()
    cache = PixelCache(Path(spec["cache"]), tuple(spec["shape"]), np.load(spec["labels"]), pixels)
    recipe = Recipe(batch_size=spec["batch"], steps=spec["steps"], warmup_steps=min(10, spec["steps"]))
    if spec["compile"] != "off":
        # Compile before the start line, so every process's timed steps overlap the others'.
        finetune(model, CachedTrain(cache, 0), recipe.with_(steps=WARM_STEPS + 2, warmup_steps=1), device=device,
                 progress=False, speed=Speed(compile=spec["compile"]))
    Path(spec["ready"]).touch()
    while not Path(spec["go"]).exists():
        time.sleep(0.01)
    start = time.time()
    result = finetune(model, CachedTrain(cache, 0), recipe, device=device, progress=False,
                      speed=Speed(compile=spec["compile"]))
    sync(device)
    end = time.time()
    print(json.dumps({"start": start, "end": end, "loop_end": start + result.loop_s,
                      "images": spec["batch"] * spec["steps"], "batch": spec["batch"], "warm_steps": WARM_STEPS,
                      "warm_s": result.warm_s, "first_step_s": result.first_step_s, "accel": result.accel},
                     default=str))
    return 0


# ------------------------------------------------------------------ a whole micro suite


def micro_suite(name: str, device: torch.device, work: Path) -> dict:
    """A whole micro suite (the embedded model, scikit-learn's digits) run on the
    device as ``pytest bench/ --gpu`` runs it: wall seconds and the record's own
    timings (``pytest bench/ --gpu`` gates its metrics against the CPU baseline)."""
    from tvcore.experiments import context_for, run_suite, SUITES

    with mock.patch.dict(os.environ, {"TVCORE_CACHE": str(work / "cache-micro")}):
        t0 = time.perf_counter()
        ctx = context_for(SUITES[name], device=str(device), progress=False, workers=0)
        record = run_suite(name, ctx)
        seconds = time.perf_counter() - t0
    return {"suite": name, "wall_s": seconds, "timings": record.get("timings")}


# ------------------------------------------------------------------ the paper suites' plan


def plan_paper_suites(size: Size, loaded, device: torch.device, work: Path) -> dict:
    """``tvcore run <suite> --plan`` of each of ``size.plan_suites`` on a generated
    tree of the nine tasks and the random weights; the suites together count each
    pool entry once (addition's fine-tunes are negation's)."""
    from fixtures.fake_trees import make_paper_tasks_tree

    root = work / "paper-data"
    if not root.exists():
        make_paper_tasks_tree(root)  # two images a class, as the rehearsal's tree
    # Heads and pixels of the generated tree stay in work.
    with mock.patch.dict(os.environ, {"TVCORE_CACHE": str(work / "cache-plan")}):
        return _plan_paper_suites(size, loaded, device, work, root)


def _plan_paper_suites(size: Size, loaded, device: torch.device, work: Path, root: Path) -> dict:
    from tvcore.experiments import SUITES, context_for
    from tvcore.experiments.common import ModelSpec
    from tvcore.plan import plan_suite

    model = ModelSpec(size.plan_model) if size.plan_model else None
    weights = None if model else str(random_weights(loaded, work))
    out, plans = {}, []
    for name in size.plan_suites:
        suite = SUITES[name].rehearsal() if model else SUITES[name]
        ctx = context_for(suite, device=str(device), data_root=str(root), weights=weights, progress=False,
                          # The real suites decode with the default workers; the smoke in the main process.
                          pool=str(work / "plan-pool"), workers=0 if model else None,
                          rehearsal=model is not None, model=model,
                          quick_gelu=None if model else False)  # random weights: plain GELU
        plan = plan_suite(suite, ctx)
        plans.append(plan)
        out[name] = {**plan.as_dict(), "fine_tunes": len(plan.finetunes), "eval_image_s": plan.eval_image_s}
        out[name].pop("finetunes")
        print(plan.render(), flush=True)
    evaluate = sum(p["predicted_s"]["evaluate"] for p in out.values())
    # The suites' pool entries counted once (addition's are negation's), timed as the first suite's plan.
    entries = list({t["key"]: t for p in plans for t in p.to_train}.values())
    together = dataclasses.replace(plans[0], to_train=entries,
                                   decode_task_s={k: v for p in plans for k, v in p.decode_task_s.items()})
    finetune_s = together.finetune_s()
    out["together"] = {"fine_tunes": len(entries), "steps": sum(t["steps"] for t in entries),
                       "finetune_s": finetune_s, "evaluate_s_generated_tree": evaluate, "finetune_h": finetune_s / 3600}
    return out


# ------------------------------------------------------------------ the run


def run(size: Size, device: torch.device, budget_s: float, work: Path, out_dir: Path | None = None,
        only: tuple[str, ...] = ()) -> dict:
    """Every section in the order of what matters most (the ratios the GPU targets
    are stated in come first, so a run cut short by its budget keeps them); with
    ``out_dir``, ``gpu_bench.json`` is rewritten after each section, so a run killed
    by its time limit still leaves what it measured. ``only``: section-name prefixes."""
    t_start = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out: dict = {"device": name, "torch": torch.__version__, "size": size.__dict__, "sections": {}, "errors": {}}

    def save():
        out["ratios"] = ratios(out["sections"], device)
        out["wall_s"] = time.perf_counter() - t_start
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "gpu_bench.json").write_text(json.dumps(out, indent=2, default=str))

    def section(key: str, fn):
        if only and not any(key.startswith(prefix) for prefix in only):
            return None
        if time.perf_counter() - t_start > budget_s:
            out["errors"][key] = "skipped: over the time budget"
            print(f"[skip] {key}: over the {budget_s:.0f} s budget", flush=True)
            return None
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - a broken section must not cost the others
            out["errors"][key] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            return None
        finally:
            torch._dynamo.reset() if hasattr(torch, "_dynamo") else None
            save()
        out["sections"][key] = value
        save()
        print(f"[{time.perf_counter() - t0:6.1f} s] {key}: {json.dumps(value, default=str)}", flush=True)
        return value

    cuda = device.type == "cuda"
    model, image_size, loaded = build_classifier(size, device)
    probe = torch.randn(2, 3, image_size, image_size, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        section("flops", lambda: {"forward_per_image": forward_flops(model.eval(), probe),
                                  "train_step_per_image": training_flops(model.train(), probe,
                                                                         torch.zeros(2, dtype=torch.long,
                                                                                     device=device))})
    train_cache = pixel_cache(work, size.train_images, image_size, size.classes, 0)
    eval_cache = pixel_cache(work, size.eval_images, image_size, size.classes, 1)
    from tvcore.evaluator import eval_batch_size

    tv_batch = eval_batch_size(device) if cuda else size.eval_batch

    def bare(variant):
        return lambda: bare_train(model, variant, size, image_size, device)

    def tvcore(mode, deterministic):
        return lambda: tvcore_train(model, train_cache, mode, deterministic, size, device)

    # 1. The targets: fine-tuning against the best bare loop (CUDA graphs), as a real
    #    run fine-tunes (2,000 steps resolve to CUDA graphs; deterministic by default);
    #    evaluation against bare bf16 at the same batch; tvcore eval end to end; the plan.
    best = [v for v in size.variants if v.endswith("cudagraphs")] or list(size.variants[:1])
    for variant in dict.fromkeys([v for v in size.variants if v == "fused"] + best):
        section(f"train.bare.{variant}", bare(variant))
    default_mode = "cudagraphs" if cuda else "off"
    section(f"train.tvcore.{default_mode}.deterministic", tvcore(default_mode, True))
    if cuda:
        # A second fine-tune in the same process: what compiling again costs (a pool's
        # second entry), read from its first_step_s.
        section("train.tvcore.cudagraphs.deterministic.again", tvcore("cudagraphs", True))
    section("eval.bare.bf16", lambda: bare_eval(model, "bf16", tv_batch, image_size, device, size))
    section("eval.tvcore.auto", lambda: tvcore_eval(model, eval_cache, tv_batch, device))
    section("eval.tvcore.first_pass", lambda: tvcore_eval_first_pass(model, eval_cache, tv_batch, device))
    section("eval.tvcore.auto.deterministic",
            lambda: tvcore_eval_deterministic(model, eval_cache, tv_batch, device, fill=False))
    section("eval.bare.fp32", lambda: bare_eval(model, "fp32", tv_batch // 2, image_size, device, size))
    if size.plan_suites:
        section("plan.paper", lambda: plan_paper_suites(size, loaded, device, work))
    if size.e2e_images:
        section("eval.tvcore.end_to_end", lambda: tvcore_eval_end_to_end(loaded, size.arch, size.e2e_images, device,
                                                                          work, out_dir, size.e2e_cached_runs,
                                                                          size.e2e_probes, size.e2e_profile_cached))
    # 2. Fine-tunes side by side on one device.
    for jobs in size.concurrent_jobs:
        section(f"train.concurrent.{jobs}", lambda j=jobs: concurrent_train(size, j, train_cache, device, work))
    # 3. What each feature is worth: no determinism, no compilation, bitwise repeats,
    #    the other bare loops, compiled evaluation.
    if cuda:
        section("train.tvcore.cudagraphs.deterministic.math",
                lambda: tvcore_train(model, train_cache, "cudagraphs", True, size, device, attention="math"))
        section("train.tvcore.repeat.cudagraphs",
                lambda: tvcore_repeat(model, train_cache, size, device, compile_mode="cudagraphs"))
        section("train.tvcore.cudagraphs.nondeterministic", tvcore("cudagraphs", False))
        section("train.tvcore.off.deterministic", tvcore("off", True))
    section("train.tvcore.repeat", lambda: tvcore_repeat(model, train_cache, size, device))
    section("eval.tvcore.auto.deterministic.fill",
            lambda: tvcore_eval_deterministic(model, eval_cache, tv_batch, device, fill=True))
    if size.micro_suite:
        section(f"suite.{size.micro_suite}", lambda: micro_suite(size.micro_suite, device, work))
    for variant in size.variants:
        if f"train.bare.{variant}" not in out["sections"]:
            section(f"train.bare.{variant}", bare(variant))
    if cuda:
        section("eval.bare.bf16.compiled",
                lambda: bare_eval(model, "bf16", tv_batch, image_size, device, size, compiled=True))
        # 4. Each fused kernel under the strict mode (cuDNN's is never chosen there).
        for backend in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION"):
            section(f"train.attention.{backend.lower()}",
                    lambda b=backend: attention_backend(model, train_cache, b, size, device))
    save()
    return out


def ratios(sections: dict, device: torch.device) -> dict:
    def rate(key):
        return (sections.get(key) or {}).get("images_per_s")

    bare_train_rates = {k: rate(k) for k in sections if k.startswith("train.bare.") and rate(k)}
    best_key = max(bare_train_rates, key=bare_train_rates.get, default=None)
    out = {"best_bare_train": best_key}
    flops = sections.get("flops") or {}
    peak = peak_bf16(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    for key in sections:
        r = rate(key)
        if not r:
            continue
        if key.startswith(("train.tvcore.", "train.concurrent.")) and best_key:
            out[f"{key} / best bare"] = r / bare_train_rates[best_key]
        per_image = flops.get("train_step_per_image" if key.startswith("train.") else "forward_per_image")
        if per_image:
            out[f"{key} TFLOP/s"] = r * per_image / 1e12
            if peak:
                out[f"{key} MFU"] = r * per_image / peak
    bf16 = rate("eval.bare.bf16")
    for key in [k for k in sections if k.startswith("eval.tvcore.auto") and rate(k)] if bf16 else []:
        out[f"{key} / bare bf16"] = rate(key) / bf16
        out[f"{key} from the cache file / bare bf16"] = sections[key]["from_host_images_per_s"] / bf16
    if bf16 and rate("eval.tvcore.first_pass"):
        out["eval.tvcore.first_pass / bare bf16"] = rate("eval.tvcore.first_pass") / bf16
    concurrent = {int(k.rsplit(".", 1)[1]): rate(k) for k in sections if k.startswith("train.concurrent.") and rate(k)}
    if 1 not in concurrent:
        # One fine-tune alone: the in-process run with the same features as each job's.
        single = rate("train.tvcore.cudagraphs.deterministic" if device.type == "cuda" else
                      "train.tvcore.off.deterministic")
        if single:
            concurrent[1] = single
    if 1 in concurrent:
        for jobs, r in sorted(concurrent.items()):
            if jobs > 1:
                out[f"train.concurrent {jobs} jobs / 1 job (images/s total)"] = r / concurrent[1]
    e2e = sections.get("eval.tvcore.end_to_end") or {}
    if e2e.get("cached_s"):
        out["eval.tvcore.end_to_end cached run s"] = e2e["cached_s"]
        if e2e.get("cached_first_use_s"):
            out["eval.tvcore.end_to_end device started in the background / at first use"] = (
                e2e["cached_s"] / e2e["cached_first_use_s"])
    together = (sections.get("plan.paper") or {}).get("together")
    if together:
        out["plan: paper negation + addition fine-tuning h"] = together["finetune_h"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the tiny model on the CPU, a few steps (seconds)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "results", help="folder for gpu_bench.json")
    parser.add_argument("--budget-s", type=float, default=400.0,
                        help="sections starting after this many seconds are skipped (default 400)")
    parser.add_argument("--only", default="", metavar="PREFIXES",
                        help="comma-separated section-name prefixes to run (default: all), e.g. plan,eval")
    parser.add_argument("--concurrent-worker", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.concurrent_worker:
        return concurrent_worker(json.loads(args.concurrent_worker))
    if args.smoke:
        size, device = SMOKE, torch.device("cpu")
    elif not torch.cuda.is_available():
        print("bench/gpu/run.py: no CUDA device here; skipped (run with --smoke for the CPU check)")
        return 0
    else:
        size, device = FULL, torch.device("cuda")
    out = Path(args.out)
    only = tuple(p.strip() for p in args.only.split(",") if p.strip())
    with tempfile.TemporaryDirectory(prefix="tvcore-gpu-bench-") as tmp:
        result = run(size, device, args.budget_s, Path(tmp), out, only)
    print(f"\n{result['device']} (torch {result['torch']}), {result['wall_s']:.0f} s")
    for key, value in result["ratios"].items():
        print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
    for key, err in result["errors"].items():
        print(f"  ERROR {key}: {err}")
    print(f"written: {out / 'gpu_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
