"""Fine-tuning the image encoder under a frozen zero-shot head.

The paper's recipe, ``RECIPES["paper"]``: AdamW, lr 1e-5, weight decay 0.1, batch
128, 2000 steps, linear warm-up then cosine, gradient-norm clip 1.0, on OpenCLIP's
train transform (random resized crops);
``RECIPES["birads-seed"]`` is the BI-RADS experiment's (5 epochs, batch 16).

Batches come from a DataLoader, with ``workers`` processes where items are
decoded (cached pixels are read in the main process). Runs are
reproducible: the data order of every epoch is a function of (seed, epoch), each
sample's augmentation of (seed, step, index) (see :mod:`tvcore.data.loaders`),
and the model's own RNG of (seed, step), so a run resumed from a checkpoint gives
the same weights as an unbroken one, whatever the number of workers. Checkpoints
are safetensors. Under ``torchrun`` the encoder is wrapped in
DistributedDataParallel and each rank takes its share of every batch.

On CUDA the run is set up for the hardware (:class:`Speed`): fused AdamW, cached
uint8 pixels held on the device and normalized there, loss and gradient norm kept on
the device and read every few steps, optionally ``torch.compile`` or CUDA graphs
(with a fallback to eager that the result records), and, where determinism is
asked, fused attention under PyTorch's strict deterministic mode (see
:class:`Speed`; the math backend where that mode refuses an operation). On the
CPU none of it applies: the optimizer and every operation are those the
committed baselines were made with.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoints import save_state_dict
from .errors import CheckpointError, DatasetError, UsageError
from .data.loaders import CachedTrain, as_step_dataset, worker_context
from .models import ImageClassifier


OBJECTIVES = ("descent", "ascent")


@dataclass(frozen=True)
class Recipe:
    lr: float = 1e-5
    weight_decay: float = 0.1
    batch_size: int = 128
    steps: int | None = 2000  # total optimizer steps; or None to use epochs
    epochs: int | None = None
    warmup_steps: int = 200
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    augment: bool = False  # train on the model's own train transform (random crops), decoded every step
    # "descent" fine-tunes; "ascent" climbs the same cross-entropy (the loss negated),
    # the forgetting baseline of the paper's Table 1. Part of the pool key.
    objective: str = "descent"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise UsageError(f"recipe objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}; "
                             "use 'descent' to fine-tune or 'ascent' to climb the loss")

    def total_steps(self, n_samples: int) -> int:
        if self.steps is not None:
            return self.steps
        if self.epochs is None:
            raise ValueError("a recipe needs steps or epochs")
        return self.epochs * math.ceil(n_samples / self.batch_size)

    def with_(self, **changes) -> "Recipe":
        return replace(self, **changes)


RECIPES = {
    # The paper's released code trains on the model's train transform
    # (mlfoundations/task_vectors src/finetune.py: ``preprocess_fn =
    # model.train_preprocess``, OpenCLIP's RandomResizedCrop(224, scale=(0.9, 1.0)),
    # bicubic), so its recipe decodes the original images every step.
    "paper": Recipe(augment=True),
    "birads-seed": Recipe(batch_size=16, steps=None, epochs=5, warmup_steps=50),
}


# What a run's progress bar calls each objective, so an ascent never reads as a fine-tune.
OBJECTIVE_LABELS = {"descent": "fine-tune", "ascent": "gradient ascent"}


def progress_label(recipe: Recipe, what: str = "") -> str:
    """A fine-tune's progress-bar label: ``fine-tune digits/rot90`` or ``gradient
    ascent digits/rot90``. ``what`` names the data (a task); the verb is the
    recipe's objective, so a leading ``finetune`` in ``what`` is dropped."""
    words = what.split(maxsplit=1)
    if words and words[0] == "finetune":
        what = words[1] if len(words) > 1 else ""
    return f"{OBJECTIVE_LABELS[recipe.objective]} {what}".strip()


def lr_at(step: int, recipe: Recipe, total: int) -> float:
    """Linear warm-up to ``recipe.lr``, then cosine decay to 0 at ``total``."""
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    span = max(1, total - recipe.warmup_steps)
    return 0.5 * recipe.lr * (1 + math.cos(math.pi * min(1.0, (step - recipe.warmup_steps) / span)))


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch, and turn on deterministic algorithms.

    Without filling new memory: in deterministic mode torch by default writes NaN
    into every tensor ``torch.empty`` allocates, a guard for programs that read
    memory before writing it, and an extra pass over memory per allocation.
    PyTorch documents that a program that never reads uninitialized memory stays
    deterministic with it off (``torch.utils.deterministic.fill_uninitialized_memory``);
    tvcore's repeat checks (two runs, bitwise the same weights) test exactly that."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.benchmark = False


