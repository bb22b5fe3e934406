"""Published checkpoints turned into the OpenCLIP image encoder's state dict.

tvcore takes task vectors over the image encoder, so an imported checkpoint is
stored as the state dict of ``model.visual`` (keys as in
``open_clip_model.visual.state_dict()``: ``conv1.weight``, ``proj``,
``transformer.resblocks.0.attn.in_proj_weight``, ...; no ``visual.`` prefix), as
safetensors, with a provenance record in its metadata. The forms read:

* **pickled modules** as the task-arithmetic paper's code saves them
  (``zeroshot.pt``, ``<Task>/finetuned.pt``: a whole ``ImageEncoder`` holding an
  OpenCLIP ``CLIP`` module, ``torch.save``'d in the zip or the legacy format).
  They are read by a restricted unpickler: tensors, storages and plain
  containers are rebuilt with torch's own weights-only allowlist, and every other
  class or function the pickle names is replaced by an inert stand-in that only
  collects the state it is given. Nothing named in the file is imported or
  called, so the file reads whatever OpenCLIP version is installed (or none) and
  a pickle that would run code does not. The module tree is then walked like
  ``nn.Module.state_dict`` and the keys under ``model.visual.`` kept;
* **Hugging Face** ``CLIPModel`` / ``CLIPVisionModel`` folders (``config.json``
  with ``model.safetensors`` or ``pytorch_model.bin``), mapped to OpenCLIP names;
* **OpenCLIP's own files** (``open_clip_model.safetensors``,
  ``open_clip_pytorch_model.bin``), with or without a DDP ``module.`` prefix or a
  ``{"state_dict": ...}`` wrapper, and image-tower-only files.

Whatever the form, the result must fit the named architecture key for key and
shape for shape, or :class:`~tvcore.errors.CheckpointError` says which keys and
shapes differ and what the file looks like.

QuickGELU is a property of the weights (OpenAI's were trained with it) that the
state dict does not show. The import records it when the source tells: the
activation class named in a pickled module, ``hidden_act`` of a Hugging Face
config; else it is unknown unless given. :func:`tvcore.models.load_model` reads
the record back (see its docstring for the rule).
"""

from __future__ import annotations

import _compat_pickle
import json
import os
import pickle
import re
import types
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .checkpoints import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, save_state_dict, sha256_file
from .errors import CheckpointError
from .models import quick_gelu_flag, quiet_openclip, register_config, state_fingerprint
from .openclip import open_clip_module

IMAGE_ENCODER_FORMAT = "tvcore.image_encoder"
_SHOWN = 8

# What a file looks like, for the record and for error messages.
KIND_DESCRIPTIONS = {
    "pickled-module": "a pickled whole module (the task-arithmetic paper's ImageEncoder form)",
    "hf-clip": "a Hugging Face CLIPModel (vision_model.* keys and visual_projection)",
    "hf-clip-vision": "a Hugging Face CLIPVisionModel (vision_model.* keys, no projection)",
    "open_clip-full": "an OpenCLIP full model state dict (visual.* and text-tower keys)",
    "image-tower": "an OpenCLIP image tower only (conv1.weight, transformer.resblocks.*, no visual. prefix)",
    "torchscript": "a TorchScript archive (OpenAI's original release format)",
    "unknown": "a state dict of no known CLIP layout",
}


# ----------------------------------------------------------------------- restricted unpickler

class StandIn:
    """An inert object standing in for a class or function named in a pickle.

    Calling it (pickle's REDUCE) or building it (NEWOBJ, BUILD) only records the
    arguments and the state; no code of the named class ever runs. The name it
    stands for is ``pickled_name``.
    """

    pickled_name = "?"
    dump_patches = False  # read by torch's legacy loader when it compares module sources

    def __init__(self, *args, **kwargs):
        self.__dict__["_standin_args"] = (args, kwargs)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, Mapping) for s in state):
            for part in state:
                if part:
                    self.__dict__.update(part)
        elif isinstance(state, Mapping):
            self.__dict__.update(state)
        else:
            self.__dict__["_standin_state"] = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.pickled_name}>"


