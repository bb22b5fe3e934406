"""The persistent model pool: fine-tuned encoders are written as they finish, reused
on a rerun, resumed after a crash, and keyed by everything that decides them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A negation run over two embedded domains, long enough (100 steps, a checkpoint
# every 10) that a SIGKILL lands inside the second fine-tune.
SCRIPT = textwrap.dedent("""
    import json, sys
    from tvcore.experiments import Suite, run_suite
    from tvcore.experiments.common import TINY, Context
    from tvcore.experiments.negation import NegationConfig
    from tvcore.finetune import Recipe

    pool, out = sys.argv[1], sys.argv[2]
    recipe = Recipe(lr=1e-3, batch_size=16, steps=100, warmup_steps=10)
    suite = Suite("negation-crash", "negation",
                  NegationConfig(["digits/rot90", "digits/mirror"], "digits/upright", lambdas=[0.0, 0.5, 1.0],
                                 controls=False),
                  TINY, recipe)
    ctx = Context(TINY, recipe, progress=False, pool_dir=pool, checkpoint_every=10)
    record = run_suite(suite, ctx)
    open(out, "w").write(json.dumps({"metrics": record["metrics"], "vectors": record["context"]["vectors"]}))
""")


def _start(tmp_path: Path, pool: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "TVCORE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(pool), str(out)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]


def test_a_suite_killed_during_its_second_finetune_resumes_to_the_same_record(tmp_path):
    unbroken = tmp_path / "unbroken.json"
    _finish(_start(tmp_path, tmp_path / "pool-a", unbroken))

    pool = tmp_path / "pool-b"
    proc = _start(tmp_path, pool, tmp_path / "never.json")
    second = pool / "digits-mirror"
    deadline = time.monotonic() + 300
    while not list(second.glob("*/checkpoint/last.safetensors")):
        assert proc.poll() is None, "the run ended before its second fine-tune wrote a checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((pool / "digits-rot90").glob("*/encoder.safetensors")), "the first encoder was not kept"
    assert not list(second.glob("*/encoder.safetensors"))

    resumed = tmp_path / "resumed.json"
    _finish(_start(tmp_path, pool, resumed))
    a, b = json.loads(unbroken.read_text()), json.loads(resumed.read_text())
    assert b["metrics"] == a["metrics"]
    assert b["vectors"]["digits/rot90"]["source"] == "pool"
    assert b["vectors"]["digits/mirror"]["source"] == "resumed"
    assert b["vectors"]["digits/mirror"]["resumed_from_step"] > 0
    assert not list(second.glob("*/checkpoint")), "a finished entry keeps no checkpoint"


@pytest.fixture(scope="module")
def tiny_pool_context(tmp_path_factory):
    from tvcore.experiments.common import TINY, Context
    from tvcore.finetune import Recipe

    tmp = tmp_path_factory.mktemp("pool")
    recipe = Recipe(lr=1e-3, batch_size=32, steps=3, warmup_steps=1)
    return lambda **kw: Context(TINY, kw.pop("recipe", recipe), progress=False, pool_dir=str(tmp / "pool"),
                                pixel_cache=str(tmp / "pixels"), head_cache=str(tmp / "heads"), **kw)


def test_a_rerun_reuses_the_pool_and_fresh_retrains(tiny_pool_context):
    first = tiny_pool_context()
    tau = first.vector("digits/rot90")
    assert first.pool.provenance["digits/rot90"]["source"] == "trained"
    again = tiny_pool_context()
    assert torch_equal(again.vector("digits/rot90").state_dict(), tau.state_dict())
    assert again.pool.provenance["digits/rot90"]["source"] == "pool"
    fresh = tiny_pool_context(fresh=True)
    fresh.vector("digits/rot90")
    assert fresh.pool.provenance["digits/rot90"]["source"] == "trained"


def test_the_pool_key_changes_with_the_recipe_seed_and_task(tiny_pool_context):
    ctx = tiny_pool_context()
    key = lambda task, recipe: ctx.pool.key(task, ctx.tasks, recipe)["hash"]  # noqa: E731
    base = key("digits/rot90", ctx.recipe)
    assert key("digits/rot90", ctx.recipe) == base
    assert key("digits/rot90", ctx.recipe.with_(seed=1)) != base
    assert key("digits/rot90", ctx.recipe.with_(lr=2e-3)) != base
    assert key("digits/mirror", ctx.recipe) != base


def test_finetuned_folder_supplies_the_encoders_instead_of_training(tiny_pool_context, tmp_path):
    import torch

    from tvcore.checkpoints import save_state_dict
    from tvcore.errors import CheckpointError

    trained = tiny_pool_context()
    tau = trained.vector("digits/rot90")
    encoder = tau.apply_to(trained.pretrained_state)
    save_state_dict({f"visual.{k}": v for k, v in encoder.items()}, tmp_path / "digits-rot90.safetensors")
    ctx = tiny_pool_context(finetuned=str(tmp_path))
    got = ctx.vector("digits/rot90").state_dict()
    # (pre + tau) - pre is tau up to float rounding
    assert got.keys() == tau.state_dict().keys()
    assert all(torch.allclose(got[k], v, atol=1e-6) for k, v in tau.state_dict().items())
    provenance = ctx.pool.provenance["digits/rot90"]
    assert provenance["source"] == "finetuned" and provenance["set"] == "tvcore"
    assert provenance["path"] == str(tmp_path / "digits-rot90.safetensors")
    with pytest.raises(CheckpointError, match=r"missing digits/mirror \(digits-mirror.safetensors\)"):
        ctx.vector("digits/mirror")


def torch_equal(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ the base model, loaded fast


def test_a_base_loaded_from_a_file_holds_the_files_tensors_and_a_full_builds_buffers(tmp_path):
    """The file's weights are loaded over an uninitialized build (no random init is
    drawn first): every parameter is the file's, every buffer (the causal mask
    included, which no file holds) the one a full build makes."""
    import torch
    from safetensors.torch import save_file

    from tvcore.experiments.common import TINY_CONFIG
    from tvcore.models import load_model

    torch.manual_seed(3)
    built = load_model(str(TINY_CONFIG)).model
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in built.state_dict().items()}, str(path))
    loaded = load_model(str(TINY_CONFIG), str(path), quick_gelu=False).model
    for name, tensors in (("parameter", (built.named_parameters, loaded.named_parameters)),
                          ("buffer", (built.named_buffers, loaded.named_buffers))):
        want, got = dict(tensors[0]()), dict(tensors[1]())
        assert got.keys() == want.keys(), name
        assert all(torch.equal(got[k], want[k]) for k in want), name


def test_building_over_a_weights_file_runs_no_initializer_and_a_random_build_does(tmp_path, monkeypatch):
    """OpenCLIP's initializers and MultiheadAttention's, which it calls by the names
    it imported from torch.nn.init, are all skipped when a file's weights follow."""
    import torch
    import torch.nn.modules.activation as activation
    from safetensors.torch import save_file

    from tvcore.experiments.common import TINY_CONFIG
    from tvcore.models import _INITIALIZERS, load_model

    built = load_model(str(TINY_CONFIG)).model
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in built.state_dict().items()}, str(path))
    calls = []

    def counting(module, name):
        def initializer(tensor, *args, **kwargs):
            calls.append(f"{module.__name__}.{name}")
            return tensor
        return initializer

    for module in (torch.nn.init, activation):
        for name in _INITIALIZERS:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, counting(module, name))
    load_model(str(TINY_CONFIG), str(path), quick_gelu=False)
    assert calls == []
    load_model(str(TINY_CONFIG))  # random init: the counters see it, MultiheadAttention's included
    assert "torch.nn.modules.activation.xavier_uniform_" in calls and "torch.nn.init.normal_" in calls