def determinism_flags() -> dict:
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


class StepBatches(torch.utils.data.Sampler):
    """The batches of steps ``start`` to ``end``: for each step, this rank's share
    of it as ``(step, index)`` keys (see :class:`tvcore.data.loaders.StepDataset`)."""

    def __init__(self, n: int, recipe: Recipe, start: int, end: int, rank: int = 0, world: int = 1):
        self.n, self.recipe, self.start, self.end, self.rank, self.world = n, recipe, start, end, rank, world

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self):
        size = self.recipe.batch_size
        per_epoch = math.ceil(self.n / size)
        order, order_epoch = None, None
        for step in range(self.start, self.end):
            epoch, b = divmod(step, per_epoch)
            if epoch != order_epoch:
                order, order_epoch = epoch_order(self.n, self.recipe.seed, epoch), epoch
            yield [(step, i) for i in order[b * size:(b + 1) * size][self.rank::self.world].tolist()]


COMPILE_MODES = ("off", "compile", "cudagraphs", "auto")
DETERMINISTIC_ATTENTION = ("fused", "math")
# "auto" compiles only runs long enough to repay the compilation (about a minute for
# ViT-B-32's forward and backward), so short runs (rehearsals, micro suites) stay eager.
AUTO_COMPILE_MIN_STEPS = 500


@dataclass(frozen=True)
class Speed:
    """How a fine-tune uses a CUDA device. None of it is part of the recipe (a pool
    key), and on the CPU none of it applies (see :func:`resolve_speed`).

    ``compile``: "off"; "compile" (``torch.compile`` of the classifier); "cudagraphs"
    (``torch.compile`` in mode ``reduce-overhead``, which replays CUDA graphs); or
    "auto" ("cudagraphs" for runs of at least :data:`AUTO_COMPILE_MIN_STEPS` steps).
    ``log_every``: steps between reads of the loss and gradient norm to the host.
    ``resident_pixels``: hold a cached training split's uint8 pixels on the device
    when they take at most ``resident_fraction`` of its free memory.
    ``deterministic_attention``: the attention of a deterministic fine-tune.
    "fused": the steps run under ``torch.use_deterministic_algorithms(True)``
    without ``warn_only``, where PyTorch runs the backward pass of its fused
    attention kernels deterministically (flash attention in its deterministic
    mode; the memory-efficient kernel with one key split) and never chooses cuDNN's
    attention, whose backward is not deterministic; a run whose first step that
    mode refuses (an operation without a deterministic implementation) falls back
    to "math", and its result says so. "math": SDPA's math backend, under the
    warn-only mode the rest of the process keeps.
    """

    compile: str = "auto"
    log_every: int = 50
    resident_pixels: bool = True
    resident_fraction: float = 0.5
    deterministic_attention: str = "fused"

    def __post_init__(self):
        if self.compile not in COMPILE_MODES:
            raise UsageError(f"compile mode {self.compile!r} is not one of {', '.join(COMPILE_MODES)}")
        if self.deterministic_attention not in DETERMINISTIC_ATTENTION:
            raise UsageError(f"deterministic attention {self.deterministic_attention!r} is not one of "
                             f"{', '.join(DETERMINISTIC_ATTENTION)}")
        if self.log_every < 1:
            raise UsageError(f"log_every must be at least 1, got {self.log_every}")


@dataclass(frozen=True)
class Accel:
    """What a fine-tune actually runs with (resolved from :class:`Speed` on a device)."""

    fused_adamw: bool = False
    compile: str = "off"  # "off", "compile" or "cudagraphs"
    attention: str = "default"  # "default", "strict" (fused, strict deterministic mode) or "math"
    resident_pixels: bool = False
    resident_fraction: float = 0.5
    log_every: int = 1


