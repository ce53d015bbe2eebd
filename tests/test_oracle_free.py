"""The verdict without a retrain oracle (issue 27 item 2): a zero floor over MemoRa's budgets up to a cap and the
zero-floor prompt probes, validated against the oracle-based labels of the committed mini-v4 results."""

from __future__ import annotations

import copy
import json

import pytest

from memora_bench.cli import main
from memora_bench.paths import repo_root
from memora_bench.probes import memora
from memora_bench.probes.registry import ParamError
from memora_bench.unlearning import oracle_free_table as oft
from memora_bench.verdict import concept_headlines, fisher_greater, oracle_free_evidence, oracle_free_headlines

RESULTS = repo_root() / "results" / "mini-v4"
CAP = 75  # the miniature world's cap, docs/scoring.md "Without a retrain oracle"


def _load(sub: str, task: str) -> dict:
    return json.loads((RESULTS / sub / f"{task}.json").read_text())


def _no_oracle(result: dict, cap: int) -> dict:
    """The result as a task without a retrain oracle would have written it, under a suite pinning ``cap``."""
    r = copy.deepcopy(result)
    m = r["probes"]["memora"]
    m["params"].update(oracle_free_cap=cap)
    for entry in m["concepts"].values():
        for key in ("oracle_curve", "evidence", "verdict", "training_images_judged"):
            entry.pop(key, None)
    return r


def test_evidence_stops_at_the_cap_and_compares_with_zero():
    r = _load("esd-x-mini-seven", "mini-seven")
    concept = r["task"]["concepts"][0]
    entry = r["probes"]["memora"]["concepts"]["seven"]
    ks = [p["k"] for p in entry["curve"]]
    ev = oracle_free_evidence(r, concept, _load("original", "mini-seven"), 50)
    memora_ev = [e for e in ev if e.probe == "memora"]
    assert [e.budget for e in memora_ev] == [0, 25, 50]
    assert [e.k for e in memora_ev] == ks[:3] and all(e.k_oracle == 0 for e in memora_ev)
    assert memora_ev[2].p == fisher_greater(ks[2], 48, 0, 48)
    ceiling = entry["ceiling"]["rate"]
    assert memora_ev[2].excess == pytest.approx(max(ks[:3]) / 48 / ceiling)
    lo, hi = memora_ev[2].excess_interval
    assert lo <= memora_ev[2].excess <= hi
    # the prompt probes with a zero floor, in order; none of mini-v5's trajectory probes
    assert [e.probe for e in ev if e.probe != "memora"] == ["plain", "unlearndiffatk", "ringabell", "concept_inversion"]
    assert all(e.k_oracle == 0 for e in ev)


def test_a_fast_relearner_is_stm_and_the_oracle_ltm_at_the_cap_on_three_eight():
    for sub, want in (("esd-u-mini-three-eight", "STM"), ("oracle", "LTM")):
        r = _load(sub, "mini-three-eight")
        labels = {h["concept"]["name"]: h["headline"]
                  for h in oracle_free_headlines(r, _load("original", "mini-three-eight"), CAP)}
        assert want in labels.values(), (sub, labels)
        if want == "LTM":
            assert set(labels.values()) == {"LTM"}


def test_concept_headlines_take_the_zero_floor_only_when_the_task_has_no_oracle():
    r = _load("salun-mini-seven", "mini-seven")
    original = _load("original", "mini-seven")
    # an oracle result that is merely missing stays undefined, whatever the suite pins
    pinned = copy.deepcopy(r)
    pinned["probes"]["memora"]["params"]["oracle_free_cap"] = CAP
    assert [h["headline"] for h in concept_headlines(pinned, None, original)] == ["undefined"]
    # a task without an oracle (no oracle curve) under a suite that pins the cap gets the zero-floor label
    (h,) = concept_headlines(_no_oracle(r, CAP), None, original)
    (same,) = oracle_free_headlines(r, original, CAP)
    assert h["headline"] == same["headline"] and h["floor"] == f"a zero floor up to MemoRa budget {CAP}"
    assert h["verdict"].index == same["verdict"].index
    # without the cap such a task has no label
    unpinned = _no_oracle(r, CAP)
    del unpinned["probes"]["memora"]["params"]["oracle_free_cap"]
    assert [x["headline"] for x in concept_headlines(unpinned, None, original)] == ["undefined"]


def test_the_cap_must_be_a_budget_under_the_excess_score():
    base = {"budgets": [0, 10, 25], "score": "excess"}
    assert memora.parse_params({**base, "oracle_free_cap": 10}).oracle_free_cap == 10
    assert memora.parse_params({**base, "oracle_free_cap": None}).oracle_free_cap is None
    for bad in ({**base, "oracle_free_cap": 7}, {**base, "score": "memory-index", "oracle_free_cap": 10},
                {**base, "oracle_free_cap": "10"}):
        with pytest.raises(ParamError, match="oracle_free_cap"):
            memora.parse_params(bad)


def test_at_least_nine_in_ten_mini_v4_labels_agree_and_none_is_milder():
    rows = oft.rows_by_cap(RESULTS, repo_root() / "baselines")[CAP]
    assert len(rows) == 74
    agree = [x for x in rows if x["free_label"] == x["oracle_label"]]
    assert len(agree) / len(rows) >= 0.9, len(agree)
    order = oft.ORDER
    assert all(order[x["free_label"]] >= order[x["oracle_label"]] for x in rows)  # never milder: a bound
    # the oracle and the original keep their truth but where the oracle itself relearns fast (seven, bold)
    truth = {(x["submission"], x["task"], x["concept"]): x["free_label"] for x in rows}
    assert truth[("original", "mini-seven", "seven")] == "STM"
    assert truth[("oracle", "mini-three-eight", "three")] == "LTM"


def test_the_table_in_docs_is_current(tmp_path):
    doc = repo_root() / "docs" / "scoring.md"
    copy_ = tmp_path / "scoring.md"
    copy_.write_text(doc.read_text())
    assert main(["baselines", "table", str(RESULTS), "--only", "oracle-free", "--cap", str(CAP),
                 "--write", str(copy_)]) == 0
    assert copy_.read_text() == doc.read_text(), "regenerate: memora-bench baselines table results/mini-v4 " \
                                                 "--only oracle-free --cap 75 --write docs/scoring.md"


def test_cli_needs_a_cap_among_the_budgets(capsys):
    assert main(["baselines", "table", str(RESULTS), "--only", "oracle-free"]) == 2
    assert main(["baselines", "table", str(RESULTS), "--only", "oracle-free", "--cap", "60"]) == 2
    assert "one of MemoRa's budgets [0, 25, 50, 75, 100, 200]" in capsys.readouterr().err
