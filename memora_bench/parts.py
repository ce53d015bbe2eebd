"""The parts of one (submission, task): each probe of the suite, then the utility measures; a probe whose
work can be spread (MemoRa) also has shards that only fill the cache. Both executors (local and Ray) run
parts through :func:`run_part` and assemble a result from their outcomes with :func:`assemble_parts`."""

from __future__ import annotations

import time
from dataclasses import dataclass

from memora_bench import utility
from memora_bench.context import ProbeContext
from memora_bench.probes.registry import PROBES, load_probe, probe_module
from memora_bench.results import assemble
from memora_bench.specs import Submission, Suite, Task

UTILITY = "utility"  # the part that measures utility (retain rate, Frechet distance), beside the probes
SHARD_SEP = "#"  # "memora#seed=1": a shard of a probe's work (see part_shards)


@dataclass
class PartOutcome:
    """What one part of a (submission, task) produced: a probe's result, or the utility measures."""

    name: str
    result: dict
    lines: list[dict]
    seconds: dict  # wall_s, cpu_s of this part


def unit_parts(suite: Suite) -> list[str]:
    """The parts of one (submission, task): each probe of the suite, then the utility measures."""
    return [p.name for p in suite.probes] + [UTILITY]


def preflight(suite: Suite, task: Task) -> list[str]:
    """What keeps a probe of ``suite`` from running on ``task`` (each probe's optional ``preflight(task,
    params)``), so that an evaluation refuses the unit before hours of other probes' work, not after."""
    out = []
    for p in suite.probes:
        check = getattr(probe_module(p.name), "preflight", None)
        problem = check(task, dict(p.params)) if check else None
        if problem:
            out.append(problem)
    return out


def part_shards(suite: Suite) -> dict[str, list[list[str]]]:
    """For each probe that can spread its work: the shards an executor runs before the probe's own part, in
    waves (each wave after the previous; the shards of a wave side by side). MemoRa: its shared stages, then
    one shard per attack seed. The probe's part then assembles its result from the cache."""
    out = {}
    for p in suite.probes:
        if PROBES[p.name].shardable:
            names = [f"{p.name}{SHARD_SEP}{s}" for s in probe_module(p.name).shards(dict(p.params))]
            out[p.name] = [names[:1], names[1:]]
    return out


def run_part(ctx: ProbeContext, part: str) -> PartOutcome:
    """Run one probe (or the utility measures, or a probe's shard) in ``ctx``; pure in its result: only
    seconds vary. A shard only fills the cache: its outcome has no result."""
    w, c = time.perf_counter(), time.process_time()
    params = {p.name: dict(p.params) for p in ctx.suite.probes}
    if SHARD_SEP in part:
        probe, shard = part.split(SHARD_SEP, 1)
        probe_module(probe).prefetch(ctx, params[probe], shard)
        result, lines = {}, []
    elif part == UTILITY:
        result, lines = utility.run(ctx)
    else:
        result, lines = load_probe(part)(ctx, params[part])
    # a part's seconds are its cost in this run (a warm cache makes them small), hence under timing
    return PartOutcome(part, result, lines, {"wall_s": round(time.perf_counter() - w, 3),
                                             "cpu_s": round(time.process_time() - c, 3)})


def assemble_parts(suite: Suite, task: Task, sub: Submission, parts: list[PartOutcome], classifiers: list[dict],
                   environment: dict, timing: dict) -> tuple[dict, list[dict]]:
    """The result file's content and its image lines from the parts of one (submission, task)."""
    by_name = {p.name: p for p in parts}
    probes = {p.name: by_name[p.name].result for p in suite.probes}
    lines = [line for p in suite.probes for line in by_name[p.name].lines] + by_name[UTILITY].lines
    timing = {**timing, "probes": {p.name: by_name[p.name].seconds for p in suite.probes}}
    return assemble(suite, task, sub, probes, by_name[UTILITY].result, classifiers, environment, timing), lines
