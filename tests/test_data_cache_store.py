"""The pixel cache stays within its bound: least recently used entries go first, an
entry in use never goes, and ``tvcore cache`` lists, sizes and clears it. Tiny caches:
8x8 images, 192 bytes a row."""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest
from torchvision import transforms as T

from tvcore.cli import main
from tvcore.data import cache_store as store
from tvcore.data.base import Sample, Split
from tvcore.data.cache import PixelCache
from tvcore.errors import UsageError

TRANSFORM = T.Compose([T.ToTensor()])
ROWS = 10 * 3 * 8 * 8  # bytes of rows in one entry


def split(seed: int) -> Split:
    rng = np.random.default_rng(seed)
    return Split("test", [Sample(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), i % 2, f"{seed}-{i}", f"{seed}-{i}")
                          for i in range(10)])


def build(cache_dir, seed: int, max_bytes=None) -> PixelCache:
    return PixelCache.build(split(seed), TRANSFORM, cache_dir=cache_dir, max_bytes=max_bytes)


def closed(cache_dir, seed: int) -> str:
    """Build an entry and close it (no longer in use); its key."""
    cache = build(cache_dir, seed)
    key = cache.path.stem
    del cache
    gc.collect()
    time.sleep(0.02)  # distinct last-use times
    return key


def room_for_two(cache_dir) -> float:
    """A bound two entries fit in (rows and metadata), three do not."""
    size = max(e.bytes for e in store.entries(cache_dir))
    assert size > ROWS
    return 2.5 * size


def keys(cache_dir) -> set[str]:
    return {e.key for e in store.entries(cache_dir)}


@pytest.mark.parametrize("text,size", [("20GB", 20e9), ("500MB", 500e6), ("1.5GiB", 1.5 * 2**30), ("4096", 4096),
                                       ("none", float("inf"))])
def test_sizes_are_read_in_decimal_and_binary_units(text, size):
    assert store.parse_size(text) == size


def test_the_default_bound_is_20_gb_and_the_environment_sets_it(monkeypatch):
    monkeypatch.delenv(store.MAX_ENV, raising=False)
    assert store.max_bytes() == 20e9
    monkeypatch.setenv(store.MAX_ENV, "3MB")
    assert store.max_bytes() == 3e6


def test_a_malformed_bound_is_refused_before_any_decoding(tmp_path, monkeypatch):
    monkeypatch.setenv(store.MAX_ENV, "lots")
    with pytest.raises(UsageError, match="TVCORE_CACHE_MAX='lots': not a size"):
        build(tmp_path, 0)
    assert not list(tmp_path.glob("*.u8"))


def test_the_least_recently_used_entry_is_evicted_first(tmp_path):
    first, second = closed(tmp_path, 0), closed(tmp_path, 1)
    third = build(tmp_path, 2, max_bytes=room_for_two(tmp_path))
    assert keys(tmp_path) == {second, third.path.stem} and first not in keys(tmp_path)


def test_opening_an_entry_makes_it_recently_used(tmp_path):
    first, second = closed(tmp_path, 0), closed(tmp_path, 1)
    closed(tmp_path, 0)  # opened again: now the second is the least recently used
    build(tmp_path, 2, max_bytes=room_for_two(tmp_path))
    assert first in keys(tmp_path) and second not in keys(tmp_path)


def test_an_entry_in_use_is_never_evicted(tmp_path):
    held = build(tmp_path, 0)  # open: in use, and the least recently used
    build(tmp_path, 1, max_bytes=0)
    assert held.path.stem in keys(tmp_path)
    assert held.rows(0, 2).shape == (2, 3, 8, 8)


def test_the_bound_can_be_lifted(tmp_path):
    for seed in range(3):
        closed(tmp_path, seed)
    build(tmp_path, 3, max_bytes="none")
    assert len(keys(tmp_path)) == 4


def test_cache_list_size_and_clear_by_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path))
    pixels = tmp_path / "pixels"
    first, second = closed(pixels, 0), closed(pixels, 1)
    assert main(["cache", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.index(second) < listing.index(first)  # most recently used first
    assert main(["cache", "size"]) == 0
    assert "2 entries" in capsys.readouterr().out
    assert main(["cache", "clear", first[:12]]) == 0
    assert "removed 1 entries" in capsys.readouterr().out and keys(pixels) == {second}


def test_cache_clear_keeps_entries_in_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path))
    pixels = tmp_path / "pixels"
    held = build(pixels, 0)
    closed(pixels, 1)
    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 entries" in out and f"kept 1 in use: {held.path.stem}" in out
    assert keys(pixels) == {held.path.stem}


