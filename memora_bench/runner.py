"""Work units: one (submission, task), every probe of the suite and the utility measures, one result file each.

A unit loads nothing it does not need: images come from the content-addressed cache, and the model is
loaded only when an image is missing. A unit is done when its result file exists (``--overwrite never``).
Errors in one unit are collected and the others still run.
"""

from __future__ import annotations

import platform
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from memora_bench import __version__
from memora_bench.cache import Cache, cache_key
from memora_bench.probes.registry import PROBES, load_probe, probe_module
from memora_bench.specs import PromptRow, Submission, Suite, Task, read_prompts

GENERATE_CODE_VERSION = 2  # bump when a change to generation can change an image
SCHEMA_VERSION = 1


_LOCK = threading.RLock()  # counters and stage times, shared by jobs run side by side
_THREAD = threading.local()


def side_by_side(jobs: list[Callable[[], Any]]) -> list:
    """``[job() for job in jobs]``, independent jobs run at once: on CPU each job on one thread of its own,
    as many at once as torch has threads (always one thread per job, even alone, so a job's numbers do not
    depend on the machine's core count); on a GPU one after the other. Results come in job order."""
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from memora_bench.models.generate import one_thread

    cpu = torch.device(compute_device()).type == "cpu"
    workers = min(max(1, torch.get_num_threads()), len(jobs)) if cpu else 1

    def run(job):
        _THREAD.side_by_side = workers > 1
        try:
            with one_thread() if cpu else contextlib.nullcontext():
                return job()
        finally:
            _THREAD.side_by_side = False

    if workers <= 1:
        return [run(job) for job in jobs]
    with ThreadPoolExecutor(workers, thread_name_prefix="side-by-side") as pool:
        return list(pool.map(run, jobs))


@dataclass
class StageTimer:
    """Wall and CPU seconds per named stage (CPU seconds are the device seconds on a CPU run).

    Thread-safe. Inside :func:`side_by_side` (jobs running at once on threads of their own) a stage's CPU
    seconds are its thread's own and its wall seconds add up per job, so stages that overlap in time may sum
    to more than the run's wall time; ``memora_side_by_side`` holds the wall time they took together."""

    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    def __call__(self, name: str):
        timer = self
        cpu_clock = time.thread_time if getattr(_THREAD, "side_by_side", False) else time.process_time

        class _Ctx:
            def __enter__(self):
                self.w, self.c = time.perf_counter(), cpu_clock()

            def __exit__(self, *exc):
                with _LOCK:
                    s = timer.stages.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
                    s["wall_s"] += time.perf_counter() - self.w
                    s["cpu_s"] += cpu_clock() - self.c

        return _Ctx()

    def rounded(self) -> dict:
        return {k: {m: round(v, 3) for m, v in d.items()} for k, d in self.stages.items()}


@dataclass
class Model:
    """A model that images can be generated with: what determines its weights, and how to load it."""

    fingerprint: dict
    loader: Callable[[], Any]
    _pipe: Any = None

    def pipeline(self, timer: "StageTimer", stage: str = "load_model"):
        if self._pipe is None:
            from memora_bench.models import BUILD_LOCK

            with BUILD_LOCK:  # jobs side by side share models (one load), and loading patches torch process-wide
                if self._pipe is None:
                    with timer(stage):
                        self._pipe = self.loader().to(compute_device())
        return self._pipe


def _device_name() -> str:
    import torch

    dev = torch.device(compute_device())
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type


def compute_device() -> str:
    """Where models run: ``$MEMORA_BENCH_DEVICE`` if set (``cpu``, ``cuda``, ``cuda:1``), else the CPU.

    The miniature suite's reference results are CPU results; a GPU is opted into explicitly, and the device
    is recorded in every result's environment."""
    import os

    import torch

    name = os.environ.get("MEMORA_BENCH_DEVICE", "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"MEMORA_BENCH_DEVICE={name!r} is not a torch device ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"MEMORA_BENCH_DEVICE={name!r} but torch sees no CUDA device on this machine")
    return name


