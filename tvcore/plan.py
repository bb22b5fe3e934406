"""What a suite will cost, known before it runs: fine-tuning steps, images
evaluated, pixel-cache bytes, and a wall time predicted from a few steps timed on
this device (``tvcore run <suite> --plan``).

The counts come from the suite's own experiment function run over a context whose
fine-tuning and evaluation only count: each fine-tune the run would do (an entry
already in the pool costs none) returns a small random vector instead of training,
and each evaluation returns the split's labels instead of reading a pixel. So the
plan follows the experiment's real schedule (every sweep point, every Table 1
row) without reading the experiment's code twice. The times are then measured on
the suite's model: fine-tuning steps at the recipe's batch, evaluation batches at
the evaluator's batch and precision, and the decoding of a few images into the
cache. Steps are timed the way the run will take them (:func:`tvcore.finetune.resolve_speed`
for the suite's step count: CUDA graphs for long CUDA runs), after their warm-up;
what compiling costs is timed too, for the first fine-tune of the process and for
a second (whose compiled code is reused), and counted once per fine-tune. A recipe
that decodes its images every step (random crops) takes at least the time its
decode workers need for a batch.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data.cache import PixelTransform, _default_root, cache_key
from .pool import ENCODER_FILE

TIMED_STEPS = 3  # fine-tuning steps timed after the warm-up steps (eager)
TIMED_STEPS_COMPILED = 10  # the same, when the run compiles (a replayed CUDA graph step is short)
DECODED = 4  # images decoded to time the cache build


@dataclass
class Plan:
    suite: str
    device: str
    finetunes: list[dict] = field(default_factory=list)  # label, task, steps, batch, source
    evaluated: dict[tuple[str, str], int] = field(default_factory=dict)  # (task, split) -> images over all passes
    cache: dict[tuple[str, str], dict] = field(default_factory=dict)  # (task, split) -> images, bytes, cached
    load_model_s: float = 0.0
    step_s: float | None = None  # seconds per fine-tuning step on the device, at the steady pace
    compile: str = "off"  # how the run's fine-tunes are compiled ("off", "compile", "cudagraphs")
    compile_first_s: float = 0.0  # warm-up seconds beyond the steady pace: the process's first fine-tune
    compile_again_s: float = 0.0  # the same for each later fine-tune
    augment_batch: int = 0  # batch of a recipe that decodes every step (0: cached pixels)
    # Such a recipe's seconds per training image of each task (its own images through
    # the train transform: a 400-px JPEG decodes about five times slower than a 32-px PNG).
    decode_task_s: dict[str, float] = field(default_factory=dict)
    devices: int = 1  # devices the fine-tunes are spread over (--jobs on several GPUs)
    eval_image_s: float | None = None  # seconds per evaluated image
    decode_image_s: float | None = None  # seconds per image decoded into the cache, per worker
    workers: int = 0
    # What training remains, one item per pool entry: task, recipe, pool key (tvcore.parallel trains them).
    to_train: list[dict] = field(default_factory=list, repr=False)

    @property
    def steps(self) -> int:
        return sum(f["steps"] for f in self.finetunes)

    @property
    def images_evaluated(self) -> int:
        return sum(self.evaluated.values())

    @property
    def cache_bytes(self) -> int:
        return sum(c["bytes"] for c in self.cache.values())

    @property
    def images_to_decode(self) -> int:
        return sum(c["images"] for c in self.cache.values() if not c["cached"])

    def task_step_s(self, task: str) -> float:
        """Seconds per fine-tuning step on ``task``: the device's step, or, for a
        recipe decoding every step, the decoding of a batch of the task's images where
        that is slower (spread over the workers, which prepare batches while the device
        trains; without workers the two add up)."""
        step = self.step_s or 0.0
        per_image = self.decode_task_s.get(task, self.decode_image_s)
        if not self.augment_batch or per_image is None:
            return step
        decode = self.augment_batch * per_image
        return max(step, decode / self.workers) if self.workers else step + decode

    @property
    def train_step_s(self) -> float:
        """The slowest task's seconds per step (:meth:`task_step_s`)."""
        return max((self.task_step_s(t["task"]) for t in self.to_train), default=self.step_s or 0.0)

    @property
    def compile_s(self) -> float:
        """Seconds of compiling: each device used compiles its first fine-tune in
        full and reuses that for the rest (what :meth:`finetune_s` counts)."""
        n = len(self.to_train)
        used = min(max(1, self.devices), n)
        return used * self.compile_first_s + (n - used) * self.compile_again_s

    def finetune_s(self) -> float:
        """Seconds of fine-tuning. On one device the fine-tunes take their turns (four
        side by side on one H100 trained at the rate of one: README, *On a GPU*); over
        several (``--jobs`` with every visible GPU) the longest first, each to the
        device free soonest, every device compiling once."""
        if not self.to_train:
            return 0.0
        loads = [0.0] * min(max(1, self.devices), len(self.to_train))
        for entry in sorted(self.to_train, key=lambda t: -t["steps"] * self.task_step_s(t["task"])):
            i = loads.index(min(loads))
            loads[i] += entry["steps"] * self.task_step_s(entry["task"]) + (
                self.compile_again_s if loads[i] else self.compile_first_s)
        return max(loads)

    def predicted_s(self) -> dict[str, float]:
        parts = {"load_model": self.load_model_s,
                 "finetune": self.finetune_s(),
                 "evaluate": self.images_evaluated * (self.eval_image_s or 0.0),
                 "cache_build": self.images_to_decode * (self.decode_image_s or 0.0) / max(1, self.workers)}
        return {**parts, "total": sum(parts.values())}

    def as_dict(self) -> dict:
        return {"suite": self.suite, "device": self.device, "finetunes": self.finetunes,
                "finetune_steps": self.steps, "images_evaluated": self.images_evaluated,
                "pixel_cache_bytes": self.cache_bytes, "images_to_decode": self.images_to_decode,
                "step_s": self.step_s, "train_step_s": self.train_step_s,
                "task_step_s": {t["task"]: self.task_step_s(t["task"]) for t in self.to_train},
                "compile": self.compile,
                "compile_s": {"first": self.compile_first_s, "again": self.compile_again_s, "total": self.compile_s},
                "eval_image_s": self.eval_image_s, "decode_image_s": self.decode_image_s,
                "workers": self.workers, "devices": self.devices, "predicted_s": self.predicted_s()}

    def render(self) -> str:
        trained = [f for f in self.finetunes if f["steps"]]
        batches = sorted({f["batch"] for f in trained})
        t = self.predicted_s()
        lines = [
            f"plan: {self.suite} on {self.device}",
            f"fine-tunes: {len(self.finetunes)} vectors, {len(trained)} to train "
            f"({len(self.finetunes) - len(trained)} from the pool or a folder); {self.steps:,} steps"
            + (f" at batch {', '.join(map(str, batches))}" if batches else ""),
            f"images evaluated: {self.images_evaluated:,} over {len(self.evaluated)} splits",
            f"pixel cache: {_size(self.cache_bytes)} over {len(self.cache)} splits; {self.images_to_decode:,} "
            "images to decode",
            "timed here: " + ", ".join(s for s in (
                f"{self.step_s:.3f} s per fine-tuning step ({'eager' if self.compile == 'off' else self.compile})"
                if self.step_s is not None else None,
                f"compiling {self.compile_first_s:.0f} s, then {self.compile_again_s:.0f} s a fine-tune"
                if self.compile != "off" else None,
                f"decoding a batch of {self.augment_batch} every step: up to {self.train_step_s:.3f} s per step "
                f"with {self.workers} workers" if self.augment_batch and self.decode_task_s else None,
                f"{1 / self.eval_image_s:,.0f} images/s evaluated" if self.eval_image_s else None,
                f"{1e3 * self.decode_image_s:.1f} ms per image decoded" if self.decode_image_s is not None else None,
            ) if s),
            f"predicted wall time: {_duration(t['total'])} (model {_duration(t['load_model'])}, fine-tuning "
            f"{_duration(t['finetune'])}" + (f" over {self.devices} devices" if self.devices > 1 else "")
            + f", evaluation {_duration(t['evaluate'])}, cache {_duration(t['cache_build'])})",
        ]
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s:02d} s" if m else f"{s} s")


