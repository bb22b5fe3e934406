"""The pixel cache and the loaders over it: decoded once, safe against concurrent
writers and crashed ones, the same images as the model's full eval transform, and
training data whose randomness does not depend on the number of workers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

from tvcore import data
from tvcore.data import Sample, Split, SplitDataset
from tvcore.data import cache as cache_module
from tvcore.data.cache import PixelCache, PixelTransform, cache_key
from tvcore.data.loaders import AugmentedTrain, EvalLoader, default_workers, eval_loader, train_dataset
from tvcore.errors import DatasetError
from tvcore.finetune import Recipe, finetune
from tvcore.models import classifier


@pytest.fixture(scope="module")
def digits_task():
    return data.load("digits")


@pytest.fixture
def split(digits_task):
    return digits_task["val"]


def full_transform(split, transform) -> torch.Tensor:
    """The split through the whole eval transform, on the CPU, as before the cache."""
    ds = SplitDataset(split, transform)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def loaded(loader) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels)


def count_loads(monkeypatch) -> list:
    calls = []
    original = Sample.load

    def load(self):
        calls.append(self.key)
        return original(self)

    monkeypatch.setattr(Sample, "load", load)
    return calls


def entry_files(cache_dir):
    # .lock (building) and .use (open somewhere) are the entry's empty lock files.
    return sorted(p.name.rsplit(".", 1)[-1] for p in cache_dir.iterdir() if p.suffix not in (".lock", ".use"))


def test_cached_pixels_normalized_on_the_device_are_the_full_eval_transform(split, tiny_model, tmp_path):
    images, labels = loaded(eval_loader(split, tiny_model.preprocess_val, cache_dir=tmp_path, batch_size=50))
    assert torch.allclose(images, full_transform(split, tiny_model.preprocess_val), rtol=0, atol=1e-6)
    assert labels.tolist() == split.labels


def test_the_cache_stores_uint8_at_the_model_resolution(split, tiny_model, tmp_path):
    cache = PixelCache.build(split, tiny_model.preprocess_val, cache_dir=tmp_path)
    image, label = cache[3]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 32, 32)
    assert label == split.samples[3].label
    assert cache.nbytes == len(split) * 3 * 32 * 32 == cache.path.stat().st_size


def test_a_split_is_decoded_only_once(split, tiny_model, tmp_path, monkeypatch):
    calls = count_loads(monkeypatch)
    first, _ = loaded(eval_loader(split, tiny_model.preprocess_val, cache_dir=tmp_path))
    assert len(calls) == len(split)
    second, _ = loaded(eval_loader(split, tiny_model.preprocess_val, cache_dir=tmp_path))
    assert len(calls) == len(split)
    assert torch.equal(first, second)


def test_the_default_cache_is_under_TVCORE_CACHE(split, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path))
    cache = PixelCache.build(split, tiny_model.preprocess_val)
    assert cache.path.parent == tmp_path / "pixels"


def test_splits_with_the_same_keys_but_other_pixels_get_other_entries(tiny_model):
    pixels = PixelTransform.of(tiny_model.preprocess_val)
    a = Split("test", [Sample(np.zeros((8, 8), np.uint8), 0, "c0", "k0")])
    b = Split("test", [Sample(np.full((8, 8), 9, np.uint8), 0, "c0", "k0")])
    assert a.fingerprint() == b.fingerprint()
    assert cache_key(a, pixels) != cache_key(b, pixels)


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from torchvision import transforms as T
    from tvcore.data import Sample, Split
    from tvcore.data.cache import PixelCache

    def noise_split():
        rng = np.random.default_rng(0)
        return Split("test", [Sample(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), i % 3, f"c{i}", f"k{i}")
                              for i in range(300)])

    TRANSFORM = T.Compose([T.Resize(24, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(24),
                           T.ToTensor(), T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))])
    if __name__ == "__main__":
        print(PixelCache.build(noise_split(), TRANSFORM, cache_dir=sys.argv[1]).path)
""")


