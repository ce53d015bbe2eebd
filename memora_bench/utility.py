"""Utility: does the model still draw what it was not asked to forget?

1. Retained-concept accuracy: the task's retain prompts (every concept it does not erase), judged by the
   task's classifiers: k/N with intervals, overall and per concept.
2. Fréchet distance between the digit classifier's features of the retain images and of the held-out real
   digits in all three styles (the miniature world's analogue of FID).
3. For tasks whose card has a ``quality`` block (SD-1.4): CLIP score and FID on captions outside the task
   (:mod:`memora_bench.quality`).
"""

from __future__ import annotations

import numpy as np
import torch

from memora_bench import quality
from memora_bench.cache import cache_key
from memora_bench.context import ProbeContext, ProbeOutput
from memora_bench.digits import (  # real digits: the Frechet reference (issue 27)
    STYLES,
    load_split,
    stylise,
)
from memora_bench.scoring import frechet_distance

REFERENCE_CODE_VERSION = 1


def reference_features(unit: ProbeContext, clf) -> np.ndarray:
    """Classifier features of the held-out real digits (all styles), cached by classifier hash."""
    key = cache_key({"stage": "reference_features", "code_version": REFERENCE_CODE_VERSION, "classifier": clf.sha256})
    cached = unit.cache.get_tensors(key)
    if cached is not None:
        return cached["features"].numpy()
    split = load_split()
    images = np.concatenate([stylise(split.heldout_images, s) for s in STYLES])
    feats = clf.features(images)
    unit.cache.put_tensors(key, {"features": torch.from_numpy(np.ascontiguousarray(feats))})
    return feats


def run(unit: ProbeContext) -> ProbeOutput:
    records = unit.judge(unit.images(unit.prompts("retain_prompts"), "retain"), "retain")
    result = {"retain": unit.rates(records)}
    names = [c.name for c in unit.task.classifiers]
    if "mini-digit" in names:
        with unit.timer("frechet"):
            clf = unit.classifier("mini-digit")
            feats = clf.features(np.stack([r["image"] for r in records]))
            result["frechet"] = {
                "value": round(frechet_distance(feats, reference_features(unit, clf)), 6),
                "features": f"{clf.id} penultimate layer ({feats.shape[1]} dims)",
                "reference": "held-out real digits of the miniature world in all three styles",
                "n_images": len(records),
            }
    lines = unit.lines(records, "utility", "retain")
    if unit.task.quality is not None:
        result["quality"], more = quality.run(unit)
        lines += more
    return ProbeOutput(result, lines)