def resolve_speed(speed: Speed | Accel | None, device: torch.device, deterministic: bool, total: int) -> Accel:
    """The features a run uses: on CUDA those of ``speed``; on any other device none
    (the torch default AdamW, eager, the loader, the log read every step), so CPU
    numerics stay those of the committed baselines. An :class:`Accel` is taken as
    it is (tests use it to run the CUDA data path on the CPU)."""
    if isinstance(speed, Accel):
        return speed
    speed = speed or Speed()
    if device.type != "cuda":
        return Accel()
    mode = speed.compile
    if mode == "auto":
        mode = "cudagraphs" if total >= AUTO_COMPILE_MIN_STEPS else "off"
    attention = {"fused": "strict", "math": "math"}[speed.deterministic_attention] if deterministic else "default"
    return Accel(fused_adamw=True, compile=mode, attention=attention, resident_pixels=speed.resident_pixels,
                 resident_fraction=speed.resident_fraction, log_every=speed.log_every)


ATTENTION_LABELS = {"default": "default", "strict": "fused (strict deterministic algorithms)",
                    "math": "math (deterministic)"}


def _refused_as_nondeterministic(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: the compiler wraps the errors of the
    graphs it runs) is PyTorch refusing an operation in strict deterministic mode."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, RuntimeError) and "deterministic" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _compiled(forward, compile_mode: str):
    return torch.compile(forward, mode="reduce-overhead" if compile_mode == "cudagraphs" else None)


@dataclass
class FinetuneResult:
    state_dict: dict[str, torch.Tensor]  # the image encoder's, on CPU
    log: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None
    # What ran: optimizer, compilation (and why it fell back), attention backend,
    # where the pixels were, how often the log was read. See :func:`resolve_speed`.
    accel: dict = field(default_factory=dict)
    first_step_s: float | None = None  # seconds to the end of the first step (compilation included)
    # Seconds to the end of step WARM_STEPS (compilation and CUDA graph recording
    # included) and to the end of the last step (the last log read waits for it).
    warm_s: float | None = None
    loop_s: float | None = None

    def steady_step_s(self) -> float | None:
        """Seconds per step after the first :data:`WARM_STEPS` (None for a shorter run)."""
        done = self.steps - (self.resumed_from or 0)
        if self.warm_s is None or self.loop_s is None or done <= WARM_STEPS:
            return None
        return (self.loop_s - self.warm_s) / (done - WARM_STEPS)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _checkpoint_path(checkpoint_dir: str | os.PathLike) -> Path:
    return Path(checkpoint_dir) / "last.safetensors"


def _save_checkpoint(path: Path, encoder: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                     recipe: Recipe, log: list[dict]) -> None:
    tensors = {f"model.{k}": v for k, v in encoder.state_dict().items()}
    for i, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"optim.{i}.{name}"] = torch.as_tensor(value)
    save_state_dict(tensors, path, {"step": str(step), "recipe": json.dumps(asdict(recipe)),
                                    "log": json.dumps(log)})


