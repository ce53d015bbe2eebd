"""MemoRa: few-shot LoRA relearning of an erased concept (Polowczyk et al., arXiv 2510.03263; gmum/MemoRa).

For each concept of the task, and for the submission and the task's retrain oracle alike:

1. six concept images from the ORIGINAL model: the concept prompt, three seed pairs, DDIM 50, CFG 7.5;
2. each VAE-encoded (posterior mean, times the scaling factor) and DDIM-inverted with the ATTACKED model
   (CFG-guided with the concept prompt) to sampling step ``start_step`` of ``steps``;
3. per pair, slerp at 0, 1/k, ..., 1 and denoise each with the attacked model from that step: 3 (k + 1)
   training images (33 for k = 10);
4. per attack seed, one LoRA run (:mod:`memora_bench.models.lora`) checkpointed at every budget;
5. at each (attack seed, budget) the recovered model draws the task's attack prompts of that concept (the
   first ``eval_prompts`` rows), judged like the plain probe. Budget 0 is the attacked model itself.

Scores: the recovery curve r(b), pooled over attack seeds, with the original model's plain rate on the same
prompts as the ceiling and the oracle's curve under the same attack as the floor; steps to recall, the
memory index M and the STM / LTM / partial label (:func:`memora_bench.scoring.recovery_score`).

For a task with two concepts, **Multi-MemoRa** combines the two concepts' adapters (same seed and budget)
in one model and scores both concepts. **AutoMemoRa** samples with ``eps_U + w (eps_L - eps_U)`` between
the attacked model U and its recovered model L at the largest budget, for each pinned ``w``.

Every stage is cached by everything that determines it.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import torch
from peft import LoraConfig
from peft.utils import set_peft_model_state_dict

from memora_bench.cache import cache_key
from memora_bench.context import ProbeContext, ProbeOutput, first_rows
from memora_bench.models import BUILD_LOCK, lora
from memora_bench.models.generate import decode, encode_images, encode_prompts
from memora_bench.models.handle import Model
from memora_bench.models.inversion import denoise_from, invert, sampler, slerp
from memora_bench.models.lora import TARGET_MODULES, LoraParams
from memora_bench.probes import registry
from memora_bench.probes.registry import MemoraParams
from memora_bench.results import cost_record
from memora_bench.scoring import rate, recovery_score
from memora_bench.specs import PromptRow
from memora_bench.verdict import memora_evidence, verdict

CODE_VERSION = 4  # 2: inversion and re-denoising in micro-batches of 16; 3: a LoRA step's micro-batches in one
# pass; 4: on CPU training images and every LoRA run on one thread each (side by side), whatever the core count


def parse_params(raw: dict) -> MemoraParams:
    """Strict: unknown keys, wrong types and out-of-range values are errors (:mod:`memora_bench.probes.registry`)."""
    return registry.parse_params("memora", raw)


def _lora_params(p: MemoraParams):
    return LoraParams(rank=p.rank, alpha=p.alpha, lr=p.lr, accumulation=p.accumulation, max_grad_norm=p.max_grad_norm,
                      schedule=p.schedule)


# --- stages ------------------------------------------------------------------------------------------------

def concept_images(unit: ProbeContext, original, concept, p: MemoraParams) -> list[dict]:
    """Stage 1: the original model's images of the concept (shared by every submission of the task)."""

    seeds = [s for pair in p.seed_pairs for s in pair]
    rows = [PromptRow(f"memora-{concept.name}-{s}", concept.prompt, s, p.guidance, concept.label) for s in seeds]
    return unit.images(rows, "memora_concept", model=original, steps=p.steps, per_prompt=1, scheduler="ddim")


def _original_images(unit: ProbeContext, original, concept, rows, p: MemoraParams) -> tuple[list[dict], list[dict]]:
    """The original model's concept images (stage 1) and its images of ``rows`` (the ceiling), side by side."""
    return tuple(_images_side_by_side(unit, "memora_original", [
        lambda: concept_images(unit, original, concept, p),
        lambda: unit.images(rows, "memora_ceiling", model=original)]))


