"""Sets of fine-tuned encoders as their publishers ship them, read in place.

``--finetuned DIR`` takes every task's fine-tuned image encoder from a folder in
one of these layouts, without a separate ``tvcore import`` step:

* ``task_vectors``: the task-arithmetic paper's release (Ilharco et al., ICLR
  2023, github.com/mlfoundations/task_vectors): ``<Task>/finetuned.pt`` (a
  pickled ``ImageEncoder`` module) per task and ``zeroshot.pt``, the encoder
  they were fine-tuned from, usually under a ``ViT-B-32/`` folder;
* ``tall_masks``: the TALL-masks and TSV release (Wang et al., ICML 2024,
  github.com/nik-dim/tall_masks, ``src/utils/variables_and_paths.py``):
  ``<Task>Val/nonlinear_finetuned.pt`` and ``<Task>Val/nonlinear_zeroshot.pt``,
  ``torch.save`` of the ``ImageEncoder``'s state dict (keys ``model.visual.*``);
* ``fusion_bench``: fusion_bench's Hugging Face ``CLIPVisionModel`` folders
  (``tanganke/clip-vit-base-patch32_<task>``, ``docs/modelpool/clip_vit.md``),
  as ``save_pretrained`` or ``huggingface-cli download --local-dir`` leaves them,
  or in a Hugging Face cache (``models--tanganke--clip-vit-base-patch32_<task>``).
  A ``CLIPVisionModel`` has no projection; it is the pretrained model's, which
  fusion_bench keeps frozen;
* ``tvcore``: ``<task>.safetensors`` image encoders (what ``tvcore import`` and
  the model pool write; ``<task>`` with ``/`` as ``-``).

Pickles are read by :mod:`tvcore.importers`' restricted reader; nothing they
name is imported or run.

Before any evaluation :meth:`FinetunedSet.check` reads every task's file and
refuses, in one error that lists them all, files that are missing or
unreadable, that do not fit the architecture, that were fine-tuned from another
base (:data:`MAX_RELATIVE_CHANGE`), or whose QuickGELU differs from the model's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import torch

from .checkpoints import sha256_file
from .errors import CheckpointError

# A fine-tune moves the image encoder's weights by a small fraction of their norm:
# with AdamW each step moves an entry by about the learning rate at most, so the
# paper's recipe (lr 1e-5, 2,000 steps, 200 warm-up, cosine: about 1,100 full-lr
# steps) moves an entry by 0.011 at most, about a third of ViT-B/32's typical
# weight (RMS ~0.03), and only if every step pushed it the same way; real
# fine-tunes move the encoder by about 1-2% of its norm (task vector norms of 2-4
# against ~250 for the pretrained encoder). Weights trained from another
# initialization are unrelated to the base: ||a - b|| / ||a|| is about sqrt(2)
# for two encoders of equal norm, and about 1 against a random init. Half the
# base's norm lies far above any fine-tune and far below any other base.
MAX_RELATIVE_CHANGE = 0.5
# zeroshot.pt is the base itself: only storage rounding may separate it from the
# --weights encoder (fp16 storage rounds by 2**-11 relative at most).
ZEROSHOT_TOLERANCE = 1e-3

LAYOUTS = {
    "task_vectors": "the task-arithmetic paper's <Task>/finetuned.pt and zeroshot.pt (pickled ImageEncoder modules)",
    "tall_masks": "the TALL-masks/TSV <Task>Val/nonlinear_finetuned.pt and nonlinear_zeroshot.pt (state dicts)",
    "fusion_bench": "fusion_bench's Hugging Face CLIPVisionModel folders <model>_<task>",
    "tvcore": "tvcore's <task>.safetensors image encoders",
}

# fusion_bench's task names where they are not the lower-cased tvcore name
# (fusion_bench config/modelpool/CLIPVisionModelPool/clip-vit-base-patch32_TA8.yaml
# and its 20-task list).
FUSION_BENCH_NAMES = {"Cars": "stanford-cars", "Flowers102": "oxford_flowers102",
                      "OxfordIIITPet": "oxford-iiit-pet", "FashionMNIST": "fashion_mnist",
                      "EMNIST": "emnist_letters", "RenderedSST2": "rendered-sst2"}


def _slug(task: str) -> str:
    return task.replace("/", "-").replace("+", "_")


def fusion_bench_name(task: str) -> str:
    return FUSION_BENCH_NAMES.get(task, _slug(task).lower())


def _layouts_in(folder: Path) -> set[str]:
    found = set()
    if not folder.is_dir():
        return found
    for child in folder.iterdir():
        if child.is_dir():
            if (child / "finetuned.pt").is_file():
                found.add("task_vectors")
            if (child / "nonlinear_finetuned.pt").is_file():
                found.add("tall_masks")
            if "_" in child.name and ((child / "config.json").is_file() or child.name.startswith("models--")):
                found.add("fusion_bench")
            if (child / "encoder.safetensors").is_file() or (child / "finetuned.safetensors").is_file():
                found.add("tvcore")
        elif child.suffix == ".safetensors":
            found.add("tvcore")
    return found


@dataclass
class TaskFile:
    """One task's fine-tuned encoder as read and checked."""

    task: str
    path: Path
    sha256: str
    quick_gelu: bool | None
    quick_gelu_source: str
    relative_change: float
    kind: str

    def as_record(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "kind": self.kind,
                "quick_gelu": self.quick_gelu, "relative_change": self.relative_change}


