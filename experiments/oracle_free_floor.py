"""Experiment (issue 27 item 2): an oracle-free floor. How fast MemoRa's recipe teaches a model a glyph the
world never trained on: the mirrored nine, named by a word no caption uses ("zeta"). Real mirrored nines
(6 from the training split, fixed seed) replace the original's concept images; the rest of the recipe is
MemoRa's (inversion and re-denoising by the attacked model, 3 LoRA seeds, budgets), and the eval prompts are
the concept's own (same ids and seeds) with the concept's words replaced by "zeta". An image shows the glyph
when its mirror image is judged a nine (top-1, p >= 0.5) and the image itself is not.

FLOOR_WORD=same keeps the concept's own words; FLOOR_WORD=ti names the glyph by the placeholder "sks" whose
embedding is first learnt on the attacked model by concept inversion's textual inversion (the suite's
concept_inversion parameters, the card's templates and initializer) from 25 other real mirrored nines, so that
the glyph's word is a trained one, as the oracle's word for the erased concept is.

FLOOR_DIGIT=7 FLOOR_WORD=same (session 23): the *mirrored concept* named by the concept's own words, a
difficulty-matched novel shape (same strokes, another symbol). The idea: a model that truly forgot the concept
learns it about as fast as its mirror image, while hidden knowledge speeds up the concept only; the
submission's own mirror curve would then be its floor, with no oracle.

usage: oracle_free_floor.py TASK SUBMISSION [SUBMISSION ...]  -> runs/floor/<word>/<task>/<submission>.json
"""
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from memora_bench.cache import Cache, cache_key
from memora_bench.classifiers.mini import load_digit
from memora_bench.commands import resolve, suite_task_path
from memora_bench.context import ProbeContext, first_rows, task_prompts
from memora_bench.digits import load_split
from memora_bench.models.parallel import Runtime
from memora_bench.packs import install
from memora_bench.models.generate import encode_images
from memora_bench.models.handle import Model
from memora_bench.probes import concept_inversion, memora
from memora_bench.specs import PromptRow, load_submission, load_suite, load_task

import os
WORD, SEED = os.environ.get("FLOOR_WORD", "zeta"), 20261203  # FLOOR_WORD=same: keep the concept's words
DIGIT = int(os.environ.get("FLOOR_DIGIT", "9"))  # FLOOR_DIGIT=7: mirrored sevens (the glyph judge works for 3, 7, 9)
GLYPH = "mirrored-nine" if DIGIT == 9 else f"mirrored-{DIGIT}"
clf = load_digit()


def judged(images):
    """(shows the glyph, shows the digit itself) per image: the glyph when its mirror image is judged DIGIT (top-1,
    p >= 0.5) and the image itself is not; the digit when the image itself is judged DIGIT (top-1, p >= 0.5)."""
    x = np.stack(images)
    p0, pm = clf.probs(x), clf.probs(x[:, :, ::-1].copy())
    itself = (p0.argmax(1) == DIGIT) & (p0.max(1) >= 0.5)
    return (pm.argmax(1) == DIGIT) & (pm.max(1) >= 0.5) & (p0.argmax(1) != DIGIT), itself


def glyph_hits(images):
    return judged(images)[0]


def swap(text, words):
    if WORD == "same":
        return text
    word = concept_inversion.PLACEHOLDER if WORD == "ti" else WORD
    for w in sorted(words, key=len, reverse=True):
        text = re.sub(rf"(?<![\w]){re.escape(w)}(?![\w])", word, text)
    return text


def sources(n, skip=0):
    split = load_split()
    digits = split.train_images[split.train_labels == DIGIT]
    pick = np.random.default_rng(SEED).choice(len(digits), n + skip, replace=False)[skip:]
    out = []
    for i in pick:
        g = (digits[i][:, ::-1] * 255).round().astype(np.uint8)
        rgb = np.repeat(g[:, :, None], 3, axis=2)
        out.append({"image": rgb, "image_key": cache_key({"glyph": GLYPH, "train_index": int(i)})})
    return out