def training_images(unit: ProbeContext, attacked, concept, originals: list[dict], p: MemoraParams) -> tuple[list[str], list]:
    """Stages 2-3: inversion by the attacked model, slerp, re-denoising; returns (cache keys, images)."""
    k = p.interpolation
    base = {"stage": "memora_training_image", "code_version": CODE_VERSION, "model": attacked.fingerprint,
            "sources": [o["image_key"] for o in originals], "prompt": concept.prompt, "steps": p.steps,
            "guidance": p.guidance, "start_step": p.start_step, "interpolation": k}
    keys = [cache_key({**base, "pair": i, "t": j}) for i in range(len(p.seed_pairs)) for j in range(k + 1)]
    cached = [unit.cache.get_image(key) for key in keys]
    if all(img is not None for img in cached):
        unit.count("images_cached", len(keys))
        return keys, cached
    with unit.cache.lock(keys[0]):  # another run making the same images: wait for them
        cached = [unit.cache.get_image(key) for key in keys]
        if all(img is not None for img in cached):
            unit.count("images_cached", len(keys))
            return keys, cached
        return keys, _make_training_images(unit, attacked, concept, originals, keys, p)


def _make_training_images(unit: ProbeContext, attacked, concept, originals: list[dict], keys: list[str], p: MemoraParams) -> list:

    k = p.interpolation
    pipe = attacked.pipeline(unit.timer)
    with unit.timer("memora_inversion"):
        z0, _ = encode_images(pipe, [o["image"] for o in originals])
        with torch.inference_mode():
            cond = encode_prompts(pipe, [concept.prompt])
            uncond = encode_prompts(pipe, [""])
        sched = sampler(pipe, p.steps)
        zt = invert(pipe.unet, sched, z0, cond.expand(len(z0), -1, -1), uncond, p.guidance, p.start_step)
    with unit.timer("memora_denoise"):
        mixed = torch.stack([slerp(zt[2 * i], zt[2 * i + 1], j / k) for i in range(len(p.seed_pairs))
                             for j in range(k + 1)])
        clean = denoise_from(pipe.unet, sched, mixed, cond.expand(len(mixed), -1, -1), uncond, p.guidance, p.start_step)

        images = decode(pipe, clean)
    for key, img in zip(keys, images):
        unit.cache.put_image(key, img)
    unit.count("images_generated", len(keys))
    return list(images)


def lora_checkpoints(unit: ProbeContext, attacked, concept, image_keys: list[str], images: list, seed: int,
                     p: MemoraParams) -> dict[int, dict]:
    """Stage 4: LoRA states at every positive budget for one attack seed (one run, cached per budget)."""
    positive = [b for b in p.budgets if b > 0]
    key_of = {b: cache_key({"stage": "memora_lora", "code_version": CODE_VERSION, "model": attacked.fingerprint,
                            "images": image_keys, "prompt": concept.prompt, "seed": seed, "budget": b,
                            "total": max(positive), "lora": _lora_params(p).key()}) for b in positive}
    return cached_lora_run(unit, lambda: attacked.pipeline(unit.timer), key_of, images, [concept.prompt],
                           _lora_params(p), seed, "memora_lora")