@dataclass
class FinetunedSet:
    """A folder of fine-tuned encoders in one of :data:`LAYOUTS`. ``arch`` (an
    OpenCLIP name) lets ``DIR`` be the folder above ``<arch>/``."""

    directory: Path
    arch: str | None = None
    layout: str = field(init=False)
    root: Path = field(init=False)
    checked: dict = field(default_factory=dict, init=False)
    zeroshot_check: dict | None = field(default=None, init=False)

    def __post_init__(self):
        self.directory = Path(self.directory)
        if not self.directory.is_dir():
            raise CheckpointError(f"--finetuned {self.directory}: not a folder; give the folder of fine-tuned "
                                  f"checkpoints ({'; '.join(LAYOUTS.values())})")
        candidates = [self.directory] + ([self.directory / self.arch] if self.arch else [])
        for root in candidates:
            layouts = _layouts_in(root)
            if len(layouts) > 1:
                raise CheckpointError(f"--finetuned {root}: holds files of several layouts ({', '.join(sorted(layouts))}); "
                                      "give a folder of one checkpoint set")
            if layouts:
                self.root, self.layout = root, layouts.pop()
                return
        raise CheckpointError(f"--finetuned {self.directory}: no fine-tuned checkpoints in a known layout; expected "
                              f"{'; or '.join(LAYOUTS.values())}")

    # ------------------------------------------------------------------ where files are

    def expected(self, task: str) -> str:
        """Where the layout keeps ``task``'s encoder, relative to the set's folder."""
        if self.layout == "task_vectors":
            return f"{task}/finetuned.pt"
        if self.layout == "tall_masks":
            return f"{task.replace('Val', '')}Val/nonlinear_finetuned.pt"
        if self.layout == "fusion_bench":
            return f"<model>_{fusion_bench_name(task)}/"
        return f"{_slug(task)}.safetensors"

    def locate(self, task: str) -> Path | None:
        """``task``'s file (a folder for Hugging Face), or None."""
        if self.layout == "fusion_bench":
            return self._hf_folder(task)
        path = self.root / self.expected(task)
        if self.layout == "tvcore" and not path.is_file():
            for alt in (self.root / _slug(task) / "encoder.safetensors",
                        self.root / _slug(task) / "finetuned.safetensors"):
                if alt.is_file():
                    return alt
        return path if path.is_file() else None

    def _hf_folder(self, task: str) -> Path | None:
        # <model>_<task>: the model part has no underscore, so "_mnist" never matches fashion_mnist.
        name = fusion_bench_name(task)
        for child in sorted(self.root.iterdir()):
            if not child.is_dir() or child.name.partition("_")[2] != name:
                continue
            if (child / "config.json").is_file():
                return child
            if child.name.startswith("models--"):  # a Hugging Face cache: the snapshot refs/main names
                ref = child / "refs" / "main"
                snapshot = child / "snapshots" / (ref.read_text().strip() if ref.is_file() else "")
                if ref.is_file() and (snapshot / "config.json").is_file():
                    return snapshot
                snapshots = sorted((child / "snapshots").glob("*/config.json"))
                if snapshots:
                    return snapshots[-1].parent
        return None

    def zeroshot(self, tasks: Iterable[str] = ()) -> Path | None:
        """The encoder the set was fine-tuned from, where the layout ships it."""
        if self.layout == "task_vectors":
            path = self.root / "zeroshot.pt"
            return path if path.is_file() else None
        if self.layout == "tall_masks":
            for task in tasks:
                path = self.root / f"{task.replace('Val', '')}Val" / "nonlinear_zeroshot.pt"
                if path.is_file():
                    return path
        return None

    def files(self) -> list[Path]:
        """Every fine-tuned encoder the set holds, whatever its task."""
        if self.layout == "task_vectors":
            return sorted(self.root.glob("*/finetuned.pt"))
        if self.layout == "tall_masks":
            return sorted(self.root.glob("*/nonlinear_finetuned.pt"))
        if self.layout == "fusion_bench":
            plain = [p.parent for p in self.root.glob("*_*/config.json")]
            cached = [p.parent for p in self.root.glob("models--*_*/snapshots/*/config.json")]
            return sorted(plain + cached)
        return sorted([*self.root.glob("*.safetensors"), *self.root.glob("*/encoder.safetensors"),
                       *self.root.glob("*/finetuned.safetensors")])

    # ------------------------------------------------------------------ QuickGELU, cheaply

    def quick_gelu_records(self) -> dict[str, bool | None]:
        """What each file of the set says about QuickGELU, read without loading the
        weights (safetensors metadata, config.json, the classes a pickle names)."""
        return {f"fine-tuned encoder {path}": _cheap_quick_gelu(path) for path in self.files()}

    # ------------------------------------------------------------------ reading and checking

    def read(self, task: str, pretrained: Mapping[str, torch.Tensor], arch: str) -> tuple[dict, TaskFile]:
        """``task``'s encoder state (keys and dtypes of ``pretrained``) and what was
        learned reading it. Raises CheckpointError if it is missing or unreadable,
        does not fit ``arch``, or was not fine-tuned from ``pretrained``."""
        from .importers import read_image_encoder
        from .models import quiet_openclip, recorded_quick_gelu

        path = self.locate(task)
        if path is None:
            raise CheckpointError(f"{task}: missing {self.root / self.expected(task)}")
        with quiet_openclip():
            state, info = read_image_encoder(path)
        if "proj" not in state and "proj" in pretrained and info.get("layout") == "hf-clip-vision":
            state["proj"] = pretrained["proj"].clone()  # fusion_bench fine-tunes below the frozen projection
        from .importers import check_fits

        check_fits(state, pretrained, str(path), arch, info.get("layout", "unknown"))
        state = {k: state[k].to(pretrained[k].dtype) for k in pretrained}
        quick, source = info.get("quick_gelu"), info.get("quick_gelu_source", "")
        if quick is None and path.suffix == ".safetensors":
            quick = recorded_quick_gelu(path)
            source = "its quick_gelu metadata" if quick is not None else ""
        change = relative_change(state, pretrained)
        entry = TaskFile(task, path, content_hash(path), quick, source or "not recorded", change,
                         info.get("kind", "unknown"))
        if not change <= MAX_RELATIVE_CHANGE:
            raise CheckpointError(
                f"{task}: {path} differs from the pretrained encoder by {change:.3g} of its norm (a fine-tune moves "
                f"it by a few percent; over {MAX_RELATIVE_CHANGE:g} means another base): it was not fine-tuned from "
                "these --weights; pass the weights the set was fine-tuned from")
        return state, entry

    def check_zeroshot(self, tasks: Iterable[str], pretrained: Mapping[str, torch.Tensor], arch: str) -> None:
        """The shipped base (zeroshot.pt) must be the --weights encoder."""
        from .importers import check_fits, read_image_encoder
        from .models import quiet_openclip

        path = self.zeroshot(tasks)
        if path is None:
            return
        with quiet_openclip():
            state, info = read_image_encoder(path)
        check_fits(state, pretrained, str(path), arch, info.get("layout", "unknown"))
        change = relative_change({k: state[k].to(pretrained[k].dtype) for k in pretrained}, pretrained)
        self.zeroshot_check = {"path": str(path), "sha256": sha256_file(path), "relative_difference": change,
                               "tolerance": ZEROSHOT_TOLERANCE}
        if not change <= ZEROSHOT_TOLERANCE:
            raise CheckpointError(
                f"{path.name}: the set's base {path} differs from the --weights image encoder by {change:.3g} of its "
                "norm; its task vectors are relative to it: pass the weights it came from as --weights")

    def describe(self) -> dict:
        """The set for the record: its layout, folder, base check, each task's file,
        and a fingerprint over the files' content hashes."""
        return {"layout": self.layout, "layout_description": LAYOUTS[self.layout], "dir": str(self.root),
                "fingerprint": fingerprint(e.sha256 for e in self.checked.values()),
                "zeroshot": self.zeroshot_check,
                "tasks": {t: e.as_record() for t, e in sorted(self.checked.items())}}


