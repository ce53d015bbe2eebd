"""The oracle-free verdict's validation table (docs/scoring.md, "Without a retrain oracle"), generated from result
files that were labelled against the retrain oracle: every erased concept of every result is labelled a second
time with a zero floor in the oracle's place over MemoRa's budgets up to a cap
(:func:`memora_bench.verdict.oracle_free_headlines`), and the two labels and indices are set side by side.

Besides the rows: the agreement at every cap the suite's budgets allow (how the choice of the cap moves it), and
the agreement when the cap is chosen on the other tasks only (leave one task out: the cap is a constant fitted
here, so the held-out figure is the honest one).

    memora-bench baselines table results/mini-v4 --only oracle-free --cap 75 --write docs/scoring.md
"""

from __future__ import annotations

from pathlib import Path

from memora_bench.unlearning.table import CONTROLS, _recipe, load_with_references
from memora_bench.verdict import concept_headlines, oracle_free_headlines

MARKERS = ("<!-- oracle-free-table:begin -->", "<!-- oracle-free-table:end -->")
ORDER = {"LTM": 0, "partial": 1, "STM": 2}


def rows_by_cap(results: Path, baselines: Path) -> dict[int, list[dict]]:
    """Per cap among MemoRa's budgets, one row per (submission, task, erased concept) labelled against the
    oracle: both labels, both indices, the probes that decided the zero-floor label. Each result's oracle-based
    headlines are made once; its zero-floor ones once per cap."""
    loaded, oracles, originals = load_with_references(results)
    order = {c: i for i, c in enumerate(CONTROLS)}
    out: dict[int, list[dict]] = {}
    for r in loaded:
        m = r["probes"].get("memora")
        task, sub = r["task"]["name"], r["submission"]["name"]
        if not m or task not in oracles or not all("evidence" in c for c in m["concepts"].values()):
            continue
        against = concept_headlines(r, oracles[task], originals.get(task))
        for cap in m["params"]["budgets"]:
            free = oracle_free_headlines(r, originals.get(task), cap)
            for h, f in zip(against, free):
                if h["verdict"] is None:
                    continue
                out.setdefault(int(cap), []).append({
                    "task": task, "submission": sub, "recipe": _recipe(sub, baselines),
                    "control": bool(r["submission"].get("control")), "concept": h["concept"]["label"],
                    "oracle_label": h["headline"], "oracle_index": h["verdict"].index,
                    "free_label": f["headline"], "free_index": f["verdict"].index, "free_decided_by": f["decided_by"]})
    for rows in out.values():
        rows.sort(key=lambda x: (x["task"], x["control"], order.get(x["submission"], -1), x["recipe"], x["concept"]))
    return dict(sorted(out.items()))


def agreement_by_cap(by_cap: dict[int, list[dict]]) -> dict[int, dict[str, tuple[int, int]]]:
    """Per cap, per task: (rows whose zero-floor label is the oracle-based one, all rows)."""
    out = {}
    for cap, rows in by_cap.items():
        tasks = sorted({x["task"] for x in rows})
        out[cap] = {t: (sum(x["free_label"] == x["oracle_label"] for x in rows if x["task"] == t),
                        sum(x["task"] == t for x in rows)) for t in tasks}
    return out


def leave_one_task_out(by_cap: dict[int, dict[str, tuple[int, int]]]) -> dict[str, tuple[list[int], list[int], int]]:
    """Per task: the caps that agree best on the other tasks, the held-out task's agreement at each, its size."""
    tasks = sorted({t for per in by_cap.values() for t in per})
    out = {}
    for held in tasks:
        score = {cap: sum(per[t][0] for t in per if t != held) for cap, per in by_cap.items()}
        best = max(score.values())
        caps = [c for c in sorted(score) if score[c] == best]
        out[held] = (caps, [by_cap[c][held][0] for c in caps], by_cap[caps[0]][held][1])
    return out


def _index(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def oracle_free_markdown(table: list[dict], cap: int, by_cap: dict, loto: dict) -> str:
    """Per task: each concept result's label and index against the oracle and against the zero floor; then the
    agreement, the disagreements, the agreement at every cap and leave one task out."""
    lines = []
    for task in sorted({x["task"] for x in table}):
        rows = [x for x in table if x["task"] == task]
        lines += [f"### {task}", "",
                  f"| submission | concept | against the oracle: label (index) | zero floor, MemoRa up to {cap}: "
                  f"label (index) | decided by (zero floor) |", "|---|---|---|---|---|"]
        for x in rows:
            same = x["free_label"] == x["oracle_label"]
            mark = "" if same else "**"
            lines.append(f"| `{x['recipe']}` | {x['concept']} | {x['oracle_label']} ({_index(x['oracle_index'])}) | "
                         f"{mark}{x['free_label']}{mark} ({_index(x['free_index'])}) | "
                         f"{', '.join(x['free_decided_by'])} |")
        lines.append("")
    agree = sum(x["free_label"] == x["oracle_label"] for x in table)
    differ = [x for x in table if x["free_label"] != x["oracle_label"]]
    milder = sum(ORDER[x["free_label"]] < ORDER[x["oracle_label"]] for x in differ)
    gaps = sorted(abs(x["free_index"] - x["oracle_index"]) for x in table
                  if x["free_index"] is not None and x["oracle_index"] is not None)
    median = gaps[len(gaps) // 2] if gaps else None
    lines.append(f"Cap {cap}: the zero floor gives the oracle-based label on {agree} of {len(table)} concept results "
                 f"({100 * agree / len(table):.0f} %); {milder} of the {len(differ)} it changes are milder than the "
                 f"oracle-based label"
                 + (": " + "; ".join(f"{x['submission']} {x['concept']} {x['oracle_label']} -> {x['free_label']}"
                                     for x in differ) if differ else "")
                 + f". Index difference (zero floor minus oracle, absolute): median {_index(median)}, "
                   f"largest {_index(gaps[-1] if gaps else None)}.")
    lines += ["", "| cap (MemoRa budgets up to) | " + " | ".join(sorted({t for p in by_cap.values() for t in p}))
              + " | all |", "|---|" + "---|" * (len(next(iter(by_cap.values()))) + 1)]
    for c, per in by_cap.items():
        a, n = sum(v[0] for v in per.values()), sum(v[1] for v in per.values())
        lines.append(f"| {c} | " + " | ".join(f"{v[0]}/{v[1]}" for v in per.values()) + f" | {a}/{n} |")
    held = [f"{t}: caps {', '.join(map(str, caps))} chosen on the others, {'-'.join(map(str, sorted(set(got))))}/{n} "
            f"held out" for t, (caps, got, n) in loto.items()]
    low = sum(min(got) for caps, got, n in loto.values())
    high = sum(max(got) for caps, got, n in loto.values())
    total = sum(n for caps, got, n in loto.values())
    lines += ["", f"Leave one task out (the cap chosen on the other tasks, ties kept): {'; '.join(held)}; "
                  f"{low}-{high} of {total} in all."]
    return "\n".join(lines)
