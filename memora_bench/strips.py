"""``memora-bench strips RESULTS``: draw the leaderboard's strip images that no store holds.

A leaderboard page shows, per result, the first attack prompts' images as the submission draws them (plain
probe) and as MemoRa's recovered model draws them (largest budget, first attack seed), and the site takes them
from the cache or from the ``img/`` folder kept beside the results (:mod:`memora_bench.leaderboard.build`). A
result made on another machine has neither. This command draws exactly those images again, through the
probes' own content-keyed stages (for MemoRa: the training images, the one LoRA run and its checkpoint at the
largest budget, then the recovered model's images), and checks every drawn image against the result: its
cache key must equal the recorded ``image_key`` (the same model, prompt, seed and settings) and its judgement
the recorded hit. Nothing is written but cache entries; ``memora-bench leaderboard ... --keep-images`` then
copies them beside the results.
"""

from __future__ import annotations

import sys
from pathlib import Path

from memora_bench.cache import Cache
from memora_bench.commands import resolve, suite_task_path
from memora_bench.context import ProbeContext, first_rows, task_prompts
from memora_bench.exits import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK
from memora_bench.leaderboard.build import strip_lines
from memora_bench.models.parallel import Runtime
from memora_bench.packs import install
from memora_bench.probes import memora
from memora_bench.results import ResultError, load_image_lines, load_result
from memora_bench.specs import SpecError, load_submission, load_suite, load_task


def _check(drawn: list[dict], wanted: list[dict], what: str) -> list[str]:
    by_key = {r["image_key"]: r for r in drawn}
    problems = []
    for x in wanted:
        r = by_key.get(x["image_key"])
        if r is None:
            problems.append(f"{what}: {x['prompt_id']} seed {x['seed']}: no drawn image has the recorded key "
                            f"{x['image_key'][:12]}... (other code, suite or checkpoint than the result's)")
        elif r["hit"] != x["hit"]:
            problems.append(f"{what}: {x['prompt_id']} seed {x['seed']}: judged {r['hit']}, recorded {x['hit']}")
    return problems


def draw(path: Path, cache: Cache, have) -> tuple[int, list[str]]:
    """Draw the strip images of the result at ``path`` that ``have(key)`` says are missing; returns how many were
    missing and the problems (a drawn image that does not match the result)."""
    result = load_result(path)
    lines = load_image_lines(result, path)
    plain, rec = strip_lines(lines)
    plain_missing = [x for x in plain if not have(x["image_key"])]
    rec_missing = [x for x in rec if not have(x["image_key"])]
    if not plain_missing and not rec_missing:
        return 0, []
    suite = load_suite(resolve("suite", result["suite"]["name"]))
    task = load_task(suite_task_path(suite.path, result["task"]["name"]))
    sub = load_submission(resolve("submission", result["submission"]["name"]))
    install(cache, suite, task)
    ctx = ProbeContext(suite, task, sub, cache, Runtime(), progress=False)
    problems = []
    rows = {r.id: r for r in task_prompts(task, "attack_prompts")}
    if plain_missing:
        wanted = sorted({x["prompt_id"] for x in plain_missing})
        drawn = ctx.judge(ctx.images([rows[i] for i in wanted], "plain"), "plain")
        problems += _check(drawn, plain_missing, f"{path} plain")
    if rec_missing:
        p = memora.parse_params(dict(next(q for q in suite.probes if q.name == "memora").params))
        top, seed = rec_missing[0]["budget"], rec_missing[0]["attack_seed"]
        for label in sorted({x["concept"] for x in rec_missing}):
            concept = next(c for c in task.concepts if c.label == label)
            originals = memora.concept_images(ctx, ctx.original, concept, p)
            keys, images = memora.training_images(ctx, ctx.model, concept, originals, p)
            ckpts = memora.lora_checkpoints(ctx, ctx.model, concept, keys, images, seed, p)
            model = memora.recovered_model(ctx, ctx.model, [ckpts[top]], p)
            eval_rows = first_rows(task_prompts(task, "attack_prompts"), concept.label, p.eval_prompts)
            drawn = ctx.judge(ctx.images(eval_rows, "memora", model=model), "memora")
            problems += _check(drawn, [x for x in rec_missing if x["concept"] == label], f"{path} MemoRa")
    return len(plain_missing) + len(rec_missing), problems


def main(args) -> int:
    paths = []
    for ref in args.results:
        p = Path(ref)
        if not p.exists():
            print(f"error: {p}: no such file or folder", file=sys.stderr)
            return EXIT_BAD_INPUT
        paths += [p] if p.is_file() else sorted(p.glob("*/*.json"))
    cache = Cache(Path(args.cache_dir))
    folders = [Path(f) for f in args.images] + [p.parent.parent / "img" for p in paths]

    def have(key: str) -> bool:
        return cache.path("images", key, ".png").exists() or any((f / f"{key}.png").exists() for f in folders)

    failed = 0
    for path in paths:
        try:
            n, problems = draw(path, cache, have)
        except SpecError as err:
            problems, n = err.problems, 0
        except ResultError as err:
            problems, n = [str(err)], 0
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        failed += bool(problems)
        if n or problems:
            print(f"{path}: {n} strip image(s) drawn" + (", NOT matching the result" if problems else
                                                         ", every key and judgement as recorded"))
    return EXIT_FAILURE if failed else EXIT_OK
