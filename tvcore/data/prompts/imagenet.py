"""ImageNet (the control task): the 80 prompt templates and 1000 class names.

Source: the paper's released code, github.com/mlfoundations/task_vectors at
commit 826a64c67082fab0f40628233287948f0f8d7fa3: ``src/datasets/templates.py``
(``imagenet_template``, 80 templates) and ``src/datasets/imagenet.py``
(``imagenet_classnames``, 1000 names in the standard class-index order, i.e.
sorted WordNet ids ``n01440764`` .. ``n15075141``).

Both lists are, string for string and in the same order, OpenCLIP's
``open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES`` and
``IMAGENET_CLASSNAMES`` (checked against open_clip_torch 3.3.0), so they are
read from there rather than copied. ``PAPER_FINGERPRINT`` is the
:func:`prompt_fingerprint` of the paper's two lists; an OpenCLIP whose lists
differ is refused rather than silently giving a different control head.

The names are the paper's as they are, including two pairs that read alike
(indices 657/744 ``missile``, 836/837 ``sunglasses``).
"""

from __future__ import annotations

from functools import cache

from ...errors import DatasetError
from .fingerprint import prompt_fingerprint

SOURCE = ("mlfoundations/task_vectors@826a64c src/datasets/templates.py (imagenet_template), "
          "src/datasets/imagenet.py (imagenet_classnames); read from "
          "open_clip.zero_shot_metadata (OPENAI_IMAGENET_TEMPLATES, IMAGENET_CLASSNAMES)")

PAPER_FINGERPRINT = "e8e8146e9dea3080cea9e5cb88ce8a2bbacb1362824aaa2f4ec9b944dea0ae10"


@cache
def _from_open_clip() -> tuple[tuple[str, ...], tuple[str, ...]]:
    # Imported here: open_clip pulls in torch, and the other tasks' prompts need neither.
    from ...openclip import open_clip_module

    open_clip = open_clip_module()
    meta = open_clip.zero_shot_metadata

    # OpenCLIP stores templates as one-argument callables; applied to "{}" they
    # give back the format string itself.
    templates = tuple(t("{}") if callable(t) else str(t) for t in meta.OPENAI_IMAGENET_TEMPLATES)
    names = tuple(meta.IMAGENET_CLASSNAMES)
    found = prompt_fingerprint(names, templates)
    if found != PAPER_FINGERPRINT:
        raise DatasetError(
            f"ImageNet: open_clip {getattr(open_clip, '__version__', '?')} ships {len(names)} class names and "
            f"{len(templates)} templates whose fingerprint {found[:12]} is not the paper's {PAPER_FINGERPRINT[:12]}; "
            "install an open_clip_torch whose zero_shot_metadata matches (3.3.0 does)")
    return templates, names


def __getattr__(name: str):
    # TEMPLATES and CLASSNAMES are read on first use, like the other task modules' constants.
    if name == "TEMPLATES":
        return _from_open_clip()[0]
    if name == "CLASSNAMES":
        return _from_open_clip()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
