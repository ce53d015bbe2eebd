"""What ``evaluate`` tells the person waiting (issue "What a researcher sees"): one line per (submission, task),
one line per stage (probe or utility measure) as it starts and ends, and how long is left.

How long is left is an estimate from stage costs: each stage's typical seconds on a 2-core CPU for a
miniature task (measured, docs/performance.md), scaled by how the stages already finished in this run
compared with their typical seconds (a faster machine, or a warm cache, shrinks the rest in proportion).
Within a stage, the probes' own bars (images, LoRA steps, attack steps) show on a terminal. ``quiet``
prints nothing; on a pipe or a log file (not a terminal) the lines are printed but no bars.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Typical seconds of each stage for one submission on a one-concept miniature task, 2 CPU cores, the task's
# shared work installed from its pack (session 18: the CI gate's demo and SalUn on mini-seven, the medians of the
# mini-bold results in docs/performance.md); unknown stages count 30 s.
TYPICAL_SECONDS = {"plain": 12.0, "memora": 115.0, "unlearndiffatk": 90.0, "ringabell": 5.0,
                   "concept_inversion": 15.0, "utility": 35.0,
                   # mini-v5's probes on mini-seven (session 21-22 dev runs, one process alone on the machine)
                   "completion": 25.0, "inpainting": 10.0, "noise_based": 40.0, "classifier_guidance": 28.0,
                   "resurgence": 40.0}
DEFAULT_SECONDS = 30.0


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class Progress:
    """Stage lines with an estimate of the time left; ``mode`` is "tty", "lines" or "quiet"."""

    def __init__(self, units: list[tuple[str, str, list[str]]], mode: str = "lines", stream: TextIO | None = None,
                 clock=time.perf_counter):
        self.units = units  # (submission, task, stage names)
        self.mode = mode
        self.stream = stream or sys.stderr
        self.clock = clock
        self.done: list[tuple[str, float]] = []  # (stage, seconds) finished in this run
        self.unit_index = -1
        self.stage_index = 0
        self.started = 0.0

    @classmethod
    def for_terminal(cls, units, quiet: bool = False, stream: TextIO | None = None) -> Progress:
        stream = stream or sys.stderr
        return cls(units, "quiet" if quiet else ("tty" if stream.isatty() else "lines"), stream)

    @property
    def bars(self) -> bool:
        """Whether the probes' own progress bars should show."""
        return self.mode == "tty"

    def _say(self, text: str) -> None:
        if self.mode != "quiet":
            print(text, file=self.stream, flush=True)

    def _speed(self) -> float:
        """Measured / typical seconds of the stages finished so far (1 before any)."""
        typical = sum(TYPICAL_SECONDS.get(s, DEFAULT_SECONDS) for s, _ in self.done)
        return sum(t for _, t in self.done) / typical if typical else 1.0

    def left(self) -> float:
        """Estimated seconds left after the current stage: every stage not yet started, at this run's speed."""
        rest = [s for s in self.units[self.unit_index][2][self.stage_index + 1:]] if self.unit_index >= 0 else []
        rest += [s for _, _, stages in self.units[self.unit_index + 1:] for s in stages]
        return self._speed() * sum(TYPICAL_SECONDS.get(s, DEFAULT_SECONDS) for s in rest)

    def unit(self, i: int) -> None:
        self.unit_index, self.stage_index = i, -1
        sub, task, stages = self.units[i]
        self._say(f"[{i + 1}/{len(self.units)}] {sub} / {task}: {len(stages)} stages ({', '.join(stages)})")

    def stage_start(self, name: str) -> None:
        self.stage_index += 1
        self.started = self.clock()
        guess = self._speed() * TYPICAL_SECONDS.get(name, DEFAULT_SECONDS)
        self._say(f"  {name}: running (about {_clock(guess)}; then about {_clock(self.left())} left)")

    def stage_reused(self, name: str) -> None:
        self.stage_index += 1
        self._say(f"  {name}: reused from an earlier result")

    def stage_end(self, name: str) -> None:
        seconds = self.clock() - self.started
        self.done.append((name, seconds))
        self._say(f"  {name}: done in {_clock(seconds)}")
