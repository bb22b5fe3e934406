"""Mini-DDSM, the dataset of the BI-RADS class-imbalance experiment.

Layout of the published archive (Kaggle "miniddsm2")::

    <root>/MINI-DDSM-Complete-JPEG-8/{Normal,Benign,Cancer}/<case>/<image>.jpg
    <root>/DataWMask.xlsx            (or a CSV export of it, DataWMask.csv)

The sheet has one row per mammogram with the columns ``fullPath`` (a relative
path with Windows backslashes), ``fileName``, ``View``, ``Side``, ``Status``,
``Tumour_Contour`` and ``Tumour_Contour2`` (mask images, ``-`` when absent),
``Age`` and ``Density`` (0..4). Mask images lie beside the mammograms; they are
never used as inputs.

Labels. ``label="density"`` (the default) uses the ``Density`` column, values
1..4, which the BI-RADS experiment calls "BI-RADS 2..5"; the 0 rows are dropped.
That column is the **ACR breast-density category**, not a BI-RADS assessment
category: a result trained on it is a density classifier, and its record says so.
``label="status"`` uses ``Status`` (Normal / Benign / Cancer).

Protocols are the BI-RADS experiment's training sets, drawn from the cases left
after a balanced test split and a validation split are set aside. Every split is
made of whole cases (patients), never of single images, so no patient is seen in
training and in evaluation.
"""

from __future__ import annotations

from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING

from ..errors import DatasetError
from .base import Sample, TaskData
from .protocols import Protocol, apply_protocol

if TYPE_CHECKING:
    import pandas as pd

IMAGE_DIR = "MINI-DDSM-Complete-JPEG-8"
SHEET_NAMES = ("DataWMask.xlsx", "DataWMask.csv")
REQUIRED_COLUMNS = ("fullPath", "fileName", "Status", "Density")
STATUSES = ("Normal", "Benign", "Cancer")

LABELS = {
    # column, {value -> class index}, class names, what the label is
    "density": ("Density", {1: 0, 2: 1, 3: 2, 4: 3}, ["BI-RADS 2", "BI-RADS 3", "BI-RADS 4", "BI-RADS 5"],
                "ACR breast density 1..4 (named BI-RADS 2..5 by the experiment); not a BI-RADS assessment"),
    "status": ("Status", {s: i for i, s in enumerate(STATUSES)}, list(STATUSES),
               "pathology status Normal/Benign/Cancer"),
}

TEMPLATES = {
    "density": ["a mammogram of {} breast density.", "a mammography image, {}.", "{}."],
    "status": ["a mammogram of a {} case.", "a {} mammography image.", "{}."],
}


# The BI-RADS experiment's protocols (class indices 0..3 are "BI-RADS 2..5").
PROTOCOLS = {
    "baseline": Protocol("baseline", {0: 800, 1: 800, 2: 800, 3: 300}),
    "focus-2": Protocol("focus-2", {0: 300}, test_per_class=60, val_per_class=30,
                        positive=0, negatives_per_class={1: 100, 2: 100, 3: 100}),
    "focus-5": Protocol("focus-5", {3: 300}, test_per_class=60, val_per_class=30,
                        positive=3, negatives_per_class={0: 100, 1: 100, 2: 100}),
    # Every remaining image trains: for the status label, or a first look at a tree.
    "all": Protocol("all", {}),
}


