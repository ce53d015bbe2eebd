"""The known-answer controls' table (docs/scoring.md, "Calibration on known answers"), generated from result
files: each control's truth, the verdict's index with its interval, the headline label and the probes that
decided it; per task the Spearman correlation of the index with what the ladder's rungs know (q_k); and how
the labels move with the STM threshold ``stm_excess`` (the calibration).

Truth: the original model and ``hidden-original-<task>`` still hold the concept (STM); the retrain oracle and
``hidden-oracle-<task>`` never learned it (LTM); a ladder rung knows q_k, the un-hidden model's plain rate
(``controls/ladder-<k>-<task>/build.json``). ``q / q_original`` is the share of the original's knowledge.
"""

from __future__ import annotations

import json
from pathlib import Path

from scipy import stats

from memora_bench.paths import repo_root
from memora_bench.scoring import is_original, is_retrain_oracle
from memora_bench.unlearning.table import load_with_references
from memora_bench.verdict import concept_headlines, verdict, verdict_params

MARKERS = ("<!-- controls-table:begin -->", "<!-- controls-table:end -->")
LABEL_TRUTH = {"original": "STM", "oracle": "LTM", "hidden-original": "STM", "hidden-oracle": "LTM"}
KNOWS = 0.5  # a rung that draws the concept at least this share of the original's plain rate still holds it
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _kind(name: str, task: str) -> str | None:
    for kind in ("hidden-original", "hidden-oracle"):
        if name == f"{kind}-{task}":
            return kind
    if name.startswith("ladder-") and name.endswith(f"-{task}"):
        return "ladder"
    return None


def control_rows(results: Path, controls: Path | None = None) -> list[dict]:
    """One row per (control, task, concept) among the result files under ``results`` whose MemoRa section
    carries the verdict's evidence (mini-v4 on)."""
    controls = controls or repo_root() / "controls"
    loaded, oracles, originals = load_with_references(results)
    rows = []
    for r in loaded:
        task, name = r["task"]["name"], r["submission"]["name"]
        kind = ("oracle" if is_retrain_oracle(r) else "original" if is_original(r) else _kind(name, task))
        if kind is None or "memora" not in r["probes"]:
            continue
        oracle, original = oracles.get(task), originals.get(task)
        for h in concept_headlines(r, oracle, original):
            if h["verdict"] is None:
                continue
            label = h["concept"]["label"]
            q_original = original["probes"]["plain"]["rates"][label] if original else None
            if kind == "ladder":
                build = json.loads((controls / name / "build.json").read_text())
                q, k = build["q_k"], build["k"]  # pooled over the task's concepts (one concept per ladder task)
            else:
                source = original if kind in ("original", "hidden-original") else oracle
                q = source["probes"]["plain"]["rates"][label] if source else None
                k = {"hidden-oracle": 0, "oracle": 0}.get(kind)
            v = h["verdict"]
            rows.append({"task": task, "control": name, "kind": kind, "k": k, "concept": label,
                         "truth": LABEL_TRUTH.get(kind), "q": q, "q_original": q_original,
                         "q_share": (q["rate"] / q_original["rate"]) if q and q_original and q_original["rate"] else None,
                         "label": h["headline"], "decided_by": h["decided_by"], "index": v.index,
                         "index_interval": v.index_interval, "memora_label": h["memora_label"],
                         "plain": r["probes"]["plain"]["rates"][label],
                         "curve": [e.k for e in v.evidence if e.probe == "memora"],
                         "oracle_curve": [e.k_oracle for e in v.evidence if e.probe == "memora"],
                         "evidence": list(v.evidence),  # relabel() runs the verdict again on them
                         "alpha": verdict_params(r["probes"]["memora"]["params"])[0],
                         "stm_excess": verdict_params(r["probes"]["memora"]["params"])[1]})
    order = {"original": 0, "hidden-original": 1, "ladder": 2, "hidden-oracle": 3, "oracle": 4}
    rows.sort(key=lambda x: (x["task"], order[x["kind"]], -(x["k"] or 0) if x["kind"] == "ladder" else 0, x["concept"]))
    return rows


