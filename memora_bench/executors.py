"""Running work units on Ray: each part (a probe, or the utility measures) of each (submission, task) is one
Ray task; the driver assembles each (submission, task)'s parts and writes the result file, so the files are
the same as a local run's (up to ``created`` and ``timing``).

Every task uses the cache folder given to ``evaluate``: on one machine that is shared by construction; on a
cluster put it on a shared file system (or give each node its own: correctness does not depend on the
cache, only speed). Workers import this package, so the cluster's nodes need it installed (or pass a
``runtime_env``). On a CPU each task runs with ``cpus_per_unit`` torch threads, by default as many as this
process uses, so that a Ray run computes with the same thread count as a local one.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from memora_bench.cache import Cache
from memora_bench.context import ProbeContext
from memora_bench.models.generate import MICRO_BATCH
from memora_bench.models.parallel import Runtime
from memora_bench.parts import (
    SHARD_SEP,
    UTILITY,
    assemble_parts,
    part_shards,
    run_part,
    unit_parts,
)
from memora_bench.results import write_result
from memora_bench.timing import merge_stages


def _run_part_remote(suite, task, sub, cache_root: str, overwrite: str, part: str, threads: int, runtime: Runtime,
                     *after):  # ``after``: results of the parts this one waits for (Ray resolves them first)
    torch.set_num_threads(threads)
    ctx = ProbeContext(suite, task, sub, Cache(Path(cache_root)), runtime, overwrite, progress=False)
    outcome = run_part(ctx, part)
    classifiers = ctx.classifiers_record() if part == UTILITY else None
    return outcome, ctx.timer.stages, ctx.counters, classifiers


def _merge_timing(parts: list[tuple[dict, dict]], wall_s: float) -> dict:
    counters: dict[str, int] = {}
    for _, part_counters in parts:
        for name, n in part_counters.items():
            counters[name] = counters.get(name, 0) + n
    return {"executor": "ray", "stages": merge_stages([stages for stages, _ in parts]),
            "total_wall_s": round(wall_s, 3), **counters}


def run_on_ray(suite, jobs, out: Path, cache, overwrite: str, report, runtime: Runtime, address: str | None = None,
               gpus_per_unit: float = 0.0, cpus_per_unit: int | None = None) -> None:
    """Submit every part of every job, then assemble and write each job's result as its parts arrive."""
    import ray  # an optional dependency (pip install 'memora-bench[ray]')

    threads = cpus_per_unit or torch.get_num_threads()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(_run_part_remote).options(num_cpus=threads, num_gpus=gpus_per_unit)
    t0 = time.perf_counter()
    shards = part_shards(suite)

    def submit(sub, task, part, after=()):
        # a sharded probe's own part reads what its shards just wrote, even under --overwrite always
        ow = "never" if after and SHARD_SEP not in part else overwrite
        return remote.remote(suite, task, sub, str(cache.root), ow, part, threads, runtime, *after)

    pending = []
    for sub, task in jobs:
        refs = []
        for part in unit_parts(suite):
            after = []
            for wave in shards.get(part, []):  # a sharded probe: its waves of shards, then the probe itself
                after = [submit(sub, task, shard, after) for shard in wave]
                refs += after
            refs.append(submit(sub, task, part, after))
        pending.append((sub, task, refs))
    for sub, task, refs in pending:
        try:
            got = ray.get(refs)
        except Exception as err:  # one failing job must not stop the others
            cause = getattr(err, "cause", None) or err
            report.failed.append((sub.name, task.name, f"{type(cause).__name__}: {cause}"))
            continue
        outcomes = [g[0] for g in got]
        classifiers = next(g[3] for g in got if g[0].name == UTILITY)
        timing = _merge_timing([(g[1], g[2]) for g in got], time.perf_counter() - t0)
        result, lines = assemble_parts(suite, task, sub, outcomes, classifiers, runtime.environment(MICRO_BATCH),
                                       timing)
        report.written.append(write_result(out, result, lines))