def submission_model(sub: Submission, verified_sha256: str | None) -> Model:
    """The submission's model: its declared base model with its checkpoint applied (a control: the base).

    ``verified_sha256`` is what :func:`memora_bench.models.loading.verify_submission` computed from the files:
    the model's fingerprint, and so every cache key of its work, derives from it, never from the manifest."""
    from memora_bench.models.loading import load_submission_pipeline

    ck = sub.checkpoint
    if (ck is None) != (verified_sha256 is None):
        raise ValueError(f"submission {sub.name}: a checkpoint needs its verified sha256, a control has none")
    fingerprint = {
        "base": sub.base_model.id, "revision": sub.base_model.revision,
        "checkpoint": None if ck is None else {"sha256": verified_sha256, "component": ck.component},
    }
    return Model(fingerprint, lambda: load_submission_pipeline(sub, sub.base_model))


def base_model(base) -> Model:
    """A base model with no checkpoint (the original model of a task, or its retrain oracle)."""
    from memora_bench.models.loading import load_base

    return Model({"base": base.id, "revision": base.revision, "checkpoint": None}, lambda: load_base(base))


@dataclass
class Unit:
    """Everything a probe needs for one (submission, task): specs, cache, lazy models and classifiers."""

    suite: Suite
    task: Task
    submission: Submission
    cache: Cache
    overwrite: str = "never"
    progress: bool = True
    timer: StageTimer = field(default_factory=StageTimer)
    model: Model | None = None
    _classifiers: dict = field(default_factory=dict)
    counters: dict = field(default_factory=lambda: {"images_generated": 0, "images_cached": 0})

    def __post_init__(self):
        if self.model is None:  # on a Ray worker too: each machine checks the files it reads
            from memora_bench.models.loading import verify_submission

            self.model = submission_model(self.submission, verify_submission(self.submission))

    @property
    def model_fingerprint(self) -> dict:
        return self.model.fingerprint

    def pipeline(self):
        return self.model.pipeline(self.timer)

    def count(self, name: str, n: int) -> None:
        with _LOCK:
            self.counters[name] += n

    def classifier(self, name: str):
        with _LOCK:
            return self._classifier(name)

    def _classifier(self, name: str):
        if name not in self._classifiers:
            from memora_bench.classifiers.registry import load_classifier

            with self.timer("load_classifiers"):
                self._classifiers[name] = load_classifier(name)
        return self._classifiers[name]

    # --- images -----------------------------------------------------------------------------------------
    def image_key(self, row: PromptRow, seed: int, model: Model | None = None, steps: int | None = None) -> str:
        from memora_bench.models.generate import MICRO_BATCH

        g = self.task.generation
        steps = steps or g.steps
        return cache_key({
            "stage": "generate", "code_version": GENERATE_CODE_VERSION, "model": (model or self.model).fingerprint,
            "prompt": row.prompt, "seed": seed, "guidance": row.guidance, "scheduler": g.scheduler,
            "steps": steps, "height": g.height, "width": g.width, "micro_batch": MICRO_BATCH,
        })

    def images(self, rows: list[PromptRow], stage: str, model: Model | None = None, steps: int | None = None,
               per_prompt: int | None = None) -> list[dict]:
        """One record per image (``images_per_prompt`` per row, seeds ``seed + j``), generating misses.

        ``model`` defaults to the submission's model; ``steps`` and ``per_prompt`` override the task's.
        """
        from memora_bench.models.generate import GenerationConfig

        model = model or self.model
        g = self.task.generation
        steps = steps or g.steps
        per_prompt = per_prompt or g.images_per_prompt
        records = [{"row": r, "seed": r.seed + j, "image_key": self.image_key(r, r.seed + j, model, steps)}
                   for r in rows for j in range(per_prompt)]
        missing = []
        for rec in records:
            img = None if self.overwrite == "always" else self.cache.get_image(rec["image_key"])
            if img is None:
                missing.append(rec)
            else:
                rec["image"] = img
        self.count("images_cached", len(records) - len(missing))
        by_guidance: dict[float, list[dict]] = {}
        for rec in missing:
            by_guidance.setdefault(rec["row"].guidance, []).append(rec)
        for guidance, recs in sorted(by_guidance.items()):
            config = GenerationConfig(g.scheduler, steps, guidance, g.height, g.width)
            pipe = model.pipeline(self.timer)
            for i in range(0, len(recs), 64):  # write to the cache every chunk: a kill loses at most one chunk
                self._generate_chunk(pipe, recs[i : i + 64], config, stage)
        return records

    def _generate_chunk(self, pipe, chunk: list[dict], config, stage: str) -> None:
        """Generate and cache the images of ``chunk``, under the chunk's lock: a second run on the same cache
        that wants the same images waits, then reads them (generation is batch-invariant, so an image made
        in a smaller chunk is the same image)."""
        from memora_bench.models.generate import generate

        with self.cache.lock(cache_key(sorted(r["image_key"] for r in chunk))):
            if self.overwrite != "always":
                for rec in chunk:
                    img = self.cache.get_image(rec["image_key"])
                    if img is not None:
                        rec["image"] = img
                self.count("images_cached", sum("image" in r for r in chunk))
                chunk = [r for r in chunk if "image" not in r]
            if not chunk:
                return
            with self.timer(f"generate_{stage}"):
                out = generate(pipe, [r["row"].prompt for r in chunk], [r["seed"] for r in chunk], config,
                               progress=self.progress)
            for rec, img in zip(chunk, out):
                self.cache.put_image(rec["image_key"], img)
                rec["image"] = img
        self.count("images_generated", len(chunk))

    # --- judging ----------------------------------------------------------------------------------------
    def classifier_for(self, label: str):
        """The task classifier whose labels contain ``label``, with its threshold."""
        for ref in self.task.classifiers:
            clf = self.classifier(ref.name)
            if label in clf.labels:
                return clf, ref.threshold
        raise ValueError(f"no classifier of task {self.task.name} has the label {label!r}")

    def judge(self, records: list[dict], stage: str) -> list[dict]:
        """Adds ``scores`` (the judging classifier's probabilities) and ``hit`` to each image record."""
        with self.timer(f"classify_{stage}"):
            by_label: dict[str, list[dict]] = {}
            for rec in records:
                by_label.setdefault(rec["row"].concept, []).append(rec)
            for label, recs in by_label.items():
                clf, threshold = self.classifier_for(label)
                scores = clf.scores(np.stack([r["image"] for r in recs]))
                hits = clf.hits(scores, label, threshold)
                names = getattr(clf, "score_names", clf.labels)
                describe = getattr(clf, "describe", None)
                for rec, s, h in zip(recs, scores, hits):
                    rec["classifier"] = clf.id
                    rec["scores"] = describe(s) if describe else {n: round(float(v), 6) for n, v in zip(names, s)}
                    rec["hit"] = bool(h)
        return records