def relative_change(state: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor]) -> float:
    """||state - base|| / ||base|| over the floating-point tensors, in fp64."""
    diff = total = 0.0
    for k, b in base.items():
        if not b.is_floating_point():
            continue
        b64 = b.double()
        diff += float((state[k].double() - b64).pow(2).sum())
        total += float(b64.pow(2).sum())
    return (diff ** 0.5) / (total ** 0.5) if total > 0 else float("inf")


def content_hash(path: Path) -> str:
    """sha256 of a file; of a folder (Hugging Face): of its files' names and sha256s."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def fingerprint(hashes: Iterable[str]) -> str:
    """One hash for a set of files: sha256 over their sorted content hashes."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def _cheap_quick_gelu(path: Path) -> bool | None:
    if path.is_dir():
        config = json.loads((path / "config.json").read_text())
        # transformers' CLIPVisionConfig defaults hidden_act to quick_gelu
        return config.get("vision_config", config).get("hidden_act", "quick_gelu") == "quick_gelu"
    if path.suffix == ".safetensors":
        from .models import recorded_quick_gelu

        return recorded_quick_gelu(path)
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # legacy (non-zip) pickles are not listed; the full read tells
        return None
    if any(n.endswith(".QuickGELU") for n in names):
        return True
    if any(n.endswith(".GELU") for n in names):
        return False
    return None
