"""Issue 29, item 3: would drawing MemoRa's attack seeds one at a time, and stopping once the label cannot
change, keep every label? Curtailed sampling, simulated on the committed per-image hits of a results folder.

A submission's MemoRa costs one LoRA run per attack seed (3 in mini-v4), each with its judged images at every
budget. After the first s seeds, the images of the seeds still to come can only move each budget's count
between "none of them shows the concept" and "all of them do". The verdict's label is monotone in every count
(a larger k gives a smaller Fisher p, a smaller Holm-adjusted p, a larger excess), so if both extremes give
the same label, the full run gives it too: stopping there changes no label, by construction, not by luck.
The prompt probes' comparisons are fixed (they do not depend on MemoRa's seeds); the oracle's curve is shared
work (the task's pack), always complete. What moves is the index (the largest excess), now estimated from
fewer seeds: reported below as the largest change of a result's index.

    .venv/bin/python experiments/curtailed_memora.py [results/mini-v4]
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from memora_bench.results import load_image_lines, load_result
from memora_bench.unlearning.table import load_with_references
from memora_bench.verdict import concept_evidence, memora_evidence, verdict, verdict_params

LABEL_ORDER = {"LTM": 0, "partial": 1, "STM": 2}


def hits_array(lines: list[dict], probe: str, concept: str, prompts: list[str], seeds: int, budgets: list[int]):
    h = np.zeros((seeds, len(budgets), len(prompts)), dtype=bool)
    at = {p: i for i, p in enumerate(prompts)}
    bj = {b: j for j, b in enumerate(budgets)}
    n = 0
    for line in lines:
        if line["probe"] == probe and line["concept"] == concept and line["prompt_id"] in at:
            h[line["attack_seed"], bj[line["budget"]], at[line["prompt_id"]]] = line["hit"]
            n += 1
    if n != h.size:
        raise ValueError(f"{probe} {concept}: {n} image lines, expected {h.size}")
    return h


def label_with(memora_ev, others, alpha, stm_excess):
    return verdict(memora_ev + others, alpha, stm_excess)


def simulate(results: Path) -> list[dict]:
    loaded, oracles, originals = load_with_references(results)
    paths = {(r["submission"]["name"], r["task"]["name"]): p for p in sorted(results.glob("*/*.json"))
             for r in [load_result(p)]}
    out = []
    for r in loaded:
        task, sub = r["task"]["name"], r["submission"]["name"]
        oracle = oracles.get(task)
        m = r["probes"].get("memora")
        if oracle is None or m is None:
            continue
        params = m["params"]
        alpha, stm_excess = verdict_params(params)
        budgets, seeds = list(params["budgets"]), len(params["attack_seeds"])
        lines = load_image_lines(r, paths[(sub, task)])
        for c in r["task"]["concepts"]:
            entry = m["concepts"][c["name"]]
            full_ev = concept_evidence(r, c, oracle, originals.get(task))
            n_memora = len(budgets)
            others = full_ev[n_memora:]
            full = verdict(full_ev, alpha, stm_excess)
            prompts = entry["eval_prompts"]
            hits = hits_array(lines, "memora", c["label"], prompts, seeds, budgets)
            ohits = hits_array(lines, "memora_oracle", c["label"], prompts, seeds, budgets)
            ceil = entry["ceiling"]
            ceiling = np.array([1.0] * ceil["k"] + [0.0] * (ceil["n"] - ceil["k"]))
            again = memora_evidence(budgets, hits, ohits, ceiling, 1, 0)
            stored = [(e["k"], e["k_oracle"], e["p"]) for e in entry["evidence"]]
            assert [(e.k, e.k_oracle, e.p) for e in again] == stored, (sub, task, c["label"])
            needed, index_at_stop = seeds, full.index
            for s in range(1, seeds):
                labels = []
                for fill in (False, True):
                    h = hits.copy()
                    h[s:] = fill
                    ev = [replace(e, excess_interval=None) for e in memora_evidence(budgets, h, ohits, ceiling, 1, 0)]
                    labels.append(label_with(ev, others, alpha, stm_excess).label)
                if labels[0] == labels[1]:
                    assert labels[0] == full.label, (sub, task, c["label"], labels, full.label)
                    needed = s
                    part = memora_evidence(budgets, hits[:s], ohits[:s], ceiling, 1, 0)
                    index_at_stop = verdict(part + others, alpha, stm_excess).index
                    break
            out.append({"task": task, "submission": sub, "concept": c["label"], "label": full.label,
                        "seeds_needed": needed, "seeds": seeds, "index": full.index, "index_at_stop": index_at_stop})
    return out


def main(folder: str = "results/mini-v4") -> None:
    rows = simulate(Path(folder))
    print("| task | submission | concept | label | attack seeds needed | index (all seeds) | index (at the stop) |")
    print("|---|---|---|---|---|---|---|")
    for x in rows:
        fmt = (lambda v: "-" if v is None else f"{v:.2f}")
        print(f"| {x['task']} | {x['submission']} | {x['concept']} | {x['label']} | {x['seeds_needed']} of "
              f"{x['seeds']} | {fmt(x['index'])} | {fmt(x['index_at_stop'])} |")
    used = sum(x["seeds_needed"] for x in rows)
    total = sum(x["seeds"] for x in rows)
    moved = [abs(x["index"] - x["index_at_stop"]) for x in rows if x["index"] is not None and x["index_at_stop"] is not None]
    print(f"\n{len(rows)} concept results: {used} of {total} attack-seed runs needed ({1 - used / total:.0%} saved); "
          f"labels unchanged by construction (checked: every stop's label equals the full run's); "
          f"index moved by at most {max(moved):.2f} (median {np.median(moved):.2f}).")
    for k in range(1, 4):
        print(f"  stopped after {k} seed(s): {sum(x['seeds_needed'] == k for x in rows)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