def cached_lora_run(unit: ProbeContext, pipeline, key_of: dict[int, str], images: list, captions: list[str],
                    params: lora.LoraParams, seed: int, stage: str) -> dict[int, dict]:
    """``{budget: {"state", "key"}}``: one LoRA run on ``pipeline()``'s UNet (``images`` with one caption for all
    or one each), checkpointed at every budget of ``key_of`` into the cache under that budget's key; a run whose
    checkpoints are all cached is not trained, and a run another process is training is waited for."""
    states = {b: unit.cache.get_tensors(key) for b, key in key_of.items()}
    if any(s is None for s in states.values()):
        with unit.cache.lock(key_of[max(key_of)]):
            states = {b: unit.cache.get_tensors(key) for b, key in key_of.items()}
            if any(s is None for s in states.values()):
                pipe = pipeline()
                mean, std = encode_images(pipe, images)
                # Tensors made in inference mode cannot enter autograd; clones made outside it can.
                context = encode_prompts(pipe, captions).clone()
                with BUILD_LOCK:
                    unet = copy.deepcopy(pipe.unet)

                def save(step, state, loss):
                    unit.cache.put_tensors(key_of[step], state)
                    states[step] = state

                with unit.timer(stage):
                    lora.train(unet, dict(pipe.scheduler.config), mean, std, context, params, sorted(key_of), seed,
                               save, progress=unit.progress)
    return {b: {"state": states[b], "key": key_of[b]} for b in sorted(key_of)}


def recovered_model(unit: ProbeContext, attacked, adapters: list[dict], p: MemoraParams, scale: float = 1.0):
    """The attacked model with one or more trained adapters attached (Multi-MemoRa: several)."""

    def load():


        base = attacked.pipeline(unit.timer)
        pipe = copy.copy(base)
        pipe.unet = copy.deepcopy(base.unet)
        names = []
        for i, a in enumerate(adapters):
            name = f"memora{i}"
            with BUILD_LOCK:  # new parameters, and peft's default init from the global generator (overwritten)
                pipe.unet.add_adapter(LoraConfig(r=p.rank, lora_alpha=p.alpha, target_modules=list(TARGET_MODULES)),
                                      adapter_name=name)
            set_peft_model_state_dict(pipe.unet, a["state"], adapter_name=name)
            names.append(name)
        pipe.unet.set_adapters(names, weights=[scale] * len(names))
        pipe.unet.eval()
        return pipe

    fingerprint = {**attacked.fingerprint, "lora": sorted(a["key"] for a in adapters), "lora_scale": scale}
    return Model(fingerprint, load, attacked.device)


def attack_curves(unit: ProbeContext, models: list[tuple], work: list[tuple], p: MemoraParams, lines: list[dict]) -> list[list]:
    """For each concept of ``work`` (concept, its evaluation rows, the original model's concept images) and
    each (attacked model, stage): (hits, adapters, training-image keys), where hits[s][j] are the judged
    images of the rows at attack seed s and budget b_j and adapters are keyed by (seed, budget).

    The (concept, model, seed) runs are independent and run side by side, all concepts' at once, and each
    run's budgets draw their images as jobs of their own as soon as it is trained
    (:func:`memora_bench.models.parallel.side_by_side_chained`: on two cores one concept's three runs would
    otherwise leave a core idle while the third runs alone). A model listed twice (the retrain
    oracle evaluated as a submission is its own floor) is run once: its runs are deterministic, so a second
    run would give the same numbers. Appends one JSONL line per judged image to ``lines`` (with its attack
    seed and budget), in concept, model and seed order whatever order the runs finish in.
    """
    distinct: dict[str, tuple] = {}
    for attacked, stage in models:
        distinct.setdefault(cache_key(attacked.fingerprint), (attacked, stage))
    computed = _curves(unit, list(distinct.values()), work, p)
    out = []
    for per_concept in computed:
        per_model = []
        for attacked, stage in models:
            hits, adapters, keys, model_lines = per_concept[cache_key(attacked.fingerprint)]
            lines += [dict(line, probe=stage) for line in model_lines]
            per_model.append((hits, adapters, keys))
        out.append(per_model)
    return out


