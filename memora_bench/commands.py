"""Handlers of ``evaluate``, ``validate``, ``ls`` and ``ringabell`` (imported only when one of them runs)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from memora_bench import miniworld
from memora_bench.cache import Cache
from memora_bench.exits import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK
from memora_bench.models.errors import CheckpointError
from memora_bench.models.loading import load_submission_pipeline, verify_submission
from memora_bench.models.parallel import Runtime
from memora_bench.paths import DEFAULT_SUITE, repo_root
from memora_bench.probes import ringabell as ringabell_probe
from memora_bench.probes.registry import PROBES, is_adversarial
from memora_bench.probes.registry import title as probe_title
from memora_bench.prompt_sources import PromptSourceError, pin_card
from memora_bench.results import ResultError, load_result
from memora_bench.runner import evaluate as run_evaluation
from memora_bench.scoring import is_original, is_retrain_oracle
from memora_bench.submit import SubmitError, make_submission, resolve_model
from memora_bench.timing import CoreUse
from memora_bench.specs import (
    COMPONENTS,
    UNPINNED,
    SpecError,
    load_submission,
    load_suite,
    load_task,
    read_yaml_file,
    unpinned_sets,
)
from memora_bench.verdict import concept_headlines

SUBMISSION_FOLDERS = ("submissions", "baselines", "controls")  # where a submission is found by name


def evaluable_submissions() -> list[Path]:
    """Every manifest ``evaluate`` takes by name: submissions, the baselines and the known-answer controls."""
    root = repo_root()
    return [p for place in SUBMISSION_FOLDERS for p in sorted((root / place).glob("*/submission.yaml"))]


def resolve(kind: str, ref: str) -> Path:
    """A name (``mini-seven``) or a path to a task card, suite or submission."""
    p = Path(ref)
    if p.exists():
        return p
    root = repo_root()
    candidates = {
        "task": root / "tasks" / f"{ref}.yaml",
        "suite": root / "benchmark" / f"{ref}.yaml",
        "submission": root / "submissions" / ref / "submission.yaml",
    }
    if candidates[kind].exists():
        return candidates[kind]
    for place in SUBMISSION_FOLDERS[1:] if kind == "submission" else ():
        manifest = root / place / ref / "submission.yaml"
        if "/" not in ref and manifest.exists():
            return manifest
    raise SpecError([f"no {kind} named {ref!r} (looked for {p} and {candidates[kind]})"])


def suite_task_path(suite_path: Path, name: str) -> Path:
    """A suite's task card: ``tasks/`` beside the suite's folder first (fixtures, forks), then the repository's."""
    local = Path(suite_path).resolve().parent.parent / "tasks" / f"{name}.yaml"
    return local if local.exists() else repo_root() / "tasks" / f"{name}.yaml"


def _model_submission(args, tasks, submissions: list) -> list[str]:
    """``evaluate --model``: a submission folder ``<out>/<name>/<name>`` made around the checkpoint (its
    manifest, with the computed sha256, stays beside the result; a manifest's folder carries its name).
    Returns the problems."""
    if not args.component:
        return ["--model needs --component (what the file holds: " + ", ".join(COMPONENTS) + ")"]
    if not args.tasks:
        return ["--model needs --tasks: the tasks whose concept the checkpoint erased"]
    if tasks is None:
        return []
    try:
        path = resolve_model(args.model)
        name = args.name or re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem if path.is_file() else path.name).strip("-.")
        submissions.append(make_submission(Path(args.out) / name / name, path, args.component, tasks,
                                           name=name, overwrite=True))
    except (SubmitError, SpecError) as err:
        return err.problems
    return []


def init(args) -> int:
    """``memora-bench init FOLDER --checkpoint PATH --component C --tasks T``: a valid manifest, with the
    checkpoint's sha256 computed, and the checkpoint linked into the folder."""
    try:
        tasks = [load_task(resolve("task", t)) for t in args.tasks.split(",") if t]
        sub = make_submission(Path(args.folder), Path(args.checkpoint), args.component, tasks, name=args.name or "",
                              erased=[e for e in (args.erased or "").split(",") if e] or None,
                              method=args.method or "", authors=[a for a in (args.authors or "").split(",") if a],
                              reference=args.reference or "", overwrite=args.force)
    except (SubmitError, SpecError) as err:
        _err(err.problems)
        return EXIT_BAD_INPUT
    print(f"wrote {Path(args.folder) / 'submission.yaml'}: {sub.checkpoint.component} {sub.checkpoint.path}, "
          f"sha256 {sub.checkpoint.sha256}; check it with `memora-bench validate {args.folder}`")
    return EXIT_OK


