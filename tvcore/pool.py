"""The model pool: the base model and every task's fine-tuned encoder, persisted.

Fine-tuned encoders are hours of GPU time, so each one is written under the pool
folder the moment it exists, as safetensors, keyed by everything that decides it:

* the base image encoder's weights (a hash) and the architecture,
* the task, its train split (fingerprint) and its frozen head (text tower, class
  names, templates),
* the recipe (with its seed) and the transforms,
* the fine-tuning code itself (a hash of its source files).

A rerun finds the entry and reuses it; an interrupted fine-tune resumes from the
checkpoint it left in the entry's folder. ``fresh=True`` ignores (and replaces)
what is there. ``finetuned=DIR`` takes each task's encoder from a folder of
published or imported encoders instead of fine-tuning (any layout of
:mod:`tvcore.finetuned_sets`), checked all at once by :meth:`ModelPool.check_finetuned`. Every vector the pool
hands out has its provenance in :attr:`ModelPool.provenance`, which records copy.

Layout: ``<pool>/<task>/<key>/encoder.safetensors`` with ``meta.json`` beside it,
and ``<pool>/<task>/<key>/checkpoint/last.safetensors`` while training.

Several processes may share one pool (:mod:`tvcore.parallel` trains a suite's
entries side by side): an entry is trained only while its ``train.lock`` is held
(an exclusive ``flock``, which the kernel releases when its process exits, however
it exits, so a dead trainer's lock is simply taken over). A process that asks for
an entry another one is training waits for it and uses the finished encoder; a
killed trainer loses at most the steps since its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from .checkpoints import load_state_dict, save_state_dict
from .errors import CheckpointError
from .finetune import Recipe, determinism_flags, finetune
from .finetuned_sets import FinetunedSet
from .models import ImageClassifier, LoadedModel, fingerprint_in_background
from .tasks import TaskPool
from .vectors import TaskVector

POOL_FORMAT = "tvcore.pool/1"
ENCODER_FILE = "encoder.safetensors"
LOCK_FILE = "train.lock"
# The files whose code decides what fine-tuning produces; their source is hashed
# into every pool key, so editing them can never reuse a stale encoder.
_TRAINING_CODE = ("finetune.py", "data/loaders.py", "data/cache.py")


def training_code_version() -> str:
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for rel in _TRAINING_CODE:
        path = root / rel
        h.update(rel.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return h.hexdigest()[:16]


def task_slug(task_name: str) -> str:
    """``mini-ddsm/focus-5`` -> ``mini-ddsm-focus-5``: a task's folder and file name."""
    return task_name.replace("/", "-").replace("+", "_")


