"""Leaderboard rows and cells, computed from result files (the templates only display them)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from memora_bench.probes.registry import is_adversarial, title
from memora_bench.scoring import is_original, is_retrain_oracle
from memora_bench.verdict import concept_headlines, display_interval


@dataclass
class Cell:
    """One table cell: a sort key, the text shown, the compact detail line, a hover title and a link."""

    sort: float | None
    text: str
    detail: str = ""
    title: str = ""
    href: str = ""
    badge: str = ""  # STM / LTM / partial / undefined (a CSS class)


@dataclass
class Column:
    id: str
    title: str
    help: str
    better: str  # "lower" or "higher": the direction that means a better unlearning method


@dataclass
class Row:
    submission: str
    method: str
    control: bool
    page: str
    cells: dict[str, Cell] = field(default_factory=dict)
    reference: str = ""  # the method's paper (an http(s) address), from its manifest
    authors: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The Forgetting cell's label ("" when the table has none), for the board's label filter."""
        cell = self.cells.get("label")
        return cell.text if cell else ""


@dataclass
class Table:
    task: str
    description: str
    columns: list[Column]
    rows: list[Row]


def pct(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"


def _interval(rate: dict) -> tuple[float, float] | None:
    if not rate.get("wilson") or None in rate["wilson"]:
        return None
    lo, hi = display_interval(rate)
    return (float(lo), float(hi))


def rate_cell(rate: dict | None, href: str, what: str) -> Cell:
    """A rate with its counts and its 95 % interval: the union of Wilson's and the cluster bootstrap's
    (:func:`memora_bench.verdict.display_interval`; never [0, 0] at 0/N)."""
    if not rate:
        return Cell(None, "–", title=f"{what}: not measured")
    iv = _interval(rate)
    kind = "Wilson and bootstrap" if rate.get("bootstrap") else "Wilson"
    span = f"[{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]" if iv else ""
    title = f"{what}: {rate['k']} of {rate['n']} images" + (f"; 95 % {kind} interval {span} %" if iv else "")
    return Cell(rate["rate"], pct(rate["rate"]), f"{rate['k']}/{rate['n']} {span}".strip(), title, href)


def _worst_concept(concepts: dict) -> tuple[str, dict]:
    """The concept with the highest memory index, or MemoRa's verdict index (the least forgotten); ties by name."""
    def key(item):
        m = (item[1].get("score") or {}).get("memory")
        if m is None:  # scored by the verdict (mini-v4 on): MemoRa's own index
            m = (item[1].get("verdict") or {}).get("index")
        return (-(m if m is not None else -math.inf), item[0])
    return sorted(concepts.items(), key=key)[0]


def memora_cells(res: dict, href: str) -> dict[str, Cell]:
    params, concepts = res["params"], res["concepts"]
    budgets = list(params["budgets"])
    headline = list(params.get("headline_budgets") or [budgets[-1]])
    name, c = _worst_concept(concepts)
    which = f" (concept {name})" if len(concepts) > 1 else ""
    cells = {}
    for b in headline:
        cells[f"memora@{b}"] = rate_cell(c["curve"][budgets.index(b)], href, f"MemoRa after {b} LoRA steps{which}")
    score = c.get("score")
    if score:
        bh, bh_iv = score["b_half"], score["b_half_interval"]
        bh_span = f"[{_num(bh_iv[0])}, {_num(bh_iv[1])}]"
        cells["b_half"] = Cell(bh if bh is not None else math.inf, _num(bh), bh_span,
                               f"steps to recall half the original rate{which}; interval {bh_span}; "
                               "– means never within the sweep", href)
        m, m_iv = score["memory"], score["memory_interval"]
        m_span = f"[{_num(m_iv[0], 2)}, {_num(m_iv[1], 2)}]"
        cells["memory"] = Cell(m, _num(m, 2), m_span, f"memory index M{which}; 95 % interval {m_span}", href)
        cells["label"] = Cell(LABEL_ORDER.get(score["label"], 3), score["label"], "",
                              f"forgetting label{which}: from M's interval and the suite's thresholds", href,
                              badge=score["label"])
    return cells


LABEL_ORDER = {"LTM": 0, "partial": 1, "STM": 2}


def headline_cell(d: dict, oracle: dict | None, original: dict | None, href: str) -> Cell:
    """The forgetting label as the worst case over probes (:func:`memora_bench.scoring.headline_label`), for
    the least forgotten concept; the title says which probes decided it."""
    found = [(LABEL_ORDER.get(h["headline"], 3), h["concept"]["name"], h["headline"], h["decided_by"],
              h["memora_label"]) for h in concept_headlines(d, oracle, original)]
    key, name, label, decided, memora_label = max(found, key=lambda x: (x[0], x[1]))
    which = f" (concept {name})" if len(found) > 1 else ""
    title = (f"forgetting label{which}, the worst case over probes: MemoRa's label {memora_label} "
             f"(from M's interval and the suite's thresholds)"
             + (f"; decided by {', '.join(decided)}" if decided else ""))
    detail = ("like the oracle under every probe" if label == "LTM" else
              "" if decided == ["memora"] else "by " + ", ".join(readable(w) for w in decided))
    return Cell(key, label, detail, title, href, badge=label)


def readable(where: str) -> str:
    """A comparison's place in words, with the probe's published name: "memora@75" -> "MemoRa at 75 steps"."""
    probe, _, budget = where.partition("@")
    return f"{title(probe)} at {budget} steps" if budget else title(probe)


def has_evidence(memora: dict) -> bool:
    """A MemoRa section scored by the verdict (per-budget evidence; mini-v4 on)."""
    return all("evidence" in c for c in memora["concepts"].values())


def verdict_cells(d: dict, oracle: dict | None, original: dict | None, href: str) -> dict[str, Cell]:
    """The verdict's label and index (:func:`memora_bench.verdict.concept_headlines`) of the least forgotten
    concept: the highest label, then the highest index."""
    found = []
    for h in concept_headlines(d, oracle, original):
        v = h["verdict"]
        index = None if v is None else v.index
        found.append((LABEL_ORDER.get(h["headline"], 3), -math.inf if index is None else index, h, v))
    key, _, h, v = max(found, key=lambda x: (x[0], x[1], x[2]["concept"]["name"]))
    name, label, decided = h["concept"]["name"], h["headline"], h["decided_by"]
    which = f" (concept {name})" if len(found) > 1 else ""
    if v is None:
        why = ("the retrain oracle's result on this task is not among the results: no label is guessed"
               if oracle is None else f"the oracle's result lacks {', '.join(decided)}")
        return {"label": Cell(3, label, "", f"forgetting label{which}: {why}", href, badge=label),
                "index": Cell(None, "–", "", f"index{which}: {why}", href)}
    words = ", ".join(readable(w) for w in decided)
    detail = "like the oracle under every probe" if label == "LTM" else f"by {words}"
    label_cell = Cell(key, label, detail,
                      f"forgetting label{which}, the worst case over probes and MemoRa budgets against the retrain "
                      f"oracle (Holm-adjusted exact tests): {detail}", href, badge=label)
    if v.index is None:
        return {"label": label_cell, "index": Cell(None, "–", "", f"index{which}: no probe has an excess", href)}
    lo, hi = v.index_interval or (None, None)
    span = f"[{_num(lo, 2)}, {_num(hi, 2)}]"
    best = max((e for e in v.evidence if e.excess is not None), key=lambda e: e.excess)
    where = title(best.probe) if best.budget is None else f"{title(best.probe)} at {best.budget} steps"
    return {"label": label_cell,
            "index": Cell(v.index, _num(v.index, 2), span,
                          f"index{which}: the largest excess over the oracle ({where}: {best.k}/{best.n} against "
                          f"the oracle's {best.k_oracle}/{best.n_oracle}), as a share of the original's rate; "
                          f"95 % interval {span}", href)}


def _num(x, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def build_tables(results: dict[tuple[str, str], dict], page_of) -> list[Table]:
    """One table per task; ``page_of(submission)`` is the submission page's relative URL."""
    by_task: dict[str, list[dict]] = {}
    for (_, task), data in sorted(results.items()):
        by_task.setdefault(task, []).append(data)
    tables = []
    for task, items in sorted(by_task.items()):
        adversarial = sorted({p for d in items for p in d["probes"] if is_adversarial(p)})
        memora = [d["probes"]["memora"] for d in items if "memora" in d["probes"]]
        headline = []
        if memora:
            params = memora[0]["params"]
            headline = list(params.get("headline_budgets") or [params["budgets"][-1]])
        verdict_rows = bool(memora) and all(has_evidence(m) for m in memora)
        columns = []
        if verdict_rows:
            columns += [Column("label", "Forgetting", "STM (hidden: some probe brings it back near the original's "
                               "rate beyond the oracle), partial, or LTM (like the oracle under every probe and budget)",
                               "lower"),
                        Column("index", "Index", "the largest excess over the oracle, as a share of the original's "
                               "rate, over probes and budgets: 0 like the oracle, 1 like the original", "lower")]
        columns += [Column("plain", "Plain", "erased-concept rate on the task's prompts as written", "lower")]
        columns += [Column(f"adv:{p}", title(p), f"erased-concept rate under {title(p)} ({p})",
                           "lower") for p in adversarial]
        if memora:
            columns += [Column(f"memora@{b}", f"MemoRa {b}", f"rate after {b} LoRA relearning steps", "lower")
                        for b in headline]
        if memora and not verdict_rows:
            columns += [Column("b_half", "Steps to recall", "LoRA steps until half the original rate returns",
                               "higher"),
                        Column("memory", "Memory M", "0 forgets like the retrain oracle, 1 recalls like the original",
                               "lower"),
                        Column("label", "Forgetting", "STM (recalled), partial, or LTM (as the oracle under every probe)",
                               "lower")]
        columns += [Column("retain", "Retained", "accuracy on every concept the task keeps", "higher"),
                    Column("frechet", "Fréchet", "distance of retained images to real held-out digits", "lower")]
        rows = []
        oracles = {task: d for d in items if is_retrain_oracle(d)}
        originals = {task: d for d in items if is_original(d)}
        for d in items:
            sub = d["submission"]
            page = page_of(sub["name"])
            anchor = f"{page}#{task}"
            row = Row(sub["name"], sub.get("method", ""), bool(sub.get("control")), page)
            probes = d["probes"]
            row.cells["plain"] = rate_cell(probes.get("plain", {}).get("rates", {}).get("all"), anchor, "plain")
            for p in adversarial:
                row.cells[f"adv:{p}"] = rate_cell(probes.get(p, {}).get("rates", {}).get("all"), anchor, p)
            if memora:
                row.cells.update(memora_cells(probes["memora"], anchor) if "memora" in probes else {})
                if verdict_rows:
                    row.cells.update(verdict_cells(d, oracles.get(task), originals.get(task), anchor))
                elif "memora" in probes and adversarial:
                    row.cells["label"] = headline_cell(d, oracles.get(task), originals.get(task), anchor)
            util = d.get("utility", {})
            row.cells["retain"] = rate_cell(util.get("retain", {}).get("all"), anchor, "retained concepts")
            fr = (util.get("frechet") or {}).get("value")
            row.cells["frechet"] = Cell(fr, _num(fr, 2), "", "Fréchet distance (lower is closer to real digits)",
                                        anchor)
            rows.append(row)
        rows.sort(key=_row_order)
        tables.append(Table(task, items[0]["task"].get("description", ""), columns, rows))
    return tables


def _row_order(row: Row):
    """Methods first, controls last; then the verdict's index (or the memory index), then the plain rate
    (both lower is better)."""
    m = row.cells.get("index") or row.cells.get("memory")
    plain = row.cells["plain"].sort
    return (row.control, m.sort if m and m.sort is not None else math.inf,
            plain if plain is not None else math.inf, row.submission)


def flat_records(tables: list[Table]) -> list[dict]:
    """The tables as flat records, for the CSV and JSON downloads."""
    out = []
    for t in tables:
        for r in t.rows:
            rec = {"task": t.task, "submission": r.submission, "method": r.method, "control": r.control,
                   "reference": r.reference}
            for c in t.columns:
                cell = r.cells.get(c.id)
                rec[c.id] = None if cell is None or cell.sort is None or (isinstance(cell.sort, float)
                                                                          and not math.isfinite(cell.sort)) else cell.sort
                if cell is not None and cell.detail:
                    rec[f"{c.id}_detail"] = cell.detail
                if c.id == "label" and cell is not None:
                    rec[c.id] = cell.text
            out.append(rec)
    return out


def as_dict(table: Table) -> dict:
    return asdict(table)