# ------------------------------------------------------------------ counting


def _count(plan: Plan, suite, ctx) -> None:
    """Run the suite's experiment over ``ctx`` with fine-tuning and evaluation
    replaced by counters (on this context only)."""
    from .experiments import RUNNERS

    pool, tasks = ctx.pool, ctx.tasks
    pixels = PixelTransform.of(pool.loaded.preprocess_val)
    gen = torch.Generator().manual_seed(0)

    def need_cache(task_name: str, split_name: str) -> None:
        if (task_name, split_name) in plan.cache:
            return
        split = tasks.task(task_name)[split_name]
        row = _row_bytes(split, pixels)
        root = Path(tasks.pixel_cache) if tasks.pixel_cache is not None else _default_root()
        # An entry is complete when its metadata is there (written last); see PixelCache.build.
        cached = (root / f"{cache_key(split, pixels)}.json").is_file()
        plan.cache[task_name, split_name] = {"images": len(split), "bytes": len(split) * row, "cached": cached}

    def finetuned_state(task_name, task_pool, recipe, from_folder=True):
        source, steps = "plan", 0
        if pool.finetuned is not None and from_folder:
            source = "folder"
        else:
            key = pool.key(task_name, task_pool, recipe)
            entry = pool.entry_dir(task_name, key)
            if entry is not None and (entry / ENCODER_FILE).is_file() and not pool.fresh:
                source = "pool"
            else:
                steps = recipe.total_steps(len(task_pool.task(task_name)["train"]))
                if not recipe.augment:
                    need_cache(task_name, "train")
                if all(t["key"] != key["hash"] for t in plan.to_train):
                    plan.to_train.append({"task": task_name, "recipe": recipe, "key": key["hash"], "steps": steps})
        plan.finetunes.append({"task": task_name, "steps": steps, "batch": recipe.batch_size, "source": source,
                               "objective": recipe.objective})
        state = {k: v + 1e-3 * torch.randn(v.shape, generator=gen).to(v.dtype) if v.is_floating_point() else v
                 for k, v in pool.pretrained_state.items()}
        return state, {"source": "plan"}

    def labels_of(task_name: str, split_name: str) -> np.ndarray:
        split = tasks.task(task_name)[split_name]
        plan.evaluated[task_name, split_name] = plan.evaluated.get((task_name, split_name), 0) + len(split)
        need_cache(task_name, split_name)
        return np.asarray(split.labels, dtype=np.int64)

    def predictions(task_name, split_name):
        labels = labels_of(task_name, split_name)
        return labels, labels.copy()

    def scores(task_name, split_name):
        labels = labels_of(task_name, split_name)
        logits = np.zeros((len(labels), len(tasks.task(task_name).class_names)), dtype=np.float32)
        logits[np.arange(len(labels)), labels] = 1.0
        return labels, logits

    pool._finetuned_state = finetuned_state
    ctx.evaluator.predictions = predictions
    ctx.evaluator.scores = scores
    RUNNERS[suite.experiment](suite.config, ctx)