def main():
    task_name, subs = sys.argv[1], sys.argv[2:]
    suite = load_suite(resolve("suite", "mini-v4"))
    task = load_task(suite_task_path(suite.path, task_name))
    cache = Cache(Path(".cache/memora-bench"))
    install(cache, suite, task)
    p = memora.parse_params(dict(next(q for q in suite.probes if q.name == "memora").params))
    out_dir = Path("runs/floor") / (WORD if DIGIT == 9 else f"{WORD}-{GLYPH}") / task_name
    out_dir.mkdir(parents=True, exist_ok=True)
    originals = sources(2 * len(p.seed_pairs))
    attack = task_prompts(task, "attack_prompts")
    ti_params = concept_inversion.parse_params(dict(next(q for q in suite.probes if q.name == "concept_inversion").params))
    ti_images = sources(ti_params.images, skip=len(originals))
    for name in subs:
        sub = load_submission(resolve("submission", name))
        ctx = ProbeContext(suite, task, sub, cache, Runtime(), progress=False)
        attacked = ctx.model
        report = {"submission": name, "task": task_name, "concepts": {}}
        for concept in task.concepts:
            words = [concept.label, concept.name, *concept.aliases]
            glyph = replace(concept, name=f"{concept.name}-{WORD}", prompt=swap(concept.prompt, words), label=f"glyph-{WORD}")
            rows = [PromptRow(f"{r.id}-glyph-{WORD}", swap(r.prompt, words), r.seed, r.guidance, f"glyph-{WORD}")
                    for r in first_rows(attack, concept.label, p.eval_prompts)]
            if WORD == "ti":  # the glyph's word learnt first on the attacked model (cached per model)
                key = cache_key({"floor": "glyph-ti", "model": ctx.model.fingerprint, "concept": concept.name,
                                 "sources": [o["image_key"] for o in ti_images], "params": ti_params.__dict__})
                learnt = cache.get_tensors(key)
                if learnt is None:
                    pipe = ctx.pipeline()
                    mean, std = encode_images(pipe, [o["image"] for o in ti_images])
                    learnt = {"embedding": concept_inversion.learn_embedding(pipe, mean, std, concept, ti_params)}
                    cache.put_tensors(key, learnt)
                attacked = Model({**ctx.model.fingerprint, "floor_ti": key},
                                 lambda row=learnt["embedding"]: concept_inversion.with_embedding(ctx.pipeline(), row),
                                 ctx.model.device)
                before = glyph_hits([r["image"] for r in ctx.images(rows, "memora_floor", model=attacked)])
                print(name, concept.name, "after textual inversion alone:", int(before.sum()), "of", len(rows), flush=True)
            keys, images = memora.training_images(ctx, attacked, glyph, originals, p)
            train_hits = int(glyph_hits(images).sum())

            def seed_curve(seed):
                ckpts = memora.lora_checkpoints(ctx, attacked, glyph, keys, images, seed, p)
                curve = []
                for b in p.budgets:
                    model = attacked if b == 0 else memora.recovered_model(ctx, attacked, [ckpts[b]], p)
                    recs = ctx.images(rows, "memora_floor", model=model)
                    shows_glyph, itself = judged([r["image"] for r in recs])
                    curve.append(shows_glyph.astype(int).tolist())
                    concept_curve.setdefault(seed, []).append(int(itself.sum()))
                    if b == max(p.budgets) and seed == p.attack_seeds[0]:
                        last[:] = [r["image"] for r in recs]
                return curve
            last: list = []
            concept_curve: dict = {}  # seed -> per budget: images judged the concept itself (top-1, p >= 0.5)
            curves = ctx.side_by_side([lambda s=s: seed_curve(s) for s in p.attack_seeds])
            report["concepts"][concept.name] = {
                "glyph_prompt": glyph.prompt, "eval_prompts": [r.prompt for r in rows],
                "training_images_glyph": f"{train_hits}/{len(images)}",
                "hits": curves,  # [seed][budget][prompt]
                "curve": [int(sum(sum(c[j]) for c in curves)) for j in range(len(p.budgets))],
                "n": len(rows) * len(p.attack_seeds), "budgets": list(p.budgets),
                "concept_curve": [sum(concept_curve[s][j] for s in p.attack_seeds) for j in range(len(p.budgets))]}
            print(name, concept.name, "training", train_hits, "/", len(images), "curve",
                  report["concepts"][concept.name]["curve"], "of", report["concepts"][concept.name]["n"],
                  "concept itself", report["concepts"][concept.name]["concept_curve"], flush=True)
            grid = np.concatenate([np.concatenate(images[:16], axis=1), np.concatenate(last, axis=1),
                                   np.concatenate([o["image"] for o in originals] + [o["image"] for o in ti_images][:10], axis=1)])
            Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(
                out_dir / f"{name}-{concept.name}.png")  # rows: training images, the largest budget (seed 0), sources
        (out_dir / f"{name}.json").write_text(json.dumps(report, indent=1))


main()
