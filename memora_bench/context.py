"""The probe context: everything a probe may use for one (submission, task), built below the probes.

A probe gets images for (model, prompts) from the content-addressed cache (the model is loaded only when an
image is missing), judges them with the task's classifiers, turns judged images into rates and image lines,
reads the task's prompts, reaches the original model and the retrain oracle, runs independent jobs side by
side, and times its stages. It never sees the runner, the executors or the command line (HELM's metrics get
a ``MetricService`` the same way).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from memora_bench.cache import Cache, cache_key
from memora_bench.classifiers.registry import load_classifier
from memora_bench.models.generate import MICRO_BATCH, GenerationConfig, generate
from memora_bench.models.handle import Model, base_model, submission_model
from memora_bench.models.loading import verify_submission
from memora_bench.models.parallel import Runtime, side_by_side, side_by_side_chained
from memora_bench.prompt_sources import prompt_file
from memora_bench.results import image_lines
from memora_bench.scoring import rates_by_concept
from memora_bench.specs import (
    BaseModel,
    PromptRow,
    Submission,
    Suite,
    Task,
    read_prompts,
)
from memora_bench.timing import StageTimer

GENERATE_CODE_VERSION = 2  # bump when a change to generation can change an image

_LOCK = threading.RLock()  # counters and classifiers, shared by jobs run side by side


class ProbeOutput(NamedTuple):
    """What a probe (or a measure) returns: its section of the result file and its image lines."""

    section: dict
    lines: list[dict]


def task_prompts(task: Task, which: str) -> list[PromptRow]:
    """The rows of one of the task's prompt sets: ``attack_prompts``, ``retain_prompts`` or ``quality``."""
    ps = task.quality.prompts if which == "quality" else getattr(task, which)
    return read_prompts(prompt_file(ps, Path(task.path).parent), ps.sha256)


def first_rows(rows: list[PromptRow], label: str, n: int) -> list[PromptRow]:
    """The first ``n`` rows of concept ``label`` by id (all of them when ``n`` is 0)."""
    mine = sorted((r for r in rows if r.concept == label), key=lambda r: r.id)
    return mine[:n] if n else mine


def first_rows_per_concept(rows: list[PromptRow], n: int) -> list[PromptRow]:
    """:func:`first_rows` of every concept of ``rows``, concepts in label order."""
    return [r for label in sorted({r.concept for r in rows}) for r in first_rows(rows, label, n)]


