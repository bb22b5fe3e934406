"""OpenCLIP models: loading by architecture and pretrained tag or local file, the
image encoder, and the frozen zero-shot classification head.

Loading is offline-first. A pretrained *tag* (``"openai"``, ``"laion2b_s34b_b79k"``)
is resolved to a file already in the local cache; if it is not there, tvcore fails
at once with an error that says how to pass a local file, instead of waiting on a
network. Set ``TVCORE_ALLOW_DOWNLOAD=1`` (or ``allow_download=True``) to let OpenCLIP
download it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from safetensors import safe_open

from .checkpoints import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, load_state_dict, save_state_dict
from .errors import CheckpointError, ModelConfigNotFoundError, OfflineError, TaskVectorMismatchError, UsageError
from .openclip import open_clip_module
from .vectors import check_compatible

WEIGHT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES


def cache_root() -> Path:
    return Path(os.environ.get("TVCORE_CACHE", Path.home() / ".cache" / "tvcore"))


def _downloads_allowed(allow_download: bool | None) -> bool:
    if allow_download is not None:
        return allow_download
    return os.environ.get("TVCORE_ALLOW_DOWNLOAD", "") not in ("", "0", "false", "no")


def register_config(arch: str) -> str:
    """An architecture given as a JSON config file is registered with OpenCLIP under
    its file stem; a registered name is returned as is. OpenCLIP is imported with
    the optional libraries the architecture uses (:mod:`tvcore.openclip`)."""
    open_clip = open_clip_module(arch)

    if arch.endswith(".json"):
        path = Path(arch)
        if not path.is_file():
            raise ModelConfigNotFoundError(f"model config not found: {path}; pass an OpenCLIP architecture name or an existing JSON config")
        open_clip.add_model_config(path)
        return path.stem
    if arch not in open_clip.list_models():
        raise UsageError(f"unknown OpenCLIP architecture {arch!r}; pass a registered name "
                         "(open_clip.list_models()) or a JSON config file")
    return arch


def _cached_tag_file(arch: str, tag: str, cache_dir: str | None) -> str | None:
    """The local file of a pretrained tag if it is already cached, else None. Never
    touches the network."""
    open_clip = open_clip_module()
    from open_clip import pretrained as oc_pretrained

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import hf_hub_download

        repo_id, filename = os.path.split(hub)
        candidates = [filename] if filename else []
        candidates = [n.replace(".bin", ".safetensors") for n in candidates] + candidates
        candidates += [oc_pretrained.HF_SAFE_WEIGHTS_NAME, oc_pretrained.HF_WEIGHTS_NAME]
        for name in dict.fromkeys(candidates):
            try:
                return hf_hub_download(repo_id, name, cache_dir=cache_dir, local_files_only=True)
            except Exception:  # not cached: huggingface_hub raises LocalEntryNotFoundError and kin
                continue
    url = cfg.get("url", "")
    if url:
        local = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(url)
        if local.is_file():
            return str(local)
    return None


class LazyTokenizer:
    """OpenCLIP's tokenizer of an architecture, built when first called: building
    it reads the BPE vocabulary (a tenth of a second), and a run whose zero-shot
    heads all come from the head cache never tokenizes."""

    def __init__(self, name: str):
        self.name = name
        self._tokenizer = None

    def __call__(self, texts, *args, **kwargs):
        if self._tokenizer is None:
            self._tokenizer = open_clip_module().get_tokenizer(self.name)
        return self._tokenizer(texts, *args, **kwargs)


@dataclass
class LoadedModel:
    """An OpenCLIP model with what was used to build it."""

    model: torch.nn.Module
    arch: str
    pretrained: str
    preprocess_train: Callable
    preprocess_val: Callable
    tokenizer: Callable
    weights_file: str | None = None
    info: dict = field(default_factory=dict)
    # Seconds of each part of load_model: importing OpenCLIP, building the model,
    # reading the weights, moving it to the device (the first move starts CUDA).
    load_seconds: dict = field(default_factory=dict, compare=False)
    _text_fingerprint: tuple | None = field(default=None, repr=False, compare=False)  # see text_fingerprint
    # The image encoder's state on the CPU as it was loaded, when the model was moved
    # to another device (its tensors are not the model's): see cpu_image_state.
    _cpu_image_state: dict | None = field(default=None, repr=False, compare=False)

    @property
    def image_encoder(self) -> torch.nn.Module:
        return self.model.visual

    def describe(self) -> str:
        return f"{self.arch}:{self.pretrained}"

    def cpu_image_state(self) -> dict[str, torch.Tensor]:
        """The image encoder's weights as CPU tensors that are not the model's own
        (loading a state into the encoder leaves them as they are): on the CPU a
        copy; on another device the tensors it was loaded into before the move,
        handed out once (a second call copies from the device)."""
        state, self._cpu_image_state = self._cpu_image_state, None
        if state is not None:
            return state
        return {k: v.detach().to("cpu", copy=True) for k, v in self.image_encoder.state_dict().items()}


# The config OpenCLIP's Hugging Face repositories keep beside their weights files
# (open_clip's push_to_hf_hub writes it; create_model_from_pretrained reads
# "model_cfg" from it).
HF_CONFIG_NAME = "open_clip_config.json"


def recorded_quick_gelu(path: str | os.PathLike) -> bool | None:
    """The QuickGELU flag a weights file records: in its safetensors metadata
    (``quick_gelu``: ``"true"``/``"false"``, written by ``tvcore import`` when the
    source told), else in the ``model_cfg`` of an OpenCLIP Hugging Face config
    beside it (:data:`HF_CONFIG_NAME`), or None: recorded in neither."""
    value = None
    if Path(path).suffix in SAFETENSORS_SUFFIXES:
        try:
            with safe_open(str(path), framework="pt") as fh:
                value = (fh.metadata() or {}).get("quick_gelu")
        except Exception:  # unreadable here; load_state_dict reports it with its own message
            return None
    flag = {"true": True, "false": False}.get(str(value).lower())
    if flag is None:
        config = Path(path).with_name(HF_CONFIG_NAME)
        try:
            model_cfg = json.loads(config.read_text()).get("model_cfg") or {} if config.is_file() else {}
        except (OSError, ValueError, AttributeError):
            model_cfg = {}
        if isinstance(model_cfg, dict) and isinstance(model_cfg.get("quick_gelu"), bool):
            flag = model_cfg["quick_gelu"]
    return flag


@dataclass(frozen=True)
class QuickGeluDecision:
    """Whether the model runs with QuickGELU, and what decided it (for the record)."""

    value: bool
    source: str

    def as_record(self) -> dict:
        return {"value": self.value, "source": self.source}


def quick_gelu_flag(value: bool) -> str:
    """The command-line flag that asks for ``value``."""
    return "--quick-gelu" if value else "--no-quick-gelu"


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def decide_quick_gelu(arch: str, *, records: Mapping[str, bool | None] | None = None, tag: str | None = None,
                      flag: bool | None = None, weights_given: bool = True) -> QuickGeluDecision:
    """QuickGELU, decided by one rule for every entry point (suites, ``tvcore eval``,
    ``run``, ``vector``, the pytest plugin): the flag the weights files record
    (``records``: a description of each file -> its flag, None where it records
    none); else the pretrained tag's OpenCLIP config (``openai`` => on); else the
    architecture's config when it names ``quick_gelu``; else ``flag`` (the user's
    ``--quick-gelu``/``--no-quick-gelu``); else off, OpenCLIP's own default, said on
    stderr with the flag to pass (when weights are loaded at all).

    Sources never disagree silently: two files, a file and the tag, or any of them
    and ``flag`` that disagree raise a one-line :class:`CheckpointError`.
    QuickGELU changes every feature of a model and a state dict does not show it
    (OpenAI's CLIP weights were trained with it, LAION's OpenCLIP weights without:
    OpenCLIP's pretrained registry, ``open_clip.get_pretrained_cfg``)."""
    open_clip = open_clip_module()

    name = register_config(str(arch))
    facts: list[tuple[bool, str]] = [(bool(v), f"{k} records QuickGELU {_on_off(bool(v))}")
                                     for k, v in (records or {}).items() if v is not None]
    if tag is not None:
        tag_value = bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))
        facts.append((tag_value, f"pretrained tag {tag!r} uses QuickGELU {_on_off(tag_value)}"))
    arch_cfg = open_clip.get_model_config(name) or {}
    if "quick_gelu" in arch_cfg:
        arch_value = bool(arch_cfg["quick_gelu"])
        facts.append((arch_value, f"architecture {name} config sets quick_gelu {str(arch_value).lower()}"))
    for value, source in facts[1:]:
        if value != facts[0][0]:
            raise CheckpointError(f"QuickGELU clash: {facts[0][1]} but {source}; these weights come from different "
                                  "models, use files of one model")
    if facts:
        value, source = facts[0]
        if flag is not None and bool(flag) != value:
            raise CheckpointError(f"{quick_gelu_flag(bool(flag))} contradicts what the weights say ({source}); "
                                  "drop the flag, the weights decide")
        return QuickGeluDecision(value, source)
    if flag is not None:
        return QuickGeluDecision(bool(flag), f"{quick_gelu_flag(bool(flag))} given")
    if not weights_given:
        return QuickGeluDecision(False, "default off (random init: no weights to match)")
    decision = QuickGeluDecision(False, "default off: no weights file, tag or architecture config records it")
    print(f"tvcore: QuickGELU is off for {name}: nothing records it ({', '.join(records or {}) or 'no file'}). "
          "OpenAI-trained CLIP weights need it: pass --quick-gelu (or --no-quick-gelu to confirm off)",
          file=sys.stderr, flush=True)
    return decision


