"""Model handles: what determines a model's weights (its fingerprint, the root of every cache key of its
work) and how to load it, loaded once and shared by every job that uses it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from memora_bench.models import BUILD_LOCK
from memora_bench.models.loading import load_base, load_submission_pipeline
from memora_bench.specs import BaseModel, Submission
from memora_bench.timing import StageTimer


@dataclass
class Model:
    """A model that images can be generated with: what determines its weights, and how to load it."""

    fingerprint: dict
    loader: Callable[[], Any]
    device: str = "cpu"
    _pipe: Any = None

    def pipeline(self, timer: StageTimer, stage: str = "load_model"):
        if self._pipe is None:
            with BUILD_LOCK:  # jobs side by side share models (one load), and loading patches torch process-wide
                if self._pipe is None:
                    with timer(stage):
                        self._pipe = self.loader().to(self.device)
        return self._pipe


def submission_model(sub: Submission, verified_sha256: str | None, device: str = "cpu") -> Model:
    """The submission's model: its declared base model with its checkpoint applied (a control: the base).

    ``verified_sha256`` is what :func:`memora_bench.models.loading.verify_submission` computed from the files:
    the model's fingerprint, and so every cache key of its work, derives from it, never from the manifest."""
    ck = sub.checkpoint
    if (ck is None) != (verified_sha256 is None):
        raise ValueError(f"submission {sub.name}: a checkpoint needs its verified sha256, a control has none")
    fingerprint = {
        "base": sub.base_model.id, "revision": sub.base_model.revision,
        "checkpoint": None if ck is None else {"sha256": verified_sha256, "component": ck.component},
    }
    if sub.recipe is not None:  # a known-answer control: the recipe is part of what determines its weights
        fingerprint["recipe"] = sub.recipe.as_dict()
    return Model(fingerprint, lambda: load_submission_pipeline(sub, sub.base_model), device)


def base_model(base: BaseModel, device: str = "cpu") -> Model:
    """A base model with no checkpoint (the original model of a task, or its retrain oracle)."""
    return Model({"base": base.id, "revision": base.revision, "checkpoint": None}, lambda: load_base(base), device)