def hits_by_prompt(records: list[dict]) -> list[np.ndarray]:
    """Clusters for the bootstrap: the hits of each prompt row (all its images)."""
    clusters: dict[str, list[bool]] = {}
    for rec in records:
        clusters.setdefault(rec["row"].id, []).append(rec["hit"])
    return [np.array(v) for _, v in sorted(clusters.items())]


def rates_by_concept(unit: Unit, records: list[dict]) -> dict:
    """Rate (counts and intervals) per concept label and pooled over all of them."""
    from memora_bench.scoring import rate

    s = unit.suite
    out = {}
    for label in sorted({r["row"].concept for r in records}):
        sub = [r for r in records if r["row"].concept == label]
        out[label] = rate(hits_by_prompt(sub), s.bootstrap, s.bootstrap_seed, s.confidence).as_dict()
    out["all"] = rate(hits_by_prompt(records), s.bootstrap, s.bootstrap_seed, s.confidence).as_dict()
    return out


def image_lines(records: list[dict], probe: str, prompt_set: str) -> list[dict]:
    """JSONL lines, one per image: prompt id, seed, image hash, raw scores, hit."""
    return [{
        "probe": probe, "prompt_set": prompt_set, "prompt_id": r["row"].id, "prompt": r["row"].prompt,
        "seed": r["seed"], "guidance": r["row"].guidance, "concept": r["row"].concept,
        "image_key": r["image_key"], "classifier": r["classifier"], "scores": r["scores"], "hit": r["hit"],
    } for r in records]