def test_a_weights_file_rewritten_in_place_during_a_run_leaves_the_loaded_model_as_it_was(tmp_path):
    """safetensors reads a file through a private memory map, whose pages follow the
    file until they are written: a tensor that was such a page would change (or
    crash the process) when the file is rewritten in place (same inode) hours into a
    run. What tvcore reads owns its memory: the state read, the model, the pool's
    base and a task vector stay as read."""
    import torch
    from safetensors.torch import save_file

    from tvcore.checkpoints import load_state_dict
    from tvcore.experiments.common import TINY_CONFIG
    from tvcore.models import load_model
    from tvcore.pool import ModelPool
    from tvcore.vectors import TaskVector

    built = {k: v.contiguous() for k, v in load_model(str(TINY_CONFIG)).model.state_dict().items()}
    path = tmp_path / "weights.safetensors"
    save_file(built, str(path))
    loaded = load_model(str(TINY_CONFIG), str(path), quick_gelu=False)
    pool = ModelPool(loaded, progress=False)
    moved = load_model(str(TINY_CONFIG), str(path), quick_gelu=False, device="meta")
    moved_base = ModelPool(moved, "meta", progress=False).pretrained_state
    state = load_state_dict(path)
    vector_path = tmp_path / "vector.safetensors"
    TaskVector.from_state_dicts(built, {k: 2 * v for k, v in built.items()}).save(vector_path)
    vector = TaskVector.load(vector_path)

    # Each file rewritten through its own inode (as open(path, "wb") or torch.save
    # would), with other values of the same length.
    inode = path.stat().st_ino
    save_file({k: v + 1 for k, v in built.items()}, str(tmp_path / "other.safetensors"))
    TaskVector.from_state_dicts(built, {k: 3 * v for k, v in built.items()}).save(tmp_path / "other-vector.safetensors")
    for target, source in ((path, "other.safetensors"), (vector_path, "other-vector.safetensors")):
        with open(target, "r+b") as fh:
            fh.write((tmp_path / source).read_bytes())
    assert path.stat().st_ino == inode and load_state_dict(path)["logit_scale"] == built["logit_scale"] + 1
    assert all(torch.equal(v, built[k]) for k, v in state.items())
    assert all(torch.equal(v, built[k]) for k, v in vector.items())
    assert all(torch.equal(v, built[k]) for k, v in loaded.model.state_dict().items())
    visual = {k[len("visual."):]: v for k, v in built.items() if k.startswith("visual.")}
    assert all(torch.equal(v, visual[k]) for k, v in pool.pretrained_state.items())
    assert all(torch.equal(v, visual[k]) for k, v in moved_base.items())


