"""Which code made a result: a content hash of the package's source (a leaf module).

Every result records it (``environment.code``); ``--reuse`` copies a section only from a result made by the
same code, and ``compare`` refuses results of different code unless the comparison is meant to cross code
versions (``--exact``, the project's own gate, or ``--allow-mismatch``).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SUFFIXES = (".py", ".json", ".html", ".css", ".js")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 over the sorted (relative path, sha256) lines of the package's source files (Python, the
    result schema, the leaderboard's templates); computed once per process."""
    lines = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
            lines.append(f"{path.relative_to(PACKAGE).as_posix()} {hashlib.sha256(path.read_bytes()).hexdigest()}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
