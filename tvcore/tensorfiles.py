"""Safetensors files read and written one tensor at a time.

:class:`TensorFileReader` parses the header and reads a single tensor with a plain
positioned read (no memory map, so the pages of files already read do not stay in
the process's resident set); :class:`TensorFileWriter` writes the header first and
then each tensor as it is produced. Together they let a merge of N files hold
only one tensor per input at a time. The files are standard safetensors: the
``safetensors`` package reads what the writer writes, and the reader reads what
it writes.
"""

from __future__ import annotations

import json
import math
import os
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

import torch

from .errors import CheckpointError, OutputError
from .outputs import check_output, file_mode, temp_path

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
_MAX_HEADER = 100 * 2**20


class TensorFileReader:
    """Lazy access to the tensors of one safetensors file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise CheckpointError(f"{self.path} is a directory, not a safetensors file; give the file inside it")
        if not self.path.is_file():
            raise CheckpointError(f"file not found: {self.path}")
        self._fh = open(self.path, "rb")
        try:
            header, self._data_start = self._read_header()
        except CheckpointError:
            self._fh.close()
            raise
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self.entries: dict[str, dict] = header

    def _read_header(self) -> tuple[dict, int]:
        """Parse and validate the header: a JSON object of entries, each with a
        known dtype, a shape, and a byte range that fits that shape, lies inside the
        file and overlaps no other entry's. A file that breaks any of these is
        refused here, before a tensor is read."""
        size = os.fstat(self._fh.fileno()).st_size
        head = self._fh.read(8)
        if len(head) < 8:
            raise self._bad(f"{size} bytes, too short for a header")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER or 8 + n > size:
            raise self._bad(f"header length {n} does not fit a file of {size} bytes (truncated?)")
        try:
            header = json.loads(self._fh.read(n))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._bad(f"header is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise self._bad(f"header is a JSON {type(header).__name__}, not an object")
        metadata = header.get("__metadata__")
        if metadata is not None and not (isinstance(metadata, dict)
                                         and all(isinstance(v, str) for v in metadata.values())):
            raise self._bad("__metadata__ is not an object of strings")
        data_size = size - 8 - n
        ranges = []
        for key, info in header.items():
            if key == "__metadata__":
                continue
            begin, end = self._check_entry(key, info, data_size)
            ranges.append((begin, end, key))
        ranges.sort()
        for (_, end_a, key_a), (begin_b, end_b, key_b) in zip(ranges, ranges[1:]):
            if begin_b < end_a and begin_b < end_b:
                raise self._bad(f"tensors {key_a!r} and {key_b!r} overlap in the data section")
        return header, 8 + n

    def _check_entry(self, key: str, info, data_size: int) -> tuple[int, int]:
        if not isinstance(info, dict):
            raise self._bad(f"entry {key!r} is not an object")
        missing = [f for f in ("dtype", "shape", "data_offsets") if f not in info]
        if missing:
            raise self._bad(f"entry {key!r} has no {', '.join(missing)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise CheckpointError(f"{self.path}: tensor {key!r} has unsupported dtype {dtype!r} "
                                  f"(known: {', '.join(DTYPES)})")
        if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
            raise self._bad(f"entry {key!r} has shape {shape!r}, not a list of sizes >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
                and offsets[0] <= offsets[1]):
            raise self._bad(f"entry {key!r} has data_offsets {offsets!r}, not [begin, end] with begin <= end")
        begin, end = offsets
        want = math.prod(shape) * DTYPES[dtype].itemsize
        if end - begin != want:
            raise self._bad(f"entry {key!r}: shape {shape} of {dtype} needs {want} bytes, its byte range "
                            f"[{begin}, {end}) holds {end - begin}")
        if end > data_size:
            raise self._bad(f"entry {key!r}: byte range [{begin}, {end}) ends past the data section "
                            f"({data_size} bytes; truncated?)")
        return begin, end

    def _bad(self, why: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: not a readable safetensors file ({why})")

    def keys(self) -> list[str]:
        return list(self.entries)

    def meta(self, key: str) -> torch.Tensor:
        """A tensor on the meta device with the key's shape and dtype (no data)."""
        info = self.entries[key]
        return torch.empty(info["shape"], dtype=DTYPES[info["dtype"]], device="meta")

    def nbytes(self, key: str) -> int:
        begin, end = self.entries[key]["data_offsets"]
        return end - begin

    def get(self, key: str, buffer: torch.Tensor | None = None) -> torch.Tensor:
        """Read one tensor. With ``buffer`` (a uint8 tensor of at least
        ``nbytes(key)`` bytes) the data lands there and the result is a view of it,
        so a loop over keys reuses one allocation instead of faulting in new pages."""
        info = self.entries[key]
        dtype, shape = DTYPES[info["dtype"]], info["shape"]
        begin, end = info["data_offsets"]
        if end == begin:
            return torch.empty(shape, dtype=dtype)
        if buffer is None:
            raw = torch.empty(end - begin, dtype=torch.uint8)
        else:
            raw = buffer[: end - begin]
        self._fh.seek(self._data_start + begin)
        if self._fh.readinto(memoryview(raw.numpy())) != end - begin:
            raise CheckpointError(f"{self.path}: truncated data for tensor {key!r}")
        return raw.view(dtype).reshape(shape)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "TensorFileReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TensorFileWriter:
    """Write a safetensors file whose keys, shapes and dtypes are known up front;
    the tensors are then written one by one, in that order."""

    def __init__(self, path: str | os.PathLike, layout: Mapping[str, torch.Tensor],
                 metadata: Mapping[str, str] | None = None, inputs=()):
        self.path = check_output(path, inputs=inputs)
        header: dict = {}
        if metadata:
            header["__metadata__"] = dict(metadata)
        offset = 0
        self._order = []
        for key, t in layout.items():
            nbytes = t.numel() * t.element_size()
            header[key] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
            self._order.append((key, t.dtype, tuple(t.shape)))
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self._tmp = temp_path(self.path)
        self._fh = None
        with self._os_errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self._tmp, "wb")
            self._fh.write(struct.pack("<Q", len(raw)))
            self._fh.write(raw)
        self._next = 0

    @contextmanager
    def _os_errors(self):
        """An OS error while writing (a full disk) removes the temporary file and
        becomes an :class:`OutputError` naming the target."""
        try:
            yield
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def write(self, key: str, tensor: torch.Tensor) -> None:
        want_key, dtype, shape = self._order[self._next]
        if key != want_key or tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise ValueError(f"expected {want_key!r} {dtype} {shape}, got {key!r} {tensor.dtype} "
                             f"{tuple(tensor.shape)}")
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        if t.numel():
            with self._os_errors():
                self._fh.write(memoryview(t.view(torch.uint8).numpy()))
        self._next += 1

    def close(self) -> Path:
        if self._next != len(self._order):
            self.abort()
            raise ValueError(f"{self.path}: {len(self._order) - self._next} tensors were never written")
        with self._os_errors():
            self._fh.close()
            os.chmod(self._tmp, file_mode())  # one mode for every file tvcore writes
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)