def test_a_safetensors_files_tensors_become_the_models_cast_to_its_dtypes(tmp_path, monkeypatch):
    """The weights are copied once, out of the file's memory map: the tensors read
    are the model's parameters (a half-precision file's cast to the model's float32)."""
    import torch
    from safetensors.torch import save_file

    import tvcore.models as models
    from tvcore.experiments.common import TINY_CONFIG

    built = models.load_model(str(TINY_CONFIG)).model
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in built.state_dict().items()}, str(path))
    read, load_state_dict = {}, models.load_state_dict

    def reading(*args, **kwargs):
        read["state"] = load_state_dict(*args, **kwargs)
        return read["state"]

    monkeypatch.setattr(models, "load_state_dict", reading)
    params = dict(models.load_model(str(TINY_CONFIG), str(path), quick_gelu=False).model.named_parameters())
    assert all(params[k].data_ptr() == read["state"][k].data_ptr() for k in params)
    assert all(p.requires_grad and isinstance(p, torch.nn.Parameter) for p in params.values())

    half = tmp_path / "half.safetensors"
    save_file({k: v.half().contiguous() for k, v in built.state_dict().items()}, str(half))
    model = models.load_model(str(TINY_CONFIG), str(half), quick_gelu=False).model
    want = {k: v.half().float() for k, v in built.state_dict().items()}
    assert all(v.dtype == torch.float32 and torch.equal(v, want[k]) for k, v in model.state_dict().items())


def test_a_pickled_files_shared_tensors_are_copied_in_not_shared(tmp_path):
    """A .pt file may hold two entries over one storage; the model's parameters must
    not be tied by it (training one would change the other)."""
    import torch

    from tvcore.experiments.common import TINY_CONFIG
    from tvcore.models import load_model

    state = {k: v.clone() for k, v in load_model(str(TINY_CONFIG)).model.state_dict().items()}
    a, b = "visual.ln_pre.weight", "visual.ln_pre.bias"
    assert state[a].shape == state[b].shape
    state[b] = state[a]  # one storage under two names, as torch.save keeps it
    torch.save(state, tmp_path / "tied.pt")
    model = load_model(str(TINY_CONFIG), str(tmp_path / "tied.pt"), quick_gelu=False).model
    params = dict(model.named_parameters())
    assert torch.equal(params[a], params[b]) and params[a].data_ptr() != params[b].data_ptr()
    with torch.no_grad():
        params[a].add_(1.0)
    assert not torch.equal(params[a], params[b])