def _curves(unit: ProbeContext, models: list[tuple], work: list[tuple], p: MemoraParams) -> list[dict]:
    """:func:`attack_curves` for distinct models: per concept, {model key: (hits, adapters, keys, lines)}."""

    trained = iter(_training_images_side_by_side(unit, models, work, p))
    prepared = [(concept, rows, attacked, stage, *next(trained)) for concept, rows, _ in work for attacked, stage in models]
    for concept, _, _ in work:
        unit.classifier_for(concept.label)  # loaded once, before the runs
    jobs = [_seed_run(unit, a, c, r, k, im, seed, p, st) for c, r, a, st, k, im in prepared for seed in p.attack_seeds]
    with unit.timer("memora_side_by_side"):  # a seed's budgets draw as soon as its run is trained
        done = iter(_assemble(ckpts, per_budget, seed, p) for ((ckpts, seed), per_budget) in unit.side_by_side_chained(jobs))
    out = []
    for group in _chunks(prepared, len(models)):  # one concept: its models in order
        per_model = {}
        for _, _, attacked, _, keys, _ in group:
            hits, adapters, model_lines = [], {}, []
            for _seed in p.attack_seeds:
                per_budget, seed_lines, seed_adapters = next(done)
                hits.append(per_budget)
                model_lines += seed_lines
                adapters.update(seed_adapters)
            per_model[cache_key(attacked.fingerprint)] = (hits, adapters, keys, model_lines)
        out.append(per_model)
    return out


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _training_images_side_by_side(unit: ProbeContext, models: list[tuple], work: list[tuple], p: MemoraParams) -> list:
    """Each (concept, model)'s training images and its budget-0 images of the concept's rows (the attacked
    model itself, shared by every attack seed), as one job each, in concept then model order: each on one
    thread, so they do not depend on the core count."""

    def job(attacked, stage, concept, rows, originals):
        made = training_images(unit, attacked, concept, originals, p)
        unit.images(rows, stage, model=attacked)
        return made

    return unit.side_by_side([lambda a=a, st=st, c=c, r=r, o=o: job(a, st, c, r, o)
                         for c, r, o in work for a, st in models])


def seed_curve(unit: ProbeContext, attacked, concept, rows, keys, images, seed: int, p: MemoraParams, stage: str):
    """One attack seed: its LoRA run and the judged images at every budget.

    Returns (hits per budget, JSONL lines, adapters by (seed, budget))."""

    ckpts = lora_checkpoints(unit, attacked, concept, keys, images, seed, p)
    return _assemble(ckpts, [_budget_images(unit, attacked, ckpts, rows, b, seed, p, stage) for b in p.budgets], seed, p)


def _seed_run(unit: ProbeContext, attacked, concept, rows, keys, images, seed: int, p: MemoraParams, stage: str):
    """:func:`seed_curve` as a job for :func:`memora_bench.models.parallel.side_by_side_chained`: the LoRA run,
    then one follow-up job per budget drawing and judging its images. Its value is (checkpoints, seed)."""

    def train():
        ckpts = lora_checkpoints(unit, attacked, concept, keys, images, seed, p)
        return (ckpts, seed), [lambda b=b: _budget_images(unit, attacked, ckpts, rows, b, seed, p, stage) for b in p.budgets]

    return train


def _budget_images(unit: ProbeContext, attacked, ckpts: dict, rows, b: int, seed: int, p: MemoraParams, stage: str):
    """One budget of one attack seed: (hits, JSONL lines) of its judged images (budget 0: the model itself)."""
    model = attacked if b == 0 else recovered_model(unit, attacked, [ckpts[b]], p)
    recs = unit.judge(unit.images(rows, stage, model=model), stage)
    return np.array([r["hit"] for r in recs]), [dict(line, attack_seed=seed, budget=b) for line in unit.lines(recs, stage, "attack")]


def _assemble(ckpts: dict, per_budget: list, seed: int, p: MemoraParams):
    """(hits per budget, JSONL lines in budget order, adapters by (seed, budget)) of one attack seed."""
    lines = [line for _, budget_lines in per_budget for line in budget_lines]
    return [hits for hits, _ in per_budget], lines, {(seed, b): ckpts[b] for b in p.budgets if b > 0}


PREP = "prep"


