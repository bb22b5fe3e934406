"""Every bad input a user can give, through the command line and the pytest
plugin as a user meets them: one line that names the thing (exit status 2, a
usage error, or a failed test naming the file), no traceback, and the folder
exactly as it was before: no file created, changed or left behind."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tvcore.cli import main
from tvcore.vectors import TaskVector

pytest_plugins = ["pytester"]


# ---------------------------------------------------------------- helpers

def snapshot(root: Path) -> dict:
    """Every entry under ``root``: kind, size, mtime and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else os.readlink(path)
            out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns, digest)
    return out


def fails_cleanly(folder: Path, argv: list[str], capsys, *names: str) -> str:
    """Run the CLI: exit 2, one line on stderr naming each of ``names``, no
    traceback, nothing under ``folder`` created, changed or left behind."""
    before = snapshot(folder)
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tvcore: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in err, (name, err)
    assert snapshot(folder) == before
    return err


@pytest.fixture
def files(tmp_path) -> Path:
    """Weights and task-vector files a user would start from."""
    save_file({"w": torch.zeros(4), "b": torch.zeros(2)}, str(tmp_path / "pre.safetensors"))
    save_file({"w": torch.ones(4), "b": torch.ones(2)}, str(tmp_path / "ft.safetensors"))
    TaskVector({"w": torch.ones(4), "b": torch.ones(2)}, name="t1").save(tmp_path / "tau1.safetensors")
    TaskVector({"w": -torch.ones(4), "b": torch.ones(2)}, name="t2").save(tmp_path / "tau2.safetensors")
    return tmp_path


def build(folder: Path, out) -> list:
    return ["vector", "build", folder / "pre.safetensors", folder / "ft.safetensors", "-o", out]


def merge(folder: Path, out, *extra) -> list:
    return ["vector", "merge", folder / "tau1.safetensors", folder / "tau2.safetensors", "-o", out, *extra]


# ------------------------------------------------- an output is one of the inputs

def test_vector_build_over_its_finetuned_input_is_refused(files, capsys):
    fails_cleanly(files, build(files, files / "ft.safetensors"), capsys, files / "ft.safetensors", "input")


def test_vector_build_over_its_pretrained_input_is_refused(files, capsys):
    fails_cleanly(files, build(files, files / "pre.safetensors"), capsys, files / "pre.safetensors", "input")


def test_vector_build_over_a_hard_link_to_an_input_is_refused(files, capsys):
    os.link(files / "ft.safetensors", files / "alias.safetensors")
    fails_cleanly(files, build(files, files / "alias.safetensors"), capsys, "alias.safetensors", "input")


def test_vector_build_over_a_symlink_to_an_input_is_refused(files, capsys):
    os.symlink(files / "ft.safetensors", files / "link.safetensors")
    fails_cleanly(files, build(files, files / "link.safetensors"), capsys, "link.safetensors", "input")


