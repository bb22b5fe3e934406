"""Merging task-vector files tensor by tensor, whatever the method.

:func:`stream_merge` opens the inputs lazily, checks that they agree on keys,
shapes and dtypes, asks the method for its per-key functions (``plan``: a method
that needs a first pass over the files, like TIES's whole-vector trim, makes it
there) and writes the result key by key, so only one tensor per input is in memory
at a time. Without ``base`` the output is a task-vector file; with ``base`` (a
weights file) it is ``base + merged``, a weights file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from ..errors import TaskVectorMismatchError, UsageError
from ..kernels import fused_combine
from ..tensorfiles import TensorFileReader, TensorFileWriter
from ..vectors import FORMAT_NAME, FORMAT_VERSION, check_compatible, is_arithmetic

# merged(key, tensors) -> the merged update of one key
Merged = Callable[[str, Sequence[torch.Tensor]], torch.Tensor]
# terms(key, tensors) -> (terms, coefs) with base + sum_i coefs[i] * terms[i] the merged weights
Terms = Callable[[str, Sequence[torch.Tensor]], tuple]
# plan(read, layout, n) -> (merged, terms); read(i, key) gives input i's tensor of key
Plan = Callable[[Callable[[int, str], torch.Tensor], Mapping[str, torch.Tensor], int], tuple]


@dataclass
class StreamStats:
    tensors: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    inputs: list[str] = field(default_factory=list)


def one_term(merged: Merged) -> Terms:
    """The ``terms`` of a method whose update is one merged tensor per key."""
    return lambda key, tensors: ([merged(key, tensors)], [1.0])


def stream_merge(paths: Sequence[str | os.PathLike], out_path: str | os.PathLike, plan: Plan, *, label: str,
                 detail: str, base: str | os.PathLike | None = None, name: str | None = None) -> StreamStats:
    """Merge task-vector files with the functions ``plan`` returns and write safetensors.

    ``label`` names the method in the output's default name, ``detail`` (its
    hyperparameters) is recorded in the file's metadata.
    """
    if not paths:
        raise UsageError("nothing to merge: no files given")
    readers = [TensorFileReader(p) for p in paths]
    base_reader = TensorFileReader(base) if base is not None else None
    stats = StreamStats(inputs=[str(p) for p in paths])
    writer = None
    try:
        layouts = [{k: r.meta(k) for k in r.keys()} for r in readers]
        for i, layout in enumerate(layouts[1:], start=1):
            check_compatible(layouts[0], layout, str(paths[0]), str(paths[i]))
        bad = [k for k, t in layouts[0].items() if not is_arithmetic(t)]
        if bad:
            raise TaskVectorMismatchError(f"{paths[0]}: entries {bad[:5]} are not floating point; task-vector "
                                          "files hold floating-point tensors only")
        if base_reader is None:
            out_layout = layouts[0]
            metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                        "name": name or f"{label}({len(paths)} vectors)", "merge": detail}
            first_meta = readers[0].metadata
            if first_meta.get("base_model"):
                metadata["base_model"] = first_meta["base_model"]
            dtypes = {str(t.dtype).replace("torch.", "") for t in out_layout.values()}
            metadata["dtype"] = dtypes.pop() if len(dtypes) == 1 else "mixed"
        else:
            out_layout = {k: base_reader.meta(k) for k in base_reader.keys()}
            floats = {k: t for k, t in out_layout.items() if is_arithmetic(t)}
            check_compatible(layouts[0], floats, str(paths[0]), str(base))
            metadata = {"merged_from": ",".join(Path(p).name for p in paths), "merge": detail}
        # One scratch buffer per input, sized for the largest tensor, reused for every key.
        largest = max((readers[0].nbytes(k) for k in layouts[0]), default=0)
        scratch = [torch.empty(largest, dtype=torch.uint8) for _ in readers]
        with torch.no_grad():
            merged, terms = plan(lambda i, key: readers[i].get(key, scratch[i]), layouts[0], len(readers))
        writer = TensorFileWriter(out_path, out_layout, metadata,
                                  inputs=[*paths, *([base] if base is not None else [])])
        with torch.no_grad():
            for key in out_layout:
                if base_reader is not None and key not in layouts[0]:
                    t = base_reader.get(key)  # an integer buffer or an uncovered tensor: copied as is
                else:
                    tensors = [r.get(key, buf) for r, buf in zip(readers, scratch)]
                    stats.bytes_read += sum(t.numel() * t.element_size() for t in tensors)
                    if base_reader is None:
                        t = merged(key, tensors)
                    else:
                        t = base_reader.get(key)
                        fused_combine(t, *terms(key, tensors), base=t)
                    del tensors
                writer.write(key, t)
                stats.tensors += 1
                stats.bytes_written += t.numel() * t.element_size()
                del t
        writer.close()
        writer = None
    finally:
        if writer is not None:
            writer.abort()
        for r in readers:
            r.close()
        if base_reader is not None:
            base_reader.close()
    return stats
