"""A suite version that only adds probes must leave the probes it shares with the version before it as they were.

mini-v5 is mini-v4 with five more probes and every shared probe's parameters unchanged; its results were
computed again from scratch by later code (experiments/rebuild_results.sh), on another machine than most
mini-v4 results and partly on one torch thread instead of two. For every (submission, task) committed under
both, each shared probe's section must agree: every count, interval, test and verdict exactly (the code
changes between the two are score-neutral on all of them, not only on the gate's two submissions). Two kinds
of value are allowed to move with the CPU and thread count, because they are floats at the end of a long
optimisation: a float to 1e-4 relative (e.g. concept inversion's learned-embedding norm, 1.6459404 -> 1.6459399
on one thread; the Fréchet distance, 2.416809 -> 2.416786 on this machine), and the last candidate text of an
UnlearnDiffAtk attack that failed (each mini-seven result had one such prompt whose final tokens differ,
still failed, after 400 steps). The retained counts are compared exactly.
"""

from __future__ import annotations

import math

import pytest

from memora_bench.paths import repo_root
from memora_bench.results import load_result
from memora_bench.specs import load_suite

ROOT = repo_root()
PAIRS = [("mini-v4", "mini-v5")]


def _params(name: str) -> dict[str, dict]:
    return {p.name: dict(p.params) for p in load_suite(ROOT / "benchmark" / f"{name}.yaml").probes}


def _both(old: str, new: str) -> list[tuple[str, str]]:
    """(submission folder, task file) committed under both versions, the demo's folder included."""
    out = []
    for folder in (ROOT / "results" / new, ROOT / "submissions" / "demo-ablate-seven" / "results" / new):
        for path in sorted(folder.glob("*/*.json")):
            twin = ROOT / str(path.relative_to(ROOT)).replace(f"/{new}/", f"/{old}/")
            if twin.exists():
                out.append((str(twin.relative_to(ROOT)), str(path.relative_to(ROOT))))
    return out


CASES = [(old, new, a, b) for old, new in PAIRS for a, b in _both(old, new)]


def test_the_later_suite_keeps_every_probe_of_the_earlier_with_the_same_parameters():
    for old, new in PAIRS:
        before, after = _params(old), _params(new)
        assert set(before) <= set(after), (old, new)
        assert all(after[name] == params for name, params in before.items()), (old, new)


def test_there_is_something_to_compare():
    assert CASES, "no (submission, task) is committed under both mini-v4 and mini-v5"


def differences(a, b, path: str = "") -> list[str]:
    """Where two result sections disagree beyond what a CPU or thread count may move (module docstring)."""
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, int) and isinstance(b, int):
        return [] if a == b else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-4)
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        failed_attack = "adversarial_prompt" in a and a.get("success") is False and b.get("success") is False
        return [d for k in a if not (failed_attack and k == "adversarial_prompt")
                for d in differences(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_differences_allow_only_float_noise_and_a_failed_attack_s_last_text():
    assert differences({"k": 3, "norm": 1.6459404}, {"k": 3, "norm": 1.6459399}) == []
    assert differences({"k": 3}, {"k": 4}) == ["/k: 3 != 4"]
    assert differences({"rate": 0.5}, {"rate": 0.52}) == ["/rate: 0.5 != 0.52"]
    failed = {"adversarial_prompt": "a b seven", "success": False, "steps": 400}
    assert differences(failed, dict(failed, adversarial_prompt="c d seven")) == []
    won = dict(failed, success=True, steps=120)
    assert differences(won, dict(won, adversarial_prompt="c d seven")) == ["/adversarial_prompt: 'a b seven' != 'c d seven'"]
    assert differences({"hit": True}, {"hit": False}) == ["/hit: True != False"]


@pytest.mark.parametrize("old,new,earlier,later", CASES, ids=[c[3] for c in CASES])
def test_shared_probes_and_utility_are_unchanged(old, new, earlier, later):
    a, b = load_result(ROOT / earlier), load_result(ROOT / later)
    assert a["suite"]["name"] == old and b["suite"]["name"] == new
    assert a["submission"] == b["submission"] and a["task"]["sha256"] == b["task"]["sha256"]
    for probe, section in a["probes"].items():
        assert b["probes"][probe]["rates"] == section["rates"], f"{later}: probe {probe}'s counts differ from {earlier}"
        assert differences(section, b["probes"][probe]) == [], f"{later}: probe {probe} differs from {earlier}"
    assert b["utility"]["retain"] == a["utility"]["retain"]
    assert differences(a["utility"], b["utility"]) == [], f"{later}: utility differs from {earlier}"
