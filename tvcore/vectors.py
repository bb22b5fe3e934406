"""Task vectors: ``tau = theta_finetuned - theta_pretrained`` and their algebra.

The shape of the API follows the task-arithmetic paper's code (``TaskVector``,
``-tv``, ``tv + other``, ``sum(vectors)``, ``tv.apply_to(base, alpha)``), made strict:

* Operands must agree on keys, shapes and dtypes; a disagreement raises
  :class:`~tvcore.errors.TaskVectorMismatchError` naming the keys and both sides.
  Nothing is dropped silently.
* **The buffer rule**: only floating-point tensors take part in task arithmetic.
  Integer and bool entries of a state dict (position ids, step counters, masks)
  are excluded when a vector is built, and :meth:`TaskVector.apply_to` leaves
  them untouched. The excluded keys are kept in :attr:`TaskVector.excluded_keys`.
* fp16 and bf16 tensors are combined in fp32 and the result is rounded back, so
  a vector keeps the dtype of the weights it was built from.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import torch
from safetensors import safe_open

from .checkpoints import load_state_dict, save_state_dict
from .kernels import compute_dtype, fused_combine
from .errors import (
    CheckpointError,
    EmptyTaskVectorError,
    NonFiniteError,
    TaskVectorMismatchError,
)

FORMAT_NAME = "tvcore.taskvector"
FORMAT_VERSION = "1"
_MAX_KEYS_IN_MESSAGE = 3  # an error stays one readable line: a few keys, then a count
# OpenCLIP keeps the image encoder under ``visual.`` in a whole model's state dict
# (``CLIP.visual``), and tvcore takes task vectors over the image encoder alone.
ENCODER_PREFIX = "visual."


def is_arithmetic(tensor: torch.Tensor) -> bool:
    """The buffer rule: a tensor takes part in task arithmetic iff it is floating point."""
    return tensor.is_floating_point()


def check_alpha(alpha, name: str = "alpha") -> float:
    if isinstance(alpha, torch.Tensor):
        if alpha.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(alpha.shape)}")
        alpha = alpha.item()
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool):
        raise TypeError(f"{name} must be a real number, got {type(alpha).__name__}")
    alpha = float(alpha)
    if not math.isfinite(alpha):
        raise NonFiniteError(f"{name} must be finite, got {alpha}")
    return alpha


def _fmt_keys(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:_MAX_KEYS_IN_MESSAGE])
    more = len(keys) - _MAX_KEYS_IN_MESSAGE
    return shown + (f" and {more} more" if more > 0 else "")


def check_compatible(left: Mapping[str, torch.Tensor], right: Mapping[str, torch.Tensor],
                     left_name: str, right_name: str, *, check_dtype: bool = True) -> None:
    """Raise :class:`TaskVectorMismatchError` unless both mappings have the same keys,
    shapes and (optionally) dtypes. The message names every offending key and both sides."""
    problems = []
    only_left = left.keys() - right.keys()
    only_right = right.keys() - left.keys()
    if only_left:
        problems.append(f"keys {_fmt_keys(only_left)} missing from {right_name!r} (present in {left_name!r})")
    if only_right:
        problems.append(f"keys {_fmt_keys(only_right)} missing from {left_name!r} (present in {right_name!r})")
    shape_bad, dtype_bad = [], []
    for key in sorted(left.keys() & right.keys()):
        a, b = left[key], right[key]
        if a.shape != b.shape:
            shape_bad.append(f"{key!r}: {tuple(a.shape)} in {left_name!r} vs {tuple(b.shape)} in {right_name!r}")
        elif check_dtype and a.dtype != b.dtype:
            dtype_bad.append(f"{key!r}: {a.dtype} in {left_name!r} vs {b.dtype} in {right_name!r}")
    # The first key with both sides, then how many more: a vector of another
    # architecture differs in dozens of tensors, and one line must stay readable.
    for label, rows in (("shape", shape_bad), ("dtype", dtype_bad)):
        if rows:
            more = len(rows) - 1
            problems.append(f"{label} differs for {rows[0]}"
                            + (f" (and {more} other key{'s' if more > 1 else ''})" if more else ""))
    if problems:
        raise TaskVectorMismatchError("; ".join(problems))


def all_finite(t: torch.Tensor) -> bool:
    """One read pass: min and max propagate NaN, and are infinite iff an entry is."""
    if t.numel() == 0:
        return True
    lo, hi = torch.aminmax(t)
    return math.isfinite(float(lo)) and math.isfinite(float(hi))


def check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    bad = [k for k, t in tensors.items() if is_arithmetic(t) and not all_finite(t)]
    if bad:
        raise NonFiniteError(f"{what} holds NaN or Inf in {_fmt_keys(bad)}")


def _state_dict_of(base) -> dict[str, torch.Tensor]:
    if isinstance(base, torch.nn.Module):
        return base.state_dict(keep_vars=False)
    if isinstance(base, Mapping):
        return dict(base)
    raise TypeError(f"expected a state dict, an nn.Module or tvcore.models.load_model()'s result, got "
                    f"{type(base).__name__}; pass model.state_dict() or the module itself")


def _is_loaded_model(base) -> bool:
    """What :func:`tvcore.models.load_model` returns: an object holding the OpenCLIP
    module as ``.model`` (read by shape, since models sits above this module)."""
    return (not isinstance(base, (torch.nn.Module, Mapping))
            and isinstance(getattr(base, "model", None), torch.nn.Module))


def covers_encoder_of_whole_model(keys: Iterable[str], state: Mapping[str, torch.Tensor]) -> bool:
    """The keys are an image encoder's and ``state`` is a whole OpenCLIP model: every
    one is under :data:`ENCODER_PREFIX` there, and they do not all fit as they are
    (some, like ``transformer.*``, also name text-tower entries)."""
    keys = list(keys)
    return (bool(keys) and all(ENCODER_PREFIX + k in state for k in keys)
            and not all(k in state for k in keys))


def write_update(base, layout: "TaskVector", terms_for: Callable, vectors: Sequence["TaskVector"], *, out=None,
                 inplace: bool = False, strict: bool = True):
    """``base + update``, where ``terms_for(key, [v[key] for v in vectors])`` returns
    ``(terms, coefs)`` and the update of ``key`` is ``sum_i coefs[i] * terms[i]``.

    The keys updated are ``layout``'s (checked against the base, see
    :meth:`TaskVector.apply_to` for ``strict``); the other entries are copied. The
    result goes into ``out`` (a module or state dict laid out like ``base``) when
    given, into ``base`` itself with ``inplace=True``, else into a new state dict
    (or a copy of a module). Each result tensor is written once, by
    :func:`~tvcore.kernels.fused_combine`. Applying one vector and merging many
    (:func:`tvcore.merging.merge_into`) both end here.
    """
    src = _state_dict_of(base)
    layout._check_base(src, strict)
    covered = set(layout.keys())
    if out is not None:
        result, dst = out, _state_dict_of(out)
        check_compatible(src, dst, "base", "out")
    elif inplace:
        result, dst = base, src
    elif isinstance(base, torch.nn.Module):
        import copy

        result = copy.deepcopy(base)
        dst = _state_dict_of(result)
    else:
        result = dst = {k: torch.empty_like(v) if k in covered else v.clone() for k, v in src.items()}
    with torch.no_grad():
        for key, target in dst.items():
            if key not in covered:
                if target.data_ptr() != src[key].data_ptr():
                    target.copy_(src[key])
                continue
            terms, coefs = terms_for(key, [v[key].to(target.device) for v in vectors])
            fused_combine(target, terms, coefs, base=src[key])
    return result


class TaskVector:
    """A task vector: a mapping from parameter names to floating-point tensors.

    Build one with :meth:`from_state_dicts` or :meth:`from_checkpoints`, combine with
    ``+ - * /`` and ``sum``, and edit a model with :meth:`apply_to`.
    """

    __slots__ = ("_tensors", "name", "base_model", "excluded_keys")

    def __init__(self, tensors: Mapping[str, torch.Tensor], *, name: str | None = None,
                 base_model: str | None = None, excluded_keys: Iterable[str] = ()):
        if not isinstance(tensors, Mapping):
            raise TypeError(f"TaskVector takes a mapping of tensors, got {type(tensors).__name__}")
        not_tensor = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
        if not_tensor:
            raise TypeError(f"entries {_fmt_keys(not_tensor)} are not tensors")
        not_float = [k for k, v in tensors.items() if not is_arithmetic(v)]
        if not_float:
            raise TaskVectorMismatchError(
                f"entries {_fmt_keys(not_float)} are not floating point; integer and bool "
                "buffers are never part of a task vector"
            )
        if not tensors:
            raise EmptyTaskVectorError(
                f"task vector {name or '<unnamed>'} would be empty: no floating-point tensors"
            )
        self._tensors: dict[str, torch.Tensor] = dict(tensors)
        self.name = name
        self.base_model = base_model
        self.excluded_keys = frozenset(excluded_keys)

    # ----------------------------------------------------------------- building
    @classmethod
    def from_state_dicts(cls, pretrained, finetuned, *, name: str | None = None,
                         base_model: str | None = None) -> "TaskVector":
        """``finetuned - pretrained`` over the floating-point entries.

        Both must have the same keys, shapes and dtypes (integer buffers included
        in the key check). NaN or Inf in either raises :class:`NonFiniteError`.
        """
        pre, ft = _state_dict_of(pretrained), _state_dict_of(finetuned)
        check_compatible(pre, ft, "pretrained", "finetuned")
        keys = [k for k in pre if is_arithmetic(pre[k])]
        excluded = [k for k in pre if not is_arithmetic(pre[k])]
        if not keys:
            raise EmptyTaskVectorError("the state dicts hold no floating-point tensors to build a task vector from")
        tensors = {}
        with torch.no_grad():
            for k in keys:
                a, b = pre[k], ft[k]
                cd = compute_dtype(a.dtype)
                tensors[k] = (b.to(cd) - a.to(cd)).to(a.dtype) if cd != a.dtype else b - a
        # NaN or Inf in either input always shows in the difference, so the inputs
        # are only scanned (to say which one is at fault) when the difference is bad.
        if not all(all_finite(t) for t in tensors.values()):
            check_finite({k: pre[k] for k in keys}, "the pretrained state dict")
            check_finite({k: ft[k] for k in keys}, "the finetuned state dict")
            check_finite(tensors, f"task vector {name or '<unnamed>'}")
        return cls(tensors, name=name, base_model=base_model, excluded_keys=excluded)

    @classmethod
    def from_checkpoints(cls, pretrained_path: str | os.PathLike, finetuned_path: str | os.PathLike,
                         *, name: str | None = None, base_model: str | None = None) -> "TaskVector":
        """Build from two weights files (safetensors, or ``.pt``/``.bin`` read with
        ``weights_only=True``)."""
        return cls.from_state_dicts(load_state_dict(pretrained_path), load_state_dict(finetuned_path),
                                    name=name or Path(finetuned_path).stem, base_model=base_model)

    # --------------------------------------------------------------- container
    def keys(self):
        return self._tensors.keys()

    def items(self):
        return self._tensors.items()

    def values(self):
        return self._tensors.values()

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._tensors[key]

    def __contains__(self, key) -> bool:
        return key in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def numel(self) -> int:
        return sum(t.numel() for t in self._tensors.values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._tensors)

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype shared by every tensor, or ``None`` for a mixed vector."""
        dtypes = {t.dtype for t in self._tensors.values()}
        return dtypes.pop() if len(dtypes) == 1 else None

    @property
    def device(self) -> torch.device | None:
        devices = {t.device for t in self._tensors.values()}
        return devices.pop() if len(devices) == 1 else None

    def to(self, device=None, dtype: torch.dtype | None = None) -> "TaskVector":
        return self._new({k: t.to(device=device, dtype=dtype) for k, t in self._tensors.items()}, self.name)

    def __repr__(self) -> str:
        dtype = str(self.dtype).replace("torch.", "") if self.dtype else "mixed"
        return f"TaskVector(name={self.name!r}, tensors={len(self)}, numel={self.numel()}, dtype={dtype})"

    def _label(self, fallback: str) -> str:
        return self.name or fallback

    def _new(self, tensors: dict[str, torch.Tensor], name: str | None) -> "TaskVector":
        return TaskVector(tensors, name=name, base_model=self.base_model, excluded_keys=self.excluded_keys)

    # --------------------------------------------------------------- algebra
    def _combine(self, other: "TaskVector", op: Callable, symbol: str) -> "TaskVector":
        if not isinstance(other, TaskVector):
            return NotImplemented
        check_compatible(self._tensors, other._tensors, self._label("left"), other._label("right"))
        out = {}
        with torch.no_grad():
            for k, a in self._tensors.items():
                b = other._tensors[k]
                cd = compute_dtype(a.dtype)
                out[k] = op(a.to(cd), b.to(cd)).to(a.dtype) if cd != a.dtype else op(a, b)
        name = f"({self._label('?')} {symbol} {other._label('?')})" if (self.name or other.name) else None
        return self._new(out, name)

    def _scale(self, alpha: float, name: str | None) -> "TaskVector":
        out = {}
        with torch.no_grad():
            for k, a in self._tensors.items():
                cd = compute_dtype(a.dtype)
                out[k] = (a.to(cd) * alpha).to(a.dtype) if cd != a.dtype else a * alpha
        return self._new(out, name)

    def __add__(self, other):
        return self._combine(other, torch.add, "+")

    def __radd__(self, other):
        # Lets the builtin sum() start from its default 0.
        if isinstance(other, numbers.Number) and other == 0:
            return self
        return NotImplemented

    def __sub__(self, other):
        return self._combine(other, torch.sub, "-")

    def __neg__(self) -> "TaskVector":
        return self._new({k: -t for k, t in self._tensors.items()},
                         f"-{self.name}" if self.name else None)

    def __mul__(self, alpha):
        if isinstance(alpha, TaskVector):
            return NotImplemented
        alpha = check_alpha(alpha)
        return self._scale(alpha, f"{alpha:g}*{self.name}" if self.name else None)

    __rmul__ = __mul__

    def __truediv__(self, alpha):
        if isinstance(alpha, TaskVector):
            return NotImplemented
        alpha = check_alpha(alpha)
        if alpha == 0:
            raise ZeroDivisionError("cannot divide a task vector by zero")
        return self._scale(1.0 / alpha, f"{self.name}/{alpha:g}" if self.name else None)

    # ------------------------------------------------------------ geometry
    def dot(self, other: "TaskVector") -> float:
        check_compatible(self._tensors, other._tensors, self._label("left"), other._label("right"),
                         check_dtype=False)
        total = 0.0
        for k, a in self._tensors.items():
            total += float(torch.sum(a.double() * other._tensors[k].double()))
        return total

    def norm(self) -> float:
        """The L2 norm over all tensors, in fp64, scaled so tiny or huge entries
        neither underflow nor overflow when squared."""
        norms = []
        for t in self._tensors.values():
            if t.numel() == 0:
                continue
            t = t.double()
            peak = float(t.abs().max())
            if peak > 0:
                norms.append(peak * float(torch.linalg.vector_norm(t / peak)))
        return math.hypot(*norms)

    def cosine(self, other: "TaskVector") -> float:
        denom = self.norm() * other.norm()
        if denom == 0:
            raise ValueError("cosine is undefined for a zero task vector")
        return self.dot(other) / denom

    # ------------------------------------------------------------ applying
    def apply_to(self, base, alpha=1.0, *, inplace: bool = False, strict: bool = True):
        """Return ``base + alpha * self``.

        ``base`` is a state dict, an ``nn.Module`` or what
        :func:`tvcore.models.load_model` returns (a ``LoadedModel``: a vector over
        the image encoder edits its ``model.visual``, a whole-model vector its
        ``model``); the result has the same kind. With ``inplace=True`` the base's
        own tensors are edited and the base is returned. Integer and bool buffers
        are left untouched. With ``strict=True`` (the default) every floating-point
        entry of the base must be in the vector; ``strict=False`` allows a vector
        that covers only part of the model (one tower, say): an image-encoder
        vector (keys as in ``model.visual.state_dict()``) then edits a whole
        model's ``visual.*`` entries. A vector key absent from the base is always
        an error.
        """
        alpha = check_alpha(alpha)
        if _is_loaded_model(base):
            return self._apply_to_loaded(base, alpha, inplace=inplace, strict=strict)
        vector = self
        if covers_encoder_of_whole_model(self.keys(), _state_dict_of(base)):
            if strict:
                raise TaskVectorMismatchError(
                    f"vector {self._label('<unnamed>')!r} covers the image encoder only ({len(self)} tensors, keys "
                    f"like {next(iter(self.keys()))!r}) and the base is a whole model (its image encoder under "
                    f"'{ENCODER_PREFIX}'); apply it with strict=False (tvcore vector apply --partial), or to "
                    "model.visual")
            vector = self.with_prefix(ENCODER_PREFIX)
        return write_update(base, vector, lambda key, taus: (taus, [alpha]), [vector], inplace=inplace,
                            strict=strict)

    def _apply_to_loaded(self, loaded, alpha: float, *, inplace: bool, strict: bool):
        """``apply_to`` on a ``LoadedModel``: its image encoder (or the whole model,
        for a vector with ``visual.`` keys) is edited; the text tower is kept."""
        import copy

        whole = any(k.startswith(ENCODER_PREFIX) for k in self.keys())
        out = loaded if inplace else copy.copy(loaded)
        if not inplace:
            out.model = copy.deepcopy(loaded.model)
        self.apply_to(out.model if whole else out.model.visual, alpha, inplace=True, strict=strict)
        return out

    def with_prefix(self, prefix: str) -> "TaskVector":
        """The same vector with ``prefix`` before every key (``"visual."``: an image
        encoder's vector laid out as in a whole OpenCLIP model)."""
        return TaskVector({prefix + k: t for k, t in self._tensors.items()}, name=self.name,
                          base_model=self.base_model, excluded_keys={prefix + k for k in self.excluded_keys})

    def sweep(self, target, *, strict: bool = True) -> "Sweep":
        """Edit ``target`` (a module or a state dict) in place for a sweep over alpha:
        ``with tv.sweep(model) as s: s.set(0.5); ...``. The covered tensors are saved
        once; each ``set(alpha)`` writes ``saved + alpha * tau`` into the target in one
        pass, and leaving the block restores the target bitwise."""
        return Sweep(self, target, strict)

    def _check_base(self, state: Mapping[str, torch.Tensor], strict: bool) -> None:
        float_state = {k: v for k, v in state.items() if is_arithmetic(v)}
        non_float = [k for k in self._tensors if k in state and not is_arithmetic(state[k])]
        if non_float:
            raise TaskVectorMismatchError(
                f"keys {_fmt_keys(non_float)} are integer or bool buffers in the base model; "
                "the vector cannot be applied to them"
            )
        if strict:
            check_compatible(self._tensors, float_state, self._label("vector"), "base model")
        else:
            check_compatible(self._tensors, {k: float_state[k] for k in self._tensors if k in float_state},
                             self._label("vector"), "base model")

    # ------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        dtype = self.dtype
        metadata = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "dtype": str(dtype).replace("torch.", "") if dtype is not None else "mixed",
        }
        if self.name:
            metadata["name"] = self.name
        if self.base_model:
            metadata["base_model"] = self.base_model
        if self.excluded_keys:
            metadata["excluded_keys"] = ",".join(sorted(self.excluded_keys))
        return save_state_dict(self._tensors, path, metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "TaskVector":
        path = Path(path)
        metadata = read_metadata(path)
        if metadata.get("format") != FORMAT_NAME:
            raise CheckpointError(
                f"{path}: not a tvcore task vector file (metadata format={metadata.get('format')!r}); "
                "build one with TaskVector.from_checkpoints(pretrained, finetuned)"
            )
        if metadata.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: task vector format version {metadata.get('format_version')!r} "
                                  f"is not supported (this tvcore reads {FORMAT_VERSION!r})")
        tensors = load_state_dict(path, device=device)
        excluded = [k for k in metadata.get("excluded_keys", "").split(",") if k]
        return cls(tensors, name=metadata.get("name"), base_model=metadata.get("base_model"),
                   excluded_keys=excluded)


class Sweep:
    """In-place ``base + alpha * vector`` over many alphas, restored exactly on exit.
    See :meth:`TaskVector.sweep`."""

    def __init__(self, vector: TaskVector, target, strict: bool = True):
        self.state = _state_dict_of(target)
        vector._check_base(self.state, strict)
        self.saved = {k: self.state[k].detach().clone() for k in vector.keys()}
        # The vector moves to the target's device once, not at every set().
        self.taus = {k: tau.to(self.state[k].device) for k, tau in vector.items()}
        self.alpha = 0.0

    def set(self, alpha) -> None:
        alpha = check_alpha(alpha)
        with torch.no_grad():
            for k, tau in self.taus.items():
                fused_combine(self.state[k], [tau], [alpha], base=self.saved[k])
        self.alpha = alpha

    def restore(self) -> None:
        with torch.no_grad():
            for k, saved in self.saved.items():
                self.state[k].copy_(saved)
        self.alpha = 0.0

    def __enter__(self) -> "Sweep":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata header of a safetensors file, without reading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"task vector file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # safetensors raises several types for a bad header
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