def _safe_reconstructor(cls, base, state):
    """``copyreg._reconstructor`` (protocol 0/1 pickles) for stand-ins only."""
    if isinstance(cls, type) and issubclass(cls, StandIn):
        obj = cls.__new__(cls)
        obj.__dict__["_standin_args"] = ((state,), {}) if state is not None else ((), {})
        return obj
    raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")


class RefusedPickle(pickle.UnpicklingError):
    """A pickle asked for more than tensors, containers and stand-ins."""


def _allowed_globals() -> dict[str, Any]:
    from torch._weights_only_unpickler import _get_allowed_globals

    return _get_allowed_globals()


class RestrictedUnpickler(pickle._Unpickler):
    """Rebuilds what torch's weights-only loader allows; stands in for the rest.
    ``named`` (shared by the unpicklers of one load) maps each name stood in for
    to its stand-in class.

    Built on pickle's pure-Python unpickler so that every opcode that calls,
    creates or mutates an object goes through a check: only torch's allowlisted
    functions and classes and tvcore's stand-ins are called or created
    (REDUCE, NEWOBJ, INST, OBJ); state is set only on stand-in instances, on an
    ``OrderedDict`` (a state dict's ``_metadata``) and on tensors, as torch's
    weights-only loader sets it (BUILD); items go only into lists, dicts and sets;
    the copyreg extension registry is not consulted (EXT*). Anything else is a
    :class:`RefusedPickle`. The pickle here is the small object graph; tensor data
    is read by torch outside it, so the pure-Python reader costs little.
    """

    named: dict[str, type] = {}
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        allowed = _allowed_globals()
        self._allowed = allowed
        self._allowed_ids = {id(v) for v in allowed.values()}

    def find_class(self, module: str, name: str):
        # Protocol 2 pickles (torch.save's default) name Python 2 modules
        # (``__builtin__.set``); map them as pickle's own find_class does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full = f"{module}.{name}"
        if full in self._allowed:
            return self._allowed[full]
        if full == "copyreg._reconstructor":
            return _safe_reconstructor
        if full not in self.named:
            # The stand-in lives in this module under a neutral name, so nothing (torch's
            # source check included) can resolve it back to the real class.
            self.named[full] = type(re.sub(r"\W", "_", name) or "anonymous", (StandIn,),
                                    {"pickled_name": full, "__module__": __name__})
        return self.named[full]

    # ------------------------------------------------------------ the checked opcodes

    def _check_callable(self, func, opcode: str) -> None:
        ok = (id(func) in self._allowed_ids or func is _safe_reconstructor
              or (isinstance(func, type) and issubclass(func, StandIn)))
        if not ok:
            raise RefusedPickle(f"{opcode} on {_describe(func)}, which is neither allowlisted nor a stand-in")

    def _load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        self._check_callable(func, "a call (REDUCE)")
        self.stack[-1] = func(*args)

    def _load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_callable(cls, "object creation (NEWOBJ)")
        self.append(cls.__new__(cls, *args))

    def _load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_callable(cls, "object creation (NEWOBJ_EX)")
        self.append(cls.__new__(cls, *args, **kwargs))

    def _instantiate(self, klass, args):
        self._check_callable(klass, "object creation (INST/OBJ)")
        super()._instantiate(klass, args)

    def _load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, StandIn):  # an instance: a stand-in class is a type, not a StandIn
            StandIn.__setstate__(inst, state)  # never a __setstate__ the state itself put there
        elif type(inst) is OrderedDict and isinstance(state, dict) and all(isinstance(k, str) for k in state):
            inst.__dict__.update(state)  # a state dict's _metadata, as torch's weights-only loader allows
        elif type(inst) is torch.Tensor:
            inst.set_(*state)  # the legacy tensor form, as torch's weights-only loader reads it
        elif type(inst) is torch.nn.Parameter:
            inst.__setstate__(state)
        else:
            raise RefusedPickle(f"setting the state of {_describe(inst)} (BUILD); only stand-ins, tensors "
                                "and OrderedDict take state")

    def _target(self, kinds: tuple[type, ...], opcode: str):
        target = self.stack[-1]
        if not isinstance(target, kinds):
            raise RefusedPickle(f"{opcode} into {_describe(target)}")
        return target

    def _load_append(self):
        value = self.stack.pop()
        self._target((list,), "APPEND").append(value)

    def _load_appends(self):
        items = self.pop_mark()
        self._target((list,), "APPENDS").extend(items)

    def _load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._target((dict,), "SETITEM")[key] = value

    def _load_setitems(self):
        items = self.pop_mark()
        target = self._target((dict,), "SETITEMS")
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_additems(self):
        items = self.pop_mark()
        self._target((set,), "ADDITEMS").update(items)

    def _load_ext(self):
        raise RefusedPickle("a copyreg extension code (EXT1/EXT2/EXT4)")

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    for _ext in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_ext[0]] = _load_ext
    del _ext


