"""`evaluate --reuse DIR`: a part whose inputs equal an earlier result's is copied, and equals a fresh run."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from memora_bench.paths import repo_root
from memora_bench.results import load_result, stable_part
from tests.test_evaluate import run_cli

pytestmark = pytest.mark.slow  # five small evaluations, ~1-2 min

FIXTURES = repo_root() / "tests" / "fixtures"
PLUS = ("name: mini-small-plus\nversion: 1\ndescription: Test fixture, mini-small plus concept inversion.\n"
        "tasks: [mini-seven-small]\nprobes:\n  plain: {}\n"
        "  concept_inversion: {images: 2, steps: 2, batch_size: 1, accumulation: 1, eval_images: 2}\n"
        "bootstrap: 200\nbootstrap_seed: 0\nconfidence: 0.95\n")


def _lines(path, probes):
    return [json.loads(x) for x in path.read_text().splitlines() if json.loads(x)["probe"] in probes]


def _without_provenance(data: dict) -> dict:
    data = stable_part(data)
    data["probes"] = {k: {f: v for f, v in p.items() if f != "reused_from"} for k, p in data["probes"].items()}
    data["utility"] = {k: v for k, v in data["utility"].items() if k != "reused_from"}
    return data


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("reuse")
    shutil.copytree(FIXTURES / "tasks", root / "tasks")
    (root / "benchmark").mkdir()
    shutil.copy(FIXTURES / "benchmark" / "mini-small.yaml", root / "benchmark")
    (root / "benchmark" / "mini-small-plus.yaml").write_text(PLUS)
    cache = root / "cache"
    res = run_cli("evaluate", "original", "--suite", root / "benchmark" / "mini-small.yaml", "--out", root / "old",
                  "--cache-dir", cache)
    assert res.returncode == 0, res.stdout + res.stderr
    res = run_cli("evaluate", "original", "--suite", root / "benchmark" / "mini-small-plus.yaml",
                  "--out", root / "new", "--cache-dir", cache, "--reuse", root / "old")
    assert res.returncode == 0, res.stdout + res.stderr
    return root, res


def test_identical_parts_are_copied_with_their_provenance(world):
    root, res = world
    old_path = root / "old" / "original" / "mini-seven-small.json"
    old, new = load_result(old_path), load_result(root / "new" / "original" / "mini-seven-small.json")
    provenance = {"result": str(old_path), "result_sha256": hashlib.sha256(old_path.read_bytes()).hexdigest(),
                  "suite": {k: old["suite"][k] for k in ("name", "version", "sha256")}, "created": old["created"]}
    assert new["probes"]["plain"] == old["probes"]["plain"] | {"reused_from": provenance}
    assert new["utility"] == old["utility"] | {"reused_from": provenance}
    assert "reused_from" not in new["probes"]["concept_inversion"]  # a probe the old suite did not have
    assert new["timing"]["reused"] == ["plain", "utility"]
    assert new["suite"]["name"] == "mini-small-plus"
    old_lines = root / "old" / "original" / "mini-seven-small.images.jsonl"
    new_lines = root / "new" / "original" / "mini-seven-small.images.jsonl"
    assert _lines(new_lines, {"plain", "utility"}) == _lines(old_lines, {"plain", "utility"})
    assert len(_lines(new_lines, {"concept_inversion"})) == 2
    assert "reused original / mini-seven-small: plain, utility" in res.stdout


def test_a_reused_result_equals_a_fresh_one(world):
    root, _ = world
    res = run_cli("evaluate", "original", "--suite", root / "benchmark" / "mini-small-plus.yaml",
                  "--out", root / "fresh", "--cache-dir", root / "cache")
    assert res.returncode == 0, res.stdout + res.stderr
    fresh = load_result(root / "fresh" / "original" / "mini-seven-small.json")
    reused = load_result(root / "new" / "original" / "mini-seven-small.json")
    assert "reused" not in fresh["timing"]
    assert _without_provenance(reused) == _without_provenance(fresh)
    jsonl = "mini-seven-small.images.jsonl"
    assert (root / "fresh" / "original" / jsonl).read_text() == (root / "new" / "original" / jsonl).read_text()


def _reuse_reason(root, suite_text: str, earlier: str, name: str) -> tuple[dict, str]:
    suite = root / "benchmark" / f"{name}.yaml"
    suite.write_text(suite_text.replace("name: mini-small-plus", f"name: {name}"))
    res = run_cli("evaluate", "original", "--suite", suite, "--out", root / name, "--cache-dir", root / "cache",
                  "--reuse", earlier)
    assert res.returncode == 0, res.stdout + res.stderr
    return load_result(root / name / "original" / "mini-seven-small.json"), res.stdout


def test_nothing_is_reused_when_the_bootstrap_differs(world):
    root, _ = world
    data, out = _reuse_reason(root, PLUS.replace("bootstrap: 200", "bootstrap: 100"), root / "old", "boot")
    assert "reused" not in data["timing"] and "reused_from" not in data["probes"]["plain"]
    assert "reused original / mini-seven-small: nothing; recomputed the rest: " in out
    assert "bootstrap settings differ" in out


def test_nothing_is_reused_from_another_submission_or_a_changed_earlier_suite(world):
    root, _ = world
    tampered = root / "tampered"
    shutil.copytree(root / "old", tampered)
    path = tampered / "original" / "mini-seven-small.json"
    data = json.loads(path.read_text())
    data["submission"]["manifest_sha256"] = "0" * 64
    path.write_text(json.dumps(data))
    data, out = _reuse_reason(root, PLUS, tampered, "tampered-sub")
    assert "reused_from" not in data["probes"]["plain"] and "submission differ" in out
    # the earlier suite file edited after the earlier run: its parameters can no longer be compared
    edited = root / "edited"
    (edited / "benchmark").mkdir(parents=True)
    shutil.copytree(root / "tasks", edited / "tasks")
    (edited / "benchmark" / "mini-small.yaml").write_text(
        (FIXTURES / "benchmark" / "mini-small.yaml").read_text().replace("a small slice", "a slice"))
    data, out = _reuse_reason(edited, PLUS, root / "old", "edited-suite")
    assert "reused_from" not in data["probes"]["plain"]
    assert "its suite file mini-small.yaml" in out and "is not beside" in out


def test_a_section_made_by_other_code_is_not_reused(world):
    root, _ = world
    other = root / "other-code"
    shutil.copytree(root / "old", other)
    path = other / "original" / "mini-seven-small.json"
    data = json.loads(path.read_text())
    assert len(data["environment"]["code"]) == 64  # every result records the code that made it
    data["environment"]["code"] = "f" * 64
    path.write_text(json.dumps(data))
    data, out = _reuse_reason(root, PLUS, other, "other-code-run")
    assert "reused_from" not in data["probes"]["plain"] and "packages and code differ" in out


def test_reuse_needs_a_folder_and_the_local_executor(tmp_path):
    res = run_cli("evaluate", "original", "--suite", FIXTURES / "benchmark" / "mini-small.yaml",
                  "--out", tmp_path / "o", "--reuse", tmp_path / "missing")
    assert res.returncode == 2 and f"--reuse {tmp_path / 'missing'}: not a folder of result files" in res.stderr
    assert not (tmp_path / "o").exists()