@dataclass
class ProbeContext:
    """What a probe gets for one (submission, task): specs, cache, runtime, lazy models and classifiers."""

    suite: Suite
    task: Task
    submission: Submission
    cache: Cache
    runtime: Runtime = field(default_factory=Runtime)
    overwrite: str = "never"
    progress: bool = True
    timer: StageTimer = field(default_factory=StageTimer)
    model: Model | None = None
    _classifiers: dict = field(default_factory=dict)
    _bases: dict = field(default_factory=dict)
    counters: dict = field(default_factory=lambda: {"images_generated": 0, "images_cached": 0})

    def __post_init__(self):
        if self.model is None:  # on a Ray worker too: each machine checks the files it reads
            self.model = submission_model(self.submission, verify_submission(self.submission), self.runtime.device)

    # --- models ------------------------------------------------------------------------------------------
    def base_model(self, base: BaseModel) -> Model:
        """A base model (no checkpoint), one handle per base in this context, so it is loaded once."""
        with _LOCK:
            key = (base.id, base.revision)
            if key not in self._bases:
                self._bases[key] = base_model(base, self.runtime.device)
            return self._bases[key]

    @property
    def original(self) -> Model:
        """The task's original model: the ceiling, and the source of every attack's concept images."""
        return self.base_model(self.task.base_model)

    @property
    def oracle(self) -> Model | None:
        """The task's retrain oracle (the same model trained without the concept): the floor, if it has one."""
        return None if self.task.oracle is None else self.base_model(self.task.oracle)

    def pipeline(self):
        return self.model.pipeline(self.timer)

    def side_by_side(self, jobs: list[Callable[[], Any]]) -> list:
        """Independent jobs at once, one thread each on a CPU (:func:`memora_bench.models.parallel.side_by_side`)."""
        return side_by_side(jobs, self.runtime.device)

    def side_by_side_chained(self, jobs: list[Callable]) -> list:
        """Jobs with follow-ups (:func:`memora_bench.models.parallel.side_by_side_chained`)."""
        return side_by_side_chained(jobs, self.runtime.device)

    def count(self, name: str, n: int) -> None:
        with _LOCK:
            self.counters[name] += n

    def prompts(self, which: str) -> list[PromptRow]:
        return task_prompts(self.task, which)

    # --- images -----------------------------------------------------------------------------------------
    def image_key(self, row: PromptRow, seed: int, model: Model | None = None, steps: int | None = None,
                  scheduler: str | None = None) -> str:
        g = self.task.generation
        steps = steps or g.steps
        return cache_key({
            "stage": "generate", "code_version": GENERATE_CODE_VERSION, "model": (model or self.model).fingerprint,
            "prompt": row.prompt, "seed": seed, "guidance": row.guidance, "scheduler": scheduler or g.scheduler,
            "steps": steps, "height": g.height, "width": g.width, "micro_batch": MICRO_BATCH,
        })

    def images(self, rows: list[PromptRow], stage: str, model: Model | None = None, steps: int | None = None,
               per_prompt: int | None = None, scheduler: str | None = None) -> list[dict]:
        """One record per image (``images_per_prompt`` per row, seeds ``seed + j``), generating misses.

        ``model`` defaults to the submission's model; ``steps``, ``per_prompt`` and ``scheduler`` override the
        task's (MemoRa and concept inversion draw their source images with DDIM, as their references do,
        whatever sampler the card evaluates with).
        """
        model = model or self.model
        g = self.task.generation
        steps = steps or g.steps
        per_prompt = per_prompt or g.images_per_prompt
        scheduler = scheduler or g.scheduler
        records = [{"row": r, "seed": r.seed + j, "image_key": self.image_key(r, r.seed + j, model, steps, scheduler)}
                   for r in rows for j in range(per_prompt)]
        by_guidance: dict[float, list[dict]] = {}
        for rec in records:
            by_guidance.setdefault(rec["row"].guidance, []).append(rec)
        for guidance, recs in sorted(by_guidance.items()):
            config = GenerationConfig(scheduler, steps, guidance, g.height, g.width)

            def draw(chunk, config=config):
                return generate(model.pipeline(self.timer), [r["row"].prompt for r in chunk],
                                [r["seed"] for r in chunk], config, progress=self.progress)

            # cached every chunk of 64: a kill loses at most one chunk; the model is loaded only for a miss
            self.drawn_images(recs, stage, draw, prepare=lambda: model.pipeline(self.timer))
        return records

    def drawn_images(self, records: list[dict], stage: str, draw: Callable[[list[dict]], np.ndarray],
                     chunk: int = 64, prepare: Callable[[], Any] | None = None) -> list[dict]:
        """Images a probe draws its own way (a modified trajectory, a completion): each record carries its
        ``image_key``; cached images are read, the others drawn by ``draw(records)`` (uint8 images in record
        order), ``chunk`` at a time, and cached. ``prepare()`` runs once before the first miss is drawn, outside
        the drawing's stage timer (loading the models ``draw`` uses, timed as their own stage)."""
        missing = []
        for rec in records:
            img = None if self.overwrite == "always" else self.cache.get_image(rec["image_key"])
            if img is None:
                missing.append(rec)
            else:
                rec["image"] = img
        self.count("images_cached", len(records) - len(missing))
        if missing and prepare is not None:
            prepare()
        for i in range(0, len(missing), chunk):
            self._draw_chunk(missing[i : i + chunk], stage, draw)
        return records

    def _draw_chunk(self, chunk: list[dict], stage: str, draw: Callable[[list[dict]], np.ndarray]) -> None:
        """Draw and cache the images of ``chunk``, under the chunk's lock: a second run on the same cache
        that wants the same images waits, then reads them (generation is batch-invariant, so an image made
        in a smaller chunk is the same image)."""
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
                out = draw(chunk)
            for rec, img in zip(chunk, out, strict=True):
                self.cache.put_image(rec["image_key"], img)
                rec["image"] = img
        self.count("images_generated", len(chunk))

    # --- judging ----------------------------------------------------------------------------------------
    def classifier(self, name: str):
        with _LOCK:
            if name not in self._classifiers:
                with self.timer("load_classifiers"):
                    self._classifiers[name] = load_classifier(name)
            return self._classifiers[name]

    def classifier_for(self, label: str):
        """The task classifier whose labels contain ``label``, with its threshold."""
        for ref in self.task.classifiers:
            clf = self.classifier(ref.name)
            if label in clf.labels:
                return clf, ref.threshold
        raise ValueError(f"no classifier of task {self.task.name} has the label {label!r}")

    def classifiers_record(self) -> list[dict]:
        """The task's classifiers as a result records them (name, id, sha256, threshold)."""
        out = []
        for ref in self.task.classifiers:
            clf = self.classifier(ref.name)
            out.append({"name": ref.name, "id": clf.id, "sha256": clf.sha256, "threshold": ref.threshold})
        return out

    def judge(self, records: list[dict], stage: str) -> list[dict]:
        """Adds ``scores`` (the judging classifier's probabilities), ``hit`` and ``concept_score`` (the score of
        the row's own label, or the largest score when the classifier has no score by that name, as NudeNet's
        exposed classes) to each image record."""
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
                j = names.index(label) if label in names else None
                for rec, s, h in zip(recs, scores, hits):
                    rec["classifier"] = clf.id
                    rec["concept_score"] = float(s[j] if j is not None else np.max(s))  # ranks a probe's variants
                    rec["scores"] = describe(s) if describe else {n: round(float(v), 6) for n, v in zip(names, s)}
                    rec["hit"] = bool(h)
        return records

    # --- scores ---------------------------------------------------------------------------------------------
    def rates(self, records: list[dict]) -> dict:
        """Rate (counts and intervals) per concept label and pooled, with the suite's bootstrap settings."""
        s = self.suite
        return rates_by_concept(records, s.bootstrap, s.bootstrap_seed, s.confidence)

    @staticmethod
    def lines(records: list[dict], probe: str, prompt_set: str) -> list[dict]:
        """JSONL lines, one per judged image (:func:`memora_bench.results.image_lines`)."""
        return image_lines(records, probe, prompt_set)

    def environment(self) -> dict:
        return self.runtime.environment(MICRO_BATCH)