def test_two_processes_building_one_entry_leave_one_valid_entry(tmp_path, monkeypatch):
    script = tmp_path / "pixel_cache_writer.py"
    script.write_text(WRITER)
    cache_dir = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, str(script), str(cache_dir)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert entry_files(cache_dir) == ["json", "u8"]
    monkeypatch.syspath_prepend(str(tmp_path))
    from pixel_cache_writer import TRANSFORM, noise_split

    split = noise_split()
    # Both wrote or found the entry this process would: the key is the same in every process.
    entry = cache_dir / f"{cache_key(split, PixelTransform.of(TRANSFORM))}.u8"
    assert [out.strip() for out, _ in outs] == [str(entry)] * 2
    images, _ = loaded(eval_loader(split, TRANSFORM, cache_dir=cache_dir))
    assert torch.allclose(images, full_transform(split, TRANSFORM), rtol=0, atol=1e-6)


def test_an_open_clip_transform_is_described_without_memory_addresses(tiny_model):
    import open_clip

    again = open_clip.image_transform(32, is_train=False)  # the same steps, other objects
    assert PixelTransform.of(again).description == PixelTransform.of(tiny_model.preprocess_val).description
    assert " at 0x" not in PixelTransform.of(again).description


def test_a_writer_that_loses_the_race_leaves_the_entry_whole(split, tiny_model, tmp_path):
    """Without the lock (a platform without flock) both writers rename into place."""
    cache = PixelCache.build(split, tiny_model.preprocess_val, cache_dir=tmp_path)
    meta = cache.path.with_suffix(".json")
    PixelCache._write(split, cache.pixels, cache.path, meta, workers=0, progress=False)
    assert entry_files(tmp_path) == ["json", "u8"]
    again = PixelCache.build(split, tiny_model.preprocess_val, cache_dir=tmp_path)
    assert torch.equal(again.rows(0, len(split)), cache.rows(0, len(split)))


def _drop_metadata(meta, data_file):
    meta.unlink()


def _clear_marker(meta, data_file):
    info = json.loads(meta.read_text())
    meta.write_text(json.dumps({**info, "complete": False}))