@contextmanager
def entry_lock(entry: Path, say=None):
    """Hold ``<entry>/train.lock`` exclusively (``fcntl.flock``) inside the block,
    waiting for a process that holds it; ``say`` (a callable) is told once when
    waiting. The file keeps the holder's pid, for that message only."""
    import fcntl

    entry.mkdir(parents=True, exist_ok=True)
    fd = os.open(entry / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say is not None:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                say(f"pool: waiting for {entry} (being trained by pid {holder})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _on_off(value: bool) -> str:
    return "on" if value else "off"


class ModelPool:
    def __init__(self, loaded: LoadedModel, device: str = "cpu", directory: str | Path | None = None,
                 fresh: bool = False, finetuned: str | Path | FinetunedSet | None = None, checkpoint_every: int = 200,
                 progress: bool = True):
        self.loaded = loaded
        self.device = device
        self.directory = Path(directory) if directory else None
        self.fresh = fresh
        if finetuned is not None and not isinstance(finetuned, FinetunedSet):
            finetuned = FinetunedSet(Path(finetuned), arch=loaded.arch)
        self.finetuned: FinetunedSet | None = finetuned
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        # Kept on the CPU, as are the vectors: loading a state into an encoder moves it to its device.
        self.pretrained_state = loaded.cpu_image_state()
        # The base's fingerprint keys every pool entry and goes in every record; it is
        # hashed beside the run's other start-up work (pretrained_state never changes).
        self._base_hash: Future = fingerprint_in_background(self.pretrained_state)
        self._vectors: dict[str, TaskVector] = {}
        self.provenance: dict[str, dict] = {}
        self.timings: dict[str, float] = {}
        self._refreshed: set[Path] = set()  # entries ``fresh`` has already cleared in this process

    @property
    def base_hash(self) -> str:
        """The sha256 fingerprint of the pre-trained image encoder's weights
        (:func:`tvcore.models.state_fingerprint`), the pool's key for its base."""
        return self._base_hash.result()

    def say(self, line: str) -> None:
        """One line of progress (quiet without ``progress``)."""
        if self.progress:
            print(line, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ keys

    def key(self, task_name: str, tasks: TaskPool, recipe: Recipe) -> dict:
        """Everything that decides a fine-tuned encoder, and its hash."""
        parts = {
            "format": POOL_FORMAT,
            "arch": self.loaded.arch,
            "base_weights": self.base_hash,
            "task": task_name,
            "train_split": tasks.task(task_name)["train"].fingerprint(),
            "head": tasks.head_key(task_name),
            "recipe": asdict(recipe),
            "transforms": [repr(self.loaded.preprocess_train), repr(self.loaded.preprocess_val)],
            "training_code": training_code_version(),
        }
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
        return {"hash": digest, "parts": parts}

    def entry_dir(self, task_name: str, key: dict) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / task_slug(task_name) / key["hash"][:20]

    # ------------------------------------------------------------------ vectors

    def vector(self, task_name: str, tasks: TaskPool, recipe: Recipe, *, label: str | None = None,
               from_folder: bool = True) -> TaskVector:
        """The task's vector: from ``finetuned`` (unless ``from_folder`` is False), from
        the pool, or fine-tuned now (resumed from a checkpoint when one is there) and
        persisted. ``label`` names it in :attr:`provenance` and the in-memory cache
        (default: the task), so one task can have vectors of several recipes."""
        label = label or task_name
        if label not in self._vectors and self.finetuned is not None and from_folder:
            self.check_finetuned([task_name])
            self._vectors[label], self.provenance[label] = self._vectors[task_name], self.provenance[task_name]
        if label not in self._vectors:
            t0 = time.perf_counter()
            state, info = self._finetuned_state(task_name, tasks, recipe, from_folder)
            self.timings[f"finetune[{label}]_s"] = time.perf_counter() - t0
            self.provenance[label] = info
            self._vectors[label] = TaskVector.from_state_dicts(
                self.pretrained_state, state, name=label, base_model=self.loaded.describe())
        return self._vectors[label]

    def ensure(self, task_name: str, tasks: TaskPool, recipe: Recipe) -> dict:
        """Make sure the pool holds the task's encoder for ``recipe`` (fine-tuned now
        unless it is there or another process is finishing it) and return its
        provenance; no vector is kept. Needs a pool folder."""
        if self.directory is None:
            from .errors import UsageError

            raise UsageError(f"training {task_name} into the pool needs a pool folder; pass --pool DIR "
                             "or --results-dir DIR")
        return self._finetuned_state(task_name, tasks, recipe)[1]

    def _finetuned_state(self, task_name: str, tasks: TaskPool, recipe: Recipe,
                         from_folder: bool = True) -> tuple[dict, dict]:
        key = self.key(task_name, tasks, recipe)
        entry = self.entry_dir(task_name, key)
        if entry is None:
            return self._train(task_name, tasks, recipe, key, None)
        with entry_lock(entry, self.say):
            if self.fresh and entry not in self._refreshed:
                # Everything but the lock this process holds goes.
                for path in entry.iterdir():
                    if path.name != LOCK_FILE:
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
                self._refreshed.add(entry)
            if (entry / ENCODER_FILE).is_file():
                state = load_state_dict(entry / ENCODER_FILE)
                self.say(f"pool: {task_name} served from {entry}")
                return state, {"source": "pool", "key": key["hash"], "path": str(entry / ENCODER_FILE)}
            return self._train(task_name, tasks, recipe, key, entry)

    def _train(self, task_name: str, tasks: TaskPool, recipe: Recipe, key: dict,
               entry: Path | None) -> tuple[dict, dict]:
        """Fine-tune now (resuming from the entry's checkpoint) and persist the encoder."""
        info = {"source": "trained", "key": key["hash"], "path": str(entry / ENCODER_FILE) if entry else None}
        checkpoint_dir = entry / "checkpoint" if entry is not None else None
        encoder = self.loaded.image_encoder
        encoder.load_state_dict(self.pretrained_state)
        tasks.release_device_copies()  # the fine-tune's activations and pixels come first
        result = finetune(ImageClassifier(encoder, tasks.head(task_name)),
                          tasks.train_data(task_name, augment=recipe.augment, seed=recipe.seed), recipe,
                          device=self.device, checkpoint_dir=checkpoint_dir, checkpoint_every=self.checkpoint_every,
                          progress=self.progress, desc=task_name, workers=tasks.workers)
        encoder.load_state_dict(self.pretrained_state)
        if result.resumed_from is not None:
            info.update(source="resumed", resumed_from_step=result.resumed_from)
        info["accel"] = result.accel  # which fine-tuning path ran (optimizer, compile, attention, pixels)
        if entry is not None:
            save_state_dict(result.state_dict, entry / ENCODER_FILE,
                            {"format": POOL_FORMAT, "task": task_name, "key": key["hash"]})
            meta = {**key, "steps": result.steps, "seconds": result.seconds, "final_loss":
                    result.log[-1]["loss"] if result.log else None, "resumed_from": result.resumed_from,
                    "accel": result.accel, "first_step_s": result.first_step_s,
                    # The flags it was trained under, for the records of runs this entry serves.
                    "determinism": determinism_flags()}
            from .results import write_json

            write_json(meta, entry / "meta.json")
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return result.state_dict, info

    def check_finetuned(self, task_names) -> None:
        """Read every task's encoder from the ``finetuned`` set now, before any
        evaluation, and keep its vector; one :class:`CheckpointError` lists every
        task whose file is missing, unreadable, of another architecture or base, or
        whose QuickGELU differs from the model's. Without a set, nothing to do."""
        if self.finetuned is None:
            return
        fset, arch = self.finetuned, self.loaded.arch
        quick, quick_source = self.loaded.info.get("quick_gelu"), self.loaded.info.get("quick_gelu_source")
        todo = [t for t in dict.fromkeys(task_names) if t not in fset.checked]
        errors = []
        if fset.zeroshot_check is None:
            try:
                fset.check_zeroshot(todo, self.pretrained_state, arch)
            except CheckpointError as exc:
                errors.append(str(exc))
        missing = [t for t in todo if fset.locate(t) is None]
        if missing:
            errors.append(f"missing {', '.join(f'{t} ({fset.expected(t)})' for t in missing)}")
        for task in (t for t in todo if t not in missing):
            try:
                state, entry = fset.read(task, self.pretrained_state, arch)
            except CheckpointError as exc:
                errors.append(str(exc) if str(exc).startswith(f"{task}:") else f"{task}: {exc}")
                continue
            if entry.quick_gelu is not None and quick is not None and entry.quick_gelu != quick:
                errors.append(f"{task}: {entry.path} records QuickGELU {_on_off(entry.quick_gelu)} "
                              f"({entry.quick_gelu_source}) but the model runs with it {_on_off(quick)} "
                              f"({quick_source}); pass {'--quick-gelu' if entry.quick_gelu else '--no-quick-gelu'} "
                              "or the weights the set was fine-tuned from")
                continue
            fset.checked[task] = entry
            self._vectors[task] = TaskVector.from_state_dicts(self.pretrained_state, state, name=task,
                                                              base_model=self.loaded.describe())
            self.provenance[task] = {"source": "finetuned", "set": fset.layout, "path": str(entry.path),
                                     "sha256": entry.sha256, "relative_change": entry.relative_change}
        count = len(errors) + max(len(missing) - 1, 0)  # the missing files share one entry
        if errors:
            raise CheckpointError(f"--finetuned {fset.root} ({fset.layout}): {count} problem{'s' if count > 1 else ''} "
                                  "found before any evaluation: " + "; ".join(" ".join(e.split()) for e in errors))
