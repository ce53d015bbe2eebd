"""MemoRa and concept inversion draw their source images with DDIM, as their references do, whatever sampler the
task card evaluates with (SD-1.4 cards: LMS); on the miniature cards (DDIM) nothing changes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from memora_bench.cache import Cache
from memora_bench.context import ProbeContext
from memora_bench.models.parallel import Runtime
from memora_bench.paths import repo_root
from memora_bench.probes import concept_inversion, memora
from memora_bench.specs import PromptRow, load_submission, load_suite, load_task

ROOT = repo_root()


def _ctx(tmp_path, scheduler: str) -> ProbeContext:
    task = load_task(ROOT / "tasks" / "mini-seven.yaml")
    task = replace(task, generation=replace(task.generation, scheduler=scheduler))
    return ProbeContext(load_suite(ROOT / "benchmark" / "mini-v4.yaml"), task, load_submission(ROOT / "submissions" / "original"),
                        Cache(tmp_path), Runtime(), "never", False)


def test_the_sampler_override_is_part_of_the_image_key_and_neutral_on_ddim_cards(tmp_path):
    row = PromptRow("r", "a handwritten seven", 1, 7.5, "seven")
    ddim, lms = _ctx(tmp_path, "ddim"), _ctx(tmp_path, "lms")
    assert ddim.image_key(row, 1, scheduler="ddim") == ddim.image_key(row, 1)
    assert lms.image_key(row, 1, scheduler="ddim") == ddim.image_key(row, 1)
    assert lms.image_key(row, 1) != ddim.image_key(row, 1)


class _Stop(Exception):
    pass


class _Recorder:
    """Stands in for the probe context: records how the first images are asked for, then stops the probe."""

    original = None

    def __init__(self, task):
        self.task, self.calls = task, []

    def prompts(self, kind):
        return []

    def images(self, rows, stage, **kw):
        self.calls.append((stage, kw.get("scheduler")))
        raise _Stop


def test_memora_and_concept_inversion_ask_for_ddim_source_images():
    task = load_task(ROOT / "tasks" / "mini-seven.yaml")
    unit = _Recorder(task)
    with pytest.raises(_Stop):
        memora.concept_images(unit, None, task.concepts[0], memora.parse_params({}))
    with pytest.raises(_Stop):
        concept_inversion.run(unit, {})
    assert unit.calls == [("memora_concept", "ddim"), ("concept_inversion_source", "ddim")]
