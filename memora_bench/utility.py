"""Utility: does the model still draw what it was not asked to forget?

1. Retained-concept accuracy: the task's retain prompts (every concept it does not erase), judged by the
   task's classifiers: k/N with intervals, overall and per concept.
2. Fréchet distance between the digit classifier's features of the retain images and of the held-out real
   digits in all three styles (the miniature world's analogue of FID).
3. For tasks whose card has a ``quality`` block (SD-1.4): CLIP score and FID on captions outside the task
   (:mod:`memora_bench.quality`).
"""

from __future__ import annotations

from pathlib import Path

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
from memora_bench.paths import world_dir
from memora_bench.scoring import frechet_distance_from, gaussian_statistics

REFERENCE_CODE_VERSION = 1
# The reference Gaussian of the shipped digit classifier, committed beside it (``memora-bench world train --stage
# reference``): 3,000 held-out digits cost ~10 s to load, deskew and featurise on a fresh cache (every test,
# every fresh machine); a file for another classifier is ignored and the statistics computed.
REFERENCE_FILE = "digit.reference.safetensors"


def compute_reference_statistics(clf) -> dict[str, torch.Tensor]:
    """Mean and covariance of the classifier's features of the held-out real digits in all three styles."""
    split = load_split()
    images = np.concatenate([stylise(split.heldout_images, s) for s in STYLES])
    mu, cov = gaussian_statistics(clf.features(images))
    return {"mean": torch.from_numpy(mu), "cov": torch.from_numpy(np.ascontiguousarray(cov))}


def write_reference_statistics(clf, path: Path) -> dict:
    """Write :func:`compute_reference_statistics` to ``path``, tagged with the classifier's sha256."""
    from safetensors.torch import save_file

    stats = compute_reference_statistics(clf)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(stats, str(tmp), metadata={"classifier_sha256": clf.sha256, "code_version": str(REFERENCE_CODE_VERSION)})
    tmp.replace(path)
    return {"classifier_sha256": clf.sha256, "dims": int(stats["mean"].shape[0]), "file": path.name}


def shipped_reference_statistics(clf, folder: Path | None = None) -> dict[str, torch.Tensor] | None:
    """The committed statistics, if they were made from this classifier by this code version (else None)."""
    from safetensors import safe_open

    path = (folder or world_dir() / "classifiers") / REFERENCE_FILE
    if not path.exists():
        return None
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        if meta.get("classifier_sha256") != clf.sha256 or meta.get("code_version") != str(REFERENCE_CODE_VERSION):
            return None
        return {k: f.get_tensor(k) for k in ("mean", "cov")}


def reference_statistics(unit: ProbeContext, clf) -> tuple[np.ndarray, np.ndarray]:
    """The held-out real digits' feature Gaussian: the shipped file, else computed once and cached."""
    stats = shipped_reference_statistics(clf)
    if stats is None:
        key = cache_key({"stage": "reference_statistics", "code_version": REFERENCE_CODE_VERSION,
                         "classifier": clf.sha256})
        stats = unit.cache.get_tensors(key)
        if stats is None:
            stats = compute_reference_statistics(clf)
            unit.cache.put_tensors(key, stats)
    return stats["mean"].numpy(), stats["cov"].numpy()


def run(unit: ProbeContext) -> ProbeOutput:
    records = unit.judge(unit.images(unit.prompts("retain_prompts"), "retain"), "retain")
    result = {"retain": unit.rates(records)}
    names = [c.name for c in unit.task.classifiers]
    if "mini-digit" in names:
        with unit.timer("frechet"):
            clf = unit.classifier("mini-digit")
            feats = clf.features(np.stack([r["image"] for r in records]))
            result["frechet"] = {
                "value": round(frechet_distance_from(*gaussian_statistics(feats), *reference_statistics(unit, clf)), 6),
                "features": f"{clf.id} penultimate layer ({feats.shape[1]} dims)",
                "reference": "held-out real digits of the miniature world in all three styles",
                "n_images": len(records),
            }
    lines = unit.lines(records, "utility", "retain")
    if unit.task.quality is not None:
        result["quality"], more = quality.run(unit)
        lines += more
    return ProbeOutput(result, lines)