def test_a_removed_entry_leaves_no_file_behind(tmp_path):
    """Rows, metadata and both lock files go: a folder used for months holds its
    entries and nothing else."""
    for seed in range(3):
        closed(tmp_path, seed)
    held = build(tmp_path, 3)
    removed, busy = store.clear(tmp_path)
    assert len(removed) == 3 and [e.key for e in busy] == [held.path.stem]
    assert {p.name for p in tmp_path.iterdir()} == {f"{held.path.stem}{s}" for s in (".u8", ".json", ".lock", ".use")}


def test_clearing_everything_also_removes_lock_files_without_an_entry(tmp_path):
    (tmp_path / "deadbeef.lock").touch()  # left by a failed build, or by older versions
    (tmp_path / "deadbeef.use").touch()
    held = store.lock_file(tmp_path / "cafe.lock", exclusive=True, wait=False)  # a build under way
    try:
        store.clear(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cafe.lock"]
    finally:
        os.close(held)


def test_a_lock_file_removed_between_open_and_lock_is_taken_again(tmp_path, monkeypatch):
    """The race that removing lock files opens: a reader opens ``<key>.use`` and, before
    its lock, an eviction takes the file exclusively and removes the entry with it. The
    reader must end up holding the file now at that path, which protects the entry."""
    key = closed(tmp_path, 0)
    real_flock, raced = store._flock, []

    def eviction_first(fd, exclusive, wait):
        if not raced and not exclusive:  # the reader's first lock: an eviction gets in before it
            raced.append(store._remove(tmp_path, key))
        return real_flock(fd, exclusive, wait)

    monkeypatch.setattr(store, "_flock", eviction_first)
    reader = store.InUse(tmp_path, key)
    monkeypatch.setattr(store, "_flock", real_flock)
    assert raced == [True] and key not in keys(tmp_path)
    assert store._same_file(reader.fd, tmp_path / f"{key}.use")  # the new file, not the removed one
    assert store._try_exclusive(tmp_path / f"{key}.use") is None  # so an eviction now sees it in use
    reader.release()


def test_an_entry_rebuilt_after_its_removal_is_protected_again(tmp_path):
    key = closed(tmp_path, 0)
    assert store._remove(tmp_path, key)
    cache = build(tmp_path, 0)  # built again under the same key: new lock files
    assert cache.path.stem == key
    assert not store._remove(tmp_path, key) and key in keys(tmp_path)


def test_clear_with_an_unknown_key_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TVCORE_CACHE", str(tmp_path))
    assert main(["cache", "clear", "feedface"]) == 2
    assert "cache key 'feedface' matches 0 entries" in capsys.readouterr().err


def test_a_test_session_caches_in_a_folder_of_its_own():
    """The tests never read or leave entries in the user's cache (fixtures/session_cache)."""
    from pathlib import Path

    from tvcore.models import cache_root

    root = cache_root()
    assert root != Path.home() / ".cache" / "tvcore"
    assert root.name.startswith("tvcore-session-cache-") and root.is_dir()


@pytest.mark.parametrize("before", [None, "/somewhere/else"])
def test_the_session_cache_is_deleted_and_the_variable_restored(before, monkeypatch):
    import os
    from pathlib import Path
    from types import SimpleNamespace

    from fixtures import session_cache

    if before is None:
        monkeypatch.delenv("TVCORE_CACHE", raising=False)
    else:
        monkeypatch.setenv("TVCORE_CACHE", before)
    config = SimpleNamespace(stash=pytest.Stash(), getoption=lambda name, default=None: default)
    root = Path(session_cache.start(config))
    assert session_cache.start(config) is None  # the second conftest's call: the same folder
    assert os.environ["TVCORE_CACHE"] == str(root) and root.is_dir()
    (root / "pixels").mkdir()
    (root / "pixels" / "entry.u8").write_bytes(b"\0" * 64)
    session_cache.finish(config)
    session_cache.finish(config)
    assert not root.exists()
    assert os.environ.get("TVCORE_CACHE") == before


def test_a_session_given_the_users_data_keeps_the_users_cache(monkeypatch):
    from types import SimpleNamespace

    from fixtures import session_cache

    monkeypatch.setenv("TVCORE_CACHE", "/users/cache")
    config = SimpleNamespace(stash=pytest.Stash(), getoption=lambda name, default=None: "/data")
    assert session_cache.start(config) is None
    assert __import__("os").environ["TVCORE_CACHE"] == "/users/cache"
