import numpy as np

from memora_bench.cache import Cache, atomic_write_text, cache_key


def test_key_is_canonical():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_image_round_trip_and_no_temp_files(tmp_path):
    cache = Cache(tmp_path)
    img = (np.arange(32 * 32 * 3) % 256).astype(np.uint8).reshape(32, 32, 3)
    key = cache_key({"x": 1})
    assert cache.get_image(key) is None
    cache.put_image(key, img)
    assert np.array_equal(cache.get_image(key), img)
    assert not list(tmp_path.rglob("*.tmp"))


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    atomic_write_text(path, "old")

    import os

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    try:
        atomic_write_text(path, "new")
    except OSError:
        pass
    assert path.read_text() == "old"
    assert not list(tmp_path.glob(".*.tmp"))