def environment() -> dict:
    import diffusers
    import torch
    import transformers

    from memora_bench.models.generate import MICRO_BATCH

    return {
        "memora_bench": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "numpy": np.__version__, "device": _device_name(),
        "torch_threads": torch.get_num_threads(), "micro_batch": MICRO_BATCH,
    }


def task_prompts(task: Task, which: str) -> list[PromptRow]:
    """The rows of one of the task's prompt sets: ``attack_prompts``, ``retain_prompts`` or ``quality``."""
    ps = task.quality.prompts if which == "quality" else getattr(task, which)
    return read_prompts(ps.path(Path(task.path).parent), ps.sha256)


UTILITY = "utility"  # the work unit that measures utility (retain rate, Frechet distance), beside the probes


@dataclass
class PartOutcome:
    """What one part of a (submission, task) produced: a probe's result, or the utility measures."""

    name: str
    result: dict
    lines: list[dict]
    seconds: dict  # wall_s, cpu_s of this part


def unit_parts(suite: Suite) -> list[str]:
    """The work units of one (submission, task): each probe of the suite, then the utility measures."""
    return [p.name for p in suite.probes] + [UTILITY]


SHARD_SEP = "#"  # "memora#seed=1": a shard of a probe's work (see part_shards)


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


def run_part(unit: Unit, part: str) -> PartOutcome:
    """Run one probe (or the utility measures, or a probe's shard) for ``unit``; pure in its result: only
    seconds vary. A shard only fills the cache: its outcome has no result."""
    from memora_bench import utility

    w, c = time.perf_counter(), time.process_time()
    if SHARD_SEP in part:
        probe, shard = part.split(SHARD_SEP, 1)
        params = {p.name: p.params for p in unit.suite.probes}[probe]
        probe_module(probe).prefetch(unit, dict(params), shard)
        result, lines = {}, []
    elif part == UTILITY:
        result, lines = utility.run(unit)
    else:
        params = {p.name: p.params for p in unit.suite.probes}[part]
        result, lines = load_probe(part)(unit, dict(params))
    # a part's seconds are its cost in this run (a warm cache makes them small), hence under timing
    return PartOutcome(part, result, lines, {"wall_s": round(time.perf_counter() - w, 3),
                                             "cpu_s": round(time.process_time() - c, 3)})


def task_classifiers(unit: Unit) -> list[dict]:
    out = []
    for ref in unit.task.classifiers:
        clf = unit.classifier(ref.name)
        out.append({"name": ref.name, "id": clf.id, "sha256": clf.sha256, "threshold": ref.threshold})
    return out


def submission_record(sub: Submission) -> dict:
    """The submission block of a result file."""
    return {"name": sub.name, "method": sub.method, "control": sub.control, "manifest_sha256": sub.sha256,
            "erased": list(sub.erased),
            "checkpoint": None if sub.checkpoint is None else {
                "path": sub.checkpoint.path, "sha256": sub.checkpoint.sha256, "component": sub.checkpoint.component}}


def assemble(suite: Suite, task: Task, sub: Submission, parts: list[PartOutcome], classifiers: list[dict],
             timing: dict) -> tuple[dict, list[dict]]:
    """The result file's content and its image lines from the parts of one (submission, task)."""
    from datetime import datetime, timezone

    by_name = {p.name: p for p in parts}
    probes = {p.name: by_name[p.name].result for p in suite.probes}
    lines = [line for p in suite.probes for line in by_name[p.name].lines] + by_name[UTILITY].lines
    t, s = task, suite
    result = {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": {"name": s.name, "version": s.version, "sha256": s.sha256, "bootstrap": s.bootstrap,
                  "bootstrap_seed": s.bootstrap_seed, "confidence": s.confidence},
        "task": {
            "name": t.name, "version": t.version, "sha256": t.sha256,
            "concepts": [{"name": c.name, "kind": c.kind, "prompt": c.prompt, "label": c.label} for c in t.concepts],
            "attack_prompts": {"file": t.attack_prompts.file or t.attack_prompts.source.url,
                               "sha256": t.attack_prompts.sha256},
            "retain_prompts": {"file": t.retain_prompts.file or t.retain_prompts.source.url,
                               "sha256": t.retain_prompts.sha256},
            "classifiers": classifiers,
            "generation": {"scheduler": t.generation.scheduler, "steps": t.generation.steps,
                           "guidance": t.generation.guidance, "height": t.generation.height,
                           "width": t.generation.width, "images_per_prompt": t.generation.images_per_prompt},
        },
        "base_model": {"id": t.base_model.id, "revision": t.base_model.revision},
        "submission": submission_record(sub),
        "probes": probes,
        "utility": by_name[UTILITY].result,
        "environment": environment(),
        "timing": {**timing, "probes": {p.name: by_name[p.name].seconds for p in suite.probes}},
    }
    return result, lines


