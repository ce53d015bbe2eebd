"""Handlers of ``memora-bench baselines ls`` and ``memora-bench baselines build``."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from memora_bench.commands import resolve
from memora_bench.exits import EXIT_BAD_INPUT, EXIT_OK
from memora_bench.paths import repo_root
from memora_bench.specs import SpecError, load_suite
from memora_bench.unlearning import control_table, table
from memora_bench.unlearning import oracle_free_table as oft
from memora_bench.unlearning.build import MINI_TASKS, BuildBusy, build, folder_name
from memora_bench.unlearning.controls import TeachParams, build_ladder
from memora_bench.unlearning.registry import RECIPES


def ls(args) -> int:
    root = repo_root()
    rows = []
    for name, recipe in RECIPES.items():
        for task in MINI_TASKS:
            record = root / "baselines" / folder_name(name, task) / "build.json"
            built = json.loads(record.read_text()) if record.exists() else None
            rows.append({"recipe": name, "task": task, "method": recipe.method, "built": built is not None,
                         "cpu_seconds": built and built["cpu_seconds"], "bytes": built and built["bytes"]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        state = f"built, {r['bytes'] / 1e6:.2f} MB, {r['cpu_seconds']:.0f} CPU-s" if r["built"] else "not built"
        print(f"{r['recipe']:10s} {r['task']:18s} {state}")
    return EXIT_OK


def build_cmd(args) -> int:
    import torch

    names = list(RECIPES) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in RECIPES]
    tasks = args.task or list(MINI_TASKS)
    bad_tasks = [t for t in tasks if t not in MINI_TASKS]
    if unknown or bad_tasks:
        for n in unknown:
            print(f"error: unknown baseline {n!r}; known: {', '.join(RECIPES)}", file=sys.stderr)
        for t in bad_tasks:
            print(f"error: unknown miniature task {t!r}; known: {', '.join(MINI_TASKS)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.threads:
        torch.set_num_threads(args.threads)
    root = repo_root()
    busy = 0
    for task in tasks:  # task by task: a first complete table early
        for name in names:
            if args.skip_built and (root / "baselines" / folder_name(name, task) / "build.json").exists():
                print(f"[baselines] {folder_name(name, task)} already built (--skip-built)")
                continue
            print(f"[baselines] building {name} for {task}")
            try:
                record = build(name, task, root)
            except BuildBusy as err:
                print(f"error: {err}; skipped", file=sys.stderr)
                busy += 1
                continue
            print(f"[baselines] {folder_name(name, task)}: {record['tensors']} tensors, {record['bytes'] / 1e6:.2f} MB, "
                  f"{record['cpu_seconds']} CPU-s, sha256 {record['sha256'][:16]}")
    return EXIT_BAD_INPUT if busy else EXIT_OK


def table_cmd(args) -> int:
    from pathlib import Path

    results = Path(args.results)
    if not results.is_dir():
        print(f"error: {results} is not a folder of results", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.only == "timing":  # docs/performance.md, not docs/baselines.md
        timing = table.timing_rows(results)
        if not timing:
            print(f"error: no result under {results} ran every part itself", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _print_or_write(table.timing_markdown(timing), args.write, table.TIMING_BEGIN, table.TIMING_END,
                               f"timing table of {len(timing)} results")
    if args.only == "probe-effect":  # docs/scoring.md: what a suite version's added probes change
        return _probe_effect(results, args)
    if args.only == "oracle-free":  # docs/scoring.md: the zero floor validated against the retrain oracle
        return _oracle_free(results, args)
    rows = table.rows(results, repo_root() / "baselines")
    if not rows:
        print(f"error: no result files under {results} (<submission>/<task>.json)", file=sys.stderr)
        return EXIT_BAD_INPUT
    memora = table.memora_rows(results, repo_root() / "baselines")
    if args.only == "memora" and not memora:
        print(f"error: no result under {results} ran the MemoRa probe", file=sys.stderr)
        return EXIT_BAD_INPUT
    adversarial = table.adversarial_rows(results, repo_root() / "baselines")
    if args.only == "adversarial" and not adversarial:
        print(f"error: no result under {results} ran an adversarial prompt probe", file=sys.stderr)
        return EXIT_BAD_INPUT
    verdict = table.verdict_rows(results, repo_root() / "baselines")
    if args.only == "verdict" and not verdict:
        print(f"error: no result under {results} is scored by the verdict (a suite with MemoRa's score: excess)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    verdict_text = table.verdict_markdown(verdict) if verdict and args.only in (None, "verdict") else None
    text = table.markdown(rows) if args.only in (None, "plain") else None
    memora_text = table.memora_markdown(memora) if memora and args.only in (None, "memora") else None
    adv_text = table.adversarial_markdown(adversarial) if adversarial and args.only in (None, "adversarial") else None
    if args.write:
        try:
            if text is not None:
                table.write_into(Path(args.write), text)
            if memora_text is not None:
                table.write_into(Path(args.write), memora_text, table.MEMORA_BEGIN, table.MEMORA_END)
            if adv_text is not None:
                table.write_into(Path(args.write), adv_text, table.ADV_BEGIN, table.ADV_END)
            if verdict_text is not None:
                table.write_into(Path(args.write), verdict_text, table.VERDICT_BEGIN, table.VERDICT_END)
        except (OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        written = ([f"table of {len(rows)} results"] if text is not None else []) + (
            [f"MemoRa table of {len(memora)} rows"] if memora_text is not None else []) + (
            [f"adversarial table of {len(adversarial)} rows"] if adv_text is not None else []) + (
            [f"verdict table of {len(verdict)} rows"] if verdict_text is not None else [])
        print(f"[baselines] {', '.join(written)} written into {args.write}")
    else:
        for t in (text, memora_text, adv_text, verdict_text):
            if t is not None:
                print(t)
    return EXIT_OK


def _probe_effect(results: Path, args) -> int:
    if not args.since:
        print("error: --only probe-effect needs --since SUITE (the earlier suite version whose probes are not new)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        earlier = {p.name for p in load_suite(resolve("suite", args.since)).probes}
    except (SpecError, FileNotFoundError, ValueError) as err:
        print(f"error: --since {args.since}: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    present = sorted({p for path in results.glob("*/*.json") for p in table.load_result(path)["probes"]})
    new = [p for p in present if p not in earlier]
    rows = table.probe_effect_rows(results, repo_root() / "baselines", new) if new else []
    if not rows:
        print(f"error: no result under {results} with the retrain oracle's result beside it ran probes that "
              f"{args.since} does not have", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _print_or_write(table.probe_effect_markdown(rows), args.write, table.EFFECT_BEGIN, table.EFFECT_END,
                           f"probe-effect table of {len(rows)} rows ({', '.join(new)})")


def _oracle_free(results: Path, args) -> int:
    rows = oft.rows_by_cap(results, repo_root() / "baselines")
    if not rows:
        print(f"error: no result under {results} is labelled against the retrain oracle's result beside it",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.cap not in rows:
        print(f"error: --only oracle-free needs --cap, one of MemoRa's budgets {sorted(rows)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    by_cap = oft.agreement_by_cap(rows)
    text = oft.oracle_free_markdown(rows[args.cap], args.cap, by_cap, oft.leave_one_task_out(by_cap))
    return _print_or_write(text, args.write, *oft.MARKERS, f"oracle-free table of {len(rows[args.cap])} rows (cap {args.cap})")


def _print_or_write(text: str, write: str | None, begin: str, end: str, what: str) -> int:
    """Print a generated table, or put it between its markers in the document ``write``."""
    if not write:
        print(text)
        return EXIT_OK
    try:
        table.write_into(Path(write), text, begin, end)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"[baselines] {what} written into {write}")
    return EXIT_OK


def run(args) -> int:
    handlers = {"ls": ls, "build": build_cmd, "table": table_cmd}
    return handlers[args.baselines_command](args)


def controls(args) -> int:
    """``memora-bench controls build TASK...``: the ladder of known-answer controls (controls/README.md);
    ``memora-bench controls table RESULTS``: their table (docs/scoring.md)."""
    if args.controls_command == "table":
        return _controls_table(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = [t for t in args.tasks if t not in MINI_TASKS]
    if unknown:
        print(f"error: not a miniature task: {', '.join(unknown)} (expected {', '.join(MINI_TASKS)})", file=sys.stderr)
        return EXIT_BAD_INPUT
    params = TeachParams()
    if args.steps:
        try:
            steps = tuple(int(x) for x in args.steps.split(",") if x)
        except ValueError:
            steps = ()
        if not steps or list(steps) != sorted(set(steps)) or steps[0] <= 0:
            print(f"error: --steps {args.steps!r}: expected increasing positive integers, e.g. 10,25,50", file=sys.stderr)
            return EXIT_BAD_INPUT
        params = replace(params, steps=steps)
    for task in args.tasks:
        for manifest in build_ladder(task, params):
            record = json.loads((manifest.parent / "build.json").read_text())
            q = record["q_k"]
            print(f"{manifest.parent.name}: k {record['k']}, un-hidden plain {q['k']}/{q['n']} ({100 * q['rate']:.1f} %)")
    return EXIT_OK


def _controls_table(args) -> int:
    if not Path(args.results).is_dir():
        print(f"error: {args.results}: not a folder of result files", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = control_table.control_rows(Path(args.results))
    if not rows:
        print(f"error: {args.results}: no control result with the verdict's evidence (a suite with "
              "MemoRa's score: excess, e.g. mini-v4)", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = control_table.controls_markdown(rows)
    if args.write:
        table.write_into(Path(args.write), text, *control_table.MARKERS)
        print(f"[controls] table of {len(rows)} rows written into {args.write}")
    else:
        print(text)
    return EXIT_OK