def _describe(obj) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '?')}.{obj.__qualname__}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"


def restricted_pickle_module(named: dict[str, type]) -> types.ModuleType:
    """A stand-in for the ``pickle`` module, as ``torch.load(pickle_module=...)``
    takes it (``Unpickler`` and ``load``), whose unpicklers record into ``named``."""
    unpickler = type("RestrictedUnpickler", (RestrictedUnpickler,), {"named": named})
    module = types.ModuleType("tvcore_restricted_pickle")
    module.Unpickler = unpickler
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()
    module.UnpicklingError = pickle.UnpicklingError
    return module


def load_pickle_restricted(path: str | os.PathLike) -> tuple[Any, list[str]]:
    """Read a ``torch.save`` file (zip or legacy format) without importing or
    calling anything it names beyond torch's weights-only allowlist. Returns the
    rebuilt object (stand-ins for every other class) and the names stood in for."""
    named: dict[str, type] = {}
    try:
        with warnings.catch_warnings():
            # The legacy format compares saved module sources with the stand-ins' (absent) ones.
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=False,
                             pickle_module=restricted_pickle_module(named))
    except RuntimeError as exc:
        if "pickle_module" in str(exc):
            raise CheckpointError(f"{path}: TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, which stops tvcore's "
                                  "restricted reader of pickled modules; unset it for this command") from exc
        raise CheckpointError(f"{path}: not a readable torch.save file ({exc})") from exc
    except RefusedPickle as exc:
        raise CheckpointError(f"{path}: refused: the pickle asks for {exc}; tvcore reads a pickled module as "
                              "tensors, containers and inert stand-ins only (convert trusted files to "
                              "safetensors)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: not a readable torch.save file ({type(exc).__name__}: {exc})") from exc
    return obj, sorted(named)


def _is_module(obj) -> bool:
    return isinstance(obj, StandIn) and isinstance(obj.__dict__.get("_modules"), Mapping)


