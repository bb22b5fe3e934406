"""Evaluation's arithmetic: fp32 on the CPU (the committed baselines), bf16 autocast
on CUDA by default, and the two agreeing within what the test set resolves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tvcore.data import micro
from tvcore.data.loaders import eval_loader
from tvcore.errors import UsageError
from tvcore.evaluate import eval_precision, run_classifier
from tvcore.evaluator import CPU_BATCH, eval_batch_size
from tvcore.experiments.common import TINY
from tvcore.models import classifier
from tvcore.results import sampling_floor


@pytest.fixture(scope="module")
def upright(tmp_path_factory):
    """The embedded pre-trained tiny model's classifier on upright digits, and the test batches."""
    loaded = TINY.load("cpu")
    task = micro.domain_task("upright")
    clf = classifier(loaded, task.class_names, task.templates, cache_dir=tmp_path_factory.mktemp("heads"))
    test = eval_loader(task["test"], loaded.preprocess_val, batch_size=128,
                       cache_dir=tmp_path_factory.mktemp("pixels"))
    return clf, test


def test_auto_is_bf16_on_cuda_and_fp32_elsewhere():
    assert eval_precision("auto", "cuda") == "bf16"
    assert eval_precision("auto", "cpu") == "fp32"
    assert eval_precision("fp32", "cuda") == "fp32"


def test_an_unknown_precision_is_a_usage_error():
    with pytest.raises(UsageError, match="fp16.*fp32"):
        eval_precision("fp16", "cpu")


def test_cpu_evaluation_keeps_its_batch_of_256():
    assert eval_batch_size("cpu") == CPU_BATCH == 256


def test_bf16_autocast_really_changes_the_arithmetic(upright):
    clf, test = upright
    _, fp32 = run_classifier(clf, test, logits=True, precision="fp32")
    _, bf16 = run_classifier(clf, test, logits=True, precision="bf16")
    assert fp32.dtype == bf16.dtype == np.float32 and not np.array_equal(fp32, bf16)


def test_bf16_and_fp32_accuracy_agree_within_the_test_set_floor(upright):
    clf, test = upright
    labels, fp32 = run_classifier(clf, test, precision="fp32")
    labels_b, bf16 = run_classifier(clf, test, precision="bf16")
    assert np.array_equal(labels, labels_b)
    acc32, acc16 = float((fp32 == labels).mean()), float((bf16 == labels).mean())
    assert acc32 > 0.8  # the pre-trained tiny model reads upright digits
    assert abs(acc32 - acc16) <= sampling_floor([acc32], [len(labels)])


def test_default_cpu_evaluation_is_fp32(upright):
    clf, test = upright
    _, default = run_classifier(clf, test, logits=True)
    _, fp32 = run_classifier(clf, test, logits=True, precision="fp32")
    assert np.array_equal(default, fp32)


def test_the_record_says_which_precision_ran():
    from tvcore.experiments import Context
    from tvcore.finetune import Recipe

    ctx = Context(TINY, Recipe(), progress=False, eval_precision="bf16")
    assert ctx.describe()["evaluation"] == {"precision": "bf16", "batch_size": CPU_BATCH, "device": "cpu"}


def test_tvcore_eval_records_the_precision_asked_for(tmp_path, capsys):
    import json

    from tvcore.cli import main

    code = main(["eval", "digits/upright", "--arch", TINY.arch, "--weights", TINY.pretrained, "--precision", "bf16",
                 "--workers", "0", "--quiet", "--results-dir", str(tmp_path)])
    (path,) = tmp_path.glob("eval-digits-upright-test-*.json")  # named after the model evaluated
    record = json.loads(path.read_text())
    assert code == 0 and record["context"]["evaluation"]["precision"] == "bf16"