class _DropRandomInitNotice(logging.Filter):
    """OpenCLIP logs "No pretrained weights loaded ... Model initialized randomly" on
    every model built without a tag; tvcore loads the weights itself right after."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextmanager
def quiet_openclip():
    """Build OpenCLIP models without its random-init notice (other records pass)."""
    drop = _DropRandomInitNotice()
    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


# The initializers module constructors and OpenCLIP's init_parameters call.
_INITIALIZERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                 "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


@contextmanager
def _no_init():
    """Inside it, ``torch.nn.init``'s initializers leave their tensor as it is (the
    tensors are allocated, not drawn): for a model whose weights are loaded next.
    ``nn.MultiheadAttention`` calls the ones it imported by name (24 draws in a
    ViT-B-32, 0.15 s on a GPU box's CPU), so its module's names are replaced too."""
    import torch.nn.modules.activation as activation

    saved = {(module, name): getattr(module, name) for module in (torch.nn.init, activation)
             for name in _INITIALIZERS if hasattr(module, name)}
    try:
        for module, name in saved:
            setattr(module, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for (module, name), fn in saved.items():
            setattr(module, name, fn)


def _read_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict file with a DDP ``module.`` prefix removed (wrappers are
    unwrapped by :func:`~tvcore.checkpoints.load_state_dict`)."""
    state = load_state_dict(path)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _image_encoder_state(path: str) -> dict[str, torch.Tensor]:
    """An image-encoder file's tensors, keys as in ``model.visual.state_dict()``
    (a full model's ``visual.*`` entries are taken and stripped)."""
    state = _read_state(path)
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    return state


def load_model(arch: str, pretrained: str | os.PathLike | None = None, *, device: str | torch.device = "cpu",
               cache_dir: str | None = None, allow_download: bool | None = None,
               quick_gelu: bool | None = None, image_encoder: str | os.PathLike | None = None,
               quick_gelu_records: Mapping[str, bool | None] | None = None) -> LoadedModel:
    """Build an OpenCLIP model.

    ``arch``: an OpenCLIP architecture name (``"ViT-B-32"``) or a JSON config file.
    ``pretrained``: ``None`` (random init), a local weights file of the whole model
    (safetensors, or ``.pt``/``.bin`` read with ``weights_only=True``; a DDP
    ``module.`` prefix and a ``state_dict`` wrapper are accepted), or an OpenCLIP
    pretrained tag.
    ``image_encoder``: a file with the image encoder's weights only (what
    ``tvcore import`` writes, keys as in ``model.visual.state_dict()``), loaded into
    ``model.visual`` over ``pretrained``, which still provides the text tower.

    QuickGELU is decided by :func:`decide_quick_gelu` from the ``quick_gelu``
    metadata of the weights files (``tvcore import`` records it from the source: the
    activation class of a pickled module, a Hugging Face config's ``hidden_act``)
    and ``quick_gelu_records`` (other files the run will use, e.g. a fine-tuned
    set), the pretrained tag, the architecture, and the ``quick_gelu`` argument
    (the user's ``--quick-gelu``). ``info["quick_gelu"]`` and
    ``info["quick_gelu_source"]`` say what was decided and why.
    """
    t0 = time.perf_counter()
    open_clip = open_clip_module()
    seconds = {"openclip_import_s": time.perf_counter() - t0}

    name = register_config(str(arch))
    kwargs = {}
    weights_file = None
    label = "none"
    tag = None
    if pretrained is not None and str(pretrained) != "":
        text = str(pretrained)
        looks_like_file = Path(text).suffix in WEIGHT_SUFFIXES or os.sep in text or Path(text).exists()
        if looks_like_file:
            if not Path(text).is_file():
                raise CheckpointError(f"weights file not found: {text}")
            weights_file, label = text, text
        else:
            if text not in open_clip.list_pretrained_tags_by_model(name):
                known = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
                raise UsageError(f"{name!r} has no pretrained tag {text!r} (known: {known}); or pass a "
                                 "local weights file")
            tag = text
            label = text
            weights_file = _cached_tag_file(name, text, cache_dir)
            if weights_file is None and not _downloads_allowed(allow_download):
                raise OfflineError(
                    f"OpenCLIP weights {name}:{text} are not in the local cache and tvcore does not download "
                    f"by default; pass a local file instead (--weights /path/open_clip_model.safetensors or "
                    "TVCORE_WEIGHTS), or set TVCORE_ALLOW_DOWNLOAD=1")
            if weights_file is None:
                kwargs["pretrained"] = text
    if image_encoder is not None and not Path(image_encoder).is_file():
        raise CheckpointError(f"image encoder weights not found: {image_encoder}")
    # A tag's cached file is OpenCLIP's own; only the user's files can record QuickGELU.
    files = [str(f) for f in ((weights_file if tag is None else None), image_encoder) if f is not None]
    records = {f"weights file {f}": recorded_quick_gelu(f) for f in files}
    records.update(quick_gelu_records or {})
    decision = decide_quick_gelu(name, records=records, tag=tag, flag=quick_gelu,
                                 weights_given=bool(files or tag))
    if decision.value:
        kwargs["force_quick_gelu"] = True
    if cache_dir:
        kwargs["cache_dir"] = cache_dir
    # A weights file overwrites every parameter, so the random init OpenCLIP would
    # draw first (most of a ViT-B-32 build on a CPU) is skipped; load_weights is strict,
    # so nothing can keep uninitialized memory. Nothing downstream reads the global RNG
    # without seeding it first (fine-tuning seeds it), so no result depends on the skip.
    t0 = time.perf_counter()
    with quiet_openclip(), (_no_init() if weights_file is not None else nullcontext()):
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(name, **kwargs)
    t1 = time.perf_counter()
    if weights_file is not None:
        load_weights(model, weights_file)
    info = {"quick_gelu": decision.value, "quick_gelu_source": decision.source}
    if image_encoder is not None:
        state = _image_encoder_state(str(image_encoder))
        try:
            check_compatible(state, model.visual.state_dict(), str(image_encoder), f"the image encoder of {name}",
                             check_dtype=False)
        except TaskVectorMismatchError as exc:
            raise CheckpointError(f"{image_encoder} does not fit this image encoder: {exc}") from None
        _load_state(model.visual, state, str(image_encoder))
        info["image_encoder_file"] = str(image_encoder)
        label = f"{label}+{Path(image_encoder).name}"
    # The text tower's hash (the zero-shot heads' cache key) is taken from the tensors
    # on the CPU, beside the move to the device and the rest of the run's start.
    text_hash = fingerprint_in_background(_text_state(model))
    t2 = time.perf_counter()
    # The image encoder's tensors on the CPU, before the move: on another device they
    # are the model pool's copy of the base, with no copy made and none read back.
    on_cpu = torch.device(device).type == "cpu"
    image_state = None if on_cpu else {k: v.detach() for k, v in model.visual.state_dict().items()}
    model = model.to(device).eval()
    seconds.update(build_s=t1 - t0, weights_s=t2 - t1, to_device_s=time.perf_counter() - t2)
    loaded = LoadedModel(model, name, label, preprocess_train, preprocess_val, LazyTokenizer(name),
                         weights_file=weights_file, info=info, load_seconds=seconds, _cpu_image_state=image_state)
    loaded._text_fingerprint = (_stamp(_text_state(model)), text_hash)
    return loaded


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load a state dict file into ``model``, strictly (every key, every shape)."""
    state = _read_state(path)
    if "conv1.weight" in state and not any(k.startswith("visual.") for k in state):
        raise CheckpointError(f"{path} holds an image encoder only ({len(state)} tensors, keys like 'conv1.weight'); "
                              "pass it as --image-encoder, with the whole pretrained model (which gives the text "
                              "tower) as --weights")
    try:
        check_compatible(state, model.state_dict(), str(path), "the architecture", check_dtype=False)
    except TaskVectorMismatchError as exc:
        raise CheckpointError(f"{path} does not fit this architecture: {exc}") from None
    _load_state(model, state, str(path))


def _load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str) -> None:
    """``module.load_state_dict(state, strict=True)``. A safetensors file's tensors
    (each its own memory, :func:`~tvcore.checkpoints.load_state_dict`) become the
    module's, cast to its dtypes (``assign=True``): the weights are not copied a second
    time, nor the memory of the module just built ever written. A pickled file's
    tensors may share storage with each other, and a module whose parameters are tied
    (one tensor under two names) would be untied by assigning, so those are copied in."""
    own = module.state_dict()
    tied = len({v.data_ptr() for v in own.values()}) < len(own)
    if Path(path).suffix not in SAFETENSORS_SUFFIXES or tied:
        module.load_state_dict(state, strict=True)
        return
    state = {k: v if v.dtype == own[k].dtype else v.to(own[k].dtype) for k, v in state.items()}
    module.load_state_dict(state, strict=True, assign=True)


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().data)  # the tensor's own bytes, not a copy of them
    return h.hexdigest()


def fingerprint_in_background(state: Mapping[str, torch.Tensor]) -> Future:
    """:func:`state_fingerprint` of ``state`` computed on a background thread (its
    ``result()``): hashlib lets other threads run while it hashes, so a run's other
    start-up work goes on beside it (a ViT-B-32's towers are 350 and 250 MB, a third
    of a second each). ``state``'s tensors must not change in place until then."""
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tvcore-fingerprint")
    try:
        return hasher.submit(state_fingerprint, dict(state))
    finally:
        hasher.shutdown(wait=False)


class ClassificationHead(torch.nn.Module):
    """Logits = normalized features @ weights.T, the weights frozen (a buffer)."""

    def __init__(self, weights: torch.Tensor, normalize: bool = True):
        super().__init__()
        self.register_buffer("weight", weights.detach().clone())
        self.normalize = normalize

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return features @ self.weight.to(features.dtype).T


class ImageClassifier(torch.nn.Module):
    """The image encoder under a frozen zero-shot head. Only the encoder trains;
    task vectors are taken over the encoder's state dict."""

    def __init__(self, image_encoder: torch.nn.Module, head: ClassificationHead):
        super().__init__()
        self.image_encoder = image_encoder
        self.head = head
        self.head.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.image_encoder(images))


