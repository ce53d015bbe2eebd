"""Result files: one self-describing JSON per (submission, task), and a JSONL with one line per image.

Layout: ``<out>/<submission>/<task>.json`` and ``<out>/<submission>/<task>.images.jsonl``. Both are
written atomically, the JSONL first: a result JSON exists only when everything it points at exists.
Only ``created`` and ``timing`` change between two runs of the same inputs. Schema: ``docs/result.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from memora_bench.cache import atomic_write_text

SCHEMA_FILE = Path(__file__).resolve().parent / "result.schema.json"
VOLATILE_KEYS = ("created", "timing")


def result_paths(out: Path, submission: str, task: str) -> tuple[Path, Path]:
    folder = Path(out) / submission
    return folder / f"{task}.json", folder / f"{task}.images.jsonl"


def write_result(out: Path, result: dict, image_lines: list[dict]) -> Path:
    """Validate, then write the JSONL and the result JSON (atomic renames); returns the JSON's path."""
    json_path, jsonl_path = result_paths(out, result["submission"]["name"], result["task"]["name"])
    result = dict(result, images_file=jsonl_path.name)
    validate_result(json.loads(json.dumps(result)))  # never write a result that reading would reject
    atomic_write_text(jsonl_path, "".join(json.dumps(line, sort_keys=True) + "\n" for line in image_lines))
    atomic_write_text(json_path, json.dumps(result, indent=2, sort_keys=True) + "\n")
    return json_path


def load_result(path: Path) -> dict:
    """Read and schema-validate a result file."""
    data = json.loads(Path(path).read_text())
    validate_result(data)
    return data


def validate_result(data: dict) -> None:
    """Raise ``jsonschema.ValidationError`` if ``data`` does not follow the result schema."""
    import jsonschema

    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))


def stable_part(data: dict) -> dict:
    """The result without the keys that legitimately differ between runs (timestamps, timings)."""
    return {k: v for k, v in data.items() if k not in VOLATILE_KEYS}