def _err(lines: list[str]) -> None:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)


@dataclass
class Plan:
    """What an evaluation will run, read and checked from the command's (or the API's) arguments."""

    suite: Any = None
    tasks: list = field(default_factory=list)
    submissions: list = field(default_factory=list)
    runtime: Any = None
    problems: list[str] = field(default_factory=list)


def plan(args) -> Plan:
    """Load the suite, its (selected) tasks and probes, and the submissions (by name, folder or ``--model``);
    every problem at once. ``args`` has the attributes of ``evaluate``'s parser."""
    problems: list[str] = []
    suite = tasks = None
    submissions = []
    try:
        suite = load_suite(resolve("suite", args.suite))
    except SpecError as err:
        problems += err.problems
    if suite is not None:
        names = list(suite.tasks)
        if args.tasks:
            wanted = [t for t in args.tasks.split(",") if t]
            problems += [f"task {t!r} is not in suite {suite.name} ({', '.join(names)})" for t in wanted if t not in names]
            names = [t for t in names if t in wanted]
        tasks = []
        for name in names:
            card = suite_task_path(suite.path, name)
            if not card.exists():
                problems.append(f"{suite.path}: task {name!r} has no card (looked for "
                                f"{Path(suite.path).resolve().parent.parent / 'tasks' / (name + '.yaml')} and {card})")
                continue
            try:
                task = load_task(card)
            except SpecError as err:
                problems += err.problems
                continue
            tasks.append(task)
            problems += [f"task {task.name}: its {key.replace('_', ' ')} are not pinned yet (the card says "
                         f"'sha256: {UNPINNED}': where it was written the upstream file could not be fetched "
                         f"byte-exact); on a machine with network access run `memora-bench pin {task.name}`, "
                         f"which fetches and converts it and writes its sha256 into {card}"
                         for key in unpinned_sets(task)]
        if args.probes:
            wanted = [p for p in args.probes.split(",") if p]
            have = [p.name for p in suite.probes]
            problems += [f"probe {p!r} is not in suite {suite.name} ({', '.join(have)})" for p in wanted if p not in have]
            suite = replace(suite, probes=tuple(p for p in suite.probes if p.name in wanted))
    for ref in args.submissions:
        try:
            submissions.append(load_submission(resolve("submission", ref)))
        except SpecError as err:
            problems += err.problems
    if args.model:
        problems += _model_submission(args, tasks, submissions)
    elif args.component:
        problems.append("--component goes with --model")
    if not args.submissions and not args.model:
        problems.append("name a submission (or folder), or give --model PATH_OR_HUB_ID with --component and --tasks")
    problems += _base_model_mismatches(submissions, tasks or [])
    if args.reuse is not None:
        if not Path(args.reuse).is_dir():
            problems.append(f"--reuse {args.reuse}: not a folder of result files")
        if args.executor != "local":
            problems.append("--reuse runs with the local executor only")
    runtime = None
    try:
        runtime = Runtime.from_env()
    except ValueError as err:
        problems.append(str(err))
    return Plan(suite, tasks or [], submissions, runtime, problems)


def evaluate(args) -> int:
    p = plan(args)
    if p.problems:
        _err(p.problems)
        return EXIT_BAD_INPUT
    suite, tasks, submissions, runtime = p.suite, p.tasks, p.submissions, p.runtime
    out = Path(args.out)
    ray_options = None
    if args.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            _err(["--executor ray needs Ray: pip install 'memora-bench[ray]'"])
            return EXIT_BAD_INPUT
        ray_options = {"address": args.address, "gpus_per_unit": args.gpus_per_unit,
                       "cpus_per_unit": args.cpus_per_unit}
    quiet = args.quiet or args.json
    stages = "quiet" if quiet else ("tty" if sys.stderr.isatty() else "lines")
    cores = CoreUse(len(os.sched_getaffinity(0)))
    with cores if args.profile and args.executor == "local" else contextlib.nullcontext():
        report = run_evaluation(suite, tasks, submissions, out, Cache(Path(args.cache_dir)), args.overwrite,
                                progress=stages == "tty", executor=args.executor,
                                ray_options=ray_options, reuse=None if args.reuse is None else Path(args.reuse),
                                runtime=runtime, stages=stages, use_packs=not args.no_pack)
    if not quiet:
        for task, path, n in report.installed:
            print(f"{task}: shared work from {path.relative_to(repo_root()) if path.is_relative_to(repo_root()) else path}"
                  f" ({n} entries written to the cache)", file=sys.stderr)
    summary = _summary(report, _references(out, suite))
    if args.profile:
        summary["profile"] = _profile(summary)
        summary["profile"]["cores"] = cores.summary() if args.executor == "local" else None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_table(summary))
        if args.profile:
            print(_profile_table(summary["profile"]))
    _err([problem for _, problems in report.refused for problem in problems])
    if report.refused:
        return EXIT_BAD_INPUT
    return EXIT_FAILURE if report.failed else EXIT_OK