def test_a_module_whose_parameters_are_tied_stays_tied_after_loading_a_safetensors_file(tmp_path):
    """Taking the file's tensors as the module's own would give each name its own
    tensor; a tied module has the values copied into its one tensor instead."""
    import torch
    from safetensors.torch import save_file

    from tvcore.models import load_weights

    module = torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3, bias=False))
    module[1].weight = module[0].weight
    weights = torch.arange(9.0).reshape(3, 3)
    save_file({"0.weight": weights, "1.weight": weights.clone()}, str(tmp_path / "tied.safetensors"))
    load_weights(module, tmp_path / "tied.safetensors")
    assert module[0].weight is module[1].weight and torch.equal(module[0].weight, weights)


def test_the_pools_base_on_another_device_is_the_state_loaded_before_the_move(tmp_path):
    """Moved to another device (here 'meta', which keeps no values and so cannot be
    read back), the pool's CPU base is the loaded tensors, equal to the file's; on
    the CPU it is a copy that loading a state into the encoder leaves as it is."""
    import torch

    from tvcore.checkpoints import load_state_dict
    from tvcore.experiments.common import TINY
    from tvcore.pool import ModelPool

    file = {k[len("visual."):]: v for k, v in load_state_dict(TINY.pretrained).items() if k.startswith("visual.")}
    moved = TINY.load("meta")
    assert next(moved.image_encoder.parameters()).device.type == "meta"
    base = ModelPool(moved, "meta", progress=False).pretrained_state
    assert base.keys() == file.keys()
    assert all(v.device.type == "cpu" and torch.equal(v, file[k]) for k, v in base.items())

    loaded = TINY.load("cpu")
    pool = ModelPool(loaded, progress=False)
    with torch.no_grad():
        for p in loaded.image_encoder.parameters():
            p.add_(1.0)
    assert all(torch.equal(v, file[k]) for k, v in pool.pretrained_state.items())


def test_the_pools_base_hash_is_the_fingerprint_of_the_pretrained_encoder():
    """Hashed on a background thread; what the pool keys and records is the same."""
    from tvcore.experiments.common import TINY
    from tvcore.models import state_fingerprint
    from tvcore.pool import ModelPool

    pool = ModelPool(TINY.load("cpu"), progress=False)
    assert pool.base_hash == state_fingerprint(pool.pretrained_state) == pool.base_hash


def test_the_text_towers_hash_started_at_load_is_the_text_towers_hash():
    """load_model hashes the text tower on a background thread; the first request
    reads that result, which is the hash computed in place."""
    from concurrent.futures import Future

    from tvcore.experiments.common import TINY
    from tvcore.models import state_fingerprint, text_fingerprint

    loaded = TINY.load("cpu")
    assert isinstance(loaded._text_fingerprint[1], Future)
    text = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("visual.")}
    assert text_fingerprint(loaded) == state_fingerprint(text) == loaded._text_fingerprint[1]


def test_the_text_towers_hash_is_kept_until_the_text_tower_changes():
    import torch

    from tvcore.experiments.common import TINY
    from tvcore.models import state_fingerprint, text_fingerprint

    loaded = TINY.load("cpu")
    first = text_fingerprint(loaded)
    text = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("visual.")}
    assert first == state_fingerprint(text) == text_fingerprint(loaded)
    with torch.no_grad():
        loaded.model.token_embedding.weight.add_(1.0)
    assert text_fingerprint(loaded) != first


def test_a_fine_tune_first_frees_the_evaluation_splits_held_on_the_device(tiny_pool_context, monkeypatch):
    """Evaluation splits stay on a CUDA device after their first pass; a fine-tune's
    activations and training pixels come first."""
    from tvcore.data.loaders import EvalLoader

    ctx = tiny_pool_context(fresh=True)
    monkeypatch.setattr(EvalLoader, "_may_keep", lambda self: True)  # as a CUDA device with room would
    ctx.accuracy("digits/rot90", "test")
    loader = ctx.tasks.batches("digits/rot90", "test")
    assert loader.on_device
    ctx.vector("digits/rot90")
    assert not loader.on_device