def shards(params: dict) -> list[str]:
    """The pieces MemoRa's work can be spread over (an executor runs them before the probe itself, which then
    finds every stage in the cache): the shared stages, then one piece per attack seed."""
    return [PREP] + [f"seed={s}" for s in parse_params(params).attack_seeds]


def prefetch(unit: ProbeContext, params: dict, shard: str) -> None:
    """Compute and cache one shard's stages (see :func:`shards`); the probe's result is assembled by ``run``.

    ``prep``: the original model's concept images, the ceiling images, and the attacked (and oracle) models'
    training images. ``seed=N``: that attack seed's LoRA run and judged images at every budget, for the
    attacked model and the oracle. Every stage is content-keyed, so a shard computes exactly what ``run``
    would, wherever it runs."""

    p = parse_params(params)
    task = unit.task
    original = unit.original
    models = [(unit.model, "memora")] + ([(unit.oracle, "memora_oracle")] if task.oracle else [])
    attack_rows = unit.prompts("attack_prompts")
    if shard != PREP:
        seed = int(shard.removeprefix("seed="))
        if seed not in p.attack_seeds:
            raise ValueError(f"MemoRa shard {shard!r}: seed {seed} is not one of {p.attack_seeds}")
    work = []
    for concept in task.concepts:
        rows = _eval_rows(attack_rows, concept, p)
        if shard == PREP:
            originals, ceiling = _original_images(unit, original, concept, rows, p)
            unit.judge(ceiling, "memora_ceiling")
        else:
            originals = concept_images(unit, original, concept, p)
        work.append((concept, rows, originals))
    if shard == PREP:
        _training_images_side_by_side(unit, models, work, p)
    else:
        attack_curves(unit, models, work, replace(p, attack_seeds=(seed,)), [])


def run(unit: ProbeContext, params: dict) -> ProbeOutput:
    """MemoRa against the submission and the oracle, per concept; Multi- and AutoMemoRa (module docstring)."""
    p = parse_params(params)
    task, s = unit.task, unit.suite
    original, oracle = unit.original, unit.oracle
    attack_rows = unit.prompts("attack_prompts")
    result = {"params": registry.recorded(p), "concepts": {}, "rates": {}}
    lines: list[dict] = []
    adapters_by_concept = {}
    top_hits: dict[str, list[np.ndarray]] = {}
    n_images = 0
    work, ceilings = [], []
    for concept in task.concepts:
        rows = _eval_rows(attack_rows, concept, p)
        originals, ceiling = _original_images(unit, original, concept, rows, p)
        ceilings.append(np.array([r["hit"] for r in unit.judge(ceiling, "memora_ceiling")]))
        work.append((concept, rows, originals))
    models = [(unit.model, "memora")] + ([(oracle, "memora_oracle")] if oracle else [])
    for (concept, rows, _), ceiling, curves in zip(work, ceilings, attack_curves(unit, models, work, p, lines)):
        hits, adapters, train_keys = curves[0]
        top_hits[concept.label] = [h[-1] for h in hits]
        adapters_by_concept[concept.name] = adapters
        entry = {"eval_prompts": [r.id for r in rows], "training_images": train_keys,
                 "ceiling": rate([ceiling[i : i + 1] for i in range(len(ceiling))], s.bootstrap,
                                 s.bootstrap_seed, s.confidence).as_dict()}
        entry["curve"] = [_pooled_rate(unit, [h[j] for h in hits]) for j in range(len(p.budgets))]
        if oracle is not None:
            oracle_hits = curves[1][0]
            entry["oracle_curve"] = [_pooled_rate(unit, [h[j] for h in oracle_hits]) for j in range(len(p.budgets))]
            if p.score == "excess":
                evidence = memora_evidence(p.budgets, hits, oracle_hits, ceiling, s.bootstrap, s.bootstrap_seed,
                                           s.confidence)
                entry["evidence"] = [e.as_dict() for e in evidence]
                entry["verdict"] = verdict(evidence, p.family_alpha, p.stm_excess).as_dict()  # MemoRa's alone
                entry["training_images_judged"] = {
                    "submission": _judged_training_images(unit, concept, train_keys),
                    "oracle": _judged_training_images(unit, concept, curves[1][2])}
            else:
                score = recovery_score(p.budgets, hits, oracle_hits, ceiling, s.bootstrap, s.bootstrap_seed,
                                       p.stm_above, p.ltm_below, s.confidence)
                entry["score"] = score.as_dict()
        result["concepts"][concept.name] = entry
        # The headline rate of the probe: the recovered model at the largest budget, pooled over seeds.
        result["rates"][concept.label] = entry["curve"][-1]
        n_images += len(rows) * len(p.budgets) * len(p.attack_seeds) * (2 if oracle is not None else 1)
    if len(task.concepts) > 1:
        result["multi"] = multi_memora(unit, adapters_by_concept, attack_rows, p, lines)
    if p.auto_weights:
        result["auto"] = auto_memora(unit, adapters_by_concept, attack_rows, p, lines)
    # Pooled over concepts: clusters are (concept, prompt) with all attack seeds.
    clusters = [np.stack(h)[:, i] for h in top_hits.values() for i in range(len(h[0]))]
    result["rates"]["all"] = rate(clusters, s.bootstrap, s.bootstrap_seed, s.confidence).as_dict()
    result["cost"] = cost_record(n_images, unit.task.generation.steps,
                                 lora_steps=max(p.budgets) * len(p.attack_seeds) * len(task.concepts)
                                 * (2 if oracle is not None else 1))
    return ProbeOutput(result, lines)