def run_unit(unit: Unit, out: Path, reuse=None) -> tuple[Path, list[str], str]:
    """Every probe of the suite and the utility measures for one (submission, task), in this process, on one
    shared :class:`Unit` (models load once); writes the result. With ``reuse`` (a
    :class:`memora_bench.reuse.Reuse`), a part whose inputs equal an earlier result's is copied from it.
    Returns the result's path, the parts reused and why the others were not."""
    from memora_bench.results import write_result

    wall0 = time.perf_counter()
    names = unit_parts(unit.suite)
    copied, why = {}, ""
    if reuse is not None:
        copied, why = reuse.parts(unit.suite, unit.task, unit.submission, task_classifiers(unit), environment(),
                                  names)
    parts = [PartOutcome(n, *copied[n], {"wall_s": 0.0, "cpu_s": 0.0}) if n in copied else run_part(unit, n)
             for n in names]
    timing = {"executor": "local", "stages": unit.timer.rounded(),
              "total_wall_s": round(time.perf_counter() - wall0, 3), **unit.counters}
    if copied:
        timing["reused"] = sorted(copied)
    result, lines = assemble(unit.suite, unit.task, unit.submission, parts, task_classifiers(unit), timing)
    return write_result(out, result, lines), sorted(copied), why


def applies(sub: Submission, task: Task) -> bool:
    """A submission runs the tasks it lists; a control also runs every task on its own base model."""
    if sub.control and sub.base_model.id == task.base_model.id:
        return True
    return task.name in sub.tasks


@dataclass
class EvalReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (submission, task, error)
    refused: list[tuple[str, list[str]]] = field(default_factory=list)  # (submission, problems): bad input
    reused: list[tuple[str, str, list[str], str]] = field(default_factory=list)  # (submission, task, parts, why not all)


def evaluate(suite: Suite, tasks: list[Task], submissions: list[Submission], out: Path, cache: Cache,
             overwrite: str = "never", progress: bool = True, executor: str = "local",
             ray_options: dict | None = None, reuse: Path | None = None) -> EvalReport:
    """Run every (submission, task) that applies; keep going on error and report all failures.

    A submission runs the tasks it declares; a control (no unlearning) runs every task on its base model.
    ``executor="local"`` runs them here, one after the other; ``"ray"`` runs each part (probe, utility) of
    each as a Ray task (:mod:`memora_bench.executors`) and writes the same result files. ``reuse`` (local
    only): a folder of earlier results whose identical parts are copied (:mod:`memora_bench.reuse`).
    """
    from memora_bench.results import result_paths

    from memora_bench.models.loading import CheckpointError, verify_submission

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
            jobs.append((sub, task))
    if reuse is not None and executor != "local":
        raise ValueError("reuse of earlier results runs with the local executor only")
    reuser = None
    if reuse is not None:
        from memora_bench.reuse import Reuse

        reuser = Reuse(reuse)
    if executor == "ray":
        from memora_bench.executors import run_on_ray

        run_on_ray(suite, jobs, out, cache, overwrite, report, **(ray_options or {}))
        return report
    if executor != "local":
        raise ValueError(f"unknown executor {executor!r}; expected 'local' or 'ray'")
    for sub, task in jobs:
        unit = Unit(suite, task, sub, cache, overwrite, progress, model=submission_model(sub, verified[sub.name]))
        try:
            path, parts, why = run_unit(unit, out, reuser)
            report.written.append(path)
            if reuser is not None:
                report.reused.append((sub.name, task.name, parts, why))
        except Exception as err:  # one failing unit must not stop the others
            report.failed.append((sub.name, task.name, f"{type(err).__name__}: {err}"))
    return report
