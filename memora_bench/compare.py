"""``memora-bench compare OLD NEW``: did robustness regress?

Scores are matched by (submission, task, probe, concept). A robustness score is an attack success rate:
higher is worse. A score **regressed** when

1. without ``--tolerance``: the new interval lies entirely above the old one (``new.lo > old.hi``), i.e. the
   intervals do not overlap;
2. with ``--tolerance t``: the new rate exceeds the old rate by more than ``t`` (absolute, 0..1);
3. with ``--exact``: any count differs in either direction (for a project's own CI on a fixed machine
   type, where a run is reproducible to the image and a moved count means the code changed a score).

MemoRa contributes every point of its recovery curve (``memora/seven@25``; ``memora/seven`` is the largest
budget), AutoMemoRa (``memora-auto/seven@w0.5``) and Multi-MemoRa (``memora-multi/three@400``). Utility
(retained-concept accuracy) and the oracle's curve (the floor) are shown for information and do not gate,
except under ``--exact``.

Nothing stored is trusted: every rate is k/n and the default interval is the Wilson interval recomputed from
the counts (files whose stored rates or intervals disagree with their counts are refused on reading,
:func:`memora_bench.results.load_result`); ``--interval bootstrap`` uses the stored cluster-bootstrap
intervals, which need the per-prompt hits to recompute. Inputs that cannot be compared are bad input: a
score missing on one side, two results for one (submission, task), a different task version or prompt
set, and, unless ``allow_mismatch`` says the comparison is intended, a different suite (name, version,
file, bootstrap settings), probe parameters or package version, or (except under ``--exact``, whose purpose
is to check that new code reproduces old counts) results made by different code.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from memora_bench.exits import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK
from memora_bench.results import ResultError, load_result
from memora_bench.scoring import wilson


class CompareError(ValueError):
    """The inputs cannot be compared; ``problems`` lists why."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Row:
    submission: str
    task: str
    score: str  # "plain/seven", "utility/retain/all"
    gates: bool
    old_k: int
    old_n: int
    old_interval: tuple[float, float]
    new_k: int
    new_n: int
    new_interval: tuple[float, float]
    regressed: bool

    @property
    def old_rate(self) -> float:
        return self.old_k / self.old_n

    @property
    def new_rate(self) -> float:
        return self.new_k / self.new_n


def load_results(path: Path) -> dict[tuple[str, str], dict]:
    """(submission, task) -> result, from one result file or every ``*.json`` result under a folder."""
    path = Path(path)
    if not path.exists():
        raise CompareError([f"{path}: no such file or folder"])
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.json"))
    out, where, problems = {}, {}, []
    for f in files:
        try:
            data = load_result(f)
        except ResultError as err:
            problems.append(str(err))
            continue
        key = (data["submission"]["name"], data["task"]["name"])
        if key in out:
            problems.append(f"{f}: a second result for submission {key[0]!r} on task {key[1]!r} (first: "
                            f"{where[key]}); compare one result per (submission, task)")
            continue
        out[key], where[key] = data, f
    if not out and not problems:
        problems.append(f"{path}: no result files")
    if problems:
        raise CompareError(problems)
    return out


def _scores(result: dict) -> dict[str, tuple[dict, bool]]:
    """score name -> (rate dict, gates?)."""
    scores = {}
    for probe, res in result["probes"].items():
        for concept, rate in res["rates"].items():
            scores[f"{probe}/{concept}"] = (rate, True)
    memora = result["probes"].get("memora")
    if memora:  # the rest of the recovery curve (its last point is memora/<concept>), AutoMemoRa, Multi-MemoRa
        budgets = memora["params"]["budgets"]
        for name, c in memora.get("concepts", {}).items():
            for b, rate in zip(budgets[:-1], c["curve"][:-1]):
                scores[f"memora/{name}@{b}"] = (rate, True)
            for b, rate in zip(budgets, c.get("oracle_curve", [])):
                scores[f"memora-oracle/{name}@{b}"] = (rate, False)  # the floor: not the submission's score
        for name, by_w in memora.get("auto", {}).items():
            for w, rate in by_w.items():
                scores[f"memora-auto/{name}@w{w}"] = (rate, True)
        for b, by_concept in memora.get("multi", {}).items():
            for name, rate in by_concept.items():
                scores[f"memora-multi/{name}@{b}"] = (rate, True)
    for concept, rate in result["utility"]["retain"].items():
        scores[f"utility/retain/{concept}"] = (rate, False)
    return scores


def mismatches(o: dict, n: dict, across_code: bool = False) -> list[str]:
    """Why two results of one (submission, task) do not measure the same thing: suite, probe parameters,
    package version, and unless ``across_code`` the code that made them (empty if they do)."""
    out = []
    for field in ("name", "version", "sha256", "bootstrap", "bootstrap_seed", "confidence"):
        if o["suite"][field] != n["suite"][field]:
            out.append(f"suite {field} differs ({str(o['suite'][field])[:70]} vs {str(n['suite'][field])[:70]})")
    for probe in sorted(set(o["probes"]) & set(n["probes"])):
        if o["probes"][probe]["params"] != n["probes"][probe]["params"]:
            out.append(f"the parameters of probe {probe} differ")
    if o["environment"]["memora_bench"] != n["environment"]["memora_bench"]:
        out.append(f"memora-bench version differs ({o['environment']['memora_bench']} vs "
                   f"{n['environment']['memora_bench']})")
    oc, nc = o["environment"].get("code"), n["environment"].get("code")
    if not across_code and oc != nc:
        out.append(f"the code that made them differs ({str(oc)[:12]} vs {str(nc)[:12]}; --exact compares across "
                   f"code versions)")
    return out