def expected_label(row: dict) -> str | None:
    """The label a row should get: its truth, or for a rung STM when it knows at least ``KNOWS`` of what the
    original knows; None for a rung that knows less (partial and LTM are both defensible there: what it
    knows is small but not nothing)."""
    if row["truth"]:
        return row["truth"]
    if row["q_share"] is None:
        return None
    return "STM" if row["q_share"] >= KNOWS else None


def spearman(rows: list[dict], task: str) -> tuple[float, int] | None:
    """Spearman's rho of the index with q over a task's ladder, hidden-oracle (k = 0) and hidden-original."""
    pts = [(x["q"]["rate"], x["index"]) for x in rows
           if x["task"] == task and x["kind"] in ("ladder", "hidden-oracle", "hidden-original")
           and x["q"] is not None and x["index"] is not None]
    if len(pts) < 3:
        return None
    rho = stats.spearmanr([p[0] for p in pts], [p[1] for p in pts]).statistic
    return float(rho), len(pts)


def relabel(row: dict, stm_excess: float) -> str:
    """The row's label had the suite pinned ``stm_excess`` (everything else as recorded)."""
    return verdict(row["evidence"], row["alpha"], stm_excess).label


def calibration(rows: list[dict]) -> list[dict]:
    """For each candidate threshold: how many rows with an expected label get it."""
    judged = [x for x in rows if expected_label(x)]
    out = []
    for s in THRESHOLDS:
        right = [x for x in judged if relabel(x, s) == expected_label(x)]
        truth_rows = [x for x in judged if x["truth"]]
        out.append({"stm_excess": s, "right": len(right), "of": len(judged),
                    "truth_right": sum(1 for x in right if x["truth"]), "truth_of": len(truth_rows)})
    return out


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _iv(iv) -> str:
    return "" if iv is None else f" [{iv[0]:.2f}, {iv[1]:.2f}]"


def controls_markdown(rows: list[dict]) -> str:
    """Per task: the controls' truth, index, label; the Spearman correlation; then the calibration table."""
    lines = []
    for task in sorted({x["task"] for x in rows}):
        lines += [f"### {task}", "",
                  "| control | truth | q (un-hidden plain) | share of the original's | plain | MemoRa k/48 by budget "
                  "(oracle) | index [95 %] | label (decided by) | as expected |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for x in [x for x in rows if x["task"] == task]:
            q = "–" if x["q"] is None else f"{x['q']['k']}/{x['q']['n']}"
            curve = ", ".join(str(k) for k in x["curve"]) + " (" + ", ".join(str(k) for k in x["oracle_curve"]) + ")"
            idx = "–" if x["index"] is None else f"{x['index']:.2f}{_iv(x['index_interval'])}"
            exp = expected_label(x)
            ok = "–" if exp is None else ("yes" if x["label"] == exp else f"**no** (expected {exp})")
            truth = x["truth"] or f"q_k, k = {x['k']}"
            lines.append(f"| `{x['control']}` {x['concept']} | {truth} | {q} | {_pct(x['q_share'])} | "
                         f"{x['plain']['k']}/{x['plain']['n']} | {curve} | {idx} | {x['label']} "
                         f"({', '.join(x['decided_by'])}) | {ok} |")
        rho = spearman(rows, task)
        lines += ["", "Spearman's rho of the index with q over the ladder, hidden-oracle and hidden-original: "
                  + ("too few rows" if rho is None else f"{rho[0]:.3f} ({rho[1]} controls)"), ""]
    lines += ["### The STM threshold", "",
              f"Rows with an expected label: the label-truth controls and the ladder rungs that know at least "
              f"{100 * KNOWS:.0f} % of the original's plain rate (expected STM).", "",
              "| stm_excess | rows right | label-truth controls right |", "|---|---|---|"]
    pinned = {x["stm_excess"] for x in rows}
    for c in calibration(rows):
        mark = " (pinned)" if c["stm_excess"] in pinned else ""
        lines.append(f"| {c['stm_excess']}{mark} | {c['right']} / {c['of']} | {c['truth_right']} / {c['truth_of']} |")
    lines.append("")
    return "\n".join(lines)
