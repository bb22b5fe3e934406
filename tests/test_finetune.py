"""Fine-tuning a tiny OpenCLIP-architecture model on CPU: learning, determinism, resume."""

from __future__ import annotations

import math

import pytest
import torch

from tvcore import data
from tvcore.data.loaders import eval_loader, train_dataset
from tvcore.evaluate import evaluate
from tvcore.finetune import RECIPES, Recipe, finetune, lr_at
from tvcore.models import classifier

RECIPE = Recipe(lr=1e-3, batch_size=32, steps=12, warmup_steps=3, seed=7)


@pytest.fixture(scope="module")
def digits_task():
    return data.load("digits")


@pytest.fixture(scope="module")
def pixel_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("pixels")


@pytest.fixture(scope="module")
def train_set(digits_task, tiny_model, pixel_cache):
    return train_dataset(digits_task["train"], tiny_model.preprocess_train, tiny_model.preprocess_val,
                         augment=False, seed=RECIPE.seed, cache_dir=pixel_cache)


def fresh_classifier(tiny_model, task, tmp_path_factory):
    return classifier(tiny_model, task.class_names, task.templates, cache_dir=tmp_path_factory.getbasetemp() / "heads")


def run(tiny_model, task, train_set, tmp_path_factory, **kw):
    clf = fresh_classifier(tiny_model, task, tmp_path_factory)
    result = finetune(clf, train_set, kw.pop("recipe", RECIPE), progress=False, **kw)
    return clf, result


def test_two_runs_give_identical_weights_and_metrics(tiny_model, digits_task, train_set, tmp_path_factory,
                                                     pixel_cache):
    test = eval_loader(digits_task["test"], tiny_model.preprocess_val, batch_size=128, cache_dir=pixel_cache)
    clf_a, a = run(tiny_model, digits_task, train_set, tmp_path_factory)
    clf_b, b = run(tiny_model, digits_task, train_set, tmp_path_factory)
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert [r["loss"] for r in a.log] == [r["loss"] for r in b.log]
    ma, mb = evaluate(clf_a, test, digits_task.class_names), evaluate(clf_b, test, digits_task.class_names)
    assert ma.as_dict() == mb.as_dict()


def test_training_changes_only_the_encoder_and_lowers_the_loss(tiny_model, digits_task, train_set, tmp_path_factory):
    clf = fresh_classifier(tiny_model, digits_task, tmp_path_factory)
    head_before = clf.head.weight.clone()
    enc_before = {k: v.clone() for k, v in clf.image_encoder.state_dict().items()}
    result = finetune(clf, train_set, RECIPE.with_(steps=40), progress=False)
    assert torch.equal(clf.head.weight, head_before)
    assert any(not torch.equal(enc_before[k], v) for k, v in result.state_dict.items())
    first, last = result.log[0]["loss"], sum(r["loss"] for r in result.log[-5:]) / 5
    assert last < first


def test_resume_gives_the_same_weights_as_an_unbroken_run(tiny_model, digits_task, train_set, tmp_path_factory,
                                                          tmp_path):
    _, unbroken = run(tiny_model, digits_task, train_set, tmp_path_factory)
    _, part = run(tiny_model, digits_task, train_set, tmp_path_factory, checkpoint_dir=tmp_path,
                  checkpoint_every=4, stop_after=6)
    assert part.steps == 6 and (tmp_path / "last.safetensors").is_file()
    _, resumed = run(tiny_model, digits_task, train_set, tmp_path_factory, checkpoint_dir=tmp_path,
                     checkpoint_every=4)
    assert resumed.resumed_from == 6 and resumed.steps == RECIPE.steps
    assert all(torch.equal(unbroken.state_dict[k], resumed.state_dict[k]) for k in unbroken.state_dict)
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in unbroken.log]


def test_resume_refuses_a_checkpoint_of_another_recipe(tiny_model, digits_task, train_set, tmp_path_factory,
                                                       tmp_path):
    run(tiny_model, digits_task, train_set, tmp_path_factory, checkpoint_dir=tmp_path, stop_after=2)
    with pytest.raises(ValueError, match="another recipe"):
        run(tiny_model, digits_task, train_set, tmp_path_factory, checkpoint_dir=tmp_path,
            recipe=RECIPE.with_(lr=5e-4))


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    r = Recipe(lr=1.0, warmup_steps=4, steps=12)
    assert [lr_at(s, r, 12) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, r, 12) == pytest.approx(1.0)
    assert lr_at(8, r, 12) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(12, r, 12) == pytest.approx(0.0)