def _load_checkpoint(path: Path, encoder: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     recipe: Recipe) -> tuple[int, list[dict]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    if json.loads(meta["recipe"]) != json.loads(json.dumps(asdict(recipe))):
        raise CheckpointError(f"checkpoint {path} was written with another recipe; remove it or use a new "
                         "checkpoint_dir")
    device = next(encoder.parameters()).device
    encoder.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    state = optimizer.state_dict()
    per_param: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            per_param.setdefault(int(i), {})[name] = v if name == "step" else v.to(device)
    state["state"] = per_param
    optimizer.load_state_dict(state)
    return int(meta["step"]), json.loads(meta["log"])


def _resident_batches(data: CachedTrain, sampler: "StepBatches", device: torch.device):
    """The loader's batches taken from the whole cached split held on the device as
    uint8: one transfer, then an index per step (the pixels and order a DataLoader
    over ``data`` gives)."""
    pixels = data.cache.rows(0, len(data.cache)).to(device)
    labels = torch.as_tensor(data.cache.labels, dtype=torch.long).to(device)
    for keys in sampler:
        index = torch.tensor([i for _, i in keys], dtype=torch.long).to(device, non_blocking=True)
        yield pixels.index_select(0, index), labels.index_select(0, index)


def _fits_on_device(nbytes: int, device: torch.device, fraction: float) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= fraction * free


# Steps after which a run is at its steady pace: the first compiles, CUDA graph
# trees warm up on the next and record on the one after.
WARM_STEPS = 3


class _Log:
    """Loss and gradient norm kept on the device and read every ``every`` steps in
    one transfer (a read per step would wait for the device at every step)."""

    def __init__(self, log: list[dict], every: int, device: torch.device):
        self.log, self.every = log, every
        self.values = torch.zeros((every, 2), dtype=torch.float64, device=device)
        self.pending: list[tuple[int, float]] = []  # (step, lr) of the rows not read yet

    def add(self, step: int, lr: float, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        row = self.values[len(self.pending)]
        row[0].copy_(loss.detach(), non_blocking=True)
        row[1].copy_(grad_norm.detach(), non_blocking=True)
        self.pending.append((step, lr))
        if len(self.pending) == self.every:
            self.flush()

    def flush(self) -> float | None:
        """Append the pending rows to the log; the last loss read, if any."""
        if not self.pending:
            return None
        rows = self.values[:len(self.pending)].tolist()
        for (step, lr), (loss, grad_norm) in zip(self.pending, rows):
            self.log.append({"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm})
        self.pending = []
        return rows[-1][0]


def finetune(model: ImageClassifier, train_data: torch.utils.data.Dataset, recipe: Recipe = RECIPES["paper"], *,
             device: str | torch.device = "cpu", checkpoint_dir: str | os.PathLike | None = None,
             checkpoint_every: int = 500, stop_after: int | None = None, progress: bool = True,
             deterministic: bool = True, desc: str = "", workers: int = 0,
             speed: Speed | Accel | None = None) -> FinetuneResult:
    """Fine-tune ``model.image_encoder`` in place on ``train_data``: a dataset from
    :func:`tvcore.data.loaders.train_dataset`, or any dataset of
    ``(image_tensor, label)``; the head stays frozen. ``workers`` DataLoader
    processes prepare the batches where items are decoded (a dataset whose
    ``decodes`` is False, cached pixels, is read in this process).

    With ``checkpoint_dir``, a checkpoint is written every ``checkpoint_every`` steps
    and at the end, and a run finding one there resumes from it. ``stop_after`` ends
    the run early after that many steps (as an interruption would). ``speed``: how
    a CUDA device is used (:class:`Speed`); the result's ``accel`` says what ran.
    ``desc``: what is trained (a task name), shown after the objective's verb
    (:func:`progress_label`).
    """
    from tqdm.auto import tqdm

    n = len(train_data)
    if n == 0:
        raise DatasetError("cannot fine-tune on an empty training set")
    device = torch.device(device)
    seed_everything(recipe.seed, deterministic)
    rank, world = _distributed()
    total = recipe.total_steps(n)
    accel = resolve_speed(speed, device, deterministic, total)

    model.to(device).train()
    encoder = model.image_encoder
    encoder.requires_grad_(True)
    params = [p for p in encoder.parameters() if p.requires_grad]
    if accel.fused_adamw:
        optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    else:
        # The CPU's optimizer: torch's default implementation, as the baselines were made.
        optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    forward = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            encoder, device_ids=[device.index] if device.type == "cuda" else None)
        forward = ImageClassifier(ddp, model.head)
    eager, compile_mode, fallback = forward, accel.compile, None
    if compile_mode != "off":
        forward = _compiled(forward, compile_mode)

    start, log, resumed = 0, [], None
    ckpt = _checkpoint_path(checkpoint_dir) if checkpoint_dir else None
    if ckpt is not None and ckpt.is_file():
        start, log = _load_checkpoint(ckpt, encoder, optimizer, recipe)
        resumed = start
    end = total if stop_after is None else min(total, start + stop_after)
    use_amp = recipe.amp and device.type == "cuda"

    data = as_step_dataset(train_data, recipe.seed)
    on_device = data.device_transform or (lambda images: images)
    sampler = StepBatches(n, recipe, start, end, rank, world)
    resident = (accel.resident_pixels and isinstance(data, CachedTrain)
                and _fits_on_device(data.cache.nbytes, device, accel.resident_fraction))
    if resident:
        batches = _resident_batches(data, sampler, device)
    else:
        num_workers = workers if data.decodes else 0
        # A generator of its own: the loader's base seed must not draw from the global RNG.
        batches = torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=num_workers,
                                              multiprocessing_context=worker_context(num_workers),
                                              pin_memory=device.type == "cuda", generator=torch.Generator())
    # Deterministic attention on CUDA (Speed.deterministic_attention): fused kernels
    # under the strict mode, for the steps only (the process's mode is restored after
    # them), or the math backend.
    attention_mode, attention_fallback = accel.attention, None
    process_mode = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())

    def restore_process_mode():
        torch.use_deterministic_algorithms(process_mode[0], warn_only=process_mode[1])

    def attention():
        if attention_mode != "math":
            return nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)

    stats = _Log(log, accel.log_every, device)
    first_step_s = warm_s = None

    def seed_step(step):
        """Dropout and the like draw from the global RNG: seeded by the step, so a
        resumed run draws what an unbroken one would."""
        torch.manual_seed(recipe.seed * 1_000_003 + step)

    def first_step(images, labels, step):
        """The first step, where what a run asked for can fail: a strict-mode refusal
        falls back to math attention, a compiler failure to eager; each is recorded."""
        nonlocal forward, compile_mode, fallback, attention_mode, attention_fallback
        while True:
            try:
                return step_loss(forward, images, labels)
            except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to eager
                seed_step(step)  # the retry draws what the failed try drew
                if attention_mode == "strict" and _refused_as_nondeterministic(exc):
                    attention_fallback = f"strict deterministic mode refused an operation ({_short(exc)}); ran math"
                    attention_mode = "math"
                    restore_process_mode()
                    if compile_mode != "off":
                        # The compiled graph holds the fused kernels: compile again under math.
                        torch._dynamo.reset()
                        forward = _compiled(eager, compile_mode)
                elif compile_mode != "off":
                    fallback = f"{compile_mode} failed ({_short(exc)}); ran eager"
                    forward, compile_mode = eager, "off"
                else:
                    raise
                if compile_mode == "cudagraphs":
                    torch.compiler.cudagraph_mark_step_begin()

    def step_loss(fwd, images, labels):
        with attention(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = fwd(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=recipe.label_smoothing)
        # The log keeps the cross-entropy itself, so an ascent's log shows it rising.
        objective = -loss if recipe.objective == "ascent" else loss
        optimizer.zero_grad(set_to_none=True)
        with attention():
            objective.backward()
        return loss

    def elapsed() -> float:
        """Seconds since the run began, once the device has done what was asked of it."""
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    bar = tqdm(range(start, end), desc=progress_label(recipe, desc), disable=not progress or rank != 0, initial=start, total=total)
    if attention_mode == "strict":
        torch.use_deterministic_algorithms(True, warn_only=False)
    try:
        for step, (images, labels) in zip(bar, batches):
            seed_step(step)
            lr = lr_at(step, recipe, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = on_device(images.to(device, non_blocking=True))
            labels = labels.to(device, non_blocking=True)
            if compile_mode == "cudagraphs":
                torch.compiler.cudagraph_mark_step_begin()
            if first_step_s is None:
                loss = first_step(images, labels, step)
            else:
                loss = step_loss(forward, images, labels)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
            optimizer.step()
            stats.add(step, lr, loss, grad_norm)
            if first_step_s is None:
                first_step_s = elapsed()
            if step + 1 - start == WARM_STEPS:
                warm_s = elapsed()
            if not stats.pending:
                bar.set_postfix(loss=f"{log[-1]['loss']:.4f}", lr=f"{lr:.2e}")
            done = step + 1
            if ckpt is not None and rank == 0 and (done % checkpoint_every == 0 or done == end):
                stats.flush()
                _save_checkpoint(ckpt, encoder, optimizer, done, recipe, log)
    finally:
        restore_process_mode()
    stats.flush()
    loop_s = time.perf_counter() - t0
    bar.close()
    model.eval()
    state = {k: v.detach().to("cpu").clone() for k, v in encoder.state_dict().items()}
    seconds = time.perf_counter() - t0
    record = {"device": device.type, "optimizer": "AdamW fused" if accel.fused_adamw else "AdamW (torch default)",
              "compile": compile_mode, "compile_asked": accel.compile, "compile_fallback": fallback,
              "attention": ATTENTION_LABELS[attention_mode], "attention_fallback": attention_fallback,
              "pixels": "device-resident uint8" if resident else "loader",
              "autocast": "bf16" if use_amp else "off", "log_every": accel.log_every}
    return FinetuneResult(state, log, end, seconds, resumed, record, first_step_s, warm_s, loop_s)
