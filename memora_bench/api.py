"""The Python API: ``memora_bench.evaluate(...)`` runs a suite like ``memora-bench evaluate`` and returns the
result records (docs/submitting.md, "From Python").

    import memora_bench
    results = memora_bench.evaluate("demo-ablate-seven", suite="mini-v5", out="runs/demo")
    results = memora_bench.evaluate(model="my-unet.safetensors", component="unet", tasks=["mini-seven"])
    for r in results:
        print(r["submission"]["name"], r["task"]["name"], r["headlines"])

Each record is the result file's content (docs/results.md) with two keys added: ``path`` (the file) and
``headlines`` (each erased concept's label, the probes that decided it and the index, as ``evaluate`` prints).
Bad input raises :class:`EvaluationError` with every problem; a submission or task whose evaluation failed
is in the error too, after the others ran.
"""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

from memora_bench.cache import Cache
from memora_bench.commands import _headlines, _references, plan
from memora_bench.paths import DEFAULT_SUITE, default_cache_dir
from memora_bench.runner import evaluate as run_evaluation


class EvaluationError(RuntimeError):
    """Bad input, or evaluations that failed; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def evaluate(*submissions: str, model: str | None = None, component: str | None = None,
             tasks: list[str] | None = None, probes: list[str] | None = None, suite: str = DEFAULT_SUITE,
             out: str | Path = "runs", cache_dir: str | Path | None = None, overwrite: str = "never",
             name: str | None = None, progress: bool = False) -> list[dict]:
    """Evaluate submissions (names or folders) or one checkpoint (``model``: a file, a diffusers folder or a
    Hub reference, with ``component`` and ``tasks``) under ``suite``; returns one record per (submission,
    task) result, written to (or kept in) ``out``. ``progress``: stage lines and bars on stderr."""
    args = Namespace(suite=suite, tasks=",".join(tasks or []), probes=",".join(probes or []),
                     submissions=list(submissions), model=model, component=component, name=name, out=str(out),
                     reuse=None, executor="local")
    p = plan(args)
    if p.problems:
        raise EvaluationError(p.problems)
    report = run_evaluation(p.suite, p.tasks, p.submissions, Path(out), Cache(Path(cache_dir or default_cache_dir())),
                            overwrite, progress=progress, runtime=p.runtime, stages="lines" if progress else "quiet")
    problems = [f"{s}: {problem}" for s, ps in report.refused for problem in ps]
    problems += [f"{s} / {t}: {e}" for s, t, e in report.failed]
    references = _references(Path(out), p.suite)
    records = []
    for path in report.written + report.skipped:
        data = json.loads(Path(path).read_text())
        records.append({**data, "path": str(path), "headlines": _headlines(data, references)})
    if problems:
        raise EvaluationError(problems)
    return records
