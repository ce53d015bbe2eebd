"""memora-bench: is the concept an unlearning method erased really gone?

``memora_bench.evaluate(...)`` is the Python API (:func:`memora_bench.api.evaluate`); it is loaded on first use,
so that importing the package stays light.
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("evaluate", "EvaluationError"):
        return getattr(importlib.import_module("memora_bench.api"), name)
    raise AttributeError(f"module 'memora_bench' has no attribute {name!r}")
