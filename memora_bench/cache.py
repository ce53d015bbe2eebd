"""Content-addressed, pickle-free cache with atomic writes (STYLE.md 10).

A key is the sha256 of a canonical JSON of everything that determines an output (checkpoint sha, prompt,
seed, generation settings, the stage's code version). Values are PNG images, safetensors tensors or JSON,
written to a temporary file in the same folder and renamed into place, so a killed run never leaves a
truncated entry: an entry either exists whole or not at all.

The cache heals: an entry that cannot be read (corrupted by hand, a disk error) is reported with its path,
removed, and recomputed by whoever asked for it; temporary files left by a killed writer are swept once
they are stale. Work in flight is shared: :meth:`Cache.lock` is an exclusive lock per key (``flock`` on a
file under ``locks/``), so two runs on one cache wait for each other's work instead of redoing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def cache_key(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename (fsynced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def png_bytes(image: np.ndarray) -> bytes:
    """Deterministic PNG encoding of a uint8 (H, W, 3) image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


STALE_TMP_SECONDS = 3600  # a writer renames its temporary file within seconds; an hour-old one was orphaned


def is_key(key: str) -> bool:
    """A cache key is 64 lowercase hex digits; nothing else may name a file in the cache."""
    return isinstance(key, str) and len(key) == 64 and all(c in "0123456789abcdef" for c in key)


@dataclass(frozen=True)
class Cache:
    """A cache rooted at ``root``; ``kind`` folders (images, tensors, json) are sharded by key prefix.

    ``journal``: when a set, every entry read or written is added to it as its path relative to ``root``
    (:mod:`memora_bench.packs` finds a task's shared work as the entries two evaluations both used)."""

    root: Path
    journal: set | None = field(default=None, compare=False)

    def _note(self, path: Path) -> None:
        if self.journal is not None:
            self.journal.add(path.relative_to(self.root).as_posix())

    def path(self, kind: str, key: str, suffix: str) -> Path:
        if not is_key(key):  # keys come from result files too (the leaderboard): never a path of their own
            raise ValueError(f"not a cache key: {key[:80]!r}")
        return Path(self.root) / kind / key[:2] / f"{key}{suffix}"

    def _read(self, path: Path, read):
        """``read(path)``, or None when the entry is missing; a corrupted entry is reported, removed, None."""
        if not path.exists():
            return None
        try:
            value = read(path)
        except Exception as err:  # PIL, json and safetensors each raise their own types for a damaged file
            path.unlink(missing_ok=True)
            print(f"warning: cache entry {path} could not be read ({type(err).__name__}: "
                  f"{str(err).splitlines()[0][:120] if str(err) else ''}); removed, it is recomputed",
                  file=sys.stderr)
            return None
        self._note(path)
        return value

    @contextlib.contextmanager
    def lock(self, key: str):
        """Hold the exclusive lock of ``key`` (blocking) while its work is done; another run asking for the
        same key waits, then finds the entry in the cache. No deadlock: a stage's lock may be held while image
        chunks are locked (:meth:`memora_bench.runner.Unit.images`), and a chunk's holder takes no other lock."""
        p = self.path("locks", key, ".lock")
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def sweep_stale_tmp(self, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
        """Remove temporary files that a killed writer left behind (older than ``older_than`` seconds)."""
        root, now, removed = Path(self.root), time.time(), []
        if not root.exists():
            return removed
        for p in root.rglob(".*.tmp"):
            try:
                if now - p.stat().st_mtime > older_than:
                    p.unlink()
                    removed.append(p)
            except FileNotFoundError:  # its writer renamed or removed it meanwhile
                continue
        return removed

    def get_image(self, key: str) -> np.ndarray | None:
        return self._read(self.path("images", key, ".png"), read_png)

    def put_image(self, key: str, image: np.ndarray) -> Path:
        p = self.path("images", key, ".png")
        atomic_write_bytes(p, png_bytes(image))
        self._note(p)
        return p

    def get_json(self, key: str) -> Any | None:
        return self._read(self.path("json", key, ".json"), lambda p: json.loads(p.read_text()))

    def put_json(self, key: str, value: Any) -> Path:
        p = self.path("json", key, ".json")
        atomic_write_text(p, json.dumps(value, sort_keys=True))
        self._note(p)
        return p

    def get_tensors(self, key: str) -> dict | None:
        from safetensors.torch import load_file

        return self._read(self.path("tensors", key, ".safetensors"), lambda p: load_file(str(p)))

    def put_tensors(self, key: str, tensors: dict) -> Path:
        from safetensors.torch import save

        p = self.path("tensors", key, ".safetensors")
        atomic_write_bytes(p, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
        self._note(p)
        return p