def test_vector_build_over_an_input_named_another_way_is_refused(files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    fails_cleanly(files, ["vector", "build", "pre.safetensors", "./sub/../ft.safetensors", "-o", "ft.safetensors"],
                  capsys, "ft.safetensors", "input")


def test_vector_merge_over_its_first_input_is_refused(files, capsys):
    fails_cleanly(files, merge(files, files / "tau1.safetensors"), capsys, files / "tau1.safetensors", "input")


def test_vector_merge_over_its_base_is_refused(files, capsys):
    fails_cleanly(files, merge(files, files / "pre.safetensors", "--base", files / "pre.safetensors"), capsys,
                  files / "pre.safetensors", "input")


@pytest.mark.parametrize("target", ["pre.safetensors", "tau1.safetensors"])
def test_vector_apply_over_one_of_its_inputs_is_refused(files, capsys, target):
    fails_cleanly(files, ["vector", "apply", files / "pre.safetensors", files / "tau1.safetensors",
                          "-o", files / target], capsys, files / target, "input")


# ------------------------------------------------------ outputs that cannot be written

def test_output_that_is_a_directory_is_refused_and_leaves_no_temp_file(files, capsys):
    (files / "outdir").mkdir()
    fails_cleanly(files, build(files, files / "outdir"), capsys, files / "outdir", "is a directory")


def test_output_under_a_regular_file_is_refused(files, capsys):
    (files / "plain").write_text("x")
    fails_cleanly(files, build(files, files / "plain" / "tau.safetensors"), capsys, files / "plain",
                  "not a folder")


def test_merge_output_that_is_a_directory_is_refused(files, capsys):
    (files / "m").mkdir()
    fails_cleanly(files, merge(files, files / "m"), capsys, files / "m", "is a directory")


def test_apply_output_under_a_regular_file_is_refused(files, capsys):
    fails_cleanly(files, ["vector", "apply", files / "pre.safetensors", files / "tau1.safetensors",
                          "-o", files / "tau2.safetensors" / "x.safetensors"], capsys, "tau2.safetensors",
                  "not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_in_a_read_only_folder_is_refused(files, capsys):
    ro = files / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        fails_cleanly(files, build(files, ro / "tau.safetensors"), capsys, ro, "not writable")
    finally:
        ro.chmod(0o755)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    from tvcore.errors import OutputError
    from tvcore.outputs import atomic_write

    target = tmp_path / "keep.json"
    target.write_text("old")
    before = snapshot(tmp_path)
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the work failed half way")
    assert snapshot(tmp_path) == before
    with pytest.raises(OutputError, match="cannot write"):
        with atomic_write(tmp_path / "new" / "deep" / "x.json") as tmp:
            raise OSError(28, "No space left on device")
    assert snapshot(tmp_path) == before  # the folders made for it are gone too


def test_json_that_cannot_be_written_creates_nothing(tmp_path):
    from tvcore.results import write_json

    with pytest.raises(TypeError):
        write_json({"x": object()}, tmp_path / "r.json")
    assert snapshot(tmp_path) == {}


# ------------------------------------------------------------- run options

@pytest.fixture
def run_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path


RUN_CASES = {
    "results-dir-is-a-file": (["--results-dir", "a-file"], ["a-file", "not a folder"]),
    "results-dir-under-a-file": (["--results-dir", "a-file/results"], ["a-file", "not a folder"]),
    "unknown-suite": (None, ["no-such-suite", "unknown suite"]),
    "workers-negative": (["--workers", "-1"], ["--workers -1"]),
    "finetuned-missing": (["--finetuned", "nowhere"], ["nowhere", "does not exist"]),
    "finetuned-is-a-file": (["--finetuned", "a-file"], ["a-file", "not a folder"]),
    "pool-is-a-file": (["--pool", "a-file"], ["a-file", "not a folder"]),
    "device-unknown": (["--device", "tpu"], ["--device tpu"]),
    "weights-is-a-directory": (["--weights", "."], ["--weights .", "directory"]),
    "data-root-is-a-file": (["--data-root", "a-file"], ["a-file", "not a folder"]),
}


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_run_refuses_bad_options_before_running(run_dir, capsys, case):
    extra, names = RUN_CASES[case]
    argv = ["run", "no-such-suite"] if extra is None else ["run", "negation-micro", *extra]
    fails_cleanly(run_dir, argv, capsys, *names)


def test_run_refuses_a_result_path_that_is_a_directory(run_dir, capsys):
    (run_dir / "results" / "negation-micro.json").mkdir(parents=True)
    fails_cleanly(run_dir, ["run", "negation-micro"], capsys, "negation-micro.json", "is a directory")


def test_run_on_cuda_without_cuda_is_one_line(run_dir, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    fails_cleanly(run_dir, ["run", "negation-micro", "--device", "cuda"], capsys, "--device cuda",
                  "CUDA is not available")


# ------------------------------------------------------------- merge options

@pytest.mark.parametrize("extra, names", [
    (["--weights", "1", "2", "3"], ["--weights", "3 weights for 2"]),
    (["--method", "ties", "--density", "0"], ["--density 0"]),
    (["--method", "dare", "--drop", "1"], ["--drop 1"]),
    (["--method", "ties", "--weights", "1", "-1"], ["--weights 1 -1", "positive"]),
], ids=["weights-count", "density-zero", "drop-one", "ties-negative-weight"])
def test_merge_refuses_bad_options(files, capsys, extra, names):
    fails_cleanly(files, merge(files, files / "m.safetensors", *extra), capsys, *names)


def test_apply_with_a_nan_coefficient_is_one_line(files, capsys):
    fails_cleanly(files, ["vector", "apply", files / "pre.safetensors", files / "tau1.safetensors",
                          "--alpha", "nan", "-o", files / "out.safetensors"], capsys, "nan")


# ------------------------------------------------ safetensors headers (streaming reader)

def raw_safetensors(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


F32_4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
META = {"__metadata__": {"format": "tvcore.task_vector", "format_version": "1"}}
HEADERS = {
    "header-is-a-list": ([1, 2], b"", "JSON list, not an object"),
    "header-is-a-string": ("w", b"", "JSON str, not an object"),
    "header-not-json": (b"{not json", b"", "not JSON"),
    "entry-without-dtype": ({"w": {"shape": [4], "data_offsets": [0, 16]}}, bytes(16), "'w' has no dtype"),
    "entry-not-an-object": ({"w": [0, 16]}, bytes(16), "'w' is not an object"),
    "unknown-dtype": ({"w": {**F32_4, "dtype": "F33"}}, bytes(16), "unsupported dtype 'F33'"),
    "shape-disagrees-with-bytes": ({"w": {**F32_4, "shape": [5]}}, bytes(16), "needs 20 bytes"),
    "negative-shape": ({"w": {**F32_4, "shape": [-4]}}, bytes(16), "not a list of sizes"),
    "offsets-past-the-end": ({"w": F32_4}, bytes(8), "ends past the data section"),
    "offsets-not-numbers": ({"w": {**F32_4, "data_offsets": ["0", "16"]}}, bytes(16), "data_offsets"),
    "offsets-reversed": ({"w": {**F32_4, "data_offsets": [16, 0]}}, bytes(16), "begin <= end"),
    "overlapping-tensors": ({"w": F32_4, "v": F32_4}, bytes(16), "overlap"),
    "metadata-not-strings": ({"__metadata__": {"format": 1}, "w": F32_4}, bytes(16), "__metadata__"),
}


@pytest.mark.parametrize("case", sorted(HEADERS))
def test_merge_refuses_a_malformed_header(files, capsys, case):
    header, data, why = HEADERS[case]
    if isinstance(header, dict) and case != "metadata-not-strings":
        header = {**META, **header}
    bad = raw_safetensors(files / "bad.safetensors", header, data)
    fails_cleanly(files, ["vector", "merge", bad, files / "tau1.safetensors", "-o", files / "m.safetensors"],
                  capsys, bad, why)


def test_merge_refuses_a_header_longer_than_the_file(files, capsys):
    bad = raw_safetensors(files / "bad.safetensors", {**META, "w": F32_4}, bytes(16), length=10**6)
    fails_cleanly(files, ["vector", "merge", bad, bad, "-o", files / "m.safetensors"], capsys, bad,
                  "does not fit a file")


def test_merge_refuses_a_file_too_short_for_a_header(files, capsys):
    (files / "short.safetensors").write_bytes(b"abc")
    fails_cleanly(files, merge(files, files / "m.safetensors", "--base", files / "short.safetensors"), capsys,
                  "short.safetensors", "too short")


def test_merge_of_a_directory_says_directory(files, capsys):
    (files / "vectors").mkdir()
    fails_cleanly(files, ["vector", "merge", files / "vectors", "-o", files / "m.safetensors"], capsys,
                  files / "vectors", "is a directory")


# ------------------------------------------------------------- checkpoint diagnoses

def test_truncated_pt_is_truncated_not_a_pickled_module(files, capsys):
    torch.save({"w": torch.ones(4), "b": torch.ones(2)}, files / "whole.pt")
    raw = (files / "whole.pt").read_bytes()
    (files / "half.pt").write_bytes(raw[: len(raw) // 2])
    (files / "whole.pt").unlink()
    err = fails_cleanly(files, build(files, files / "t.safetensors")[:3] + [files / "half.pt", "-o",
                                                                             files / "t.safetensors"],
                        capsys, files / "half.pt", "truncated or corrupt")
    assert "nn.Module" not in err


def test_pt_with_a_pickled_module_is_still_diagnosed_as_one(files, capsys):
    torch.save(torch.nn.Linear(2, 2), files / "module.pt")
    fails_cleanly(files, ["vector", "build", files / "pre.safetensors", files / "module.pt", "-o",
                          files / "t.safetensors"], capsys, files / "module.pt", "other than tensors")


def test_pt_holding_a_list_is_not_a_state_dict(files, capsys):
    torch.save([torch.ones(2)], files / "list.pt")
    fails_cleanly(files, ["vector", "build", files / "pre.safetensors", files / "list.pt", "-o",
                          files / "t.safetensors"], capsys, files / "list.pt", "holds a list")


def test_empty_weights_file_is_empty(files, capsys):
    (files / "empty.pt").write_bytes(b"")
    fails_cleanly(files, ["vector", "build", files / "pre.safetensors", files / "empty.pt", "-o",
                          files / "t.safetensors"], capsys, files / "empty.pt", "empty")


def test_truncated_safetensors_checkpoint_is_unreadable(files, capsys):
    raw = (files / "ft.safetensors").read_bytes()
    (files / "cut.safetensors").write_bytes(raw[:-8])
    fails_cleanly(files, ["vector", "build", files / "pre.safetensors", files / "cut.safetensors", "-o",
                          files / "t.safetensors"], capsys, files / "cut.safetensors", "not a readable")


def test_directory_given_as_a_checkpoint_says_directory(files, capsys):
    (files / "ckpt").mkdir()
    fails_cleanly(files, ["vector", "build", files / "ckpt", files / "ft.safetensors", "-o",
                          files / "t.safetensors"], capsys, files / "ckpt", "is a directory")


def test_missing_checkpoint_says_not_found(files, capsys):
    fails_cleanly(files, build(files, files / "t.safetensors")[:3] + [files / "gone.safetensors", "-o",
                                                                       files / "t.safetensors"],
                  capsys, files / "gone.safetensors", "not found")


def test_checkpoint_of_an_unknown_format_is_named(files, capsys):
    (files / "weights.txt").write_text("0 0 0")
    fails_cleanly(files, ["vector", "build", files / "weights.txt", files / "ft.safetensors", "-o",
                          files / "t.safetensors"], capsys, files / "weights.txt", "unknown weights format")


# ------------------------------------------------------------------- Mini-DDSM sheets

@pytest.fixture
def ddsm(tmp_path) -> Path:
    from fixtures.fake_trees import make_mini_ddsm_tree

    return make_mini_ddsm_tree(tmp_path / "mddsm", {1: 2, 2: 2, 3: 2, 4: 2}, images_per_case=1,
                               density0_cases=1, sheet="csv")


def edit_sheet(root: Path, column: str, value, row: int = 0) -> Path:
    import pandas as pd

    sheet = root / "DataWMask.csv"
    df = pd.read_csv(sheet, dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(sheet, index=False)
    return sheet


@pytest.mark.parametrize("value, why", [("2.5", "value 2.5 is not an integer"), ("x", "value 'x' is not an integer"),
                                        ("", "Density is empty"), ("7", "value 7 is not one of 0..4"),
                                        ("-1", "value -1 is not one of")],
                         ids=["fraction", "text", "empty", "too-high", "negative"])
def test_mini_ddsm_density_must_be_an_integer_in_range(ddsm, capsys, value, why):
    sheet = edit_sheet(ddsm, "Density", value, row=3)
    fails_cleanly(ddsm.parent, ["data", "summary", "mini-ddsm", "--root", ddsm, "--protocol", "all"], capsys,
                  sheet, "row 5: Density", why)


def test_mini_ddsm_status_must_be_a_known_status(ddsm, capsys):
    sheet = edit_sheet(ddsm, "Status", "Maybe", row=0)
    fails_cleanly(ddsm.parent, ["data", "summary", "mini-ddsm", "--root", ddsm, "--protocol", "all",
                                "--label", "status"], capsys, sheet, "row 2: Status value 'Maybe'")


def test_mini_ddsm_sheet_without_a_required_column_is_named(ddsm, capsys):
    import pandas as pd

    sheet = ddsm / "DataWMask.csv"
    pd.read_csv(sheet).drop(columns=["Density"]).to_csv(sheet, index=False)
    fails_cleanly(ddsm.parent, ["data", "summary", "mini-ddsm", "--root", ddsm], capsys, sheet, "Density")


def test_mini_ddsm_root_that_is_a_file_says_file(tmp_path, capsys):
    (tmp_path / "root.zip").write_bytes(b"PK")
    fails_cleanly(tmp_path, ["data", "summary", "mini-ddsm", "--root", tmp_path / "root.zip"], capsys,
                  tmp_path / "root.zip", "is a file, not a folder")


def test_unknown_dataset_is_named(tmp_path, capsys):
    fails_cleanly(tmp_path, ["data", "summary", "no-such-data", "--root", tmp_path], capsys, "no-such-data")


# ------------------------------------------------------------- records and compare

def rec(suite="negation-micro", hashes=None, **values):
    return {"suite": suite, "split_hashes": hashes or {"digits/rot90:test": "aa"},
            "metrics": {k: {"value": v, "total": 200, "correct": int(v * 200)} for k, v in values.items()}}


@pytest.fixture
def records(tmp_path) -> Path:
    (tmp_path / "a.json").write_text(json.dumps(rec(acc=0.5)))
    return tmp_path


BAD_RECORDS = {
    "no-metrics": ({"suite": "negation-micro"}, "no 'metrics'"),
    "empty-metrics": (rec(), "'metrics' is empty"),
    "metrics-not-an-object": ({"metrics": [0.5]}, "'metrics' is a JSON list, not an object"),
    "metric-without-total": ({"metrics": {"acc": {"value": 0.5}}}, "'acc' has no 'total'"),
    "metric-value-out-of-range": (rec(acc=1.5), "value 1.5"),
    "metric-value-a-string": ({"metrics": {"acc": {"value": "0.5", "total": 9}}}, "value '0.5'"),
    "record-is-a-list": ([1, 2], "JSON list, not an object"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_compare_refuses_a_record_that_breaks_the_schema(records, capsys, case):
    data, why = BAD_RECORDS[case]
    (records / "b.json").write_text(json.dumps(data))
    fails_cleanly(records, ["compare", records / "a.json", records / "b.json"], capsys, records / "b.json", why)


def test_compare_refuses_a_record_that_is_not_json(records, capsys):
    (records / "b.json").write_text("{")
    fails_cleanly(records, ["compare", records / "a.json", records / "b.json"], capsys, "b.json", "not valid JSON")


def test_compare_refuses_a_missing_record(records, capsys):
    fails_cleanly(records, ["compare", records / "a.json", records / "nope.json"], capsys, "nope.json",
                  "no such record")


def test_compare_refuses_a_directory(records, capsys):
    fails_cleanly(records, ["compare", records, records / "a.json"], capsys, records, "is a directory")


def test_compare_refuses_records_of_different_suites(records, capsys):
    (records / "b.json").write_text(json.dumps(rec("addition-micro", acc=0.5)))
    fails_cleanly(records, ["compare", records / "a.json", records / "b.json"], capsys, "'negation-micro'",
                  "'addition-micro'", "--allow-different-data")


def test_compare_refuses_records_of_different_test_sets(records, capsys):
    (records / "b.json").write_text(json.dumps(rec(hashes={"digits/rot90:test": "bb"}, acc=0.5)))
    fails_cleanly(records, ["compare", records / "a.json", records / "b.json"], capsys, "digits/rot90:test",
                  "--allow-different-data")


def test_compare_of_different_data_runs_when_allowed(records, capsys):
    (records / "b.json").write_text(json.dumps(rec("addition-micro", hashes={"x:test": "bb"}, acc=0.5)))
    # Judged as two independent samples (other images): 200 of them cannot show one point.
    assert main(["compare", str(records / "a.json"), str(records / "b.json"), "--allow-different-data"]) == 3
    out = capsys.readouterr().out
    assert "two-sample" in out and out.splitlines()[-1].startswith("inconclusive: of 1 metrics")


# --------------------------------------------------------------- baselines and the gate

def gate_in_a_session(tmp_path, baseline) -> str:
    """Gate a measured run against ``baseline`` (written as a file) the way the
    plugin does; return the failure message."""
    from tvcore.pytest_plugin import CaseRun, Options, Runs

    folder = tmp_path / "baselines"
    folder.mkdir(exist_ok=True)
    path = folder / "c.json"
    path.write_text(baseline if isinstance(baseline, str) else json.dumps(baseline))
    runs = Runs(Options("cpu", None, None, False, tmp_path / "results", folder, 1))
    before = snapshot(tmp_path)
    with pytest.raises(pytest.fail.Exception) as info:
        runs.gate(CaseRun("c", 0, dict(rec(acc=0.5), case="c"), tmp_path / "r.json", 1.0))
    assert snapshot(tmp_path) == before
    assert not info.value.pytrace
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


@pytest.mark.parametrize("baseline, why", [
    ({"format": "tvcore.baseline/1", "metrics": {}}, "'metrics' is empty"),
    ({"format": "tvcore.baseline/1"}, "no 'metrics'"),
    ({"metrics": {"acc": {"value": 0.5}}}, "'acc' has no 'tolerance'"),
    ({"metrics": {"acc": {"value": 0.5, "tolerance": 0.1, "better": "up"}}}, "better 'up'"),
    ("[]", "not an object"),
    ("not json", "not valid JSON"),
], ids=["empty-metrics", "no-metrics", "no-tolerance", "bad-direction", "a-list", "not-json"])
def test_gate_fails_on_a_baseline_that_gates_nothing(tmp_path, baseline, why):
    assert why in gate_in_a_session(tmp_path, baseline)


# ------------------------------------------------------------------ the pytest plugin

@pytest.mark.parametrize("args, why", [
    (["--results-dir", "a-file"], "--results-dir a-file is a file"),
    (["--workers", "-1"], "--workers -1"),
    (["--update-baselines", "--baselines-dir", "a-file"], "--baselines-dir a-file is a file"),
], ids=["results-dir-a-file", "workers-negative", "baselines-dir-a-file"])
def test_plugin_refuses_bad_options_before_running_anything(pytester, args, why):
    pytester.makefile("", **{"a-file": "not a folder"})
    pytester.makepyfile("def test_x():\n    open('ran', 'w').close()\n")
    before = snapshot(pytester.path)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([f"*{why}*"])
    assert "Traceback" not in res.stderr.str()
    # The test never ran and nothing was written (pytester keeps its own logs and temp folder).
    ours = {k: v for k, v in snapshot(pytester.path).items()
            if not k.startswith("runpytest") and k not in ("stdout", "stderr")}
    assert ours == before


# -------------------------------------------------------------- bugs keep their traceback

def test_a_bug_is_not_swallowed_as_a_user_error(files, monkeypatch):
    import tvcore.vectors

    def broken(*args, **kwargs):
        raise KeyError("a bug in tvcore, not a user's mistake")

    monkeypatch.setattr(tvcore.vectors.TaskVector, "from_checkpoints", broken)
    with pytest.raises(KeyError):
        main([str(a) for a in build(files, files / "t.safetensors")])
