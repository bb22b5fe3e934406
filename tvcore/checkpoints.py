"""Reading and writing state dicts: safetensors first, ``.pt``/``.bin`` only through
``torch.load(weights_only=True)``. Never unpickle whole modules."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError
from .outputs import atomic_write

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Wrappers that training scripts commonly put around a state dict.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")

_EXPORT_HINT = (
    "export a state dict instead: torch.save(model.state_dict(), 'weights.pt'), or better "
    "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
)


def load_state_dict(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a state dict from a safetensors file or a ``.pt``/``.bin`` file.

    A pickled whole ``nn.Module`` is refused: reading it would run arbitrary code.
    Each tensor owns its memory: none is a view of the file, so rewriting the file
    later leaves them as read, and a safetensors file's tensors share no storage
    (a model may take them as its own, ``load_state_dict(assign=True)``).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a weights file; give the "
                              f"{'/'.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)} file inside it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted download or export; "
                              "write it again")
    if path.suffix in SAFETENSORS_SUFFIXES:
        try:
            state = load_file(str(path), device=str(device))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
        # On the CPU safetensors hands out pages of a private memory map of the file,
        # which follow the file until written: a file rewritten in place (torch.save
        # or open(path, "wb") truncate, then write) would change such a tensor hours
        # into a run, or crash the process. One copy out of the map.
        return {k: v.clone() for k, v in state.items()} if torch.device(device).type == "cpu" else state
    if path.suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: unknown weights format '{path.suffix}'; expected one of "
            f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)}"
        )
    try:
        obj = torch.load(str(path), map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file; each is diagnosed below
        if _refused_by_weights_only(exc):
            raise CheckpointError(
                f"{path}: holds pickled objects other than tensors (a whole nn.Module?), which "
                f"tvcore will not unpickle; {_EXPORT_HINT}"
            ) from exc
        raise CheckpointError(
            f"{path}: truncated or corrupt ({type(exc).__name__}: {_first_line(exc)}); download or "
            "export it again"
        ) from exc
    return _as_state_dict(obj, path)


def _refused_by_weights_only(exc: Exception) -> bool:
    """The file unpickled far enough to name a class that ``weights_only`` refuses:
    it is whole, and holds more than tensors. Any other failure means damaged bytes."""
    return isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in str(exc).lower()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    # torch's own messages run on with advice about internals; the first sentence says what broke.
    return text[0].split(". ")[0][:160] if text else "no detail"


def _as_state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping) and not isinstance(obj[key], torch.Tensor):
                return _as_state_dict(obj[key], path)
        bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
        if not bad:
            return dict(obj)
        raise CheckpointError(
            f"{path}: entries {bad[:5]} are not tensors; expected a flat state dict; {_EXPORT_HINT}"
        )
    raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict; {_EXPORT_HINT}")


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike,
                    metadata: Mapping[str, str] | None = None) -> Path:
    """Write a state dict as safetensors, atomically (see :func:`tvcore.outputs.atomic_write`)."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_write(path, what="weights file") as tmp:
        save_file(tensors, str(tmp), metadata=dict(metadata or {}))
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
