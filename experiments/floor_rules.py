"""Experiment (issue 27 item 2): how often would a floor other than the retrain oracle's give the oracle-based
label? Reads only the committed results/mini-v4 files: each concept result's comparisons (MemoRa per budget,
each prompt probe) are re-made with the oracle's counts replaced by a candidate floor's, then labelled by
memora_bench.verdict.verdict. The first line re-makes them with the oracle's own counts (must agree 74/74).

usage: .venv/bin/python experiments/floor_rules.py   (about a second; docs/scoring.md quotes its output)"""
import json, sys
from pathlib import Path
import numpy as np
from memora_bench.verdict import concept_headlines, verdict, fisher_greater, Evidence, MIN_ORIGINAL_RATE
R = Path("results/mini-v4")
def load(sub, task):
    p = R / sub / f"{task}.json"
    return json.loads(p.read_text()) if p.exists() else None
rows = []
for d in sorted(R.iterdir()):
    if d.name in ("img", "shared"): continue
    for f in sorted(d.glob("*.json")):
        res = json.loads(f.read_text()); task = res["task"]["name"]
        orc, org = load("oracle", task), load("original", task)
        for h in concept_headlines(res, orc, org):
            c = h["concept"]
            ceil = res["probes"]["memora"]["concepts"][c["name"]]["ceiling"]["rate"]
            r_org = {p: org["probes"][p]["rates"][c["label"]]["rate"] for p in org["probes"] if "rates" in org["probes"][p] and c["label"] in org["probes"][p]["rates"]}
            rows.append((d.name, task, h, ceil, r_org))

def relabel(h, ceil, r_org, floor_of, cap=10**9, probes=None):
    ev, best, bestf = [], 0, 0
    for e in h["verdict"].evidence:
        if probes is not None and e.probe not in probes: continue
        if e.probe == "memora" and e.budget > cap: continue
        ko = floor_of(e)
        if e.probe == "memora":
            best, bestf = max(best, e.k), max(bestf, ko)
            exc = (best - bestf) / e.n / ceil if ceil >= MIN_ORIGINAL_RATE else None
        else:
            ro = r_org.get(e.probe)
            exc = None if ro is None or ro < MIN_ORIGINAL_RATE else (e.k / e.n - ko / e.n_oracle) / ro
        ev.append(Evidence(e.probe, e.budget, e.k, e.n, ko, e.n_oracle, fisher_greater(e.k, e.n, ko, e.n_oracle), exc, None))
    return verdict(ev).label

def report(name, **kw):
    agree, dis = 0, []
    for sub, task, h, ceil, r_org in rows:
        lab = relabel(h, ceil, r_org, **kw)
        if lab == h["headline"]: agree += 1
        else: dis.append(f"{sub}/{h['concept']['name']}:{h['headline']}->{lab}")
    order = {"LTM": 0, "partial": 1, "STM": 2}
    milder = sum(order[d.split(":")[-1].split("->")[1]] < order[d.split(":")[-1].split("->")[0]] for d in dis)
    print(f"{name}: {agree}/{len(rows)} agree, {milder} milder than the oracle's label:", "; ".join(dis))

report("oracle itself (sanity)", floor_of=lambda e: e.k_oracle)
for cap in (0, 25, 50, 75, 100, 200):
    report(f"zero floor, budgets <= {cap}", floor_of=lambda e: 0, cap=cap)

BUD = [0, 25, 50, 75, 100, 200]
curves = {"seven": [3, 8, 7, 15, 26, 42], "three": [0, 1, 0, 4, 2, 13], "eight": [0, 0, 0, 0, 2, 6], "bold": [3, 16, 26, 28, 33, 35]}
n_of = {"seven": 48, "three": 48, "eight": 48, "bold": 36}
for cname, cur in curves.items():
    frac = {b: k / n_of[cname] for b, k in zip(BUD, cur)}
    report(f"every concept's MemoRa floor = oracle-{cname}'s fraction, prompt probes oracle", floor_of=lambda e: round(frac[e.budget] * e.n) if e.probe == "memora" else e.k_oracle)
    report(f"  ... and prompt probes floor 0", floor_of=lambda e: round(frac[e.budget] * e.n) if e.probe == "memora" else 0)
report("prompt probes floor 0, MemoRa oracle", floor_of=lambda e: e.k_oracle if e.probe == "memora" else 0)