def _row_bytes(split, pixels: PixelTransform) -> int:
    """Bytes of one cached image: the geometric transform's output size (the first
    image, decoded once)."""
    import torchvision.transforms.functional as TF

    image = pixels.geometric(split.samples[0].load())
    return int(np.prod(TF.pil_to_tensor(image).shape))


# ------------------------------------------------------------------ timing


def _time_steps(plan: Plan, ctx, recipe, total_steps: int) -> None:
    """Time fine-tuning steps at ``recipe``'s batch with the features a run of
    ``total_steps`` steps resolves to on this device, and, where that compiles, the
    compilation of a first and of a second fine-tune."""
    import copy

    from .finetune import WARM_STEPS, Speed, finetune, resolve_speed
    from .models import ClassificationHead, ImageClassifier

    loaded = ctx.pool.loaded
    encoder = copy.deepcopy(loaded.image_encoder)
    shape = _input_shape(loaded)
    with torch.no_grad():
        width = encoder(torch.zeros(1, *shape, device=next(encoder.parameters()).device)).shape[-1]
    gen = torch.Generator().manual_seed(0)
    head = ClassificationHead(torch.nn.functional.normalize(torch.randn(10, width, generator=gen), dim=-1))
    batch = recipe.batch_size
    device = torch.device(ctx.device)
    accel = resolve_speed(Speed(), device, True, total_steps)
    plan.compile = accel.compile
    timed_steps = TIMED_STEPS if accel.compile == "off" else TIMED_STEPS_COMPILED
    timed = recipe.with_(steps=WARM_STEPS + timed_steps, epochs=None, warmup_steps=1)
    with tempfile.TemporaryDirectory(prefix="tvcore-plan-") as tmp:
        # The device's step alone, as a cached split trains (uint8 pixels normalized on
        # the device); what decoding adds is counted apart (Plan.train_step_s).
        data = _random_cached_split(Path(tmp), batch, shape, PixelTransform.of(loaded.preprocess_val), gen)
        result = finetune(ImageClassifier(encoder, head), data, timed, device=device, progress=False, speed=accel)
        plan.step_s = result.steady_step_s()
        if accel.compile != "off":
            plan.compile_first_s = max(0.0, result.warm_s - WARM_STEPS * plan.step_s)
            # A pool's later entries: a new classifier of the same model in this process.
            again = finetune(ImageClassifier(copy.deepcopy(loaded.image_encoder), head), data,
                             timed.with_(steps=WARM_STEPS + 1), device=device, progress=False, speed=accel)
            plan.compile_again_s = max(0.0, again.warm_s - WARM_STEPS * plan.step_s)
        data.cache.close()
    if recipe.augment:
        plan.augment_batch = batch

    # Evaluation: two passes over a few batches at the evaluator's batch and precision.
    from .evaluate import run_classifier

    clf = ImageClassifier(encoder, head).to(ctx.device).eval()
    size = ctx.tasks.batch_size
    batches = [(torch.randn(size, *shape, generator=gen).to(ctx.device), torch.zeros(size, dtype=torch.long))
               for _ in range(2)]
    run_classifier(clf, batches, ctx.device, precision=ctx.evaluator.precision)
    t0 = time.perf_counter()
    run_classifier(clf, batches, ctx.device, precision=ctx.evaluator.precision)
    plan.eval_image_s = (time.perf_counter() - t0) / (2 * size)