def _judged_training_images(unit: ProbeContext, concept, keys: list[str]) -> dict:
    """How many of an attacked model's training images still show the concept (a strong eraser re-denoises
    them and may spoil them, which would look like forgetting): their rate, judged like every image."""
    records = [{"row": PromptRow(f"memora-train-{i:02d}", concept.prompt, 0, 0.0, concept.label),
                "image": unit.cache.get_image(key), "image_key": key} for i, key in enumerate(keys)]
    if any(r["image"] is None for r in records):
        raise RuntimeError("MemoRa: a training image left the cache while the probe ran")
    return unit.rates(unit.judge(records, "memora_training"))[concept.label]


def _pooled_rate(unit: ProbeContext, hits_per_seed: list[np.ndarray]) -> dict:
    """Rate pooled over attack seeds; the bootstrap resamples prompts with all their seeds."""

    s = unit.suite
    stacked = np.stack(hits_per_seed)  # (S, P)
    clusters = [stacked[:, i] for i in range(stacked.shape[1])]
    return rate(clusters, s.bootstrap, s.bootstrap_seed, s.confidence).as_dict()


def multi_memora(unit: ProbeContext, adapters_by_concept: dict, attack_rows, p: MemoraParams, lines: list[dict]) -> dict:
    """Both concepts' adapters combined (same seed and budget), both concepts scored at every budget.

    The (budget, seed) models' images are made side by side (each on one thread, so bit-identical to making
    them one after the other), then judged in order on the calling thread."""

    concepts = unit.task.concepts
    rows_of = {c.name: _eval_rows(attack_rows, c, p) for c in concepts}
    cells = [(b, seed) for b in p.budgets if b > 0 for seed in p.attack_seeds]

    def draw(b: int, seed: int) -> list[list[dict]]:
        model = recovered_model(unit, unit.model, [adapters_by_concept[c.name][(seed, b)] for c in concepts], p)
        return [unit.images(rows_of[c.name], "memora_multi", model=model) for c in concepts]

    drawn = _images_side_by_side(unit, "memora_multi", [lambda b=b, s=seed: draw(b, s) for b, seed in cells])
    per_cell = {}
    for (b, seed), records in zip(cells, drawn):
        per_cell[(b, seed)] = []
        for recs in records:
            recs = unit.judge(recs, "memora_multi")
            per_cell[(b, seed)].append(np.array([r["hit"] for r in recs]))
            lines += [dict(x, attack_seed=seed, budget=b) for x in unit.lines(recs, "memora_multi", "attack")]
    out = {}
    for b in sorted({b for b, _ in cells}):
        out[str(b)] = {c.name: _pooled_rate(unit, [per_cell[(b, seed)][i] for seed in p.attack_seeds])
                       for i, c in enumerate(concepts)}
    return out


