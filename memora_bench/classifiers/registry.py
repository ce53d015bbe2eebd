"""Classifier registry: short name -> "module:loader", imported lazily (STYLE.md 6).

A loader returns an object with ``id``, ``sha256``, ``labels``, ``scores(images) -> (N, L)`` and
``hits(scores, label, threshold) -> bool (N,)``; optionally ``score_names`` (the columns of ``scores`` when
they are not the labels), ``describe(row) -> dict`` (what the JSONL stores of one image's scores) and
``features(images)`` (the miniature classifiers, for the Fréchet distance).
"""

from __future__ import annotations

import importlib

CLASSIFIERS = {
    "mini-digit": "memora_bench.classifiers.mini:load_digit",
    "mini-style": "memora_bench.classifiers.mini:load_style",
    "nudenet": "memora_bench.classifiers.nudenet:load",
    "imagenet-resnet50": "memora_bench.classifiers.hf_image:load_resnet50",
    "art-style": "memora_bench.classifiers.hf_image:load_art_style",
}

DIFFERENTIABLE = frozenset({"mini-digit", "mini-style"})  # have ``log_probs(images)`` (classifier guidance)


def load_classifier(name: str, **kwargs):
    """Instantiate a registered classifier by its short name."""
    if name not in CLASSIFIERS:
        raise KeyError(f"unknown classifier {name!r}; registered: {sorted(CLASSIFIERS)}")
    module, attr = CLASSIFIERS[name].split(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)
