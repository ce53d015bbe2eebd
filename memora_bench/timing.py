"""Stage timing: wall and CPU seconds per named stage, shared by jobs that run side by side.

A leaf module: :func:`memora_bench.models.parallel.side_by_side` marks the threads it runs jobs on, so that
a stage timed on one of them counts that thread's own CPU seconds rather than the whole process's.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

_LOCK = threading.Lock()
_THREAD = threading.local()


@contextlib.contextmanager
def side_by_side_thread(on: bool):
    """Within the block, the calling thread is (or is not) one of several running at once."""
    before = getattr(_THREAD, "side_by_side", False)
    _THREAD.side_by_side = on
    try:
        yield
    finally:
        _THREAD.side_by_side = before


@dataclass
class StageTimer:
    """Wall and CPU seconds per named stage (CPU seconds are the device seconds on a CPU run).

    Thread-safe. Inside :func:`memora_bench.models.parallel.side_by_side` (jobs running at once on threads of
    their own) a stage's CPU seconds are its thread's own and its wall seconds add up per job, so stages
    that overlap in time may sum to more than the run's wall time; ``memora_side_by_side`` holds the wall
    time they took together."""

    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, name: str):
        cpu_clock = time.thread_time if getattr(_THREAD, "side_by_side", False) else time.process_time
        wall, cpu = time.perf_counter(), cpu_clock()
        try:
            yield
        finally:
            with _LOCK:
                s = self.stages.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
                s["wall_s"] += time.perf_counter() - wall
                s["cpu_s"] += cpu_clock() - cpu

    def rounded(self) -> dict:
        return {k: {m: round(v, 3) for m, v in d.items()} for k, d in self.stages.items()}


def merge_stages(parts: list[dict]) -> dict:
    """Stage seconds summed over several timers' ``stages`` (the parts of one result run elsewhere)."""
    out: dict[str, dict[str, float]] = {}
    for stages in parts:
        for name, secs in stages.items():
            s = out.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
            s["wall_s"] += secs["wall_s"]
            s["cpu_s"] += secs["cpu_s"]
    return {k: {m: round(v, 3) for m, v in d.items()} for k, d in out.items()}
