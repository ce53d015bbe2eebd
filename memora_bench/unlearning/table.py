"""The baselines table of docs/baselines.md, from result files only: ``memora-bench baselines table RESULTS``.

Per baseline and miniature task: the erased concept's plain rate k/N with its 95 % Wilson interval, the
retained-concept accuracy k/N, the Fréchet distance, the build CPU time (from ``baselines/*/build.json``),
and whether the baseline *erases*: plain rate <= 20 % while retained accuracy stays >= 80 % (issue 5). The
controls (`original`, `oracle`) come first in each task.

When the results hold the MemoRa probe, :func:`memora_markdown` gives its table (issue 6): per baseline, task
and erased concept, the recovery curve r(b) (k of n images pooled over attack seeds) at every budget, the
oracle's curve under the same attack and the original's rate as the ceiling, the steps to recall b_half, the
memory index M with its interval, the STM / LTM / partial label, AutoMemoRa's rates and, on a two-concept
task, Multi-MemoRa's rate at the largest budget.

When they hold adversarial prompt probes, :func:`adversarial_markdown` gives their table (issue 7): per
baseline, task and erased concept, the plain rate, each probe's attack success k/N with its interval, the
oracle's rate under the same probe, MemoRa's rate at the largest budget and label, and the headline label,
the worst case over probes (:func:`memora_bench.scoring.headline_label`), with the probes that decided it;
then each probe's cost per submission in model evaluations and images (the seconds a result records are
those of the run that wrote it, small when the cache was warm; docs/performance.md has cold seconds).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from memora_bench.packs import computed_shared_work
from memora_bench.probes.registry import is_adversarial
from memora_bench.results import load_result
from memora_bench.scoring import is_original, is_retrain_oracle
from memora_bench.verdict import concept_headlines, display_interval, verdict_params

ERASED_AT_MOST = 0.20
RETAINED_AT_LEAST = 0.80
CONTROLS = ("original", "oracle")
BEGIN, END = "<!-- baselines-table:begin -->", "<!-- baselines-table:end -->"
MEMORA_BEGIN, MEMORA_END = "<!-- memora-table:begin -->", "<!-- memora-table:end -->"
ADV_BEGIN, ADV_END = "<!-- adversarial-table:begin -->", "<!-- adversarial-table:end -->"
VERDICT_BEGIN, VERDICT_END = "<!-- verdict-table:begin -->", "<!-- verdict-table:end -->"
TIMING_BEGIN, TIMING_END = "<!-- timing-table:begin -->", "<!-- timing-table:end -->"
EFFECT_BEGIN, EFFECT_END = "<!-- probe-effect-table:begin -->", "<!-- probe-effect-table:end -->"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def _rate(r: dict) -> str:
    lo, hi = r["wilson"]
    return f"{r['k']}/{r['n']} ({_pct(r['rate'])} %, [{_pct(lo)}, {_pct(hi)}])"


def rows(results: Path, baselines: Path) -> list[dict]:
    """One row per (submission, task) result under ``results`` (``<submission>/<task>.json``)."""
    out = []
    for path in sorted(Path(results).glob("*/*.json")):
        r = load_result(path)
        sub, task = r["submission"]["name"], r["task"]["name"]
        erased = [c["label"] for c in r["task"]["concepts"]]
        plain = r["probes"]["plain"]["rates"]
        retain = r["utility"]["retain"]["all"]
        build_json = baselines / sub / "build.json"
        build = json.loads(build_json.read_text()) if build_json.exists() else None
        out.append({
            "task": task,
            "submission": sub,
            "control": bool(r["submission"].get("control")),
            "recipe": build["recipe"] if build else sub,
            "erased": {c: plain[c] for c in erased},
            "retained": retain,
            "frechet": r["utility"].get("frechet", {}).get("value"),
            "build_cpu_s": build["cpu_seconds"] if build else None,
            "erases": all(plain[c]["rate"] <= ERASED_AT_MOST for c in erased) and retain["rate"] >= RETAINED_AT_LEAST,
        })
    order = {c: i for i, c in enumerate(CONTROLS)}
    out.sort(key=lambda x: (x["task"], order.get(x["submission"], len(order)), x["recipe"]))
    return out


def markdown(table: list[dict]) -> str:
    lines = []
    for task in sorted({r["task"] for r in table}):
        lines += [f"### {task}", "",
                  "| baseline | erased concept, plain rate | retained accuracy | Fréchet | build CPU-s | erases? |",
                  "|---|---|---|---|---|---|"]
        for r in (x for x in table if x["task"] == task):
            erased = "; ".join(f"{c}: {_rate(v)}" for c, v in r["erased"].items())
            verdict = "control" if r["control"] else ("**yes**" if r["erases"] else "no")
            frechet = "" if r["frechet"] is None else f"{r['frechet']:.2f}"
            cpu = _cpu(r["build_cpu_s"])
            lines.append(f"| `{r['recipe']}` | {erased} | {_rate(r['retained'])} | {frechet} | {cpu} | {verdict} |")
        lines.append("")
    return "\n".join(lines)


def _cpu(seconds: float | None) -> str:
    """Build CPU seconds as the table shows them: whole seconds, and "< 1" for a build that took under one
    (UCE's closed-form edit), which whole seconds would show as a misleading 0."""
    if seconds is None:
        return ""
    return "< 1" if seconds < 1 else f"{seconds:.0f}"


def memora_rows(results: Path, baselines: Path) -> list[dict]:
    """One row per (submission, task, erased concept) of the results that ran MemoRa."""
    out = []
    for path in sorted(Path(results).glob("*/*.json")):
        r = load_result(path)
        m = r["probes"].get("memora")
        if m is None:
            continue
        sub, task = r["submission"]["name"], r["task"]["name"]
        recipe = _recipe(sub, baselines)
        top = str(max(m["params"]["budgets"]))
        for c in r["task"]["concepts"]:
            entry = m["concepts"][c["name"]]
            out.append({
                "task": task, "submission": sub, "recipe": recipe, "concept": c["label"],
                "budgets": m["params"]["budgets"],
                "plain": r["probes"]["plain"]["rates"][c["label"]],
                "curve": entry["curve"], "oracle_curve": entry.get("oracle_curve"), "ceiling": entry["ceiling"],
                "score": entry.get("score"),
                "auto": m.get("auto", {}).get(c["name"], {}),
                "multi": m["multi"][top][c["name"]] if "multi" in m else None,
            })
    order = {c: i for i, c in enumerate(CONTROLS)}
    out.sort(key=lambda x: (x["task"], order.get(x["submission"], len(order)), x["recipe"], x["concept"]))
    return out


def _num(x, digits: int = 0) -> str:
    return "–" if x is None or x != x or x in (float("inf"), float("-inf")) else f"{x:.{digits}f}"


def memora_markdown(table: list[dict]) -> str:
    """The MemoRa tables: one per task, a row per (baseline, erased concept), the oracle's curve as the floor."""
    lines = []
    for task in sorted({r["task"] for r in table}):
        rows = [x for x in table if x["task"] == task]
        budgets = rows[0]["budgets"]
        weights = sorted({w for x in rows for w in x["auto"]}, key=float)
        multi = any(x["multi"] is not None for x in rows)
        head = (["baseline", "concept", "plain"] + [f"r({b})" for b in budgets]
                + ["b_half [95 %]", "M [95 %]", "label"] + [f"Auto w={w}" for w in weights]
                + ([f"Multi r({budgets[-1]})"] if multi else []))
        lines += [f"### {task}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        floors = {}
        for x in rows:
            if x["oracle_curve"] is not None:
                floors.setdefault(x["concept"], (x["oracle_curve"], x["ceiling"]))
        for concept, (curve, ceiling) in sorted(floors.items()):
            cells = ["*oracle floor*", concept, ""] + [f"{v['k']}/{v['n']}" for v in curve]
            lines.append("| " + " | ".join(cells + [""] * (len(head) - len(cells))) + " |")
            cells = ["*original ceiling*", concept, f"{ceiling['k']}/{ceiling['n']}"]
            lines.append("| " + " | ".join(cells + [""] * (len(head) - len(cells))) + " |")
        for x in rows:
            sc = x["score"]
            if sc:
                bh = f"{_num(sc['b_half'])} [{_num(sc['b_half_interval'][0])}, {_num(sc['b_half_interval'][1])}]"
                mem = f"{_num(sc['memory'], 2)} [{_num(sc['memory_interval'][0], 2)}, {_num(sc['memory_interval'][1], 2)}]"
                label = sc["label"]
            else:
                bh = mem = label = ""
            cells = ([f"`{x['recipe']}`", x["concept"], f"{x['plain']['k']}/{x['plain']['n']}"]
                     + [f"{v['k']}/{v['n']}" for v in x["curve"]] + [bh, mem, label]
                     + [f"{x['auto'][w]['k']}/{x['auto'][w]['n']}" if w in x["auto"] else "" for w in weights]
                     + ([f"{x['multi']['k']}/{x['multi']['n']}" if x["multi"] else ""] if multi else []))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _recipe(sub: str, baselines: Path) -> str:
    build_json = baselines / sub / "build.json"
    return json.loads(build_json.read_text())["recipe"] if build_json.exists() else sub


def load_with_references(results: Path) -> tuple[list[dict], dict[str, dict], dict[str, dict]]:
    """Every result under ``results`` (``<submission>/<task>.json``), and per task the retrain oracle's and the
    original model's among them (the headline compares every probe with them)."""
    loaded = [load_result(p) for p in sorted(Path(results).glob("*/*.json"))]
    oracles = {r["task"]["name"]: r for r in loaded if is_retrain_oracle(r)}
    originals = {r["task"]["name"]: r for r in loaded if is_original(r)}
    return loaded, oracles, originals


def adversarial_rows(results: Path, baselines: Path) -> list[dict]:
    """One row per (submission, task, erased concept) of the results that ran an adversarial probe."""
    loaded, oracles, originals = load_with_references(results)
    out = []
    for r in loaded:
        probes = sorted(p for p in r["probes"] if is_adversarial(p))
        if not probes:
            continue
        task, sub = r["task"]["name"], r["submission"]["name"]
        m = r["probes"].get("memora")
        for h in concept_headlines(r, oracles.get(task), originals.get(task)):
            c = h["concept"]
            out.append({"task": task, "submission": sub, "recipe": _recipe(sub, baselines), "concept": c["label"],
                        "plain": r["probes"]["plain"]["rates"][c["label"]], "probes": h["rates"],
                        "memora_top": m["concepts"][c["name"]]["curve"][-1] if m else None,
                        "memora_budget": m["params"]["budgets"][-1] if m else None,
                        "memora_label": h["memora_label"], "headline": h["headline"], "decided_by": h["decided_by"],
                        "cost": {p: {"model_evaluations": r["probes"][p]["cost"]["model_evaluations"],
                                     "images": r["probes"][p]["cost"]["images"]} for p in probes}})
    order = {c: i for i, c in enumerate(CONTROLS)}
    out.sort(key=lambda x: (x["task"], order.get(x["submission"], len(order)), x["recipe"], x["concept"]))
    return out


def _kn_iv(r: dict) -> str:
    lo, hi = display_interval(r)
    return f"{r['k']}/{r['n']} [{_pct(lo)}, {_pct(hi)}]"


def adversarial_markdown(table: list[dict]) -> str:
    """The adversarial-probe tables, one per task, and the cost of each probe per submission."""
    lines = []
    probes = sorted({p for x in table for p in x["probes"]})
    for task in sorted({r["task"] for r in table}):
        rows = [x for x in table if x["task"] == task]
        top = rows[0]["memora_budget"]
        head = (["baseline", "concept", "plain"] + [f"{p} (oracle)" for p in probes]
                + ([f"MemoRa r({top})", "MemoRa label"] if top is not None else []) + ["headline (decided by)"])
        lines += [f"### {task}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for x in rows:
            cells = [f"`{x['recipe']}`", x["concept"], f"{x['plain']['k']}/{x['plain']['n']}"]
            for p in probes:
                rate, oracle = x["probes"].get(p, (None, None))
                cells.append("" if rate is None else _kn_iv(rate) + ("" if oracle is None
                                                                     else f" ({oracle['k']}/{oracle['n']})"))
            if top is not None:
                mt = x["memora_top"]
                cells += ["" if mt is None else f"{mt['k']}/{mt['n']}", x["memora_label"] or ""]
            cells.append(f"{x['headline']} ({', '.join(x['decided_by'])})" if x["decided_by"] else x["headline"])
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Cost per submission (one result: UNet forward passes, and 50-step DDIM images with CFG; "
              "median [min, max] over the results)", "",
              "| task | probe | results | model evaluations | images |", "|---|---|---|---|---|"]
    for task in sorted({r["task"] for r in table}):
        firsts = {}
        for x in table:
            if x["task"] == task:
                firsts.setdefault(x["submission"], x)  # one row per result (a two-concept task has two)
        for p in probes:
            costs = [x["cost"][p] for x in firsts.values() if p in x["cost"]]
            ev = sorted(c["model_evaluations"] for c in costs)
            im = sorted(c["images"] for c in costs)
            lines.append(f"| {task} | {p} | {len(costs)} | {statistics.median(ev):.0f} [{ev[0]}, {ev[-1]}] | "
                         f"{statistics.median(im):.0f} [{im[0]}, {im[-1]}] |")
    lines.append("")
    return "\n".join(lines)


def write_into(doc: Path, text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace what stands between the table markers of ``doc``."""
    content = doc.read_text()
    if begin not in content or end not in content:
        raise ValueError(f"{doc} has no {begin} ... {end} markers")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def verdict_rows(results: Path, baselines: Path) -> list[dict]:
    """One row per (submission, task, erased concept) of the results scored by the verdict (mini-v4 on)."""
    loaded, oracles, originals = load_with_references(results)
    out = []
    for r in loaded:
        m = r["probes"].get("memora")
        if not m or not all("evidence" in c for c in m["concepts"].values()):
            continue
        task, sub = r["task"]["name"], r["submission"]["name"]
        for h in concept_headlines(r, oracles.get(task), originals.get(task)):
            c, v = h["concept"], h["verdict"]
            entry = m["concepts"][c["name"]]
            out.append({"task": task, "submission": sub, "recipe": _recipe(sub, baselines), "concept": c["label"],
                        "control": bool(r["submission"].get("control")), "headline": h["headline"],
                        "decided_by": h["decided_by"], "index": None if v is None else v.index,
                        "index_interval": None if v is None else v.index_interval,
                        "probes": {p: r["probes"][p]["rates"][c["label"]]
                                   for p in ["plain"] + sorted(q for q in r["probes"] if is_adversarial(q))},
                        "oracle": {p: oracles[task]["probes"][p]["rates"][c["label"]]
                                   for p in r["probes"] if task in oracles and p in oracles[task]["probes"]
                                   and p != "memora"},
                        "budgets": m["params"]["budgets"], "curve": [x["k"] for x in entry["curve"]],
                        "oracle_curve": [x["k"] for x in entry["oracle_curve"]], "n": entry["curve"][0]["n"],
                        "judged": entry["training_images_judged"]})
    order = {c: i for i, c in enumerate(CONTROLS)}
    out.sort(key=lambda x: (x["task"], x["control"], order.get(x["submission"], -1), x["recipe"], x["concept"]))
    return out


def verdict_markdown(table: list[dict]) -> str:
    """Per task: each probe's k/N (the oracle's in brackets), MemoRa's curve, the training images still judged
    as the concept, the index and the headline label with the probes that decided it."""
    lines = []
    for task in sorted({x["task"] for x in table}):
        rows = [x for x in table if x["task"] == task]
        probes = list(rows[0]["probes"])
        budgets = rows[0]["budgets"]
        head = (["submission", "concept"] + [f"{p} (oracle)" for p in probes]
                + [f"MemoRa k/{rows[0]['n']} at {', '.join(str(b) for b in budgets)} steps",
                   "training images judged", "index [95 %]", "headline (decided by)"])
        lines += [f"### {task}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for x in rows:
            cells = [f"`{x['recipe']}`", x["concept"]]
            for p in probes:
                r, o = x["probes"][p], x["oracle"].get(p)
                cells.append(f"{r['k']}/{r['n']}" + ("" if o is None else f" ({o['k']})"))
            cells.append(", ".join(str(k) for k in x["curve"]))
            j = x["judged"]
            cells.append(f"{j['submission']['k']}/{j['submission']['n']} (oracle {j['oracle']['k']})")
            iv = x["index_interval"]
            cells.append("–" if x["index"] is None else f"{x['index']:.2f}"
                         + ("" if iv is None else f" [{iv[0]:.2f}, {iv[1]:.2f}]"))
            cells.append(f"{x['headline']} ({', '.join(x['decided_by'])})")
            lines.append("| " + " | ".join(cells) + " |")
        oracle = next((x for x in rows if x["submission"] == "oracle"), None)
        if oracle:
            lines += ["", f"The retrain oracle's MemoRa curve: {', '.join(str(k) for k in oracle['curve'])}."]
        lines.append("")
    return "\n".join(lines)


def _without(result: dict, probes: set[str]) -> dict:
    return {**result, "probes": {p: v for p, v in result["probes"].items() if p not in probes}}


def probe_effect_rows(results: Path, baselines: Path, new: list[str]) -> list[dict]:
    """What the probes ``new`` (those a suite version added) change, per (submission, task, erased concept)
    scored by the verdict: the headline with every probe, the headline without the new ones (the earlier
    version's probes on the same result), and each new probe's comparison with the oracle (k/n against the
    oracle's, Holm-adjusted p within the full family, excess)."""
    loaded, oracles, originals = load_with_references(results)
    drop = set(new)
    out = []
    for r in loaded:
        task, sub = r["task"]["name"], r["submission"]["name"]
        if not drop <= set(r["probes"]) or task not in oracles:
            continue
        full = concept_headlines(r, oracles[task], originals.get(task))
        if any(h["verdict"] is None for h in full):
            continue
        before = concept_headlines(_without(r, drop), _without(oracles[task], drop),
                                   None if task not in originals else _without(originals[task], drop))
        for h, b in zip(full, before):
            by_probe = {e.probe: e for e in h["verdict"].evidence if e.budget is None}
            out.append({"task": task, "submission": sub, "recipe": _recipe(sub, baselines),
                        "concept": h["concept"]["label"], "control": bool(r["submission"].get("control")),
                        "headline": h["headline"], "decided_by": h["decided_by"], "before": b["headline"],
                        "alpha": verdict_params(r["probes"]["memora"]["params"])[0],
                        "probes": {p: {"k": by_probe[p].k, "n": by_probe[p].n, "k_oracle": by_probe[p].k_oracle,
                                       "p_adjusted": by_probe[p].p_adjusted, "excess": by_probe[p].excess}
                                   for p in new}})
    order = {c: i for i, c in enumerate(CONTROLS)}
    out.sort(key=lambda x: (x["task"], x["control"], order.get(x["submission"], -1), x["recipe"], x["concept"]))
    return out


def probe_effect_markdown(table: list[dict]) -> str:
    """Per task: each new probe's k/N (the oracle's), marked when it beats the oracle after Holm's adjustment,
    the headline without the new probes and with them; then a count of the labels they moved."""
    lines = []
    new = list(table[0]["probes"]) if table else []
    for task in sorted({x["task"] for x in table}):
        rows = [x for x in table if x["task"] == task]
        head = ["submission", "concept"] + [f"{p} (oracle)" for p in new] + ["without them", "headline (decided by)"]
        lines += [f"### {task}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for x in rows:
            cells = [f"`{x['recipe']}`", x["concept"]]
            for p in new:
                e = x["probes"][p]
                mark = "**" if e["p_adjusted"] < x["alpha"] else ""
                cells.append(f"{mark}{e['k']}/{e['n']} ({e['k_oracle']}){mark}")
            cells.append(x["before"])
            cells.append(f"{x['headline']} ({', '.join(x['decided_by'])})")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    moved = [x for x in table if x["before"] != x["headline"]]
    lines.append(f"Labels moved by the new probes: {len(moved)} of {len(table)}"
                 + (": " + "; ".join(f"{x['submission']} {x['concept']} {x['before']} -> {x['headline']}"
                                     for x in moved) if moved else "") + ".")
    return "\n".join(lines)


def timing_rows(results: Path) -> list[dict]:
    """One row per result that ran every part itself (none copied by ``--reuse``): its task, wall seconds in the
    evaluation (``timing.total_wall_s``, without Python start-up), each probe's seconds and the rest (the
    utility measures), and whether the run also computed its task's shared work (:mod:`memora_bench.packs`)."""
    out = []
    for path in sorted(Path(results).glob("*/*.json")):
        r = load_result(path)
        t = r["timing"]
        if t.get("reused") or t.get("executor", "local") != "local":
            continue
        probes = {p: v["wall_s"] for p, v in t["probes"].items()}
        out.append({"task": r["task"]["name"], "submission": r["submission"]["name"], "total": t["total_wall_s"],
                    "parts": {**probes, "utility": max(0.0, t["total_wall_s"] - sum(probes.values()))},
                    "shared": bool(computed_shared_work(r))})
    return out


def _minutes(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def timing_markdown(table: list[dict]) -> str:
    """Per task: one submission's suite time (median and range, m:ss) over the results whose shared work was
    cached and over those that computed it, and each part's median share of a run."""
    parts = sorted({p for x in table for p in x["parts"]}, key=lambda p: (p == "utility", p))
    head = ["task", "results", "shared work cached: median [range]", "computed it too: median [range]"] + [
        f"{p} share" for p in parts]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in sorted({x["task"] for x in table}):
        rows = [x for x in table if x["task"] == task]
        cells = [task, str(len(rows))]
        for shared in (False, True):
            ts = sorted(x["total"] for x in rows if x["shared"] == shared)
            cells.append(f"{_minutes(statistics.median(ts))} [{_minutes(ts[0])}-{_minutes(ts[-1])}] ({len(ts)})"
                         if ts else "-")
        warm = [x for x in rows if not x["shared"]] or rows
        for p in parts:
            shares = [x["parts"].get(p, 0.0) / x["total"] for x in warm if x["total"] > 0]
            cells.append(f"{100 * statistics.median(shares):.0f} %" if shares else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
