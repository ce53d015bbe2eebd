"""Running independent jobs side by side, and the runtime (device, threads) they run with.

On a CPU the small convolutions of a miniature UNet split poorly across cores, so independent jobs (the
micro-batches of one generation call, MemoRa's LoRA runs, ...) each run on one thread of their own, as many
at once as torch has threads. A job's numbers then do not depend on the core count or on what runs beside
it. On a GPU jobs run one after the other.

The device is explicit: the command line reads it once (``MEMORA_BENCH_DEVICE``, :meth:`Runtime.from_env`)
and passes it down; nothing below reads the environment.
"""

from __future__ import annotations

import contextlib
import os
import platform
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from memora_bench import __version__
from memora_bench.provenance import code_version
from memora_bench.timing import side_by_side_thread

DEVICE_ENV = "MEMORA_BENCH_DEVICE"


@dataclass(frozen=True)
class Runtime:
    """Where models run: a torch device name (``cpu``, ``cuda``, ``cuda:1``)."""

    device: str = "cpu"

    def __post_init__(self):
        try:
            dev = torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device {self.device!r} is not a torch device ({err})") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} but torch sees no CUDA device on this machine")

    @classmethod
    def from_env(cls) -> "Runtime":
        """``$MEMORA_BENCH_DEVICE`` if set, else the CPU. The miniature suite's reference results are CPU
        results; a GPU is opted into explicitly, and the device is recorded in every result."""
        name = os.environ.get(DEVICE_ENV, "cpu")
        try:
            return cls(name)
        except ValueError as err:
            raise ValueError(f"{DEVICE_ENV}={name!r}: {err}") from None

    @property
    def cpu(self) -> bool:
        return torch.device(self.device).type == "cpu"

    def device_name(self) -> str:
        dev = torch.device(self.device)
        return torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type

    def environment(self, micro_batch: int) -> dict:
        """Package versions and the device: what a result records about where it was computed."""
        import diffusers
        import transformers

        return {
            "memora_bench": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "numpy": np.__version__, "device": self.device_name(),
            "torch_threads": torch.get_num_threads(), "micro_batch": micro_batch, "code": code_version(),
            # the CPU's instruction set selects torch's kernels: an image's last bits, and through the gradient
            # of classifier guidance now and then a count, differ between CPUs (docs/results.md)
            "cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        }


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def one_thread():
    """Torch ops of the calling thread run single-threaded inside the block (OpenMP's setting is per thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _runner(device: str | torch.device, jobs: int, inference: bool) -> tuple[int, Callable[[Callable[[], Any]], Any]]:
    """How many threads ``jobs`` jobs get, and the wrapper each runs in (one thread each on a CPU)."""
    cpu = torch.device(device).type == "cpu"
    workers = min(max(1, torch.get_num_threads()), jobs) if cpu else 1

    def run(job):
        with contextlib.ExitStack() as stack:
            stack.enter_context(side_by_side_thread(workers > 1))
            if inference:
                stack.enter_context(torch.inference_mode())
            if cpu:
                stack.enter_context(one_thread())
            return job()

    return workers, run


def side_by_side(jobs: list[Callable[[], Any]], device: str | torch.device = "cpu", inference: bool = False) -> list:
    """``[job() for job in jobs]``, independent jobs run at once: on CPU each job on one thread of its own,
    as many at once as torch has threads (always one thread per job, even alone, so a job's numbers do not
    depend on the machine's core count); on a GPU one after the other. Results come in job order.
    ``inference``: each job runs in torch's inference mode."""
    workers, run = _runner(device, len(jobs), inference)
    if workers <= 1:
        return [run(job) for job in jobs]
    with ThreadPoolExecutor(workers, thread_name_prefix="side-by-side") as pool:
        return list(pool.map(run, jobs))


def side_by_side_chained(jobs: list[Callable[[], tuple[Any, list[Callable[[], Any]]]]],
                         device: str | torch.device = "cpu") -> list[tuple[Any, list]]:
    """:func:`side_by_side` for jobs that each return ``(value, follow-up jobs)``: a job's follow-ups join the
    same threads as soon as it is done, behind every job still waiting, so a thread that would sit idle
    while the last long job runs alone draws the images of a job already done. Each job and follow-up runs
    on one thread of its own, as in :func:`side_by_side`, so the numbers are the same as running them one
    after the other. Returns ``[(value, [follow-up results in order])]`` in job order."""
    workers, run = _runner(device, len(jobs), inference=False)
    if workers <= 1:
        out = []
        for job in jobs:
            value, follow = run(job)
            out.append((value, [run(f) for f in follow]))
        return out
    with ThreadPoolExecutor(workers, thread_name_prefix="side-by-side") as pool:
        firsts = {pool.submit(run, job): i for i, job in enumerate(jobs)}
        chained: dict[int, tuple[Any, list]] = {}
        for done in as_completed(firsts):
            value, follow = done.result()
            chained[firsts[done]] = (value, [pool.submit(run, f) for f in follow])
        return [(chained[i][0], [f.result() for f in chained[i][1]]) for i in range(len(jobs))]