def module_state_dict(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """``nn.Module.state_dict`` of a stand-in module tree: parameters, persistent
    buffers, then children, by the same names."""
    out: dict[str, torch.Tensor] = {}
    d = obj.__dict__
    skip = set(d.get("_non_persistent_buffers_set") or ())
    for name, t in (d.get("_parameters") or {}).items():
        if isinstance(t, torch.Tensor):
            out[prefix + name] = t.detach()
    for name, t in (d.get("_buffers") or {}).items():
        if isinstance(t, torch.Tensor) and name not in skip:
            out[prefix + name] = t.detach()
    for name, child in d["_modules"].items():
        if _is_module(child):
            out.update(module_state_dict(child, f"{prefix}{name}."))
    return out


def _submodule(obj, path: str):
    for part in path.split(".") if path else ():
        obj = obj.__dict__["_modules"][part]
    return obj


def _class_names(obj) -> Iterator[str]:
    yield obj.pickled_name
    for child in obj.__dict__["_modules"].values():
        if _is_module(child):
            yield from _class_names(child)


# ----------------------------------------------------------------------- reading a source

def _zip_names(path: Path) -> list[str] | None:
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def _is_torchscript(names: list[str]) -> bool:
    return any(n.split("/", 1)[-1] in ("constants.pkl",) or "/code/" in f"/{n}" for n in names)


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    """A flat state dict out of a loaded object: wrappers unwrapped, a DDP
    ``module.`` prefix removed, non-tensor entries refused."""
    while isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in ("state_dict", "model_state_dict", "model", "module")
                      if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:5]
            raise CheckpointError(f"{path}: entries {bad} are not tensors and no 'state_dict' wrapper holds the "
                                  "weights; expected a (wrapped) state dict")
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _hf_folder_files(folder: Path) -> tuple[dict, list[Path]]:
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return config, [folder / single]
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            return config, [folder / s for s in shards]
    raise CheckpointError(f"{folder}: has config.json but no model.safetensors or pytorch_model.bin (nor a "
                          "sharded index); copy the weights file beside it")


def _read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict file read without unpickling anything but tensors."""
    if path.suffix in SAFETENSORS_SUFFIXES:
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    return _unwrap(_torch_load_weights_only(path), path)


def _torch_load_weights_only(path: Path):
    """``torch.load(weights_only=True)``; pickle.UnpicklingError (the file names
    classes beyond tensors) passes through, any other failure is a CheckpointError."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable torch.save file ({exc})") from exc


