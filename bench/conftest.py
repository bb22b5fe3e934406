"""Fixtures shared by the benchmark suites, and the speed table printed at the end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

_SPEED = pytest.StashKey[dict]()
_REBUILD = pytest.StashKey[tuple]()
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def pytest_addoption(parser):
    parser.addoption("--rebuild-checkpoint", action="store_true", default=False,
                     help="also rebuild the embedded checkpoint with its own script (one thread, 80-120 s) "
                          "and check it against the committed one")


def pytest_configure(config):
    """Without ``--data-root`` every suite runs on embedded or generated data: its
    pixel and head caches go to a folder of this session's own, deleted at its end.
    With it, the user's cache (``TVCORE_CACHE``) keeps the real trees' pixels."""
    from fixtures import session_cache

    session_cache.start(config)


def pytest_unconfigure(config):
    from fixtures import session_cache

    session_cache.finish(config)


def pytest_collection_finish(session):
    """With ``--rebuild-checkpoint``, the embedded checkpoint's rebuild starts in its
    own process as soon as a selected test needs it, and runs beside the tests
    before it; the ``rebuilt_tiny`` fixture waits for it."""
    if not session.config.getoption("rebuild_checkpoint"):
        return
    if not any("rebuilt_tiny" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    folder = Path(tempfile.mkdtemp(prefix="tvcore-rebuild-"))
    out = folder / "tvcore-tiny-digits.safetensors"
    with open(folder / "log.txt", "w") as log:  # the child writes to its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, str(FIXTURES / "pretrain_tiny.py"), "--out", str(out)],
                                stdout=log, stderr=subprocess.STDOUT)
    session.config.stash[_REBUILD] = (proc, out, folder)


def pytest_sessionfinish(session):
    started = session.config.stash.get(_REBUILD, None)
    if started:
        proc, _, folder = started
        if proc.poll() is None:  # the session ended (or was interrupted) before it was needed
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def rebuilt_tiny(pytestconfig) -> Path:
    """The embedded checkpoint rebuilt by its own script, in the process started at
    collection (``pytest_collection_finish``)."""
    if not pytestconfig.getoption("rebuild_checkpoint"):
        pytest.skip("rebuilding the embedded checkpoint takes 80-120 s on one core: run with "
                    "--rebuild-checkpoint (CI does)")
    proc, out, folder = pytestconfig.stash[_REBUILD]
    code = proc.wait(timeout=1800)
    if code != 0:
        pytest.fail(f"rebuilding the embedded checkpoint failed (exit {code}):\n"
                    + (folder / "log.txt").read_text()[-3000:])
    return out


def vit_b32_image_encoder_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The image encoder of OpenCLIP's ViT-B-32, built from its config with random
    init (no weights are downloaded): the right keys, shapes and dtypes."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    return {k: v.detach().clone().contiguous() for k, v in model.visual.state_dict().items()}


@pytest.fixture(scope="session")
def vit_b32_pretrained():
    return vit_b32_image_encoder_state_dict()


@pytest.fixture(scope="session")
def speed_table(pytestconfig) -> dict:
    return pytestconfig.stash.setdefault(_SPEED, {})


def _fmt(x, unit=""):
    return "-" if x is None else f"{x:.3g}{unit}"


def _data_path_summary(tr, table: dict) -> None:
    """The evaluation data path: peak RSS against split size, and images/s of the
    first (decoding) and cached passes."""
    from tabulate import tabulate

    mib = 2**20
    ev = table.get("tvcore_eval_rss")
    if ev:
        runs = ", ".join(f"{int(n):,} images: {r['peak_rss_bytes'] / mib:.0f} MiB (cache {r['cache_bytes'] / mib:.0f} "
                         "MiB)" for n, r in ev["runs"].items())
        tr.write_line(f"tvcore eval at {ev['image_size']} px (stand-in model, workers 0) peak RSS: {runs}; "
                      f"difference {ev['difference_bytes'] / mib:.0f} MiB (idle interpreter with torch: "
                      f"{ev['idle_bytes'] / mib:.0f} MiB)")
    gpu = table.get("gpu")
    if gpu:
        for mode, g in gpu.items():
            tr.write_line(f"{g['device']} ViT-B-32 {mode} bf16: {g['images_per_s']:.0f} img/s, "
                          f"{g['achieved_tflops']:.1f} TFLOP/s" + (f", MFU {100 * g['mfu']:.1f}%" if g["mfu"] else ""))
    tp = table.get("data_path_throughput")
    if tp:
        rows = [[source, info["images"], workers, f"{r['first_img_s']:.0f}", f"{r['cached_img_s']:.0f}",
                 f"{r['cached_normalized_img_s']:.0f}", f"{r['cached_over_first']:.1f}x",
                 f"{r['cache_bytes_per_image']:.0f}"]
                for source, info in tp.items() for workers, r in info.items() if isinstance(r, dict)]
        tr.write_line(tabulate(rows, headers=["source", "images", "decode workers", "first pass img/s",
                                              "cached img/s (uint8)", "cached + normalize on CPU img/s",
                                              "cached / first", "cache bytes/image"], tablefmt="github"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    table = config.stash.get(_SPEED, None)
    if not table:
        return
    from tabulate import tabulate

    tr = terminalreporter
    tr.section("tvcore speed: ratios measured in this run")
    if "bandwidth_Bps" in table:
        tr.write_line(f"memory bandwidth (streaming add): {table['bandwidth_Bps'] / 1e9:.1f} GB/s; floor = bytes "
                      "moved / bandwidth")
    rows = []
    for group, row in table.items():
        if not isinstance(row, dict) or "streams" not in row:
            continue
        rows.append([group, f"{row['streams']} x {row['model_bytes'] / 2**20:.0f} MiB",
                     _fmt(row.get("reference"), " s"), _fmt(row.get("tvcore"), " s"), _fmt(row.get("floor"), " s"),
                     _fmt(row.get("speedup_vs_reference"), "x"), _fmt(row.get("ratio_to_floor"), "x")])
    if rows:
        tr.write_line(tabulate(rows, headers=["operation", "bytes moved", "reference", "tvcore", "floor",
                                              "tvcore speedup", "tvcore / floor"], tablefmt="github"))
    rss = table.get("peak_rss")
    if rss:
        mib = 2**20
        tr.write_line(
            f"peak RSS merging 8 files ({rss['model_bytes'] / mib:.0f} MiB each): streaming "
            f"{rss['stream_bytes'] / mib:.0f} MiB = {rss['stream_x_model']:.2f}x one model "
            f"({rss['stream_above_idle_x_model']:.2f}x above the {rss['idle_bytes'] / mib:.0f} MiB of an idle "
            f"interpreter with torch); reference {rss['reference_bytes'] / mib:.0f} MiB = "
            f"{rss['reference_x_model']:.2f}x")
    _data_path_summary(tr, table)
    start = table.get("startup")
    if start:
        tr.write_line(f"tvcore eval on the tiny model, cache built: {start['tvcore_eval_s']:.2f} s, "
                      f"{start['ratio_to_floor']:.2f}x a process importing torch and torchvision "
                      f"({start['floor_s']:.2f} s); medians of {start['runs']}")
    out = Path(config.getoption("results_dir", default="results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