def _base_model_mismatches(submissions, tasks) -> list[str]:
    """A submission must be built on the base model of every task it runs (a control may be the task's oracle)."""
    problems = []
    for sub in submissions:
        for task in tasks:
            allowed = [task.base_model] + ([task.oracle] if sub.control and task.oracle else [])
            if task.name in sub.tasks and sub.base_model not in allowed:
                problems.append(f"{sub.path}: base_model is {sub.base_model.id}@{sub.base_model.revision}, but task "
                                f"{task.name} runs on {task.base_model.id}@{task.base_model.revision}")
    return problems


def _references(out: Path, suite) -> dict[tuple[str, str], dict]:
    """The retrain oracle's and the original model's results on each task under ``suite`` (same name and
    version), from the output folder first, then the committed ``results/<suite>``: the headline compares
    every probe with them. Keyed by (task, "oracle" | "original")."""
    found: dict[tuple[str, str], dict] = {}
    for folder in (out, repo_root() / "results" / suite.name):
        for path in sorted(Path(folder).glob("*/*.json")):
            try:
                data = load_result(path)
            except (ResultError, OSError, ValueError):
                continue
            if (data["suite"]["name"], data["suite"]["version"]) != (suite.name, suite.version):
                continue
            role = "oracle" if is_retrain_oracle(data) else "original" if is_original(data) else None
            if role:
                found.setdefault((data["task"]["name"], role), data)
    return found


def _headlines(data: dict, references: dict) -> dict:
    """Each erased concept's headline (:func:`memora_bench.verdict.concept_headlines`) for the summary."""
    if "memora" not in data["probes"]:
        return {}
    task = data["task"]["name"]
    oracle, original = references.get((task, "oracle")), references.get((task, "original"))
    if is_retrain_oracle(data):
        oracle = data
    if is_original(data):
        original = data
    out = {}
    for h in concept_headlines(data, oracle, original):
        v = h["verdict"]
        out[h["concept"]["name"]] = {
            "label": h["headline"], "decided_by": h["decided_by"], "memora_label": h["memora_label"],
            "index": None if v is None else v.index,
            "index_interval": None if v is None or v.index_interval is None else list(v.index_interval),
            "oracle_result": oracle is not None, "original_result": original is not None,
            **({"floor": h["floor"]} if "floor" in h else {})}
    return out


def _summary(report, references: dict | None = None) -> dict:
    rows = []
    for path in report.written + report.skipped:
        data = json.loads(Path(path).read_text())
        row = {"submission": data["submission"]["name"], "task": data["task"]["name"], "result": str(path),
               "skipped": path in report.skipped}
        row["probes"] = list(data["probes"])
        for probe, res in data["probes"].items():
            row[probe] = {k: res["rates"]["all"][k] for k in ("k", "n", "rate", "wilson")}
        row["retain"] = {k: data["utility"]["retain"]["all"][k] for k in ("k", "n", "rate", "wilson")}
        memora = data["probes"].get("memora")
        if memora:
            row["memora_concepts"] = {
                name: {"budgets": memora["params"]["budgets"],
                       "curve": [{k: v[k] for k in ("k", "n")} for v in c["curve"]],
                       "oracle": [{k: v[k] for k in ("k", "n")} for v in c.get("oracle_curve", [])],
                       **{k: c["score"][k] for k in ("b_half", "memory", "memory_interval", "label") if "score" in c}}
                for name, c in memora["concepts"].items()}
        row["headlines"] = _headlines(data, references or {})
        if "frechet" in data["utility"]:
            row["frechet"] = data["utility"]["frechet"]["value"]
        row["seconds"] = data["timing"]["total_wall_s"]
        row["stages"] = data["timing"]["stages"]
        row["images_generated"] = data["timing"].get("images_generated", 0)
        row["images_cached"] = data["timing"].get("images_cached", 0)
        row["model_evaluations"] = sum(res.get("cost", {}).get("model_evaluations", 0)
                                       for res in data["probes"].values())
        rows.append(row)
    return {"results": rows, "failed": [{"submission": s, "task": t, "error": e} for s, t, e in report.failed],
            "refused": [{"submission": s, "problems": problems} for s, problems in report.refused],
            "reused": [{"submission": s, "task": t, "parts": parts, "not_reused_because": why}
                       for s, t, parts, why in report.reused]}


