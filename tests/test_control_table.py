"""The controls' table (memora_bench/unlearning/control_table.py): expected labels, Spearman, calibration."""

from __future__ import annotations

import pytest

from memora_bench.unlearning.control_table import calibration, controls_markdown, expected_label, spearman
from memora_bench.verdict import prompt_evidence, verdict


def row(kind: str, q: int, k_inversion: int, truth: str | None = None, k: int | None = None) -> dict:
    """A control whose only probe is concept inversion (k_inversion of 20; the oracle 1/20, the original
    20/20), knowing q of 60 (the original 60/60)."""
    ev = [prompt_evidence("concept_inversion", k_inversion, 20, 1, 20, 1.0)]
    v = verdict(ev)
    rate = {"k": q, "n": 60, "rate": q / 60}
    return {"task": "mini-seven", "control": f"{kind}-{q}", "kind": kind, "k": k, "concept": "7", "truth": truth,
            "q": rate, "q_original": {"k": 60, "n": 60, "rate": 1.0}, "q_share": q / 60, "label": v.label,
            "decided_by": list(v.decided_by), "index": v.index, "index_interval": v.index_interval,
            "memora_label": "LTM", "plain": {"k": 0, "n": 60}, "curve": [], "oracle_curve": [], "evidence": ev,
            "alpha": 0.05, "stm_excess": 0.5}


ROWS = [row("hidden-original", 60, 20, "STM"), row("ladder", 58, 15, k=100), row("ladder", 30, 9, k=25),
        row("ladder", 10, 3, k=10), row("hidden-oracle", 3, 1, "LTM", k=0)]


def test_expected_labels_come_from_the_truth_or_what_a_rung_knows():
    assert [expected_label(x) for x in ROWS] == ["STM", "STM", "STM", None, "LTM"]


def test_spearman_over_the_ladder_and_the_hidden_controls():
    rho, n = spearman(ROWS, "mini-seven")
    assert n == 5 and rho == pytest.approx(1.0)
    flipped = [dict(x, index=-x["index"]) for x in ROWS]
    assert spearman(flipped, "mini-seven")[0] == pytest.approx(-1.0)


def test_calibration_relabels_from_the_evidence():
    by = {c["stm_excess"]: c for c in calibration(ROWS)}
    # the 30/60 rung comes back 9/20 against 1/20: excess 0.40, significant; STM only below 0.4
    assert by[0.3]["right"] == 4 and by[0.5]["right"] == 3 and by[0.5]["of"] == 4
    assert by[0.8]["truth_right"] == 2 and by[0.8]["truth_of"] == 2
    text = controls_markdown(ROWS)
    assert "| 0.5 (pinned) | 3 / 4 | 2 / 2 |" in text and "Spearman's rho" in text