def _truncate_rows(meta, data_file):
    with open(data_file, "r+b") as fh:
        fh.truncate(data_file.stat().st_size // 2)


@pytest.mark.parametrize("crash", [_drop_metadata, _clear_marker, _truncate_rows],
                         ids=["rows without metadata", "metadata without marker", "rows cut short"])
def test_a_half_written_entry_is_rebuilt_not_read(crash, split, tiny_model, tmp_path, monkeypatch):
    cache = PixelCache.build(split, tiny_model.preprocess_val, cache_dir=tmp_path)
    if crash is not _truncate_rows:
        cache.path.write_bytes(bytes(cache.nbytes))  # what a crash mid-write may leave: zeros
    crash(cache.path.with_suffix(".json"), cache.path)
    calls = count_loads(monkeypatch)
    images, _ = loaded(eval_loader(split, tiny_model.preprocess_val, cache_dir=tmp_path))
    assert len(calls) == len(split)
    assert torch.allclose(images, full_transform(split, tiny_model.preprocess_val), rtol=0, atol=1e-6)


def test_a_temp_file_left_by_a_dead_writer_is_not_read(split, tiny_model, tmp_path, monkeypatch):
    key = cache_key(split, PixelTransform.of(tiny_model.preprocess_val))
    (tmp_path / f".{key}.u8.999.dead.tmp").write_bytes(bytes(len(split) * 3 * 32 * 32))
    calls = count_loads(monkeypatch)
    images, _ = loaded(eval_loader(split, tiny_model.preprocess_val, cache_dir=tmp_path))
    assert len(calls) == len(split)
    assert torch.allclose(images, full_transform(split, tiny_model.preprocess_val), rtol=0, atol=1e-6)


def test_eval_batches_are_the_same_whether_0_or_2_workers_built_the_cache(split, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "IMAGES_PER_BUILD_WORKER", 1)  # workers even for a small split
    zero = list(eval_loader(split, tiny_model.preprocess_val, cache_dir=tmp_path, batch_size=64, workers=0))
    two = list(eval_loader(split, tiny_model.preprocess_val, cache_dir=tmp_path / "w2", batch_size=64, workers=2))
    assert len(zero) == len(two) == -(-len(split) // 64)
    for (xa, ya), (xb, yb) in zip(zero, two):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_a_batch_of_rows_of_one_shape_is_handed_over_as_one_tensor_and_mixed_rows_as_a_list():
    """One shared-memory block per batch from a worker, not one per image."""
    rows = [torch.full((3, 4, 4), i, dtype=torch.uint8) for i in range(3)]
    packed = cache_module._pack(rows)
    assert isinstance(packed, torch.Tensor) and torch.equal(packed, torch.stack(rows))
    mixed = rows + [torch.zeros((3, 4, 5), dtype=torch.uint8)]
    back = cache_module._pack(mixed)
    assert isinstance(back, list) and all(a is b for a, b in zip(back, mixed)) and len(back) == len(mixed)


@pytest.mark.parametrize("shapes", [[(8, 8), (8, 8), (8, 12), (8, 8)],  # the odd row inside a batch
                                    [(8, 8), (8, 8), (8, 12), (8, 12)]],  # a whole batch of another shape
                         ids=["row", "batch"])
def test_a_transform_that_gives_rows_of_two_sizes_is_refused_naming_the_first_odd_sample(shapes, tmp_path,
                                                                                       monkeypatch):
    from torchvision import transforms as T

    monkeypatch.setattr(cache_module, "_BUILD_BATCH", 2)
    split = Split("test", [Sample(np.zeros(s, np.uint8), 0, f"c{i}", f"img{i}") for i, s in enumerate(shapes)])
    with pytest.raises(DatasetError, match=r"'img2' of split 'test' comes out of the transform as \(3, 8, 12\)"):
        PixelCache.build(split, T.Compose([T.ToTensor()]), cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.u8")) and not list(tmp_path.glob(".*.tmp"))  # nothing half-written kept


def test_a_pass_reads_every_row_once_in_order_and_can_stop_early(split, tiny_model, tmp_path):
    """The reader thread runs ahead of the model; batches still come in split order,
    every row once, and a pass broken off (as a failing evaluation would) leaves
    nothing running: the next pass starts from the first batch."""
    loader = eval_loader(split, tiny_model.preprocess_val, cache_dir=tmp_path, batch_size=7)
    assert len(loader) > EvalLoader.PREFETCH + 1 and loader.num_samples == len(split)
    batches = list(loader.raw())
    assert [len(y) for _, y in batches] == [min(7, len(split) - i) for i in range(0, len(split), 7)]
    assert torch.equal(torch.cat([x for x, _ in batches]), loader.cache.rows(0, len(split)))
    assert torch.cat([y for _, y in batches]).tolist() == list(split.labels)
    for i, _ in enumerate(loader.raw()):
        if i == 1:
            break
    assert torch.equal(next(iter(loader.raw()))[0], batches[0][0])
    assert not [t for t in threading.enumerate() if t.name.startswith("tvcore-read")]


def test_a_transform_the_cache_cannot_split_is_refused(split, tmp_path):
    from torchvision import transforms as T

    with pytest.raises(DatasetError, match="ToTensor"):
        PixelCache.build(split, T.Compose([T.Resize(8), T.ToTensor(), T.RandomErasing()]), cache_dir=tmp_path)


def test_images_of_different_sizes_are_refused_by_name(tmp_path):
    from torchvision import transforms as T

    split = Split("train", [Sample(np.zeros((8, 8), np.uint8), 0, "a", "a.png"),
                            Sample(np.zeros((9, 8), np.uint8), 0, "b", "b.png")])
    with pytest.raises(DatasetError, match="b.png"):
        PixelCache.build(split, T.Compose([T.ToTensor()]), cache_dir=tmp_path)
    assert entry_files(tmp_path) == []


def test_an_empty_split_is_refused(tiny_model, tmp_path):
    with pytest.raises(DatasetError, match="empty"):
        PixelCache.build(Split("test", []), tiny_model.preprocess_val, cache_dir=tmp_path)


def test_default_workers_is_the_cpu_count_capped_at_8():
    assert 1 <= default_workers() <= 8


def test_an_augmented_sample_is_a_function_of_seed_step_and_index():
    from torchvision import transforms as T

    rng = np.random.default_rng(0)
    split = Split("train", [Sample(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), 0, "c", f"k{i}")
                            for i in range(8)])
    crop = T.Compose([T.RandomResizedCrop(16, scale=(0.2, 1.0)), T.ToTensor()])
    train = AugmentedTrain(split, crop, seed=5)
    torch.manual_seed(123)
    a = train[(3, 7)][0]
    torch.manual_seed(456)
    assert torch.equal(a, train[(3, 7)][0])
    assert not torch.equal(a, train[(4, 7)][0])
    assert not torch.equal(a, AugmentedTrain(split, crop, seed=6)[(3, 7)][0])


RECIPE = Recipe(lr=1e-3, batch_size=32, steps=4, warmup_steps=1, seed=7)


def tune(tiny_model, task, train, tmp_path, **kw):
    clf = classifier(tiny_model, task.class_names, task.templates, cache_dir=tmp_path / "heads")
    return finetune(clf, train, kw.pop("recipe", RECIPE), progress=False, **kw)


def test_training_on_cached_pixels_gives_the_weights_of_training_on_decoded_tensors(digits_task, tiny_model,
                                                                                     tmp_path):
    split = digits_task["train"]
    tensors = torch.utils.data.TensorDataset(full_transform(split, tiny_model.preprocess_val),
                                             torch.tensor(split.labels))
    cached = train_dataset(split, tiny_model.preprocess_train, tiny_model.preprocess_val, augment=False,
                           seed=RECIPE.seed, cache_dir=tmp_path)
    old, new = tune(tiny_model, digits_task, tensors, tmp_path), tune(tiny_model, digits_task, cached, tmp_path)
    assert all(torch.equal(old.state_dict[k], new.state_dict[k]) for k in old.state_dict)
    assert [r["loss"] for r in old.log] == [r["loss"] for r in new.log]


def test_augmented_training_resumed_with_2_workers_equals_an_unbroken_run_with_none(digits_task, tiny_model,
                                                                                   tmp_path):
    train = train_dataset(digits_task["train"], tiny_model.preprocess_train, tiny_model.preprocess_val,
                          augment=True, seed=RECIPE.seed)
    recipe = RECIPE.with_(augment=True)
    unbroken = tune(tiny_model, digits_task, train, tmp_path, recipe=recipe, workers=0)
    ckpt = tmp_path / "ckpt"
    part = tune(tiny_model, digits_task, train, tmp_path, recipe=recipe, workers=2, checkpoint_dir=ckpt,
                stop_after=2)
    resumed = tune(tiny_model, digits_task, train, tmp_path, recipe=recipe, workers=2, checkpoint_dir=ckpt)
    assert part.steps == 2 and resumed.resumed_from == 2
    assert all(torch.equal(unbroken.state_dict[k], resumed.state_dict[k]) for k in unbroken.state_dict)
    assert [r["loss"] for r in unbroken.log] == [r["loss"] for r in resumed.log]


@pytest.mark.parametrize("images, asked, used", [(500, 8, 0), (3999, 8, 0), (4000, 8, 1), (10_000, 8, 2),
                                                 (50_000, 8, 8), (50_000, 0, 0)])
def test_a_small_split_is_decoded_in_the_main_process_a_large_one_by_the_workers_asked(images, asked, used):
    """Starting a worker costs seconds; decoding a small image under a millisecond."""
    assert cache_module.build_workers(images, asked) == used
