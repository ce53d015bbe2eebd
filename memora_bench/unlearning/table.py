"""The baselines table of docs/baselines.md, from result files only: ``memora-bench baselines table RESULTS``.

Per baseline and miniature task: the erased concept's plain rate k/N with its 95 % Wilson interval, the
retained-concept accuracy k/N, the Fréchet distance, the build CPU time (from ``baselines/*/build.json``),
and whether the baseline *erases*: plain rate <= 20 % while retained accuracy stays >= 80 % (issue 5). The
controls (`original`, `oracle`) come first in each task.
"""

from __future__ import annotations

import json
from pathlib import Path

ERASED_AT_MOST = 0.20
RETAINED_AT_LEAST = 0.80
CONTROLS = ("original", "oracle")
BEGIN, END = "<!-- baselines-table:begin -->", "<!-- baselines-table:end -->"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def _rate(r: dict) -> str:
    lo, hi = r["wilson"]
    return f"{r['k']}/{r['n']} ({_pct(r['rate'])} %, [{_pct(lo)}, {_pct(hi)}])"


def rows(results: Path, baselines: Path) -> list[dict]:
    """One row per (submission, task) result under ``results`` (``<submission>/<task>.json``)."""
    from memora_bench.results import load_result

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


def write_into(doc: Path, text: str) -> None:
    """Replace what stands between the table markers of ``doc``."""
    content = doc.read_text()
    if BEGIN not in content or END not in content:
        raise ValueError(f"{doc} has no {BEGIN} ... {END} markers")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