@torch.no_grad()
def build_head_weights(loaded: LoadedModel, class_names: Sequence[str], templates: Sequence[str],
                       device: str | torch.device = "cpu", prompts_per_batch: int = 4096,
                       progress: bool = False) -> torch.Tensor:
    """Per class: the mean of the normalized text embeddings over the templates,
    normalized, times the logit scale. Shape (classes, embed_dim). Prompts of many
    classes go through the text tower together (ImageNet's head is 80,000 prompts)."""
    from tqdm.auto import tqdm

    model = loaded.model
    model.eval()
    per_batch = max(1, prompts_per_batch // len(templates))
    rows = []
    for start in tqdm(range(0, len(class_names), per_batch), desc="zero-shot head", disable=not progress,
                      leave=False):
        names = class_names[start:start + per_batch]
        tokens = loaded.tokenizer([t.format(name) for name in names for t in templates]).to(device)
        emb = F.normalize(model.encode_text(tokens).float(), dim=-1).reshape(len(names), len(templates), -1)
        rows.append(F.normalize(emb.mean(dim=1), dim=-1))
    return torch.cat(rows) * model.logit_scale.exp().float()


def _text_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("visual.")}


def _stamp(state: Mapping[str, torch.Tensor]) -> tuple:
    """Where each tensor lives and how often it was changed in place."""
    return tuple((k, v.data_ptr(), v._version) for k, v in state.items())