def _eval_rows(attack_rows, concept, p: MemoraParams) -> list:
    """The concept's first ``eval_prompts`` attack prompts (by id): what every recovered model draws."""
    return first_rows(attack_rows, concept.label, p.eval_prompts)


def _images_side_by_side(unit: ProbeContext, stage: str, jobs: list) -> list:
    """``[job() for job in jobs]`` side by side (:func:`memora_bench.models.parallel.side_by_side`), timed as one stage."""

    with unit.timer(f"{stage}_side_by_side"):
        return unit.side_by_side(jobs)


def auto_memora(unit: ProbeContext, adapters_by_concept: dict, attack_rows, p: MemoraParams, lines: list[dict]) -> dict:
    """AutoMemoRa: eps_U + w (eps_L - eps_U) at the largest budget, for each pinned w.

    The reference mixes the two CFG-guided predictions; CFG is linear, so mixing each branch before
    guidance (what :class:`MixedUNet` does) gives the same noise estimate. The (concept, w, seed) images are
    made side by side, then judged in order, as in :func:`multi_memora`.
    """

    top = max(p.budgets)
    cells = [(c, w, seed) for c in unit.task.concepts for w in p.auto_weights for seed in p.attack_seeds]

    def mixed_model(c, w: float, seed: int):
        lora_model = recovered_model(unit, unit.model, [adapters_by_concept[c.name][(seed, top)]], p)

        def load():
            pipe_l = lora_model.pipeline(unit.timer, "load_model")
            pipe_u = unit.pipeline()
            mixed = copy.copy(pipe_u)
            mixed.unet = MixedUNet(pipe_u.unet, pipe_l.unet, w)
            return mixed

        return Model({**lora_model.fingerprint, "auto_memora_w": w}, load, unit.model.device)

    drawn = _images_side_by_side(unit, "memora_auto", [
        lambda c=c, w=w, s=seed: unit.images(_eval_rows(attack_rows, c, p), "memora_auto", model=mixed_model(c, w, s))
        for c, w, seed in cells])
    hits: dict[tuple, list] = {}
    for (c, w, seed), recs in zip(cells, drawn):
        recs = unit.judge(recs, "memora_auto")
        hits.setdefault((c.name, w), []).append(np.array([r["hit"] for r in recs]))
        lines += [dict(x, attack_seed=seed, budget=top, auto_w=w) for x in unit.lines(recs, "memora_auto", "attack")]
    return {c.name: {str(w): _pooled_rate(unit, hits[(c.name, w)]) for w in p.auto_weights}
            for c in unit.task.concepts}


class MixedUNet(torch.nn.Module):
    """eps = eps_U + w (eps_L - eps_U) for every call (both guided branches are mixed the same way)."""

    def __init__(self, unlearned, recovered, w: float):
        super().__init__()
        self.unlearned, self.recovered, self.w = unlearned, recovered, w
        self.config, self.dtype = unlearned.config, unlearned.dtype

    @property
    def device(self):
        """As diffusers' models have: pipelines ask their UNet for its device."""
        return self.unlearned.device

    def forward(self, x, t, encoder_hidden_states):

        eu = self.unlearned(x, t, encoder_hidden_states=encoder_hidden_states).sample
        el = self.recovered(x, t, encoder_hidden_states=encoder_hidden_states).sample
        return SimpleNamespace(sample=eu + self.w * (el - eu))