def find_layout(root: str | Path) -> tuple[Path, Path]:
    """Return (image folder, metadata sheet); ``root`` may be the folder that holds
    ``MINI-DDSM-Complete-JPEG-8`` or that folder itself."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(f"mini-ddsm root {root} is a file, not a folder; give the folder that holds "
                           f"{IMAGE_DIR} (or that folder itself)")
    if not root.is_dir():
        raise DatasetError(f"mini-ddsm root not found: {root}")
    image_dir = root / IMAGE_DIR if (root / IMAGE_DIR).is_dir() else root
    if not any((image_dir / s).is_dir() for s in STATUSES):
        raise DatasetError(f"mini-ddsm: no {'/'.join(STATUSES)} folders under {image_dir} "
                           f"(expected {root}/{IMAGE_DIR}/{{Normal,Benign,Cancer}}/<case>/*.jpg)")
    for folder in (root, image_dir):
        for name in SHEET_NAMES:
            if (folder / name).is_file():
                return image_dir, folder / name
    raise DatasetError(f"mini-ddsm: metadata sheet not found: {root / SHEET_NAMES[0]} (or a CSV export "
                       f"{SHEET_NAMES[1]})")


def read_sheet(path: Path) -> pd.DataFrame:
    import pandas as pd  # here: every tvcore process imports this module, few read a sheet

    try:
        df = pd.read_excel(path) if path.suffix == ".xlsx" else pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for a broken sheet
        raise DatasetError(f"mini-ddsm: cannot read {path}: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(f"mini-ddsm: {path} lacks column(s) {', '.join(missing)}")
    return df


def _relative_parts(full_path: str) -> tuple[str, ...]:
    parts = PureWindowsPath(str(full_path).strip()).parts
    if parts and parts[0] == IMAGE_DIR:
        parts = parts[1:]
    return parts


def _is_mask(name: str) -> bool:
    return "mask" in name.lower()


def _density(raw, sheet: Path, row_no: int) -> int:
    """The ``Density`` cell as an integer: a whole number however the sheet stores
    it (2, 2.0, "2"); anything else (2.5, "x", empty) is an error naming the cell,
    never rounded or truncated into a class."""
    where = f"mini-ddsm: {sheet} row {row_no}: Density"
    import pandas as pd

    text = raw.strip() if isinstance(raw, str) else raw
    if text == "" or (not isinstance(text, str) and pd.isna(text)):
        raise DatasetError(f"{where} is empty; every row needs a density 0..4 (0: not rated)")
    try:
        value = float(text) if not isinstance(text, bool) else float("nan")
    except (TypeError, ValueError):
        value = float("nan")
    if not value.is_integer():
        raise DatasetError(f"{where} value {text!r} is not an integer 0..4; fix the sheet")
    return int(value)


def load_samples(root: str | Path, label: str = "density") -> tuple[list[Sample], list[str], str]:
    """All labelled mammograms of the tree: (samples, class names, label description)."""
    if label not in LABELS:
        raise DatasetError(f"mini-ddsm: unknown label {label!r}; choose one of {sorted(LABELS)}")
    column, mapping, class_names, meaning = LABELS[label]
    image_dir, sheet = find_layout(root)
    df = read_sheet(sheet)
    masks = set()
    for col in ("Tumour_Contour", "Tumour_Contour2"):
        if col in df.columns:
            masks |= {"/".join(_relative_parts(v)) for v in df[col].dropna() if str(v).strip() not in ("-", "")}
    samples = []
    for row_no, row in enumerate(df.itertuples(index=False), start=2):
        parts = _relative_parts(row.fullPath)
        rel = "/".join(parts)
        if len(parts) < 3:
            raise DatasetError(f"mini-ddsm: {sheet.name} row {row_no}: fullPath {row.fullPath!r} is not "
                               "<Status>\\<case>\\<file>")
        if rel in masks or _is_mask(parts[-1]):
            continue
        raw = getattr(row, column)
        if column == "Density":
            raw = _density(raw, sheet, row_no)
        if raw not in mapping:
            if column == "Density" and raw == 0:
                continue  # density 0: a handful of rows without a rating
            raise DatasetError(f"mini-ddsm: {sheet} row {row_no}: {column} value {raw!r} is not one of "
                               f"{sorted(mapping) if column != 'Density' else '0..4'}; fix the sheet")
        path = image_dir.joinpath(*parts)
        if not path.is_file():
            raise DatasetError(f"mini-ddsm: image listed in {sheet.name} row {row_no} not found: {path}")
        samples.append(Sample(str(path), mapping[raw], case=f"{parts[0]}/{parts[1]}", key=rel))
    if not samples:
        raise DatasetError(f"mini-ddsm: {sheet} lists no usable mammograms")
    return samples, class_names, meaning


def load(root: str | Path, protocol: str | Protocol = "baseline", label: str = "density",
         seed: int = 0) -> TaskData:
    """Mini-DDSM under one of the experiment's protocols (see :data:`PROTOCOLS`)."""
    if isinstance(protocol, str):
        if protocol not in PROTOCOLS:
            raise DatasetError(f"mini-ddsm: unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
        protocol = PROTOCOLS[protocol]
    samples, class_names, meaning = load_samples(root, label)
    task = apply_protocol(samples, class_names, protocol, seed, TEMPLATES[label],
                          name=f"mini-ddsm/{protocol.name}", notes=meaning, label_column=label,
                          # every protocol of the experiment is judged on the same held-out cases
                          holdout=PROTOCOLS["baseline"] if protocol.positive is not None else None)
    task.reader = "kaggle-miniddsm"
    return task
