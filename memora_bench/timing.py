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


class CoreUse:
    """How busy the machine's cores were with this process while the block ran: the process's CPU seconds
    (every thread's) sampled every ``interval`` wall seconds on a thread of its own.

    ``summary()`` gives the mean number of cores busy (CPU seconds over wall seconds) and the share of the wall
    time in which all cores were busy (a sample interval counts when the process used at least ``full`` of
    every core in it). Work in other processes (Ray workers) is not counted.
    """

    def __init__(self, cores: int, interval: float = 0.25, full: float = 0.9, wall=time.perf_counter,
                 cpu=time.process_time):
        if cores < 1 or interval <= 0 or not 0 < full <= 1:
            raise ValueError(f"CoreUse: cores {cores}, interval {interval}, full {full}")
        self.cores, self.interval, self.full = cores, interval, full
        self._wall, self._cpu = wall, cpu
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples: list[tuple[float, float]] = []  # (wall seconds, CPU seconds) per interval

    def record(self, wall_s: float, cpu_s: float) -> None:
        self.samples.append((wall_s, cpu_s))

    def _sample(self) -> None:
        wall, cpu = self._wall(), self._cpu()
        while True:
            stopped = self._stop.wait(self.interval)
            w, c = self._wall(), self._cpu()
            self.record(w - wall, c - cpu)
            wall, cpu = w, c
            if stopped:
                return

    def __enter__(self) -> CoreUse:
        self._thread = threading.Thread(target=self._sample, name="core-use", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict:
        wall = sum(w for w, _ in self.samples)
        cpu = sum(c for _, c in self.samples)
        full = sum(w for w, c in self.samples if w > 0 and c >= self.full * self.cores * w)
        return {"cores": self.cores, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                "mean_cores_busy": round(cpu / wall, 3) if wall else 0.0,
                "all_cores_busy_share": round(full / wall, 4) if wall else 0.0}
