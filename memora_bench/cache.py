"""Content-addressed, pickle-free cache with atomic writes (STYLE.md 10).

A key is the sha256 of a canonical JSON of everything that determines an output (checkpoint sha, prompt,
seed, generation settings, the stage's code version). Values are PNG images, safetensors tensors or JSON,
written to a temporary file in the same folder and renamed into place, so a killed run never leaves a
truncated entry: an entry either exists whole or not at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Cache:
    """A cache rooted at ``root``; ``kind`` folders (images, tensors, json) are sharded by key prefix."""

    root: Path

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return Path(self.root) / kind / key[:2] / f"{key}{suffix}"

    def get_image(self, key: str) -> np.ndarray | None:
        p = self.path("images", key, ".png")
        return read_png(p) if p.exists() else None

    def put_image(self, key: str, image: np.ndarray) -> Path:
        p = self.path("images", key, ".png")
        atomic_write_bytes(p, png_bytes(image))
        return p

    def get_json(self, key: str) -> Any | None:
        p = self.path("json", key, ".json")
        return json.loads(p.read_text()) if p.exists() else None

    def put_json(self, key: str, value: Any) -> Path:
        p = self.path("json", key, ".json")
        atomic_write_text(p, json.dumps(value, sort_keys=True))
        return p

    def get_tensors(self, key: str) -> dict | None:
        from safetensors.torch import load_file

        p = self.path("tensors", key, ".safetensors")
        return load_file(str(p)) if p.exists() else None

    def put_tensors(self, key: str, tensors: dict) -> Path:
        from safetensors.torch import save

        p = self.path("tensors", key, ".safetensors")
        atomic_write_bytes(p, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
        return p
