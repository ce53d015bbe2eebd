"""``memora-bench pack build|verify|ls``: the tasks' shared-work packs (:mod:`memora_bench.packs`)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from memora_bench import packs
from memora_bench.cache import Cache
from memora_bench.commands import resolve, suite_task_path
from memora_bench.compare import CompareError, compare, load_results
from memora_bench.exits import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK
from memora_bench.paths import repo_root
from memora_bench.runner import evaluate
from memora_bench.specs import SpecError, load_submission, load_suite, load_task


def _suite_and_tasks(args):
    suite = load_suite(resolve("suite", args.suite))
    names = list(suite.tasks)
    wanted = list(args.tasks or names)
    unknown = [t for t in wanted if t not in names]
    if unknown:
        raise SpecError([f"task {t!r} is not in suite {suite.name} ({', '.join(names)})" for t in unknown])
    return suite, [load_task(suite_task_path(suite.path, t)) for t in wanted]


def build_one(suite, task, cache_root: Path, check: bool = True, quiet: bool = False) -> tuple[Path, dict]:
    """Evaluate the original model and the oracle on ``task`` (on ``cache_root``, computing what it lacks, no
    pack installed), check both against the committed results to the count, and pack the entries both used."""
    journals = []
    with tempfile.TemporaryDirectory(prefix="memora-pack-") as tmp:
        for name in packs.MADE_FROM:
            sub = load_submission(resolve("submission", name))
            cache = Cache(Path(cache_root), journal=set())
            report = evaluate(suite, [task], [sub], Path(tmp), cache, progress=False, use_packs=False,
                              stages="quiet" if quiet else ("tty" if sys.stderr.isatty() else "lines"))
            if report.failed or report.refused or not report.written:
                raise packs.PackError([f"evaluating {name} on {task.name} failed: {report.failed or report.refused}"])
            committed = repo_root() / "results" / suite.name / name / f"{task.name}.json"
            if check and committed.exists():
                rows = compare(load_results(committed), load_results(report.written[0]), exact=True)
                moved = [r.score for r in rows if r.regressed]
                if moved:
                    raise packs.PackError([f"{name} on {task.name}: {len(moved)} count(s) differ from {committed} "
                                           f"({', '.join(moved[:5])}); the cache does not reproduce the committed "
                                           f"results, so its entries are not packed"])
            journals.append(cache.journal)
    shared = sorted(set.intersection(*journals))
    meta = {"suite": {"name": suite.name, "version": suite.version},
            "task": {"name": task.name, "version": task.version, "sha256": task.sha256},
            "made_from": list(packs.MADE_FROM)}
    path = packs.pack_path(suite.name, task.name)
    return path, packs.write_pack(path, Cache(Path(cache_root)), shared, meta)


def check(paths: list[str]) -> int:
    """``pack check RESULT...``: exit 1 when a result drew images in a shared stage (its pack was missing or stale)."""
    try:
        results = {k: v for p in paths for k, v in load_results(Path(p)).items()}
    except CompareError as err:
        for p in err.problems:
            print(f"error: {p}", file=sys.stderr)
        return EXIT_BAD_INPUT
    bad = 0
    for (sub, task), data in sorted(results.items()):
        drawn = packs.computed_shared_work(data)
        bad += bool(drawn)
        print(f"{sub} / {task}: " + (f"computed shared work ({', '.join(drawn)}): the pack was missing or is stale "
                                     f"(`make packs`)" if drawn else "no shared work computed"))
    return EXIT_FAILURE if bad else EXIT_OK


def main(args) -> int:
    if args.pack_command == "check":
        return check(args.results)
    try:
        suite, tasks = _suite_and_tasks(args)
    except SpecError as err:
        for p in err.problems:
            print(f"error: {p}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.pack_command == "build":
        for task in tasks:
            try:
                path, manifest = build_one(suite, task, Path(args.cache_dir), check=not args.no_check,
                                           quiet=args.quiet)
            except packs.PackError as err:
                for p in err.problems:
                    print(f"error: {p}", file=sys.stderr)
                return EXIT_FAILURE
            print(f"{path.relative_to(repo_root()) if path.is_relative_to(repo_root()) else path}: "
                  f"{len(manifest['entries'])} entries, {manifest['bytes'] / 1e6:.1f} MB")
        return EXIT_OK
    failed = 0
    for task in tasks:
        path = packs.pack_path(suite.name, task.name)
        if not path.exists():
            print(f"{task.name}: no pack ({path} is missing; `memora-bench pack build {task.name}` makes it)")
            failed += args.pack_command == "verify"
            continue
        try:
            manifest = packs.verify(path)
        except packs.PackError as err:
            for p in err.problems:
                print(f"error: {p}", file=sys.stderr)
            failed += 1
            continue
        kinds = {}
        for e in manifest["entries"]:
            kinds[e.split("/")[0]] = kinds.get(e.split("/")[0], 0) + 1
        print(f"{task.name}: ok, {len(manifest['entries'])} entries ("
              + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + f"), {manifest['bytes'] / 1e6:.1f} MB")
    return EXIT_FAILURE if failed else EXIT_OK
