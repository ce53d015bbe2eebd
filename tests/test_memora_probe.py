"""The MemoRa probe end to end on the shipped world, with tiny pinned budgets (a test fixture suite)."""

from __future__ import annotations

import json
import shutil

import pytest

from memora_bench.paths import repo_root
from memora_bench.results import load_result
from tests.test_evaluate import run_cli

pytestmark = pytest.mark.slow  # about 2 minutes: original and oracle, tiny budgets

ROOT = repo_root()
SUITE = ROOT / "tests" / "fixtures" / "benchmark" / "mini-memora-small.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("memora")
    oracle = root / "subs" / "oracle"
    oracle.mkdir(parents=True)
    (oracle / "submission.yaml").write_text(
        "name: oracle\nmethod: retrain oracle (control)\nauthors: [memora-bench]\nreference: r\n"
        "base_model: {id: world/oracle, revision: mini-world-v2}\nerased: []\ntasks: [mini-seven-small]\n"
        "checkpoint: null\ncontrol: true\n")
    res = run_cli("evaluate", "original", oracle, "--suite", SUITE, "--out", root / "out", "--cache-dir",
                  root / "cache")
    assert res.returncode == 0, res.stdout + res.stderr
    yield root
    shutil.rmtree(root / "cache", ignore_errors=True)


def test_original_remembers_everything(runs):
    data = load_result(runs / "out" / "original" / "mini-seven-small.json")
    seven = data["probes"]["memora"]["concepts"]["seven"]
    score = seven["score"]
    assert len(seven["curve"]) == 2 and len(seven["training_images"]) == 9
    # Budget 0 of the original model is the ceiling itself (same prompts, seeds and model).
    assert seven["curve"][0]["k"] == seven["ceiling"]["k"]
    assert score["b_half"] == 0.0
    assert score["memory"] >= 0.9
    assert "auto" in data["probes"]["memora"] and "0.5" in data["probes"]["memora"]["auto"]["seven"]


def test_oracle_is_long_term_forgotten(runs):
    data = load_result(runs / "out" / "oracle" / "mini-seven-small.json")
    score = data["probes"]["memora"]["concepts"]["seven"]["score"]
    assert score["memory"] == pytest.approx(0.0) and score["label"] == "LTM"


def test_the_oracle_evaluated_as_a_submission_is_its_own_floor(runs):
    """The oracle's own curve and its floor are one computation (run once), logged under both stages."""
    data = load_result(runs / "out" / "oracle" / "mini-seven-small.json")
    seven = data["probes"]["memora"]["concepts"]["seven"]
    assert seven["curve"] == seven["oracle_curve"]
    lines = [json.loads(x) for x in (runs / "out" / "oracle" / "mini-seven-small.images.jsonl").read_text().splitlines()]
    own = [x for x in lines if x["probe"] == "memora"]
    floor = [{**x, "probe": "memora"} for x in lines if x["probe"] == "memora_oracle"]
    assert len(own) == 4 * 2 and own == floor


def test_images_are_logged_with_budget_and_seed(runs):
    lines = [json.loads(x) for x in (runs / "out" / "original" / "mini-seven-small.images.jsonl").read_text().splitlines()]
    memora = [x for x in lines if x["probe"] == "memora"]
    assert {x["budget"] for x in memora} == {0, 2} and {x["attack_seed"] for x in memora} == {0}
    assert len(memora) == 4 * 2
