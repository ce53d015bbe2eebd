"""`memora-bench evaluate` end to end on the shipped miniature world."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memora_bench import miniworld
from memora_bench.paths import repo_root
from memora_bench.results import load_result, stable_part

ROOT = repo_root()
SMALL_SUITE = ROOT / "tests" / "fixtures" / "benchmark" / "mini-small.yaml"


def run_cli(*args, check=False, timeout=900) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, "-m", "memora_bench.cli", *map(str, args)], capture_output=True,
                         text=True, env=env, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"exit {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def evaluate_small(out: Path, cache: Path, *extra) -> subprocess.CompletedProcess:
    return run_cli("evaluate", "original", "--suite", SMALL_SUITE, "--out", out, "--cache-dir", cache, *extra)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One cold run of the small suite, shared by the tests below."""
    root = tmp_path_factory.mktemp("run")
    t0 = time.perf_counter()
    res = evaluate_small(root / "out", root / "cache", "--profile")
    assert res.returncode == 0, res.stderr
    return root, time.perf_counter() - t0, res


def test_profile_table_lists_stages_and_counts(small_run):
    _, _, res = small_run
    out = res.stdout
    assert "stage" in out and "wall s" in out and "CPU s" in out
    for stage in ("generate_attack", "generate_retain", "load_model", "frechet"):
        assert re.search(rf"^{stage}\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d%$", out, re.M), stage
    m = re.search(r"images generated (\d+), from the cache (\d+); model evaluations \(UNet forward passes\) (\d+)", out)
    assert m and int(m.group(1)) == 16 and int(m.group(2)) == 0 and int(m.group(3)) == 8 * 50 * 2
    m = re.search(r"^cores: all (\d+) busy (\d+\.\d)% of the wall time; on average (\d+\.\d\d) of (\d+) busy "
                  r"\((\d+\.\d) CPU s in (\d+\.\d) s\)$", out, re.M)
    assert m, out
    cores, share, mean, cpu, wall = (int(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(5)),
                                     float(m.group(6)))
    assert cores == len(os.sched_getaffinity(0)) and 0 <= share <= 100 and 0 < mean <= cores + 0.05
    assert wall > 1
    # the mean is CPU s over wall s before the three figures were rounded (CPU s and wall s to 0.1, the mean to
    # 0.01), so it lies between the ratios of the rounded figures' extremes
    assert (cpu - 0.05) / (wall + 0.05) - 0.005 <= mean <= (cpu + 0.05) / (wall - 0.05) + 0.005


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_result_is_valid_and_complete(small_run):
    root, _, res = small_run
    result_path = root / "out" / "original" / "mini-seven-small.json"
    data = load_result(result_path)  # validates against the JSON Schema
    assert "wrote" in res.stdout and str(result_path) in res.stdout
    plain = data["probes"]["plain"]["rates"]
    assert plain["all"]["n"] == 8 and plain["seven"]["n"] == 8
    assert data["utility"]["retain"]["all"]["n"] == 8
    assert data["utility"]["frechet"]["value"] > 0
    assert data["submission"]["control"] is True and data["submission"]["checkpoint"] is None
    assert data["task"]["classifiers"][0]["sha256"] == miniworld.load_manifest()["files"][
        "classifiers/digit.safetensors"]["sha256"]
    lines = _jsonl(result_path.with_name("mini-seven-small.images.jsonl"))
    assert len(lines) == 16 and sum(line["hit"] for line in lines if line["probe"] == "plain") == plain["all"]["k"]
    assert data["timing"]["images_generated"] == 16 and data["timing"]["images_cached"] == 0
    assert {"generate_attack", "generate_retain", "load_model"} <= set(data["timing"]["stages"])
    assert set(data["timing"]["probes"]) == set(data["probes"])  # each probe's seconds in this run
    assert all(s["wall_s"] > 0 for s in data["timing"]["probes"].values())


def test_original_reproduces_the_model_card_image_for_image(small_run):
    root, _, _ = small_run
    card = miniworld.load_manifest()["models"]["base"]["concept_hits"]
    lines = _jsonl(root / "out" / "original" / "mini-seven-small.images.jsonl")
    retain = [line for line in lines if line["prompt_set"] == "retain"]
    assert retain
    for line in retain:
        index = int(line["prompt_id"].rsplit("-", 1)[1])
        assert line["hit"] == (card[line["concept"]][index] == "1"), line["prompt_id"]


def test_warm_rerun_is_fast_and_identical(small_run):
    root, cold_seconds, _ = small_run
    first = root / "out" / "original" / "mini-seven-small.json"
    before_json, before_jsonl = json.loads(first.read_text()), first.with_suffix("").with_suffix(
        ".images.jsonl").read_bytes()
    t0 = time.perf_counter()
    res = evaluate_small(root / "out", root / "cache", "--overwrite", "missing")
    warm = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    after = json.loads(first.read_text())
    assert stable_part(after) == stable_part(before_json)
    assert first.with_suffix("").with_suffix(".images.jsonl").read_bytes() == before_jsonl
    assert after["timing"]["images_generated"] == 0 and after["timing"]["images_cached"] == 16
    assert "load_model" not in after["timing"]["stages"], "a warm rerun must not load the diffusion model"
    assert warm <= 10.0, f"warm rerun took {warm:.1f} s"


