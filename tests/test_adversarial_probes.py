"""The adversarial probes end to end on the shipped world, with tiny pinned parameters (a tmp fixture suite)."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from memora_bench.paths import repo_root
from memora_bench.results import load_result, stable_part
from tests.test_evaluate import run_cli

pytestmark = pytest.mark.slow  # a few minutes: tiny attacks, but every candidate is a 50-step image

FIXTURES = repo_root() / "tests" / "fixtures"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from memora_bench.models.loading import load_base
    from memora_bench.probes import ringabell
    from memora_bench.context import task_prompts
    from memora_bench.specs import load_task, prompts_csv

    root = tmp_path_factory.mktemp("adv")
    shutil.copytree(FIXTURES / "tasks", root / "tasks")
    task = load_task(root / "tasks" / "mini-seven-small.yaml")
    rows = ringabell.build_rows(load_base(task.base_model), task_prompts(task, "attack_prompts"), task.concepts,
                                ringabell.SearchParams(population=8, generations=3, prompts=2), progress=False)
    text = prompts_csv(rows)
    (root / "tasks" / "prompts" / "mini-seven-small-ringabell.csv").write_text(text)
    sha = hashlib.sha256(text.encode()).hexdigest()
    (root / "benchmark").mkdir()
    suite = root / "benchmark" / "adv-small.yaml"
    suite.write_text(
        "name: adv-small\nversion: 1\ndescription: Test fixture, tiny adversarial probes.\n"
        "tasks: [mini-seven-small]\nprobes:\n  plain: {}\n"
        "  unlearndiffatk: {k: 1, iterations: 1, timesteps: 2, prompts: 3}\n"
        f"  ringabell: {{prompt_sha256: {{mini-seven-small: '{sha}'}}}}\n"
        "  concept_inversion: {images: 2, steps: 2, batch_size: 1, accumulation: 1, eval_images: 2}\n"
        "bootstrap: 100\nbootstrap_seed: 0\nconfidence: 0.95\n")
    args = ("evaluate", "original", "--suite", suite, "--out", root / "out", "--cache-dir", root / "cache")
    res = run_cli(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    again = run_cli(*args, "--out", root / "out2")  # a second run from the cache
    assert again.returncode == 0, again.stdout + again.stderr
    yield root
    shutil.rmtree(root / "cache", ignore_errors=True)


def test_every_probe_reports_rates_and_cost(runs):
    data = load_result(runs / "out" / "original" / "mini-seven-small.json")
    probes = data["probes"]
    assert probes["unlearndiffatk"]["rates"]["all"]["n"] == 3
    assert probes["ringabell"]["rates"]["all"]["n"] == 2
    assert probes["concept_inversion"]["rates"]["all"]["n"] == 2
    for name in ("unlearndiffatk", "ringabell", "concept_inversion"):
        assert probes[name]["cost"]["model_evaluations"] > 0, name
    per_prompt = probes["unlearndiffatk"]["per_prompt"]
    assert [p["prompt_id"] for p in per_prompt] == ["attack-000", "attack-001", "attack-002"]
    assert all(p["steps"] == 0 for p in per_prompt if p["candidates"] == 0)


def test_unlearndiffatk_on_the_original_is_at_least_its_plain_rate(runs):
    """A prompt that already shows the concept costs 0 steps, so the attack can only add successes."""
    import json

    lines = [json.loads(x) for x in (runs / "out" / "original" / "mini-seven-small.images.jsonl").read_text().splitlines()]
    plain = {x["prompt_id"]: x["hit"] for x in lines if x["probe"] == "plain"}
    data = load_result(runs / "out" / "original" / "mini-seven-small.json")
    for p in data["probes"]["unlearndiffatk"]["per_prompt"]:
        if plain[p["prompt_id"]]:
            assert p["success"] and p["steps"] == 0
    assert data["probes"]["unlearndiffatk"]["rates"]["all"]["k"] >= sum(plain[p["prompt_id"]] for p in
                                                                          data["probes"]["unlearndiffatk"]["per_prompt"])


def test_a_second_run_reproduces_every_count(runs):
    first = load_result(runs / "out" / "original" / "mini-seven-small.json")
    second = load_result(runs / "out2" / "original" / "mini-seven-small.json")
    for probe in ("unlearndiffatk", "ringabell", "concept_inversion"):
        assert stable_part(first)["probes"][probe]["rates"] == stable_part(second)["probes"][probe]["rates"]