def read_source(source: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of a checkpoint as saved, and what was learned reading it:
    ``kind`` (a key of :data:`KIND_DESCRIPTIONS`), the files read and their sha256,
    the classes a pickle named, ``quick_gelu`` when the file tells."""
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    info: dict[str, Any] = {"quick_gelu": None}
    if path.is_dir():
        if (path / "config.json").is_file():
            config, files = _hf_folder_files(path)
            state: dict[str, torch.Tensor] = {}
            for f in files:
                state.update(_read_weights_file(f))
            info["files"] = {str(f): sha256_file(f) for f in [path / "config.json", *files]}
            info["hf_config"] = config
            vision = config.get("vision_config", config)
            act = vision.get("hidden_act", "quick_gelu")  # transformers' CLIP default
            info["quick_gelu"] = act == "quick_gelu"
            info["quick_gelu_source"] = f"config.json hidden_act={act!r}"
            return state, info
        for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            if (path / name).is_file():
                return read_source(path / name)
        raise CheckpointError(f"{path}: a folder without config.json (Hugging Face) or an open_clip_model."
                              "safetensors / open_clip_pytorch_model.bin; pass the weights file itself")
    info["files"] = {str(path): sha256_file(path)}
    if path.suffix in SAFETENSORS_SUFFIXES:
        return _read_weights_file(path), info
    names = _zip_names(path)
    if names is not None and _is_torchscript(names):
        raise CheckpointError(f"{path}: is {KIND_DESCRIPTIONS['torchscript']}, which tvcore does not read; import "
                              "the same weights from their OpenCLIP weights file (open_clip_model.safetensors or "
                              "open_clip_pytorch_model.bin) instead")
    if path.suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(f"{path}: unknown weights format '{path.suffix}'; expected a folder or one of "
                              f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)}")
    try:
        return _unwrap(_torch_load_weights_only(path), path), info
    except pickle.UnpicklingError:
        pass  # it names classes beyond tensors: read it as a pickled module below
    obj, named = load_pickle_restricted(path)
    info["pickled_classes"] = named
    if not _is_module(obj):
        info["kind"] = "pickled-module"
        return _unwrap(obj, path), info
    state = module_state_dict(obj)
    visual = _visual_prefix(state)
    if visual is not None:
        names_in_tower = set(_class_names(_submodule(obj, visual.rstrip("."))))
        if any(n.endswith(".QuickGELU") for n in names_in_tower):
            info["quick_gelu"], info["quick_gelu_source"] = True, "the pickled module's QuickGELU activation"
        elif any(n.endswith(".GELU") for n in names_in_tower):
            info["quick_gelu"], info["quick_gelu_source"] = False, "the pickled module's nn.GELU activation"
    info["kind"] = "pickled-module"
    info["root_class"] = obj.pickled_name
    return state, info


# ----------------------------------------------------------------------- key layouts

_HF_MARKERS = ("embeddings.patch_embedding.weight", "encoder.layers.0.self_attn.q_proj.weight")


def _visual_prefix(state: Mapping[str, torch.Tensor]) -> str | None:
    """The shortest prefix ending in ``visual.`` under which the image tower's
    ``conv1.weight`` lies (``visual.`` for CLIP, ``model.visual.`` for the paper's
    ImageEncoder)."""
    found = [k[: -len("conv1.weight")] for k in state if k.endswith("visual.conv1.weight")]
    return min(found, key=len) if found else None


def detect_kind(state: Mapping[str, torch.Tensor]) -> str:
    keys = list(state)
    if any(k.endswith(m) for k in keys for m in _HF_MARKERS):
        return "hf-clip" if "visual_projection.weight" in state else "hf-clip-vision"
    if _visual_prefix(state) is not None:
        return "open_clip-full"
    if "conv1.weight" in state:
        return "image-tower"
    return "unknown"


def hf_to_openclip(state: Mapping[str, torch.Tensor], path: str = "checkpoint") -> tuple[dict, list[str]]:
    """OpenCLIP image-tower names for a Hugging Face CLIP vision state dict (with or
    without the ``vision_model.`` prefix). Returns the mapped tensors and the
    source keys left out (the text tower, ``logit_scale``, integer position ids)."""
    vision = {}
    ignored = []
    for k, v in state.items():
        if k.startswith("vision_model."):
            vision[k[len("vision_model."):]] = v
        elif k == "visual_projection.weight":
            continue
        elif k.startswith(("embeddings.", "encoder.", "pre_layrnorm.", "post_layernorm.")):
            vision[k] = v
        else:
            ignored.append(k)
    out: dict[str, torch.Tensor] = {}
    simple = {"embeddings.class_embedding": "class_embedding", "embeddings.patch_embedding.weight": "conv1.weight",
              "embeddings.position_embedding.weight": "positional_embedding"}
    layer_names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                   "self_attn.out_proj": "attn.out_proj"}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unmapped = []
    for k, v in vision.items():
        if k in simple:
            out[simple[k]] = v
        elif k == "embeddings.position_ids":
            ignored.append("vision_model." + k)  # an integer buffer, recomputed by OpenCLIP
        elif m := re.fullmatch(r"(pre_layrnorm|post_layernorm)\.(weight|bias)", k):
            out[f"{'ln_pre' if m[1] == 'pre_layrnorm' else 'ln_post'}.{m[2]}"] = v
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", k):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = v
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", k):
            if m[2] not in layer_names:
                unmapped.append(k)
                continue
            out[f"transformer.resblocks.{m[1]}.{layer_names[m[2]]}.{m[3]}"] = v
        else:
            unmapped.append(k)
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"{path}: layer {layer} has {sorted(parts)} of the q/k/v {kind}s; all three "
                                  "are needed to build in_proj")
        out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    if unmapped:
        raise CheckpointError(f"{path}: Hugging Face vision keys with no OpenCLIP counterpart: "
                              f"{sorted(unmapped)[:_SHOWN]}")
    if "visual_projection.weight" in state:
        out["proj"] = state["visual_projection.weight"].t().contiguous()
    return out, ignored


def image_encoder_state(state: Mapping[str, torch.Tensor], path: str = "checkpoint") -> tuple[dict, str, dict]:
    """The image encoder's state dict (``visual.`` keys stripped) out of any
    supported layout; returns it with the kind detected and how it was mapped."""
    kind = detect_kind(state)
    prefix = _visual_prefix(state)
    if kind in ("hf-clip", "hf-clip-vision"):
        out, ignored = hf_to_openclip(state, path)
        return out, kind, {"name": "huggingface-clip-to-openclip",
                           "rules": ["q/k/v_proj -> attn.in_proj (concatenated q, k, v)", "fc1/fc2 -> c_fc/c_proj",
                                     "layer_norm1/2 -> ln_1/2", "pre_layrnorm/post_layernorm -> ln_pre/ln_post",
                                     "embeddings -> class_embedding/conv1/positional_embedding",
                                     "visual_projection.weight transposed -> proj"],
                           "ignored_keys": len(ignored)}
    if prefix is not None:
        out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        return out, kind, {"name": f"strip prefix {prefix!r}", "ignored_keys": len(state) - len(out)}
    return dict(state), kind, {"name": "identity", "ignored_keys": 0}


def describe_kind(state: Mapping[str, torch.Tensor]) -> str:
    return KIND_DESCRIPTIONS[detect_kind(state)]


def reference_layout(arch: str) -> tuple[str, dict[str, torch.Tensor]]:
    """The registered name and the image encoder's state dict (meta tensors: shapes
    and dtypes, no data) of an OpenCLIP architecture."""
    name = register_config(str(arch))  # imports OpenCLIP with what the architecture uses
    open_clip = open_clip_module()
    with torch.device("meta"), quiet_openclip():  # no "initialized randomly" notice: only shapes are read
        model = open_clip.create_model(name, device="meta")
    return name, model.visual.state_dict()


def check_fits(state: Mapping[str, torch.Tensor], layout: Mapping[str, torch.Tensor], source: str, arch: str,
               kind: str) -> None:
    """Raise CheckpointError unless ``state`` has exactly ``layout``'s keys and shapes."""
    missing = sorted(layout.keys() - state.keys())
    extra = sorted(state.keys() - layout.keys())
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(layout[k].shape)}"
                    for k in layout.keys() & state.keys() if state[k].shape != layout[k].shape)
    if not (missing or extra or shapes):
        return
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} keys {missing[:_SHOWN]}")
    if extra:
        parts.append(f"unexpected {len(extra)} keys {extra[:_SHOWN]}")
    if shapes:
        parts.append(f"{len(shapes)} shapes differ (file vs {arch}) {shapes[:_SHOWN]}")
    raise CheckpointError(f"{source} ({KIND_DESCRIPTIONS[kind]}) does not fit the image encoder of {arch}: "
                          + "; ".join(parts) + "; pass the architecture it was trained with (--arch)")