def text_fingerprint(loaded: LoadedModel) -> str:
    """The hash of the text tower's weights (every tensor outside ``visual.``),
    computed once per loaded model: a sweep asks for it for every task's head and
    pool key, and it reads the whole text tower. :func:`load_model` starts it on a
    background thread. Recomputed if a tensor was replaced or changed in place (its
    storage or version counter moved)."""
    text_state = _text_state(loaded.model)
    stamp = _stamp(text_state)
    if loaded._text_fingerprint is None or loaded._text_fingerprint[0] != stamp:
        loaded._text_fingerprint = (stamp, state_fingerprint(text_state))
    value = loaded._text_fingerprint[1]
    if isinstance(value, Future):
        value = value.result()
        loaded._text_fingerprint = (stamp, value)
    return value


def head_cache_key(loaded: LoadedModel, class_names: Sequence[str], templates: Sequence[str]) -> str:
    payload = json.dumps({"arch": loaded.arch, "weights": text_fingerprint(loaded),
                          "classes": list(class_names), "templates": list(templates)})
    return hashlib.sha256(payload.encode()).hexdigest()


def zero_shot_head(loaded: LoadedModel, class_names: Sequence[str], templates: Sequence[str],
                   device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None,
                   use_cache: bool = True) -> ClassificationHead:
    """The frozen zero-shot head, cached on disk keyed by the model, a hash of its
    text-tower weights, the class names and the templates."""
    if not class_names or not templates:
        raise ValueError("a zero-shot head needs at least one class name and one template")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"templates without a '{{}}' placeholder: {bad}")
    path = None
    if use_cache:
        key = head_cache_key(loaded, class_names, templates)
        path = Path(cache_dir or cache_root() / "heads") / f"{key}.safetensors"
        if path.is_file():
            try:
                return ClassificationHead(load_state_dict(path)["weight"].to(device))
            except (CheckpointError, KeyError):
                pass  # an entry that cannot be read (a disk's damage) is derived data: built again below
    weights = build_head_weights(loaded, class_names, templates, device)
    if path is not None:
        save_state_dict({"weight": weights}, path, {"arch": loaded.arch, "classes": json.dumps(list(class_names))})
    return ClassificationHead(weights.to(device))


def classifier(loaded: LoadedModel, class_names: Sequence[str], templates: Sequence[str],
               device: str | torch.device = "cpu", **head_options) -> ImageClassifier:
    """The pretrained image encoder (a copy) under the zero-shot head of a task."""
    import copy

    head = zero_shot_head(loaded, class_names, templates, device=device, **head_options)
    return ImageClassifier(copy.deepcopy(loaded.image_encoder).to(device), head).to(device)
