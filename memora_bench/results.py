"""Result files: one self-describing JSON per (submission, task), and a JSONL with one line per image.

Layout: ``<out>/<submission>/<task>.json`` and ``<out>/<submission>/<task>.images.jsonl``. Both are
written atomically, the JSONL first: a result JSON exists only when everything it points at exists.
Only ``created`` and ``timing`` change between two runs of the same inputs. Schema:
``memora_bench/result.schema.json``, plus what a schema cannot say (:func:`semantic_problems`): k <= n,
every rate equals k/n, every Wilson interval is the one of its counts, no NaN or infinity anywhere, and
MemoRa's curves have one point per budget. A result file is input that may have been edited by hand or
crafted: every reader goes through :func:`load_result`.
"""

from __future__ import annotations

import gzip
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import jsonschema

from memora_bench.cache import atomic_write_text, is_key
from memora_bench.scoring import wilson
from memora_bench.specs import Submission, Suite, Task

SCHEMA_FILE = Path(__file__).resolve().parent / "result.schema.json"
VOLATILE_KEYS = ("created", "timing")
MAX_RESULT_BYTES = 64 << 20


class ResultError(ValueError):
    """A result file (or its image lines) that is not what this program writes; names the file."""


SCHEMA_VERSION = 1


def image_lines(records: list[dict], probe: str, prompt_set: str) -> list[dict]:
    """JSONL lines, one per judged image: prompt id, seed, image hash, raw scores, hit."""
    return [{
        "probe": probe, "prompt_set": prompt_set, "prompt_id": r["row"].id, "prompt": r["row"].prompt,
        "seed": r["seed"], "guidance": r["row"].guidance, "concept": r["row"].concept,
        "image_key": r["image_key"], "classifier": r["classifier"], "scores": r["scores"], "hit": r["hit"],
    } for r in records]


def cost_record(images: int, sampling_steps: int, training_evaluations: int = 0, **steps: int) -> dict:
    """What a probe's section says it cost: images drawn, UNet forward passes (two per sampling step of every
    image, classifier-free guidance, plus ``training_evaluations``), and any optimiser step counts given by
    name (``optimizer_steps``, ``lora_steps``)."""
    return {"images": images, "model_evaluations": training_evaluations + images * sampling_steps * 2, **steps}


def submission_record(sub: Submission) -> dict:
    """The submission block of a result file."""
    record = {"name": sub.name, "method": sub.method, "control": sub.control, "manifest_sha256": sub.sha256,
              "erased": list(sub.erased),
              "checkpoint": None if sub.checkpoint is None else {
                  "path": sub.checkpoint.path, "sha256": sub.checkpoint.sha256, "component": sub.checkpoint.component}}
    if sub.recipe is not None:
        record["recipe"] = sub.recipe.as_dict()
    return record


def assemble(suite: Suite, task: Task, sub: Submission, probes: dict[str, dict], utility: dict,
             classifiers: list[dict], environment: dict, timing: dict) -> dict:
    """A result file's content from its parts: each probe's section, the utility measures, the classifiers
    that judged, where it ran and how long each part took."""
    t, s = task, suite
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": {"name": s.name, "version": s.version, "sha256": s.sha256, "bootstrap": s.bootstrap,
                  "bootstrap_seed": s.bootstrap_seed, "confidence": s.confidence},
        "task": {
            "name": t.name, "version": t.version, "sha256": t.sha256,
            "concepts": [{"name": c.name, "kind": c.kind, "prompt": c.prompt, "label": c.label} for c in t.concepts],
            "attack_prompts": {"file": t.attack_prompts.file or t.attack_prompts.source.url,
                               "sha256": t.attack_prompts.sha256},
            "retain_prompts": {"file": t.retain_prompts.file or t.retain_prompts.source.url,
                               "sha256": t.retain_prompts.sha256},
            "classifiers": classifiers,
            "generation": {"scheduler": t.generation.scheduler, "steps": t.generation.steps,
                           "guidance": t.generation.guidance, "height": t.generation.height,
                           "width": t.generation.width, "images_per_prompt": t.generation.images_per_prompt},
        },
        "base_model": {"id": t.base_model.id, "revision": t.base_model.revision},
        "submission": submission_record(sub),
        "probes": probes,
        "utility": utility,
        "environment": environment,
        "timing": timing,
    }


def result_paths(out: Path, submission: str, task: str) -> tuple[Path, Path]:
    folder = Path(out) / submission
    return folder / f"{task}.json", folder / f"{task}.images.jsonl"


