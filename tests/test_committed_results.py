"""What the MemoRa probe and the adversarial probes must show on the models whose answer is known, checked on
the committed results of the official suite (the original model and the retrain oracle on every task).

These replaced slow tests that evaluated both models again on tiny fixture suites (issue 29: CI under 25
minutes): the current code's MemoRa and adversarial probes run end to end in `make gate`, which requires their
every count to equal the committed result (the demo on mini-seven, every probe of the suite), and the
properties below are properties of those committed results.
"""

from __future__ import annotations

import json

import pytest

from memora_bench.paths import DEFAULT_SUITE, repo_root
from memora_bench.results import load_image_lines, load_result
from memora_bench.specs import load_suite
from memora_bench.verdict import Evidence, verdict

ROOT = repo_root()
SUITE = load_suite(ROOT / "benchmark" / f"{DEFAULT_SUITE}.yaml")
RESULTS = ROOT / "results" / SUITE.name
MEMORA = dict(next(p for p in SUITE.probes if p.name == "memora").params)
UDA = dict(next(p for p in SUITE.probes if p.name == "unlearndiffatk").params)


def _result(submission: str, task: str) -> tuple[dict, list[dict]]:
    path = RESULTS / submission / f"{task}.json"
    data = load_result(path)
    return data, load_image_lines(data, path)


@pytest.mark.parametrize("task", SUITE.tasks)
def test_the_original_remembers_every_concept(task):
    data, _ = _result("original", task)
    memora = data["probes"]["memora"]
    seeds = len(MEMORA["attack_seeds"])
    for name, c in memora["concepts"].items():
        # budget 0 of the original model is the ceiling itself (same prompts, seeds and model), once per seed
        assert c["curve"][0]["k"] == seeds * c["ceiling"]["k"] and c["curve"][0]["n"] == seeds * c["ceiling"]["n"]
        assert len(c["training_images"]) == len(MEMORA["seed_pairs"]) * (MEMORA["interpolation"] + 1)
        assert [e["budget"] for e in c["evidence"]] == list(MEMORA["budgets"])
        assert c["verdict"]["label"] == "STM" and c["verdict"]["index"] > 0.5, (task, name)
        assert set(memora["auto"][name]) == {str(w) for w in MEMORA["auto_weights"]}


@pytest.mark.parametrize("task", SUITE.tasks)
def test_the_recorded_verdict_is_the_verdict_of_the_recorded_evidence(task):
    for submission in ("original", "oracle"):
        data, _ = _result(submission, task)
        for name, c in data["probes"]["memora"]["concepts"].items():
            again = verdict([Evidence(**{k: tuple(v) if isinstance(v, list) else v for k, v in e.items()
                                         if k != "p_adjusted"}) for e in c["evidence"]],
                            MEMORA["family_alpha"], MEMORA["stm_excess"])
            assert json.loads(json.dumps(again.as_dict())) == c["verdict"], (submission, task, name)


@pytest.mark.parametrize("task", SUITE.tasks)
def test_the_oracle_is_its_own_floor_and_long_term_forgotten(task):
    """The oracle's own curve and its floor are one computation (run once), logged under both stages."""
    data, lines = _result("oracle", task)
    for name, c in data["probes"]["memora"]["concepts"].items():
        assert c["curve"] == c["oracle_curve"]
        assert c["verdict"]["label"] == "LTM" and c["verdict"]["index"] == pytest.approx(0.0), (task, name)
    own = [x for x in lines if x["probe"] == "memora"]
    floor = [{**x, "probe": "memora"} for x in lines if x["probe"] == "memora_oracle"]
    assert own and own == floor


@pytest.mark.parametrize("task", SUITE.tasks)
def test_memora_images_are_logged_with_budget_and_seed(task):
    data, lines = _result("original", task)
    memora = [x for x in lines if x["probe"] == "memora"]
    assert {x["budget"] for x in memora} == set(MEMORA["budgets"])
    assert {x["attack_seed"] for x in memora} == set(MEMORA["attack_seeds"])
    concepts = len(data["probes"]["memora"]["concepts"])
    assert len(memora) == concepts * MEMORA["eval_prompts"] * len(MEMORA["budgets"]) * len(MEMORA["attack_seeds"])


@pytest.mark.parametrize("task", SUITE.tasks)
def test_every_adversarial_probe_reports_rates_and_cost(task):
    data, _ = _result("original", task)
    probes = data["probes"]
    concepts = [c["label"] for c in data["task"]["concepts"]]
    assert probes["unlearndiffatk"]["rates"]["all"]["n"] == UDA["prompts"] * len(concepts)
    for name in ("unlearndiffatk", "ringabell", "concept_inversion"):
        assert probes[name]["cost"]["model_evaluations"] > 0, name
        assert set(concepts) <= set(probes[name]["rates"]), name
    per_prompt = probes["unlearndiffatk"]["per_prompt"]
    assert len({p["prompt_id"] for p in per_prompt}) == len(per_prompt) == UDA["prompts"] * len(concepts)
    assert all(p["steps"] == 0 for p in per_prompt if p["candidates"] == 0)


@pytest.mark.parametrize("task", SUITE.tasks)
def test_unlearndiffatk_on_the_original_keeps_every_prompt_that_shows_the_concept_as_written(task):
    """A prompt that already shows the concept costs 0 steps, so the attack can only add successes."""
    data, lines = _result("original", task)
    plain = {x["prompt_id"]: x["hit"] for x in lines if x["probe"] == "plain"}
    per_prompt = data["probes"]["unlearndiffatk"]["per_prompt"]
    for p in per_prompt:
        if plain[p["prompt_id"]]:
            assert p["success"] and p["steps"] == 0, p
    assert data["probes"]["unlearndiffatk"]["rates"]["all"]["k"] >= sum(plain[p["prompt_id"]] for p in per_prompt)


@pytest.mark.parametrize("task", SUITE.tasks)
def test_the_original_draws_what_its_model_card_says(task):
    """The retained concepts' counts of the original model equal the hits the world's model card lists for the
    same prompts (world/MODEL_CARD.md, measured when the world was built)."""
    from memora_bench import miniworld

    data, _ = _result("original", task)
    card = miniworld.load_manifest()["models"]["base"]["concept_hits"]
    for concept, rate in data["utility"]["retain"].items():
        if concept != "all":
            assert rate["k"] == card[concept][: rate["n"]].count("1"), (task, concept)
    assert data["probes"]["plain"]["rates"]["all"]["n"] >= 50
