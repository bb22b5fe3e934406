"""Per-image outcomes (right or wrong) as a record keeps them beside a metric
(``correct_bits``): one bit per test image in the split's order, packed eight to a
byte (``numpy.packbits``: the first image in the highest bit), base64. Two records
measured on the same split (equal ``split_hashes``: the same keys and labels in the
same order) can then be compared image by image (:mod:`tvcore.compare`)."""

from __future__ import annotations

import base64
import binascii

import numpy as np

FIELD = "correct_bits"


def encode_outcomes(outcomes) -> str:
    """Per-image outcomes (booleans) as the text a record keeps."""
    return base64.b64encode(np.packbits(np.asarray(outcomes, dtype=bool).reshape(-1)).tobytes()).decode("ascii")


def decode_outcomes(text: str, total: int) -> np.ndarray:
    """The ``total`` per-image outcomes :func:`encode_outcomes` wrote; ValueError when
    the text is not base64 or cannot hold exactly ``total`` outcomes."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError) as exc:
        raise ValueError(f"not base64: {exc}") from None
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits.size < total or bits.size - total >= 8:
        raise ValueError(f"{bits.size} bits cannot hold the outcomes of {total} images")
    return bits[:total].astype(bool)