def _interval(rate: dict, interval: str, confidence: float) -> tuple[float, float]:
    """The interval a score is gated with: Wilson recomputed from the counts, or the stored bootstrap one."""
    return wilson(rate["k"], rate["n"], confidence) if interval == "wilson" else tuple(rate[interval])


def compare(old: dict, new: dict, interval: str = "wilson", tolerance: float | None = None,
            exact: bool = False, allow_mismatch: bool = False) -> list[Row]:
    """Rows for every score of every (submission, task) in ``old``; raises on incomparable inputs."""
    if interval not in ("wilson", "bootstrap"):
        raise CompareError([f"unknown interval {interval!r}; expected 'wilson' or 'bootstrap'"])
    problems, rows = [], []
    for key, o in sorted(old.items()):
        n = new.get(key)
        if n is None:
            problems.append(f"{key[0]} / {key[1]}: present in OLD, missing in NEW")
            continue
        if o["task"]["version"] != n["task"]["version"]:
            problems.append(f"{key[0]} / {key[1]}: task version differs ({o['task']['version']} vs "
                            f"{n['task']['version']}); results of different task versions are not comparable")
        elif o["task"]["sha256"] != n["task"]["sha256"] and not (exact or allow_mismatch):
            # the same version, an edited card: --exact shows whether any count moved (the gate's purpose)
            problems.append(f"{key[0]} / {key[1]}: the task card differs ({o['task']['sha256'][:12]} vs "
                            f"{n['task']['sha256'][:12]}) under the same version; not comparable (--exact shows "
                            f"whether any count moved; --allow-mismatch compares anyway)")
        if not allow_mismatch:
            problems += [f"{key[0]} / {key[1]}: {why}; not comparable (pass --allow-mismatch if the comparison "
                         f"is intended)" for why in mismatches(o, n, across_code=exact)]
        os_, ns = _scores(o), _scores(n)
        oc, nc = o["suite"]["confidence"], n["suite"]["confidence"]
        for name, (orate, gates) in sorted(os_.items()):
            if name not in ns:
                problems.append(f"{key[0]} / {key[1]}: score {name} missing in NEW")
                continue
            nrate = ns[name][0]
            if exact:
                regressed = (nrate["k"], nrate["n"]) != (orate["k"], orate["n"])
                gates = True
            elif tolerance is None:
                regressed = _interval(nrate, interval, nc)[0] > _interval(orate, interval, oc)[1]
            else:
                regressed = nrate["k"] / nrate["n"] - orate["k"] / orate["n"] > tolerance
            rows.append(Row(key[0], key[1], name, gates, orate["k"], orate["n"], _interval(orate, interval, oc),
                            nrate["k"], nrate["n"], _interval(nrate, interval, nc), gates and regressed))
    if problems:
        raise CompareError(problems)
    return rows


def render(rows: list[Row]) -> str:
    def cell(k, n, iv):
        return f"{k:>3}/{n:<3} {100 * k / n:5.1f}% [{100 * iv[0]:5.1f}, {100 * iv[1]:5.1f}]"

    lines = [f"{'submission':16s} {'task':18s} {'score':24s} {'old':30s} {'new':30s} verdict"]
    for r in rows:
        verdict = "REGRESSED" if r.regressed else ("ok" if r.gates else "(info)")
        lines.append(f"{r.submission:16s} {r.task:18s} {r.score:24s} {cell(r.old_k, r.old_n, r.old_interval):30s} "
                     f"{cell(r.new_k, r.new_n, r.new_interval):30s} {verdict}")
    n_bad = sum(r.regressed for r in rows)
    lines.append(f"{n_bad} of {sum(r.gates for r in rows)} robustness score(s) regressed")
    return "\n".join(lines)


def as_json(rows: list[Row]) -> dict:
    return {"rows": [dict(asdict(r), old_rate=r.old_rate, new_rate=r.new_rate) for r in rows],
            "regressed": sum(r.regressed for r in rows)}


def main(args) -> int:
    """``memora-bench compare OLD NEW``: exit 1 when robustness regressed, 2 when the inputs cannot be compared."""
    if args.tolerance is not None and not 0 <= args.tolerance <= 1:
        print(f"error: --tolerance must be in [0, 1], got {args.tolerance}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        rows = compare(load_results(args.old), load_results(args.new), args.interval, args.tolerance, args.exact,
                       args.allow_mismatch)
    except CompareError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(as_json(rows), indent=2) if args.json else render(rows))
    return EXIT_FAILURE if any(r.regressed for r in rows) else EXIT_OK
