"""Where the repository's data folders are.

Code is found by import; data (tasks, suites, baselines, the miniature world) is found relative to the
repository root. ``MEMORA_BENCH_ROOT`` points elsewhere (for example an installed copy of the data).
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root: ``$MEMORA_BENCH_ROOT`` if set, else the folder above the package."""
    env = os.environ.get("MEMORA_BENCH_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[1]


def world_dir() -> Path:
    """The shipped miniature world (base pipeline, oracles, classifiers, model card)."""
    return repo_root() / "world"


def default_cache_dir() -> Path:
    """The cache folder when none is given: ``$MEMORA_BENCH_CACHE``, else ``.cache/memora-bench`` in the repository."""
    env = os.environ.get("MEMORA_BENCH_CACHE")
    return Path(env) if env else repo_root() / ".cache" / "memora-bench"


DEFAULT_SUITE = "mini-v5"  # the official suite: what `evaluate` and the Python API run unless told otherwise
