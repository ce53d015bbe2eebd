"""A suite version that only adds probes must leave the probes it shares with the version before it as they were.

mini-v5 is mini-v4 with five more probes and every shared probe's parameters unchanged; its results were
computed again from scratch by later code (experiments/rebuild_results.sh). For every (submission, task)
committed under both versions, each shared probe's section must be identical (every count, interval,
test and verdict: the code changes between the two are score-neutral on all of them, not only on the gate's two
submissions), and the utility measures must agree (retained counts exactly; the Fréchet distance to 1e-4
relative: a float sum over 220 images, whose last digits move with the machine's CPU kernels).
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


@pytest.mark.parametrize("old,new,earlier,later", CASES, ids=[c[3] for c in CASES])
def test_shared_probes_and_utility_are_unchanged(old, new, earlier, later):
    a, b = load_result(ROOT / earlier), load_result(ROOT / later)
    assert a["suite"]["name"] == old and b["suite"]["name"] == new
    assert a["submission"] == b["submission"] and a["task"]["sha256"] == b["task"]["sha256"]
    for probe, section in a["probes"].items():
        assert b["probes"][probe] == section, f"{later}: probe {probe} differs from {earlier}"
    ua, ub = a["utility"], b["utility"]
    assert set(ua) == set(ub)
    for key in ua:
        if key == "frechet":
            assert math.isclose(ua[key]["value"], ub[key]["value"], rel_tol=1e-4), (later, ua[key], ub[key])
            assert {k: v for k, v in ua[key].items() if k != "value"} == {k: v for k, v in ub[key].items() if k != "value"}
        else:
            assert ua[key] == ub[key], f"{later}: utility {key} differs from {earlier}"