def _profile(summary: dict) -> dict:
    """Seconds per stage summed over this run's results, with image and model-evaluation counts."""
    stages: dict[str, dict[str, float]] = {}
    for r in summary["results"]:
        for name, t in r["stages"].items():
            agg = stages.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
            agg["wall_s"] += t["wall_s"]
            agg["cpu_s"] += t["cpu_s"]
    return {"stages": {k: {m: round(v, 3) for m, v in t.items()} for k, t in sorted(stages.items())},
            "wall_s": round(sum(r["seconds"] for r in summary["results"]), 3),
            "images_generated": sum(r["images_generated"] for r in summary["results"]),
            "images_cached": sum(r["images_cached"] for r in summary["results"]),
            "model_evaluations": sum(r["model_evaluations"] for r in summary["results"])}


def _profile_table(profile: dict) -> str:
    total = profile["wall_s"] or 1.0
    lines = ["", f"{'stage':32s} {'wall s':>9s} {'CPU s':>9s} {'share':>6s}"]
    for name, t in sorted(profile["stages"].items(), key=lambda kv: -kv[1]["wall_s"]):
        lines.append(f"{name:32s} {t['wall_s']:9.2f} {t['cpu_s']:9.2f} {100 * t['wall_s'] / total:5.1f}%")
    lines.append(f"{'total (all results)':32s} {profile['wall_s']:9.2f}")
    lines.append(f"images generated {profile['images_generated']}, from the cache {profile['images_cached']}; "
                 f"model evaluations (UNet forward passes) {profile['model_evaluations']}")
    use = profile.get("cores")
    if use is None:
        lines.append("cores: not measured (the work ran in Ray workers)")
    else:
        lines.append(f"cores: all {use['cores']} busy {100 * use['all_cores_busy_share']:.1f}% of the wall time; "
                     f"on average {use['mean_cores_busy']:.2f} of {use['cores']} busy "
                     f"({use['cpu_s']:.1f} CPU s in {use['wall_s']:.1f} s)")
    return "\n".join(lines)


def _fmt(rate: dict) -> str:
    lo, hi = rate["wilson"]
    return f"{rate['k']:>3}/{rate['n']:<3} {100 * rate['rate']:5.1f}% [{100 * lo:4.1f}, {100 * hi:4.1f}]"


