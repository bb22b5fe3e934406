"""Importing OpenCLIP without the optional towers a model does not use.

OpenCLIP imports ``transformers`` (for a Hugging Face text tower) and ``timm`` (for
a timm image tower) whenever they are installed: about a second of every process's
start on a 2-core CPU, and more on a cold disk, for the CLIP ViTs the paper uses,
which need neither. :func:`open_clip_module` imports OpenCLIP the first time
with those two unimportable (OpenCLIP's own fallback when they are not installed),
and, for an architecture whose config names one of them, imports it then and
reloads the OpenCLIP module that wraps it, so the model builds as it always would.
A library imported before OpenCLIP (a test importing ``transformers``, say) is
left as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

# Each optional library: the OpenCLIP module that imports it at its top, and the
# class of that module that OpenCLIP's model module uses.
OPTIONAL = {"transformers": ("open_clip.hf_model", "HFTextEncoder"),
            "timm": ("open_clip.timm_model", "TimmModel")}


@contextmanager
def _unimportable(names):
    """Inside it, ``import name`` raises ImportError for each of ``names`` not yet
    imported; afterwards they import normally."""
    blocked = [n for n in names if n not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # the import system's "not found" marker
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def needs(config: dict) -> set[str]:
    """The optional libraries an OpenCLIP model config uses: ``transformers`` for a
    Hugging Face text tower or tokenizer (``text_cfg.hf_*``), ``timm`` for a timm
    image tower (``vision_cfg.timm_*``)."""
    text, vision = config.get("text_cfg") or {}, config.get("vision_cfg") or {}
    out = set()
    if text.get("hf_model_name") or text.get("hf_tokenizer_name"):
        out.add("transformers")
    if vision.get("timm_model_name"):
        out.add("timm")
    return out


def arch_config(open_clip: ModuleType, arch: str) -> dict:
    """The config of ``arch``: a registered OpenCLIP name or a JSON config file."""
    if arch.endswith(".json"):
        path = Path(arch)
        return json.loads(path.read_text()) if path.is_file() else {}
    return open_clip.get_model_config(arch) or {}


def _restore(open_clip: ModuleType, name: str) -> None:
    """Make OpenCLIP use ``name`` (installed, and blocked when OpenCLIP was imported)."""
    module_name, cls = OPTIONAL[name]
    module = sys.modules.get(module_name)
    if module is None or getattr(module, name, None) is not None or importlib.util.find_spec(name) is None:
        return  # not imported, already there, or not installed (OpenCLIP says so when it builds)
    module = importlib.reload(module)
    setattr(open_clip.model, cls, getattr(module, cls))


def open_clip_module(arch: str | None = None) -> ModuleType:
    """OpenCLIP, imported without ``transformers`` and ``timm`` the first time, and
    with whichever of them ``arch`` uses (see the module's docstring)."""
    if "open_clip" not in sys.modules:
        with _unimportable(OPTIONAL):
            import open_clip  # noqa: F401
    open_clip = sys.modules["open_clip"]
    if arch is not None:
        for name in needs(arch_config(open_clip, str(arch))):
            _restore(open_clip, name)
    return open_clip
