"""Classifier registry: short name -> "module:loader", imported lazily (STYLE.md 6).

A loader returns an object with ``id``, ``sha256``, ``labels``, ``scores(images) -> (N, L)`` and
``hits(scores, label, threshold) -> bool (N,)``; the miniature classifiers also have ``features``.
"""

from __future__ import annotations

import importlib

CLASSIFIERS = {
    "mini-digit": "memora_bench.classifiers.mini:load_digit",
    "mini-style": "memora_bench.classifiers.mini:load_style",
}


def load_classifier(name: str, **kwargs):
    """Instantiate a registered classifier by its short name."""
    if name not in CLASSIFIERS:
        raise KeyError(f"unknown classifier {name!r}; registered: {sorted(CLASSIFIERS)}")
    module, attr = CLASSIFIERS[name].split(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)