def _random_cached_split(directory: Path, n: int, shape: tuple[int, int, int], pixels: PixelTransform,
                         gen: torch.Generator):
    """A cached training split of ``n`` random uint8 images (a file in ``directory``)."""
    from .data.cache import PixelCache
    from .data.loaders import CachedTrain

    path = directory / "timing.u8"
    images = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)
    path.write_bytes(images.numpy().tobytes())
    labels = torch.randint(0, 10, (n,), generator=gen).numpy()
    return CachedTrain(PixelCache(path, (n, *shape), labels, pixels), 0)


def _input_shape(loaded) -> tuple[int, int, int]:
    size = getattr(loaded.image_encoder, "image_size", 224)
    size = size if isinstance(size, (tuple, list)) else (size, size)
    return (3, *size)


def _time_decoding(plan: Plan, ctx) -> None:
    pixels = PixelTransform.of(ctx.pool.loaded.preprocess_val)
    samples = []
    for task_name, split_name in plan.cache:
        samples += ctx.tasks.task(task_name)[split_name].samples[:DECODED - len(samples)]
        if len(samples) >= DECODED:
            break
    if samples:
        t0 = time.perf_counter()
        for sample in samples:
            pixels.geometric(sample.load())
        plan.decode_image_s = (time.perf_counter() - t0) / len(samples)
    if plan.augment_batch:
        # A recipe that decodes every step: each task's own training images, through
        # the train transform the workers run.
        train = ctx.pool.loaded.preprocess_train
        for task_name in dict.fromkeys(t["task"] for t in plan.to_train):
            images = ctx.tasks.task(task_name)["train"].samples[:DECODED]
            t0 = time.perf_counter()
            for sample in images:
                train(sample.load())
            plan.decode_task_s[task_name] = (time.perf_counter() - t0) / max(1, len(images))


@contextmanager
def _counting(ctx):
    """Inside it ``ctx``'s pool and evaluator may be replaced by counters; after it
    they work again as before: the counters, the stand-in vectors and what the
    experiment wrote into the timings go, the evaluator holds the pre-trained
    weights again. Real vectors read meanwhile (a ``finetuned`` set) stay."""
    pool, evaluator = ctx.pool, ctx.evaluator
    timings, pool_timings = dict(ctx.timings), dict(pool.timings)
    try:
        yield
    finally:
        pool.__dict__.pop("_finetuned_state", None)
        evaluator.__dict__.pop("predictions", None)
        evaluator.__dict__.pop("scores", None)
        for label in [k for k, info in pool.provenance.items() if info.get("source") == "plan"]:
            pool.provenance.pop(label)
            pool._vectors.pop(label, None)
        ctx.timings.clear()
        ctx.timings.update(timings)
        pool.timings.clear()
        pool.timings.update(pool_timings)
        evaluator.load(pool.pretrained_state)


def count_suite(suite, ctx) -> Plan:
    """The counts of ``suite``'s plan over ``ctx`` (nothing timed); ``ctx`` is left
    as it was (see :func:`_counting`)."""
    plan = Plan(suite.name, str(ctx.device), load_model_s=ctx.timings.get("load_model_s", 0.0), workers=ctx.workers)
    with _counting(ctx):
        _count(plan, suite, ctx)
    return plan


def plan_suite(suite, ctx, devices: int = 1) -> Plan:
    """The plan of ``suite`` over ``ctx`` (a context built as the run would build
    it), its fine-tunes spread over ``devices`` (``--jobs`` trains on every visible
    GPU: :func:`tvcore.parallel.plan_devices`). ``ctx`` stays usable: a run over it
    afterwards records the predicted seconds beside the measured ones
    (``record["timings"]["predicted"]``)."""
    plan = count_suite(suite, ctx)
    plan.devices = max(1, devices)
    trained = [f for f in plan.finetunes if f["steps"]]
    if trained:
        _time_steps(plan, ctx, ctx.recipe.with_(batch_size=max(f["batch"] for f in trained)),
                    max(f["steps"] for f in trained))
    else:
        _time_steps(plan, ctx, ctx.recipe.with_(steps=1 + TIMED_STEPS), 1 + TIMED_STEPS)
    _time_decoding(plan, ctx)
    ctx.timings["predicted"] = plan.predicted_s()
    return plan
