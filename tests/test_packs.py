"""The tasks' shared-work packs (memora_bench/packs.py): written, verified, installed, refused when damaged;
the committed packs verify and hold the oracle's MemoRa floor."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from memora_bench import packs
from memora_bench.cache import Cache, cache_key
from memora_bench.paths import DEFAULT_SUITE, repo_root
from memora_bench.specs import load_suite

SUITE = SimpleNamespace(name="fixture-suite", version=3)
TASK = SimpleNamespace(name="fixture-task")
META = {"suite": {"name": "fixture-suite", "version": 3}, "task": {"name": "fixture-task", "version": 1, "sha256": ""},
        "made_from": ["original", "oracle"]}


def _filled_cache(root: Path) -> tuple[Cache, list[str]]:
    cache = Cache(root, journal=set())
    rng = np.random.default_rng(0)
    for i in range(3):
        cache.put_image(cache_key({"image": i}), rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    cache.put_tensors(cache_key({"lora": 0}), {"w": torch.arange(6, dtype=torch.float32)})
    cache.put_json(cache_key({"outcome": 0}), [{"steps": 3}])
    return cache, sorted(cache.journal)


def _pack(tmp_path: Path) -> tuple[Path, Cache, list[str]]:
    cache, entries = _filled_cache(tmp_path / "cache")
    path = packs.pack_path(SUITE.name, TASK.name, tmp_path / "repo")
    packs.write_pack(path, cache, entries, META)
    return path, cache, entries


def test_the_journal_records_reads_and_writes_but_not_misses(tmp_path):
    cache = Cache(tmp_path, journal=set())
    key = cache_key("x")
    assert cache.get_json(key) is None and cache.journal == set()
    cache.put_json(key, 1)
    assert cache.journal == {f"json/{key[:2]}/{key}.json"}
    reader = Cache(tmp_path, journal=set())
    assert reader.get_json(key) == 1 and reader.journal == cache.journal


def test_a_pack_installs_every_entry_byte_for_byte_and_only_missing_ones(tmp_path):
    path, cache, entries = _pack(tmp_path)
    assert len(entries) == 5 and packs.verify(path)["entries"].keys() == set(entries)
    fresh = Cache(tmp_path / "fresh")
    assert packs.install(fresh, SUITE, TASK, tmp_path / "repo") == (path, 5)
    for e in entries:
        assert (fresh.root / e).read_bytes() == (cache.root / e).read_bytes()
    assert packs.install(fresh, SUITE, TASK, tmp_path / "repo") == (path, 0)  # nothing missing: nothing written


def test_the_same_entries_make_the_same_bytes(tmp_path):
    path, cache, entries = _pack(tmp_path)
    again = tmp_path / "again.zip"
    packs.write_pack(again, cache, list(reversed(entries)), META)
    assert again.read_bytes() == path.read_bytes()


def test_a_suite_without_a_pack_installs_nothing(tmp_path):
    assert packs.install(Cache(tmp_path / "c"), SUITE, TASK, tmp_path / "repo") == (None, 0)


def _rewrite(path: Path, edit) -> None:
    """Rewrite the zip with ``edit(name, bytes) -> (name, bytes) | None``, keeping SHA256SUMS as it was."""
    with zipfile.ZipFile(path) as z:
        items = [(n, z.read(n)) for n in z.namelist()]
    with zipfile.ZipFile(path, "w") as z:
        for n, b in items:
            out = edit(n, b)
            if out is not None:
                z.writestr(*out)


def test_a_damaged_pack_is_refused_and_not_installed(tmp_path, capsys):
    path, _, entries = _pack(tmp_path)
    _rewrite(path, lambda n, b: (n, b[:-1] + bytes([b[-1] ^ 1])) if n == entries[0] else (n, b))
    with pytest.raises(packs.PackError, match="sha256"):
        packs.verify(path)
    fresh = Cache(tmp_path / "fresh")
    assert packs.install(fresh, SUITE, TASK, tmp_path / "repo") == (path, 0)
    assert "pack not used" in capsys.readouterr().err and not (fresh.root / entries[0]).exists()


def test_an_entry_changed_with_the_sums_updated_is_still_caught(tmp_path):
    path, _, entries = _pack(tmp_path)
    _rewrite(path, lambda n, b: (n, b + b"x") if n == entries[1] else (n, b))
    packs.write_sums(path.parent)  # the zip's own sha256 now agrees: the manifest's per-entry sha256 does not
    with pytest.raises(packs.PackError, match=f"entry {entries[1]} does not match"):
        packs.verify(path)
    fresh = Cache(tmp_path / "fresh")
    packs.install(fresh, SUITE, TASK, tmp_path / "repo")
    assert not (fresh.root / entries[1]).exists()


def test_a_pack_never_writes_outside_the_cache_folders(tmp_path):
    path, _, _ = _pack(tmp_path)

    def evil(n, b):
        if n == packs.MANIFEST:
            m = json.loads(b)
            m["entries"]["../../escape.png"] = packs.sha256_bytes(b"x")
            return n, json.dumps(m).encode()
        return n, b

    _rewrite(path, evil)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("../../escape.png", b"x")
    packs.write_sums(path.parent)
    with pytest.raises(packs.PackError, match="not a cache entry"):
        packs.verify(path)
    packs.install(Cache(tmp_path / "fresh"), SUITE, TASK, tmp_path / "repo")
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "fresh").exists()
    with pytest.raises(packs.PackError, match="not a cache entry"):
        packs.write_pack(tmp_path / "x.zip", Cache(tmp_path / "cache"), ["images/../x.png"], META)


def test_a_pack_made_for_another_suite_version_is_not_installed(tmp_path, capsys):
    path, _, _ = _pack(tmp_path)
    other = SimpleNamespace(name=SUITE.name, version=4)
    assert packs.install(Cache(tmp_path / "fresh"), other, TASK, tmp_path / "repo") == (path, 0)
    assert "made for" in capsys.readouterr().err


def test_an_unlisted_or_lfs_pointer_pack_is_refused(tmp_path):
    path, _, _ = _pack(tmp_path)
    path.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 5\n")
    with pytest.raises(packs.PackError, match="LFS"):
        packs.verify(path)
    (path.parent / packs.SUMS).write_text("")
    with pytest.raises(packs.PackError, match="not listed"):
        packs.verify(path)


OFFICIAL = load_suite(repo_root() / "benchmark" / f"{DEFAULT_SUITE}.yaml")


@pytest.mark.parametrize("task", OFFICIAL.tasks)
def test_the_committed_pack_verifies_and_holds_the_floor(task):
    """Every task of the official suite ships its shared work: the pack verifies, and it holds the oracle's
    MemoRa adapters (one per attack seed and positive budget) and their images."""
    manifest = packs.verify(packs.pack_path(OFFICIAL.name, task))
    assert manifest["suite"] == {"name": OFFICIAL.name, "version": OFFICIAL.version}
    assert manifest["task"]["name"] == task and manifest["made_from"] == ["original", "oracle"]
    memora = dict(next(p for p in OFFICIAL.probes if p.name == "memora").params)
    concepts = 2 if task == "mini-three-eight" else 1
    adapters = [e for e in manifest["entries"] if e.startswith("tensors/")]
    per_run = len([b for b in memora["budgets"] if b > 0])
    # the oracle's adapters, and the reference features; the original's own runs are not shared
    assert len(adapters) == concepts * len(memora["attack_seeds"]) * per_run + 1
    images = [e for e in manifest["entries"] if e.startswith("images/")]
    # the oracle's images of the first eval_prompts rows (one image each) as it is (budget 0), then at every
    # positive budget of every attack seed; besides them its training images and the original's images
    floor = concepts * memora["eval_prompts"] * (1 + per_run * len(memora["attack_seeds"]))
    training = concepts * len(memora["seed_pairs"]) * (memora["interpolation"] + 1)
    assert len(images) >= floor + training


def test_pack_check_tells_a_result_that_computed_the_shared_work(capsys):
    """On committed results of mini-v4: its first three-eight result (session 17) drew the oracle's floor itself
    (its machine had no cache); SalUn's three-eight result, made after it, found it cached. (No mini-v5 result
    computed shared work: the mini-v4 runs had left it, identical, in the cache.)"""
    from memora_bench.cli import main

    results = repo_root() / "results" / "mini-v4"
    assert main(["pack", "check", str(results / "advunlearn-mini-three-eight" / "mini-three-eight.json")]) == 1
    out = capsys.readouterr().out
    assert "computed shared work (" in out and "generate_memora_oracle" in out
    assert main(["pack", "check", str(results / "salun-mini-three-eight" / "mini-three-eight.json")]) == 0
    assert "no shared work computed" in capsys.readouterr().out
