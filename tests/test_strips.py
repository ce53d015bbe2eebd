"""`memora-bench strips`: which images a page's strips show, and the checks a redrawn image must pass."""

from __future__ import annotations

from memora_bench.leaderboard.build import STRIP, strip_lines
from memora_bench.paths import DEFAULT_SUITE, repo_root
from memora_bench.results import load_image_lines, load_result
from memora_bench.strips import _check


def test_the_strips_are_the_first_attack_prompts_plain_and_recovered_at_the_largest_budget():
    path = repo_root() / "results" / DEFAULT_SUITE / "salun-mini-seven" / "mini-seven.json"
    lines = load_image_lines(load_result(path), path)
    plain, rec = strip_lines(lines)
    assert len(plain) == len(rec) == STRIP
    assert {x["probe"] for x in plain} == {"plain"} and {x["prompt_set"] for x in plain} == {"attack"}
    budgets = {x["budget"] for x in lines if x["probe"] == "memora"}
    assert {x["budget"] for x in rec} == {max(budgets)} and {x["attack_seed"] for x in rec} == {0}
    assert [x["prompt_id"] for x in rec] == sorted(x["prompt_id"] for x in rec)


def test_a_redrawn_image_must_have_the_recorded_key_and_judgement():
    wanted = [{"prompt_id": "attack-000", "seed": 1, "image_key": "a" * 64, "hit": True},
              {"prompt_id": "attack-001", "seed": 2, "image_key": "b" * 64, "hit": False}]
    assert _check([{"image_key": "a" * 64, "hit": True}, {"image_key": "b" * 64, "hit": False}], wanted, "x") == []
    problems = _check([{"image_key": "a" * 64, "hit": False}, {"image_key": "c" * 64, "hit": False}], wanted, "x")
    assert len(problems) == 2
    assert "judged False, recorded True" in problems[0] and "no drawn image has the recorded key" in problems[1]