def test_overwrite_never_keeps_existing_results(small_run):
    root, _, _ = small_run
    path = root / "out" / "original" / "mini-seven-small.json"
    mtime = path.stat().st_mtime_ns
    res = evaluate_small(root / "out", root / "cache")
    assert res.returncode == 0 and "kept" in res.stdout
    assert path.stat().st_mtime_ns == mtime


def test_submission_with_no_applicable_task_is_a_failure(tmp_path):
    res = run_cli("evaluate", "demo-ablate-seven", "--suite", SMALL_SUITE, "--out", tmp_path / "out",
                  "--cache-dir", tmp_path / "cache")
    assert res.returncode == 1 and "none of the suite's tasks" in res.stdout


def test_json_summary(small_run):
    root, _, _ = small_run
    res = evaluate_small(root / "out", root / "cache", "--json")
    summary = json.loads(res.stdout)
    assert summary["failed"] == [] and summary["results"][0]["plain"]["n"] == 8


def test_bad_inputs_write_nothing(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "submission.yaml").write_text("name: bad\nmethod: x\nauthor: [me]\nbase_model: {id: world/base}\n")
    res = evaluate_small(tmp_path / "out", tmp_path / "cache", "--tasks", "nope")
    res2 = run_cli("evaluate", bad, "--suite", SMALL_SUITE, "--out", tmp_path / "out", "--cache-dir",
                   tmp_path / "cache")
    assert res.returncode == 2 and "task 'nope' is not in suite" in res.stderr
    assert res2.returncode == 2
    assert "unknown key 'author' (did you mean 'authors'?)" in res2.stderr
    assert "missing required key 'base_model.revision'" in res2.stderr
    assert str(bad / "submission.yaml") in res2.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def _submission_with(folder: Path, tensors: dict | None = None, raw: bytes | None = None) -> Path:
    """A submission whose checkpoint is ``tensors`` (or ``raw`` bytes), with its true sha256 unless raw."""
    from safetensors.torch import save_file

    from memora_bench.specs import sha256_file

    folder.mkdir()
    if raw is not None:
        (folder / "w.safetensors").write_bytes(raw)
    else:
        save_file(tensors, str(folder / "w.safetensors"))
    sha = "0" * 64 if raw is not None else sha256_file(folder / "w.safetensors")
    (folder / "submission.yaml").write_text(
        f"name: {folder.name}\nmethod: x\nauthors: [me]\nreference: r\n"
        "base_model: {id: world/base, revision: mini-world-v2}\nerased: [seven]\ntasks: [mini-seven-small]\n"
        f"checkpoint: {{path: w.safetensors, sha256: '{sha}', component: unet}}\n")
    return folder


def test_one_failing_unit_does_not_stop_the_others(tmp_path):
    import torch

    # A well-formed file with its true hash, whose tensor the UNet does not have: it fails when applied.
    sub = _submission_with(tmp_path / "broken", {"not_a_layer.weight": torch.zeros(3)})
    cache = tmp_path / "cache"
    res = run_cli("evaluate", sub, "original", "--suite", SMALL_SUITE, "--out", tmp_path / "out", "--cache-dir", cache)
    assert res.returncode == 1
    assert "FAILED broken / mini-seven-small" in res.stdout and "unexpected tensor 'not_a_layer.weight'" in res.stdout
    assert (tmp_path / "out" / "original" / "mini-seven-small.json").exists()
    assert not (tmp_path / "out" / "broken").exists()
    shutil.rmtree(cache)


def test_a_refused_checkpoint_is_bad_input_and_the_others_still_run(tmp_path):
    sub = _submission_with(tmp_path / "junk", raw=b"junk")  # and a declared sha256 that is not its own
    cache = tmp_path / "cache"
    res = run_cli("evaluate", sub, "original", "--suite", SMALL_SUITE, "--out", tmp_path / "out", "--cache-dir", cache)
    assert res.returncode == 2
    assert "sha256 is" in res.stderr and "the manifest says " + "0" * 64 in res.stderr
    assert (tmp_path / "out" / "original" / "mini-seven-small.json").exists()
    assert not (tmp_path / "out" / "junk").exists()
    shutil.rmtree(cache)


def _no_partial_files(*folders: Path) -> None:
    from memora_bench.cache import read_png

    for folder in folders:
        if not folder.exists():
            continue
        assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")], "temporary file left behind"
        for png in folder.rglob("*.png"):
            read_png(png)  # raises on a truncated image
        for js in folder.rglob("*.json"):
            json.loads(js.read_text())


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path, small_run):
    reference_root, _, _ = small_run
    reference = json.loads((reference_root / "out" / "original" / "mini-seven-small.json").read_text())
    out, cache = tmp_path / "out", tmp_path / "cache"
    rng = random.Random(1234)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "memora_bench.cli", "evaluate", "original", "--suite", str(SMALL_SUITE),
           "--out", str(out), "--cache-dir", str(cache), "--overwrite", "missing"]
    kills = attempts = 0
    while kills < 5 and attempts < 15:
        attempts += 1
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 12.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        _no_partial_files(out, cache)
        if proc.returncode == 0:  # finished before the kill (a warm cache is quick): start again from cold
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    assert kills == 5, f"only {kills} of {attempts} runs were still running when killed"
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    final = json.loads((out / "original" / "mini-seven-small.json").read_text())
    assert stable_part(final) == stable_part(reference)
    _no_partial_files(out, cache)