def write_result(out: Path, result: dict, image_lines: list[dict]) -> Path:
    """Validate, then write the JSONL and the result JSON (atomic renames); returns the JSON's path."""
    json_path, jsonl_path = result_paths(out, result["submission"]["name"], result["task"]["name"])
    result = dict(result, images_file=jsonl_path.name)
    validate_result(json.loads(json.dumps(result)))  # never write a result that reading would reject
    atomic_write_text(jsonl_path, "".join(json.dumps(line, sort_keys=True, allow_nan=False) + "\n"
                                          for line in image_lines))
    atomic_write_text(json_path, json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return json_path


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number a result may hold")


def parse_json(text: str):
    """JSON without NaN or Infinity (Python's json reads both by default)."""
    return json.loads(text, parse_constant=_no_constants)


def load_result(path: Path) -> dict:
    """Read and validate a result file; raises :class:`ResultError` naming the file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            raise ResultError(f"{path}: larger than {MAX_RESULT_BYTES >> 20} MiB")
        data = parse_json(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, ResultError):
            raise
        raise ResultError(f"{path}: not a JSON result file ({str(err).splitlines()[0][:200]})") from None
    try:
        validate_result(data)
    except ResultError as err:
        raise ResultError(f"{path}: {err}") from None
    return data


def validate_result(data) -> None:
    """Raise :class:`ResultError` if ``data`` does not follow the result schema and its semantic rules."""
    try:
        json.dumps(data, allow_nan=False)
    except ValueError:
        raise ResultError("not a valid result file (a number is NaN or infinite)") from None
    try:
        jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "top level"
        raise ResultError(f"not a valid result file ({where}: {err.message[:200]})") from None
    problems = semantic_problems(data)
    if problems:
        raise ResultError("not a valid result file (" + "; ".join(problems[:5])
                          + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "") + ")")


def _rates(obj, where: str):
    """Every rate record (a dict with k, n, rate, wilson) under ``obj``, with its dotted place."""
    if isinstance(obj, dict):
        if {"k", "n", "rate", "wilson"} <= set(obj):
            yield where, obj
            return
        for key, value in obj.items():
            yield from _rates(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _rates(value, f"{where}[{i}]")


def semantic_problems(data: dict) -> list[str]:
    """What the schema cannot check: counts, rates and intervals agree; MemoRa's curves fit its budgets."""
    confidence = data["suite"]["confidence"]
    problems = []
    for where, r in _rates({"probes": data["probes"], "utility": data["utility"]}, ""):
        k, n = r["k"], r["n"]
        if not (isinstance(k, int) and isinstance(n, int) and 0 <= k <= n and n >= 1):
            problems.append(f"{where}: k={k!r} is not a count in [0, n={n!r}]")
            continue
        if not math.isclose(r["rate"], k / n, rel_tol=0, abs_tol=1e-12):
            problems.append(f"{where}: rate {r['rate']} is not k/n = {k}/{n}")
        if any(not math.isclose(a, b, rel_tol=0, abs_tol=1e-9) for a, b in zip(r["wilson"], wilson(k, n, confidence))):
            problems.append(f"{where}: the Wilson interval {r['wilson']} is not the one of {k}/{n}")
        for name in ("wilson", "bootstrap"):
            lo, hi = r.get(name, [0, 1])
            if not 0 <= lo <= hi <= 1:
                problems.append(f"{where}: {name} interval {[lo, hi]} is not an interval in [0, 1]")
    memora = data["probes"].get("memora")
    if memora is not None:
        budgets = (memora.get("params") or {}).get("budgets")
        if not (isinstance(budgets, list) and budgets and all(isinstance(b, int) for b in budgets)):
            problems.append("probes.memora.params.budgets: missing or not a list of whole numbers")
        else:
            for name, c in (memora.get("concepts") or {}).items():
                for curve in ("curve", "oracle_curve"):
                    if curve in c and len(c[curve]) != len(budgets):
                        problems.append(f"probes.memora.concepts.{name}.{curve}: {len(c[curve])} points for "
                                        f"{len(budgets)} budgets")
                if "curve" not in c:
                    problems.append(f"probes.memora.concepts.{name}: no curve")
    return problems


def read_lines_file(path: Path) -> str | None:
    """The text of an image-lines file, or of its gzip-compressed copy ``<path>.gz`` (how the committed results
    store theirs: the same lines, a sixth of the bytes); None when neither exists."""
    path = Path(path)
    if path.exists():
        return path.read_text()
    packed = path.with_name(path.name + ".gz")
    return gzip.decompress(packed.read_bytes()).decode() if packed.exists() else None


def load_image_lines(result: dict, path: Path) -> list[dict]:
    """The image lines of the result at ``path`` (its ``images_file`` beside it), each validated: a line's
    ``image_key`` names files in caches and sites, so it must be a cache key. Raises :class:`ResultError`."""
    name = result.get("images_file", "")
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ResultError(f"{path}: images_file {name[:80]!r} is not a file name beside the result")
    f = Path(path).parent / name
    content = read_lines_file(f)
    if content is None:
        return []
    lines = []
    for i, text in enumerate(content.splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = parse_json(text)
        except ValueError as err:
            raise ResultError(f"{f}:{i}: not a JSON line ({str(err)[:120]})") from None
        if not isinstance(line, dict) or not is_key(line.get("image_key", "")):
            raise ResultError(f"{f}:{i}: image_key is not a cache key (64 lowercase hex digits)")
        if not isinstance(line.get("probe"), str) or not isinstance(line.get("hit"), bool):
            raise ResultError(f"{f}:{i}: a line needs a probe name and a boolean hit")
        lines.append(line)
    return lines


def stable_part(data: dict) -> dict:
    """The result without the keys that legitimately differ between runs (timestamps, timings)."""
    return {k: v for k, v in data.items() if k not in VOLATILE_KEYS}
