"""Reusing a probe's section from an earlier result whose inputs are identical (``evaluate --reuse DIR``).

A new suite version that only adds probes (mini-v3 = mini-v2 + the adversarial probes) would otherwise
rerun every probe it shares with the old one. A part (a probe, or the utility measures) of a (submission,
task) is copied from ``DIR/<submission>/<task>.json`` only when everything that determines it is the same:

- the task card (sha256), its base model, its classifiers (id, sha256, threshold);
- the submission's manifest and checkpoint (sha256), name, method, erased concepts;
- the suite's bootstrap settings (resamples, seed, confidence);
- the packages that move numbers (torch, diffusers, transformers, numpy), the device and the micro-batch;
- the code that made it: the package's content hash (``environment.code``, :mod:`memora_bench.provenance`),
  so a section made by other code (or by code that did not record its hash) is recomputed;
- for a probe, its parameters in the earlier suite file (found beside the new suite by name and checked by
  the sha256 the earlier result recorded) equal its parameters in the new suite.

The CI gate (``make gate``) also recomputes the demo submission from a cold cache and requires ``--exact``
equality with its committed result. The copied section says where it came from (``reused_from``:
the earlier file, its sha256, suite and creation time) and the image lines are copied with it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from memora_bench.results import load_result, read_lines_file, result_paths, submission_record
from memora_bench.specs import Submission, Suite, Task, load_suite

NUMERIC_PACKAGES = ("torch", "diffusers", "transformers", "numpy", "device", "micro_batch", "code")


def _earlier_suite_params(suite: Suite, earlier: dict) -> dict[str, dict] | None:
    """The earlier suite's probe parameters, if its file is beside the new suite with the recorded sha256."""
    rec = earlier["suite"]
    path = Path(suite.path).parent / f"{rec['name']}.yaml"
    if not path.exists():
        return None
    old = load_suite(path)
    if old.sha256 != rec["sha256"]:
        return None
    return {p.name: dict(p.params) for p in old.probes}


def _owner(probe_field: str, parts: list[str]) -> str | None:
    """The part an image line belongs to: ``memora_oracle`` is MemoRa's, ``utility`` the utility's."""
    for part in parts:
        if probe_field == part or probe_field.startswith(part + "_"):
            return part
    return None


class Reuse:
    """The earlier results folder; :meth:`parts` says what can be copied for one (submission, task) and why not."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"--reuse: {self.folder} is not a folder of result files")

    def parts(self, suite: Suite, task: Task, sub: Submission, classifiers: list[dict],
              environment: dict, wanted: list[str]) -> tuple[dict[str, tuple[dict, list[dict]]], str]:
        """``({part: (section with reused_from, image lines)}, reason nothing or not everything was reused)``."""
        json_path, jsonl_path = result_paths(self.folder, sub.name, task.name)
        if not json_path.exists():
            return {}, f"no earlier result {json_path}"
        earlier = load_result(json_path)
        checks = {
            "task card": (earlier["task"]["sha256"], task.sha256),
            "base model": (earlier["base_model"], {"id": task.base_model.id, "revision": task.base_model.revision}),
            "classifiers": (earlier["task"]["classifiers"], classifiers),
            "submission": (earlier["submission"], submission_record(sub)),
            "bootstrap settings": ([earlier["suite"][k] for k in ("bootstrap", "bootstrap_seed", "confidence")],
                                   [suite.bootstrap, suite.bootstrap_seed, suite.confidence]),
            "packages and code": ({k: earlier["environment"].get(k) for k in NUMERIC_PACKAGES},
                         {k: environment.get(k) for k in NUMERIC_PACKAGES}),
        }
        differ = [name for name, (a, b) in checks.items() if json.loads(json.dumps(a)) != json.loads(json.dumps(b))]
        if differ:
            return {}, f"{json_path}: {', '.join(differ)} differ"
        old_params = _earlier_suite_params(suite, earlier)
        if old_params is None:
            return {}, (f"{json_path}: its suite file {earlier['suite']['name']}.yaml (sha256 "
                        f"{earlier['suite']['sha256'][:12]}) is not beside {suite.path}")
        new_params = {p.name: dict(p.params) for p in suite.probes}
        earlier_parts = list(earlier["probes"]) + ["utility"]
        lines_by_part: dict[str, list[dict]] = {p: [] for p in earlier_parts}
        lines_text = read_lines_file(jsonl_path)
        if lines_text is None:
            return {}, f"no image lines {jsonl_path} (nor {jsonl_path.name}.gz)"
        for n, text in enumerate(lines_text.splitlines(), 1):
            line = json.loads(text)
            owner = _owner(line["probe"], earlier_parts)
            if owner is None:
                return {}, f"{jsonl_path}:{n}: image line of unknown probe {line['probe']!r}"
            lines_by_part[owner].append(line)
        provenance = {"result": str(json_path), "result_sha256": hashlib.sha256(json_path.read_bytes()).hexdigest(),
                      "suite": {k: earlier["suite"][k] for k in ("name", "version", "sha256")},
                      "created": earlier["created"]}
        out, skipped = {}, []
        for part in wanted:
            if part == "utility":
                section = earlier["utility"]
            elif part in earlier["probes"] and old_params.get(part) == new_params.get(part):
                section = earlier["probes"][part]
            else:
                skipped.append(part)
                continue
            out[part] = ({k: v for k, v in section.items() if k != "reused_from"}
                         | {"reused_from": section.get("reused_from", provenance)}, lines_by_part[part])
        return out, (f"{json_path}: not in it, or with other parameters: {', '.join(skipped)}" if skipped else "")