def read_image_encoder(source: str | os.PathLike, arch: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """The image encoder's state dict from any supported source, checked against
    ``arch`` when given, and what was learned reading it (kind, mapping, files,
    QuickGELU). A Hugging Face CLIPVisionModel lacks ``proj``: see
    :func:`import_checkpoint`."""
    raw, info = read_source(source)
    state, kind, mapping = image_encoder_state(raw, str(source))
    info.setdefault("kind", kind)
    info["layout"] = kind
    info["mapping"] = mapping
    # Integer buffers (position ids some exporters keep) are no weights of the encoder.
    state = {k: v for k, v in state.items() if v.is_floating_point()}
    if arch is not None:
        name, layout = reference_layout(arch)
        check_fits(state, layout, str(source), name, kind)
    return state, info


# ----------------------------------------------------------------------- import

def _max_abs_diff(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {k: float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a}


def import_checkpoint(source: str | os.PathLike, output: str | os.PathLike, *, arch: str,
                      base: str | os.PathLike | None = None, quick_gelu: bool | None = None,
                      check_base: bool | None = None, base_atol: float = 0.0) -> dict:
    """Write the image encoder of ``source`` as a safetensors state dict at
    ``output`` and return its provenance record (also stored, as JSON, in the
    file's ``provenance`` metadata).

    ``arch``: the OpenCLIP architecture (name or JSON config) the weights must fit.
    ``base``: the pretrained weights the task vectors will be applied to (an
    OpenCLIP full-model or image-encoder file, any form above). A Hugging Face
    ``CLIPVisionModel`` has no projection, so ``proj`` is taken from it unchanged.
    ``check_base``: compare the imported image weights with ``base``'s and fail if
    any differs by more than ``base_atol``; the default checks when the source is
    named ``zeroshot.pt`` (the paper's pretrained encoder, whose weights the
    fine-tunes' vectors are relative to).
    ``quick_gelu``: what to record when the source does not tell; contradicting a
    source that does is an error.
    """
    source, output = Path(source), Path(output)
    name, layout = reference_layout(arch)
    state, info = read_image_encoder(source)
    kind = info["layout"]
    record: dict[str, Any] = {
        "source": str(source.resolve()),
        "kind": info["kind"],
        "kind_description": KIND_DESCRIPTIONS[info["kind"]],
        "source_sha256": info["files"],
        "arch": name,
        "mapping": info["mapping"],
    }
    if "pickled_classes" in info:
        record["pickled_classes"] = info["pickled_classes"]
        record["root_class"] = info.get("root_class")
    base_state = None
    if base is not None:
        base_state, base_info = read_image_encoder(base, name)
        record["base"] = {"path": str(Path(base).resolve()), "sha256": base_info["files"],
                          "kind": base_info["kind"]}
    if "proj" not in state and "proj" in layout:
        if base_state is None:
            raise CheckpointError(f"{source} ({KIND_DESCRIPTIONS[info['kind']]}) has no image projection; pass "
                                  "--base, the pretrained OpenCLIP weights it was fine-tuned from, to take "
                                  "'proj' from")
        state["proj"] = base_state["proj"].clone()
        record["mapping"] = {**record["mapping"], "from_base": ["proj"]}
    check_fits(state, layout, str(source), name, kind)
    if check_base is None:
        check_base = source.name == "zeroshot.pt" and base_state is not None
    if check_base:
        if base_state is None:
            raise CheckpointError(f"{source}: --check-base compares the import with the base weights; pass them "
                                  "as --base, or leave --check-base out")
        diffs = _max_abs_diff(state, base_state)
        bad = sorted((k for k, d in diffs.items() if d > base_atol), key=lambda k: -diffs[k])
        record["base_check"] = {"atol": base_atol, "max_abs_diff": max(diffs.values(), default=0.0),
                                "differing_keys": len(bad)}
        if bad:
            raise CheckpointError(
                f"{source}: image weights differ from the base {base} in {len(bad)} of {len(diffs)} tensors (largest "
                f"|diff| {diffs[bad[0]]:.3g} at {bad[0]!r}); task vectors from these fine-tunes are relative to "
                f"{source.name}: import it and use it as the base, or pass the base it was built from")
    found = info.get("quick_gelu")
    if found is not None and quick_gelu is not None and found != quick_gelu:
        raise CheckpointError(f"{source}: {quick_gelu_flag(quick_gelu)} was given but {info['quick_gelu_source']} "
                              f"says QuickGELU {'on' if found else 'off'}; drop the flag or check the file")
    if found is None and quick_gelu is not None:
        found, info["quick_gelu_source"] = quick_gelu, "given when importing"
    record["quick_gelu"] = found
    record["quick_gelu_source"] = info.get("quick_gelu_source", "unknown: the file does not tell")
    state = {k: state[k].detach().contiguous() for k in layout}  # the architecture's key order
    record["keys"] = len(state)
    record["fingerprint"] = state_fingerprint(state)
    record["output"] = str(output.resolve())
    metadata = {"format": IMAGE_ENCODER_FORMAT, "arch": name, "provenance": json.dumps(record, sort_keys=True)}
    if found is not None:
        metadata["quick_gelu"] = "true" if found else "false"
    save_state_dict(state, output, metadata)
    return record


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance record an import stored in a weights file, or None."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception:  # not a safetensors file: no record
        return None
    return json.loads(meta["provenance"]) if "provenance" in meta else None
