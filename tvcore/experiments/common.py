"""How an experiment sees one run: the model pool (base weights and task vectors),
the task pool (data, splits, heads) and the evaluator (one encoder edited in
place), wired once from a model spec and a recipe. Experiments are methods over
this context; they read from the pools and judge through the evaluator."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..data.base import TaskData
from ..errors import CheckpointError
from ..evaluate import ClassificationMetrics
from ..evaluator import Evaluator, eval_batch_size
from ..finetune import Recipe, determinism_flags
from ..finetuned_sets import FinetunedSet
from ..models import LoadedModel, load_model
from ..pool import ModelPool
from ..tasks import TaskPool, load_task
from ..vectors import TaskVector

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TINY_CONFIG = FIXTURES / "models" / "tvcore-tiny.json"
TINY_CHECKPOINT = FIXTURES / "tvcore-tiny-digits.safetensors"


def grid(start: float, stop: float, step: float) -> list[float]:
    """Inclusive grid, rounded so 0.05-steps print as 0.05, not 0.0500000001."""
    n = int(round((stop - start) / step))
    return [round(start + i * step, 10) for i in range(n + 1)]


PAPER_GRID = grid(0.0, 1.0, 0.05)


@dataclass
class ModelSpec:
    """An architecture, its weights (file or tag), an image encoder file over them
    (``--image-encoder``) and the user's ``--quick-gelu``/``--no-quick-gelu``
    (None: decided from the weights, :func:`tvcore.models.decide_quick_gelu`)."""

    arch: str
    pretrained: str | None = None
    quick_gelu: bool | None = None
    image_encoder: str | None = None

    def load(self, device, quick_gelu_records: dict | None = None) -> LoadedModel:
        for path in (self.arch, self.pretrained):
            if path and str(path).startswith(str(FIXTURES)) and not Path(path).is_file():
                raise CheckpointError(f"{path} is missing: the embedded model ships with the tvcore source "
                                      "tree; run from a checkout (pip install -e .)")
        if not self.pretrained:
            import torch

            torch.manual_seed(0)  # a stand-in model's random init is the same every run
        return load_model(self.arch, self.pretrained, device=device, quick_gelu=self.quick_gelu,
                          image_encoder=self.image_encoder, quick_gelu_records=quick_gelu_records)


TINY = ModelSpec(str(TINY_CONFIG), str(TINY_CHECKPOINT), quick_gelu=False)  # its config has none


@dataclass
class Context:
    """One run's pools and evaluator. ``pool_dir`` persists fine-tuned encoders
    (None: in memory only); ``finetuned`` takes them from a folder instead."""

    model: ModelSpec
    recipe: Recipe
    device: str = "cpu"
    data_root: str | None = None
    progress: bool = True
    eval_batch_size: int | None = None  # None: sized to the device (tvcore.evaluator.eval_batch_size)
    eval_precision: str = "auto"  # bf16 autocast on CUDA, fp32 elsewhere; "fp32" or "bf16" to choose
    head_cache: str | None = None
    pixel_cache: str | None = None
    workers: int = 0
    pool_dir: str | None = None
    fresh: bool = False
    finetuned: str | None = None
    max_per_split: int | None = None
    checkpoint_every: int = 200
    pool: ModelPool = field(init=False)
    tasks: TaskPool = field(init=False)
    evaluator: Evaluator = field(init=False)
    timings: dict = field(default_factory=dict, init=False)
    # The run a record describes: the vectors handed out since the last description,
    # and the determinism flags the process held when the run began.
    _used: dict = field(default_factory=dict, init=False, repr=False)
    _run_start_flags: dict = field(default_factory=dict, init=False, repr=False)
    # The flags a vector fine-tuned in this process was trained under.
    _trained_flags: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        t0 = time.perf_counter()
        self._run_start_flags = determinism_flags()
        # A fine-tuned set's QuickGELU records join the model's decision, so the model
        # runs as the set was trained (or the clash is refused before anything runs).
        finetuned = FinetunedSet(Path(self.finetuned), arch=Path(self.model.arch).stem) if self.finetuned else None
        loaded = self.model.load(self.device, finetuned.quick_gelu_records() if finetuned else None)
        t1 = time.perf_counter()
        if self.eval_batch_size is None:
            self.eval_batch_size = eval_batch_size(self.device)
        self.pool = ModelPool(loaded, self.device, self.pool_dir, fresh=self.fresh, finetuned=finetuned,
                              checkpoint_every=self.checkpoint_every, progress=self.progress)
        t2 = time.perf_counter()
        self.tasks = TaskPool(loaded, self.data_root, self.device, head_cache=self.head_cache,
                              pixel_cache=self.pixel_cache, workers=self.workers, batch_size=self.eval_batch_size,
                              max_per_split=self.max_per_split, progress=self.progress)
        t3 = time.perf_counter()
        self.evaluator = Evaluator(loaded.image_encoder, self.tasks, self.device, self.eval_precision)
        self.timings["load_model_s"] = time.perf_counter() - t0
        # Where those seconds went (the model's own parts: tvcore.models.LoadedModel.load_seconds).
        self.timings["load_model_parts"] = {**loaded.load_seconds, "other_loading_s": t1 - t0 - sum(
            loaded.load_seconds.values()), "pool_s": t2 - t1, "tasks_s": t3 - t2,
            "evaluator_s": time.perf_counter() - t3}

    # What the experiments use, each a one-line hand-off to the role that owns it.

    @property
    def pretrained_state(self) -> dict:
        return self.pool.pretrained_state

    def task(self, name: str) -> TaskData:
        return self.tasks.task(name)

    def check_finetuned(self, task_names: Sequence[str]) -> None:
        """With ``finetuned``: read and check every task's encoder now, before any
        evaluation (one error lists every bad file)."""
        self.pool.check_finetuned(task_names)

    def vector(self, task_name: str, recipe: Recipe | None = None, *, label: str | None = None,
               from_folder: bool = True) -> TaskVector:
        """The task's vector under ``recipe`` (default: the run's), named ``label`` in
        the pool (:meth:`tvcore.pool.ModelPool.vector`). The run's record lists it."""
        label = label or task_name
        new = label not in self.pool.provenance
        try:
            return self.pool.vector(task_name, self.tasks, recipe or self.recipe, label=label,
                                    from_folder=from_folder)
        finally:
            if label in self.pool.provenance:
                self._used[label] = None
                if new and self.pool.provenance[label]["source"] in ("trained", "resumed"):
                    # The fine-tune set these flags (tvcore.finetune.seed_everything) and nothing unsets them.
                    self._trained_flags[label] = determinism_flags()

    def load(self, state: dict) -> None:
        self.evaluator.load(state)

    @contextmanager
    def edits(self, vector: TaskVector, base: dict | None = None):
        """A sweep of ``base + alpha * vector`` (base: the pre-trained weights)."""
        with self.evaluator.edits(vector, self.pretrained_state if base is None else base) as sweep:
            yield sweep

    def evaluate(self, task_name: str, split: str = "test") -> ClassificationMetrics:
        return self.evaluator.evaluate(task_name, split)

    def accuracy(self, task_name: str, split: str = "test") -> float:
        return self.evaluator.accuracy(task_name, split)

    def evaluate_finetuned(self, task_name: str, splits: Sequence[str] = ("test",)) -> dict:
        """The task's own fine-tuned model (pre-trained + 1.0 * its vector) on each split."""
        with self.edits(self.vector(task_name)) as edit:
            edit.set(1.0)
            return {split: self.evaluate(task_name, split) for split in splits}

    def all_timings(self) -> dict:
        return {**self.timings, **self.pool.timings}

    def _training_determinism(self, label: str, info: dict) -> dict:
        """The determinism flags a vector was fine-tuned under, and where that is known
        from: this process, the pool entry's ``meta.json``, or nowhere (None)."""
        if label in self._trained_flags:
            return {**self._trained_flags[label], "from": "this process, which fine-tuned it"}
        meta_path = Path(info["path"]).parent / "meta.json" if info.get("path") and info["source"] == "pool" else None
        if meta_path is not None and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            flags = meta.get("determinism")  # written by the pool since it records them
            if flags:
                return {**flags, "from": "the pool entry's meta.json"}
        where = {"pool": "the pool entry's meta.json does not record it",
                 "finetuned": "an encoder of a fine-tuned set, whose files do not record it"}.get(
            info["source"], "fine-tuned through the pool directly, not Context.vector")
        return {"deterministic_algorithms": None, "from": f"unknown: {where}"}

    def describe(self) -> dict:
        """What ran, with the embedded model's paths relative to the checkout so
        records from two machines compare equal.

        A description is of one run (:func:`tvcore.experiments.run_suite` takes one
        per run): it lists the vectors handed out since the previous description,
        not every vector the context holds for other runs, and the determinism of
        the run as it was: the flags evaluation ran under from the run's start to
        its end (a fine-tune in this process turns deterministic algorithms on
        midway), and per vector the flags it was fine-tuned under where known."""
        root = str(FIXTURES.parent) + "/"
        strip = lambda v: v.replace(root, "") if isinstance(v, str) else v  # noqa: E731
        model = {k: strip(v) for k, v in asdict(self.model).items()}
        decided = self.pool.loaded.info
        model["quick_gelu"] = {"value": decided.get("quick_gelu"), "source": strip(decided.get("quick_gelu_source"))}
        tasks = {name: self.tasks.describe(name) for name in self.tasks.take_used()}
        # Where a vector came from; the pool's own paths stay out (its key names the entry).
        used = [name for name in self._used if name in self.pool.provenance]
        vectors = {name: {k: strip(v) for k, v in self.pool.provenance[name].items()
                          if k != "path" or self.pool.provenance[name]["source"] == "finetuned"} for name in used}
        determinism = {"evaluation": {"at_start": self._run_start_flags, "at_end": determinism_flags()},
                       "training": {name: self._training_determinism(name, self.pool.provenance[name])
                                    for name in used}}
        self._used, self._run_start_flags = {}, determinism["evaluation"]["at_end"]
        fset = self.pool.finetuned
        return {"model": model, "model_loaded": strip(self.pool.loaded.describe()),
                "finetuned_set": fset.describe() if fset is not None else None, "base_weights": self.pool.base_hash,
                "recipe": asdict(self.recipe), "device": self.device, "evaluation": self.evaluator.describe(),
                "tasks": tasks, "vectors": vectors, "determinism": determinism,
                "rehearsal_cap": self.max_per_split}


def split_fingerprints(ctx: Context, task_names: Sequence[str]) -> dict[str, str]:
    return ctx.tasks.fingerprints(task_names)


__all__ = ["Context", "ModelSpec", "TINY", "PAPER_GRID", "grid", "load_task", "split_fingerprints"]
