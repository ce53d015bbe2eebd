"""Orchestration: which (submission, task) units run, where, and their result files.

A unit is one (submission, task): every probe of the suite and the utility measures, one result file. The
runner verifies each submission's files first (nothing cached is reused for a file that was not checked),
skips units whose result exists (``--overwrite never``), runs the rest here or on Ray
(:mod:`memora_bench.executors`), reuses identical sections of earlier results (:mod:`memora_bench.reuse`)
and writes results. Errors in one unit are collected and the others still run. What a probe may use lives
below, in :mod:`memora_bench.context`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from memora_bench import executors
from memora_bench.cache import Cache
from memora_bench.context import ProbeContext
from memora_bench.models.errors import CheckpointError
from memora_bench.models.handle import submission_model
from memora_bench.models.loading import verify_submission
from memora_bench.models.parallel import Runtime
from memora_bench.packs import install as install_pack
from memora_bench.parts import PartOutcome, assemble_parts, preflight, run_part, unit_parts
from memora_bench.progress import Progress
from memora_bench.results import result_paths, write_result
from memora_bench.reuse import Reuse
from memora_bench.specs import Submission, Suite, Task


def run_unit(ctx: ProbeContext, out: Path, reuse: Reuse | None = None,
             progress: Progress | None = None) -> tuple[Path, list[str], str]:
    """Every probe of the suite and the utility measures for one (submission, task), in this process, on one
    shared context (models load once); writes the result. With ``reuse``, a part whose inputs equal an
    earlier result's is copied from it. Returns the result's path, the parts reused and why the others
    were not."""
    wall0 = time.perf_counter()
    names = unit_parts(ctx.suite)
    copied, why = {}, ""
    environment = ctx.environment()
    if reuse is not None:
        copied, why = reuse.parts(ctx.suite, ctx.task, ctx.submission, ctx.classifiers_record(), environment, names)
    parts = []
    for n in names:
        if n in copied:
            parts.append(PartOutcome(n, *copied[n], {"wall_s": 0.0, "cpu_s": 0.0}))
            if progress:
                progress.stage_reused(n)
            continue
        if progress:
            progress.stage_start(n)
        parts.append(run_part(ctx, n))
        if progress:
            progress.stage_end(n)
    timing = {"executor": "local", "stages": ctx.timer.rounded(),
              "total_wall_s": round(time.perf_counter() - wall0, 3), **ctx.counters}
    if copied:
        timing["reused"] = sorted(copied)
    result, lines = assemble_parts(ctx.suite, ctx.task, ctx.submission, parts, ctx.classifiers_record(),
                                   environment, timing)
    return write_result(out, result, lines), sorted(copied), why


def applies(sub: Submission, task: Task) -> bool:
    """A submission runs the tasks it lists; a control without a recipe (the original model, the oracle) also
    runs every task on its own base model."""
    if sub.control and sub.recipe is None and sub.base_model.id == task.base_model.id:
        return True
    return task.name in sub.tasks


@dataclass
class EvalReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (submission, task, error)
    refused: list[tuple[str, list[str]]] = field(default_factory=list)  # (submission, problems): bad input
    reused: list[tuple[str, str, list[str], str]] = field(default_factory=list)  # (submission, task, parts, why not all)
    installed: list[tuple[str, Path, int]] = field(default_factory=list)  # (task, pack, entries written to the cache)


def evaluate(suite: Suite, tasks: list[Task], submissions: list[Submission], out: Path, cache: Cache,
             overwrite: str = "never", progress: bool = True, executor: str = "local",
             ray_options: dict | None = None, reuse: Path | None = None,
             runtime: Runtime | None = None, stages: str = "quiet", use_packs: bool = True) -> EvalReport:
    """Run every (submission, task) that applies; keep going on error and report all failures.

    A submission runs the tasks it declares; a control (no unlearning) runs every task on its base model.
    ``executor="local"`` runs them here, one after the other; ``"ray"`` runs each part (probe, utility) of
    each as a Ray task (:mod:`memora_bench.executors`) and writes the same result files. ``reuse`` (local
    only): a folder of earlier results whose identical parts are copied (:mod:`memora_bench.reuse`).
    ``runtime``: where models run (default: the CPU). ``stages``: "lines" or "tty" print a line per
    (submission, task) and per stage with the time left (:mod:`memora_bench.progress`) on stderr; "quiet" none.
    ``progress``: the probes' own bars (images, steps). ``use_packs``: first install into ``cache`` the shared work
    of each task that runs, committed beside the suite's results (:mod:`memora_bench.packs`).
    """
    runtime = runtime or Runtime()
    if executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r}; expected 'local' or 'ray'")
    if reuse is not None and executor != "local":
        raise ValueError("reuse of earlier results runs with the local executor only")
    report = EvalReport()
    cache.sweep_stale_tmp()
    jobs: list[tuple[Submission, Task]] = []
    verified: dict[str, str | None] = {}
    for sub in submissions:
        try:  # before anything cached is reused for it
            verified[sub.name] = verify_submission(sub)
        except CheckpointError as err:
            report.refused.append((sub.name, err.problems))
            continue
        if not any(applies(sub, task) for task in tasks):
            report.failed.append((sub.name, "-", f"none of the suite's tasks ({', '.join(t.name for t in tasks)}) "
                                  f"applies: the submission declares {list(sub.tasks)}"))
        for task in tasks:
            if not applies(sub, task):
                continue
            json_path, _ = result_paths(out, sub.name, task.name)
            if overwrite == "never" and json_path.exists():
                report.skipped.append(json_path)
                continue
            if sub.base_model.id != task.base_model.id and not sub.control:
                report.failed.append((sub.name, task.name, f"the submission's base model {sub.base_model.id!r} is "
                                      f"not the task's {task.base_model.id!r}"))
                continue
            problems = preflight(suite, task)
            if problems:
                report.failed.append((sub.name, task.name, "; ".join(problems)))
                continue
            jobs.append((sub, task))
    if use_packs:
        for task in {task.name: task for _, task in jobs}.values():
            path, n = install_pack(cache, suite, task)
            if path is not None:
                report.installed.append((task.name, path, n))
    if executor == "ray":
        executors.run_on_ray(suite, jobs, out, cache, overwrite, report, runtime, **(ray_options or {}))
        return report
    reuser = Reuse(reuse) if reuse is not None else None
    reporter = Progress([(sub.name, task.name, unit_parts(suite)) for sub, task in jobs], stages)
    for i, (sub, task) in enumerate(jobs):
        ctx = ProbeContext(suite, task, sub, cache, runtime, overwrite, progress,
                           model=submission_model(sub, verified[sub.name], runtime.device))
        reporter.unit(i)
        try:
            path, parts, why = run_unit(ctx, out, reuser, reporter)
            report.written.append(path)
            if reuser is not None:
                report.reused.append((sub.name, task.name, parts, why))
        except Exception as err:  # one failing unit must not stop the others
            report.failed.append((sub.name, task.name, f"{type(err).__name__}: {err}"))
    return report