def test_named_recipes():
    assert RECIPES["paper"] == Recipe(lr=1e-5, weight_decay=0.1, batch_size=128, steps=2000, warmup_steps=200,
                                      grad_clip=1.0, augment=True)  # the model's train transform, as the paper's code
    seed = RECIPES["birads-seed"]
    assert (seed.epochs, seed.batch_size) == (5, 16)
    assert seed.total_steps(2700) == 5 * math.ceil(2700 / 16)


def test_empty_training_set_is_refused(tiny_model, digits_task, tmp_path_factory):
    empty = torch.utils.data.TensorDataset(torch.zeros(0, 3, 32, 32), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty training set"):
        finetune(fresh_classifier(tiny_model, digits_task, tmp_path_factory), empty, RECIPE, progress=False)


def test_augmented_training_is_seeded_by_step_and_resumes_exactly(tiny_model, digits_task, tmp_path_factory,
                                                                  tmp_path):
    recipe = RECIPE.with_(steps=4, augment=True)
    train = train_dataset(digits_task["train"], tiny_model.preprocess_train, tiny_model.preprocess_val,
                          augment=True, seed=recipe.seed)
    _, a = run(tiny_model, digits_task, train, tmp_path_factory, recipe=recipe)
    _, b = run(tiny_model, digits_task, train, tmp_path_factory, recipe=recipe)
    _, part = run(tiny_model, digits_task, train, tmp_path_factory, recipe=recipe, checkpoint_dir=tmp_path,
                  stop_after=2)
    _, resumed = run(tiny_model, digits_task, train, tmp_path_factory, recipe=recipe, checkpoint_dir=tmp_path)
    for k in a.state_dict:
        assert torch.equal(a.state_dict[k], b.state_dict[k]) and torch.equal(a.state_dict[k], resumed.state_dict[k])


def test_a_plain_dataset_of_tensors_is_still_accepted(tiny_model, digits_task, tmp_path_factory):
    gen = torch.Generator().manual_seed(0)
    plain = torch.utils.data.TensorDataset(torch.randn(40, 3, 32, 32, generator=gen),
                                           torch.randint(0, 10, (40,), generator=gen))
    _, result = run(tiny_model, digits_task, plain, tmp_path_factory, recipe=RECIPE.with_(steps=3), workers=2)
    assert result.steps == 3 and all(math.isfinite(r["loss"]) for r in result.log)


# ------------------------------------------------------------ the device path


def test_on_the_cpu_no_speed_feature_applies():
    from tvcore.finetune import Accel, Speed, resolve_speed

    assert resolve_speed(Speed(compile="cudagraphs", log_every=50), torch.device("cpu"), True, 5000) == Accel()


def test_on_cuda_fused_adamw_strict_fused_attention_and_compiled_long_runs():
    from tvcore.finetune import AUTO_COMPILE_MIN_STEPS, Speed, resolve_speed

    cuda = torch.device("cuda")  # resolving touches no device
    long = resolve_speed(Speed(), cuda, True, AUTO_COMPILE_MIN_STEPS)
    short = resolve_speed(Speed(), cuda, False, AUTO_COMPILE_MIN_STEPS - 1)
    assert (long.fused_adamw, long.compile, long.attention, long.resident_pixels) == (True, "cudagraphs", "strict",
                                                                                      True)
    assert (short.compile, short.attention) == ("off", "default")
    assert resolve_speed(Speed(deterministic_attention="math"), cuda, True, 10).attention == "math"


def test_deterministic_mode_leaves_new_memory_unfilled_and_says_so():
    from tvcore.finetune import determinism_flags, seed_everything

    saved = torch.utils.deterministic.fill_uninitialized_memory
    try:
        torch.utils.deterministic.fill_uninitialized_memory = True
        seed_everything(0, deterministic=True)
        assert torch.utils.deterministic.fill_uninitialized_memory is False
        assert determinism_flags()["fill_uninitialized_memory"] is False
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = saved


def test_filling_new_memory_changes_no_weight_of_a_fine_tune(tiny_model, digits_task, train_set, tmp_path_factory,
                                                             monkeypatch):
    """Nothing in a fine-tune reads memory before writing it: with torch's NaN fill
    of every new tensor back on, the weights are bitwise the same."""
    import tvcore.finetune as ft

    _, unfilled = run(tiny_model, digits_task, train_set, tmp_path_factory)
    seed = ft.seed_everything

    def seed_and_fill(*args, **kwargs):
        seed(*args, **kwargs)
        torch.utils.deterministic.fill_uninitialized_memory = True

    monkeypatch.setattr(ft, "seed_everything", seed_and_fill)
    try:
        _, filled = run(tiny_model, digits_task, train_set, tmp_path_factory)
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = False
    assert all(torch.equal(unfilled.state_dict[k], filled.state_dict[k]) for k in unfilled.state_dict)


def test_an_unknown_deterministic_attention_is_refused_in_one_line():
    from tvcore.errors import UsageError
    from tvcore.finetune import Speed

    with pytest.raises(UsageError, match="deterministic attention 'flash' is not one of fused, math"):
        Speed(deterministic_attention="flash")


def strict_mode() -> bool:
    return torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()


def watch_forward(clf, seen: list, refuse: bool = False):
    """Record at each forward whether strict deterministic mode is on; with
    ``refuse``, fail there as PyTorch fails an operation that mode refuses."""
    forward = clf.image_encoder.forward

    def watched(images):
        seen.append(strict_mode())
        if refuse and strict_mode():
            raise RuntimeError("upsample_kernel does not have a deterministic implementation, but you set "
                               "'torch.use_deterministic_algorithms(True)'")
        return forward(images)

    clf.image_encoder.forward = watched


def test_strict_attention_runs_every_step_in_strict_mode_then_restores_the_process_mode(
        tiny_model, digits_task, train_set, tmp_path_factory):
    from tvcore.finetune import Accel

    clf, seen = fresh_classifier(tiny_model, digits_task, tmp_path_factory), []
    watch_forward(clf, seen)
    result = finetune(clf, train_set, RECIPE.with_(steps=3), progress=False, speed=Accel(attention="strict"))
    assert seen == [True] * 3
    assert result.accel["attention"] == "fused (strict deterministic algorithms)"
    assert result.accel["attention_fallback"] is None
    # The process keeps the warn-only mode the run was seeded with (evaluation runs under it).
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()


def test_a_strict_mode_refusal_falls_back_to_math_attention_and_says_so(tiny_model, digits_task, train_set,
                                                                          tmp_path_factory):
    from tvcore.finetune import Accel

    _, math_run = run(tiny_model, digits_task, train_set, tmp_path_factory, speed=Accel(attention="math"))
    clf, seen = fresh_classifier(tiny_model, digits_task, tmp_path_factory), []
    watch_forward(clf, seen, refuse=True)
    refused = finetune(clf, train_set, RECIPE, progress=False, speed=Accel(attention="strict"))
    assert seen[0] is True and not any(seen[1:]) and len(seen) == RECIPE.steps + 1
    assert refused.accel["attention"] == "math (deterministic)"
    assert "does not have a deterministic implementation" in refused.accel["attention_fallback"]
    assert all(torch.equal(math_run.state_dict[k], refused.state_dict[k]) for k in math_run.state_dict)
    assert refused.log == math_run.log


def test_a_strict_mode_refusal_in_a_compiled_run_compiles_again_under_math(tiny_model, digits_task, train_set,
                                                                           tmp_path_factory, monkeypatch):
    from tvcore.finetune import Accel

    compiled = []

    def recording_compile(fn, **kw):
        compiled.append(strict_mode())
        return fn

    monkeypatch.setattr(torch, "compile", recording_compile)
    clf, seen = fresh_classifier(tiny_model, digits_task, tmp_path_factory), []
    watch_forward(clf, seen, refuse=True)
    result = finetune(clf, train_set, RECIPE.with_(steps=2), progress=False,
                      speed=Accel(attention="strict", compile="compile"))
    assert len(compiled) == 2  # the strict graph, then the math one
    assert result.accel["compile"] == "compile" and result.accel["compile_fallback"] is None
    assert result.accel["attention"] == "math (deterministic)"


def test_a_cpu_run_records_the_default_optimizer_eager_and_the_loader(tiny_model, digits_task, train_set,
                                                                      tmp_path_factory):
    _, result = run(tiny_model, digits_task, train_set, tmp_path_factory, recipe=RECIPE.with_(steps=2))
    assert result.accel == {"device": "cpu", "optimizer": "AdamW (torch default)", "compile": "off",
                            "compile_asked": "off", "compile_fallback": None, "attention": "default",
                            "attention_fallback": None, "pixels": "loader", "autocast": "off", "log_every": 1}


def test_the_log_read_every_k_steps_equals_the_log_read_every_step(tiny_model, digits_task, train_set,
                                                                    tmp_path_factory):
    from tvcore.finetune import Accel

    _, every = run(tiny_model, digits_task, train_set, tmp_path_factory)
    _, batched = run(tiny_model, digits_task, train_set, tmp_path_factory, speed=Accel(log_every=5))
    assert batched.log == every.log and len(batched.log) == RECIPE.steps
    assert all(torch.equal(every.state_dict[k], batched.state_dict[k]) for k in every.state_dict)


def test_pixels_held_on_the_device_give_the_loaders_batches(tiny_model, digits_task, train_set, tmp_path_factory):
    from tvcore.finetune import Accel

    _, loader = run(tiny_model, digits_task, train_set, tmp_path_factory)
    _, resident = run(tiny_model, digits_task, train_set, tmp_path_factory, speed=Accel(resident_pixels=True))
    assert resident.accel["pixels"] == "device-resident uint8" and loader.accel["pixels"] == "loader"
    assert all(torch.equal(loader.state_dict[k], resident.state_dict[k]) for k in loader.state_dict)


def test_a_compiler_failure_falls_back_to_eager_and_says_so(tiny_model, digits_task, train_set, tmp_path_factory,
                                                            monkeypatch):
    from tvcore.finetune import Accel

    _, eager = run(tiny_model, digits_task, train_set, tmp_path_factory)

    def broken_compile(fn, **kw):
        def compiled(*a, **k):
            raise RuntimeError("backend exploded")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    _, fell_back = run(tiny_model, digits_task, train_set, tmp_path_factory, speed=Accel(compile="compile"))
    assert fell_back.accel["compile"] == "off" and fell_back.accel["compile_asked"] == "compile"
    assert "backend exploded" in fell_back.accel["compile_fallback"]
    assert all(torch.equal(eager.state_dict[k], fell_back.state_dict[k]) for k in eager.state_dict)


def test_fused_adamw_takes_the_same_steps_within_rounding(tiny_model, digits_task, train_set, tmp_path_factory):
    """Fused AdamW (CUDA's) is the same update in another order of operations: its
    weights differ from the default's by rounding, not by the update itself."""
    from tvcore.finetune import Accel

    start = fresh_classifier(tiny_model, digits_task, tmp_path_factory).image_encoder.state_dict()
    _, default = run(tiny_model, digits_task, train_set, tmp_path_factory, recipe=RECIPE.with_(steps=4))
    _, fused = run(tiny_model, digits_task, train_set, tmp_path_factory, recipe=RECIPE.with_(steps=4),
                   speed=Accel(fused_adamw=True))
    assert fused.accel["optimizer"] == "AdamW fused"
    flat = lambda state: torch.cat([v.reshape(-1).double() for v in state.values()])  # noqa: E731
    moved = (flat(default.state_dict) - flat(start)).norm()
    assert moved > 0 and (flat(fused.state_dict) - flat(default.state_dict)).norm() < 1e-3 * moved


def test_workers_start_without_fork_while_the_reader_thread_runs(tiny_model, digits_task, tmp_path_factory,
                                                                 pixel_cache, monkeypatch):
    """A fork beside a live thread can copy a held lock into the child (Python 3.12
    warns "use of fork() may lead to deadlocks"); workers come from a forkserver."""
    import os
    import threading
    import warnings

    forks = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    test = eval_loader(digits_task["test"], tiny_model.preprocess_val, batch_size=64, cache_dir=pixel_cache)
    reading = test.raw()
    next(reading)  # the reader thread is now alive, a batch ahead
    assert any(t.name.startswith("tvcore-read") for t in threading.enumerate())
    augmented = train_dataset(digits_task["train"], tiny_model.preprocess_train, tiny_model.preprocess_val,
                              augment=True, seed=RECIPE.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, result = run(tiny_model, digits_task, augmented, tmp_path_factory, recipe=RECIPE.with_(steps=2, augment=True),
                        workers=1)
    reading.close()
    assert result.steps == 2 and forks == []
    assert not [w for w in caught if "fork()" in str(w.message)]


def test_training_datasets_survive_pickling_for_worker_processes(tiny_model, digits_task, train_set):
    import pickle

    augmented = train_dataset(digits_task["train"], tiny_model.preprocess_train, tiny_model.preprocess_val,
                              augment=True, seed=RECIPE.seed)
    for dataset in (augmented, train_set):
        copy = pickle.loads(pickle.dumps(dataset))
        image, label = copy[(3, 5)]
        expected_image, expected_label = dataset[(3, 5)]
        assert label == expected_label and torch.equal(image, expected_image)