def _two(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _table(summary: dict) -> str:
    w = max([16] + [len(r["submission"]) for r in summary["results"]])  # names line up however long
    lines = [f"{'submission':{w}s} {'task':18s} {'plain (erased concept)':29s} {'retained accuracy':29s} {'Frechet':>8s}"]
    for r in summary["results"]:
        plain = _fmt(r["plain"]) if "plain" in r else "-"
        fd = f"{r['frechet']:8.3f}" if "frechet" in r else "       -"
        lines.append(f"{r['submission']:{w}s} {r['task']:18s} {plain:29s} {_fmt(r['retain']):29s} {fd}")
    memora = [(r, name, c) for r in summary["results"] for name, c in r.get("memora_concepts", {}).items()]
    if memora:
        lines += ["", "MemoRa (recovered images k/n before and after the largest LoRA budget; the oracle's at that budget)"]
        for r, name, c in memora:
            first, last = c["curve"][0], c["curve"][-1]
            text = (f"{r['submission']:{w}s} {r['task']:18s} {name}: {first['k']}/{first['n']} -> {last['k']}/{last['n']} "
                    f"after {c['budgets'][-1]} steps")
            if c["oracle"]:
                text += f" (oracle {c['oracle'][-1]['k']}/{c['oracle'][-1]['n']})"
            if "label" in c:
                bh = "never" if c["b_half"] is None else f"{c['b_half']:.0f}"
                lo, hi = (_two(v) for v in c["memory_interval"])
                text += f", steps to recall {bh}, M {_two(c['memory'])} [{lo}, {hi}], {c['label']}"
            lines.append(text)
    adversarial = {r["result"]: [p for p in r["probes"] if is_adversarial(p)] for r in summary["results"]}
    if any(adversarial.values()):
        lines += ["", "Probes beyond MemoRa (erased-concept images k/n under each, 95 % Wilson interval; "
                      "adversarial prompts, visual context, trajectory, resurgence)"]
        for r in summary["results"]:
            for p in adversarial[r["result"]]:
                lines.append(f"{r['submission']:{w}s} {r['task']:18s} {probe_title(p):28s} {_fmt(r[p]).strip()}")
    headlines = [(r, name, h) for r in summary["results"] for name, h in r.get("headlines", {}).items()]
    if headlines:
        lines += ["", ("Headline (the worst case over probes, each compared with the retrain oracle's result; "
                       "docs/scoring.md)")]
        for r, name, h in headlines:
            text = f"{r['submission']:{w}s} {r['task']:18s} {name}: {h['label']}"
            if h["decided_by"]:
                text += f" (decided by {', '.join(h['decided_by'])})"
            if h["index"] is not None:
                lo, hi = h["index_interval"] or (None, None)
                text += f", index {_two(h['index'])} [{_two(lo)}, {_two(hi)}]"
            if "floor" in h:
                text += f"; no retrain oracle: compared with {h['floor']}"
            if h["label"] == "undefined":
                text += ("; needs the retrain oracle's result on this task under this suite: "
                         "memora-bench evaluate oracle original --suite ... --out <this folder>")
            lines.append(text)
    lines.append("")
    for r in summary["results"]:
        stages = ", ".join(f"{k} {v['wall_s']:.1f}s" for k, v in r["stages"].items())
        lines.append(f"{'kept   ' if r['skipped'] else 'wrote  '}{r['result']}  ({r['seconds']:.1f} s: {stages})")
    for r in summary.get("reused", []):
        parts = ", ".join(r["parts"]) or "nothing"
        why = f"; recomputed the rest: {r['not_reused_because']}" if r["not_reused_because"] else ""
        lines.append(f"reused {r['submission']} / {r['task']}: {parts}{why}")
    for f in summary["failed"]:
        lines.append(f"FAILED {f['submission']} / {f['task']}: {f['error']}")
    return "\n".join(lines)


def validate(args) -> int:
    """Check task cards, suites and submissions (every one in the repository, or the given paths)."""
    root = repo_root()
    paths = [Path(p) for p in args.paths] or (
        sorted((root / "tasks").glob("*.yaml")) + sorted((root / "benchmark").glob("*.yaml"))
        + evaluable_submissions()
    )
    problems: list[str] = []
    notes: list[str] = []
    checked = 0
    for path in paths:
        kind = _kind_of(path)
        checked += 1
        try:
            if kind == "task":
                notes += [f"note: {path}: its {key.replace('_', ' ')} are not pinned yet; evaluation refuses the task "
                          f"until `memora-bench pin {path.stem}` has run on a machine with network access"
                          for key in unpinned_sets(load_task(path))]
            elif kind == "suite":
                suite = load_suite(path)
                for t in suite.tasks:
                    if not suite_task_path(path, t).exists():
                        problems.append(f"{path}: task {t!r} has no card tasks/{t}.yaml")
            elif kind == "submission":
                sub = load_submission(path)
                for t in sub.tasks:
                    if not (root / "tasks" / f"{t}.yaml").exists():
                        problems.append(f"{sub.path}: task {t!r} has no card tasks/{t}.yaml")
                verify_submission(sub)  # hash, symlinks, size, every weight file readable and finite
                if sub.checkpoint is not None and args.load:
                    # Applies the checkpoint to its base model: every tensor checked against the real model.
                    load_submission_pipeline(sub, sub.base_model)
            else:
                problems.append(f"{path}: not a task card, suite or submission (or missing)")
        except (SpecError, CheckpointError) as err:
            problems += err.problems
        except miniworld.WorldError as err:
            problems.append(str(err))
    if args.json:
        print(json.dumps({"checked": checked, "problems": problems, "notes": notes}, indent=2))
    else:
        _err(problems)
        for note in notes:
            print(note)
        print(f"checked {checked} file(s): {len(problems)} problem(s)")
    return EXIT_BAD_INPUT if problems else EXIT_OK


def _kind_of(path: Path) -> str | None:
    path = Path(path)
    if path.is_dir() and (path / "submission.yaml").exists():
        return "submission"
    if path.name == "submission.yaml":
        return "submission"
    if path.suffix in (".yaml", ".yml") and path.parent.name == "benchmark":
        return "suite"
    if path.suffix in (".yaml", ".yml") and path.parent.name == "tasks":
        return "task"
    if path.suffix in (".yaml", ".yml") and path.exists():
        try:
            data = read_yaml_file(path)
        except SpecError:
            return "task"  # let the task loader report the problem
        if isinstance(data, dict) and "probes" in data:
            return "suite"
        if isinstance(data, dict) and "method" in data:
            return "submission"
        return "task"
    return None


def _suite_status(name: str, names: list[str] = ()) -> str:
    """"official" for the default suite, "retired" for an earlier version of its family, "newer (being filled
    in)" for a later one; in another family (e.g. the SD-1.4 suites), "retired" for a version that a later one
    among ``names`` replaces, "" for its latest."""
    family, _, version = name.rpartition("-v")
    official_family, _, official = DEFAULT_SUITE.rpartition("-v")
    if name == DEFAULT_SUITE:
        return "official"
    if not version.isdigit():
        return ""
    if family != official_family:
        later = [n for n in names if n.rpartition("-v")[0] == family and n.rpartition("-v")[2].isdigit()
                 and int(n.rpartition("-v")[2]) > int(version)]
        return "retired" if later else ""
    return "retired" if int(version) < int(official) else "newer (being filled in)"


def ls(args) -> int:
    """What exists, one item per line with what tells it apart (``--json``: a list of records)."""
    root = repo_root()
    records = []
    if args.what == "tasks":
        for p in sorted((root / "tasks").glob("*.yaml")):
            try:
                t = load_task(p)
                records.append({"name": t.name, "version": t.version,
                                "concepts": [c.name for c in t.concepts], "base_model": t.base_model.id})
            except SpecError as err:
                records.append({"name": p.stem, "problem": err.problems[0]})
    elif args.what == "suites":
        names = [p.stem for p in sorted((root / "benchmark").glob("*.yaml"))]
        for p in sorted((root / "benchmark").glob("*.yaml")):
            try:
                s = load_suite(p)
                records.append({"name": s.name, "version": s.version, "status": _suite_status(s.name, names),
                                "tasks": list(s.tasks), "probes": [q.name for q in s.probes]})
            except SpecError as err:
                records.append({"name": p.stem, "problem": err.problems[0]})
    elif args.what == "submissions":
        for p in evaluable_submissions():
            try:
                sub = load_submission(p)
                records.append({"name": sub.name, "folder": p.parent.parent.name, "method": sub.method,
                                "tasks": list(sub.tasks)})
            except SpecError as err:
                records.append({"name": p.parent.name, "folder": p.parent.parent.name, "problem": err.problems[0]})
    else:
        records = [{"name": n, "title": PROBES[n].title} for n in sorted(PROBES)]
    if args.json:
        print(json.dumps(records, indent=2))
        return EXIT_OK
    for r in records:
        extra = {k: v for k, v in r.items() if k != "name"}
        bits = []
        for k, v in extra.items():
            if v in ("", [], None):
                continue
            bits.append(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}")
        print(f"{r['name']:32s} {'; '.join(bits)}")
    return EXIT_OK


def pin(args) -> int:
    """Pin a card's prompt sets published elsewhere (``sha256: unpinned``): fetch, convert, write the sha256."""
    try:
        card = resolve("task", args.task)
        pinned = pin_card(card)
        load_task(card)  # the pinned card loads, and its fetched sets read back under their sha256
    except SpecError as err:
        _err(err.problems)
        return EXIT_BAD_INPUT
    except (PromptSourceError, OSError, TypeError) as err:
        _err([f"{args.task}: {err}"])
        return EXIT_BAD_INPUT
    if not pinned:
        print(f"{card}: nothing to pin (no prompt set says 'sha256: {UNPINNED}')")
    for key, sha, n in pinned:
        print(f"{card}: {key} pinned, sha256 {sha} ({n} rows; check the count against the reference)")
    return EXIT_OK


def ringabell(args) -> int:
    """Build a task's Ring-A-Bell prompt file (the probe scores the shipped file; see probes/ringabell.py)."""
    try:
        task = load_task(resolve("task", args.task))
    except SpecError as err:
        _err(err.problems)
        return EXIT_BAD_INPUT
    p = ringabell_probe.SearchParams(generations=args.generations, prompts=args.prompts)
    sha, path, n = ringabell_probe.build_prompt_file(task, p, args.threads)
    print(f"{sha}  {path}  ({n} prompts; {p})")
    return EXIT_OK
