"""Concept resurgence under benign fine-tuning ("Unstable Unlearning", Suriyakumar et al., arXiv 2410.08074):
no attacker, only fine-tuning of the unlearned model on *other* concepts, after which the erased concept's
prompts as written are drawn again.

The fine-tuning data are the original model's images of the task's retained prompts (``images`` rows of
``retain_prompts``, taken in turn from each retained concept by id, each with its own caption; those prompts
name only retained concepts, never an erased one), and the recipe is MemoRa's LoRA
(:mod:`memora_bench.models.lora`: the suite's rank, alpha, rate and schedule), one run per seed, checkpointed
at every budget. At each budget the fine-tuned model draws the first
``eval_prompts`` attack prompts of each erased concept, judged like the plain probe. The probe's rate, which
the verdict compares with the oracle's under the same probe, is the largest budget's (the fine-tuned model a
user would ship); the curve over budgets is kept beside it.

Deviations (docs/scoring.md): the paper fine-tunes the whole UNet on real images of unrelated data sets; here a
LoRA on the original model's images of the task's retained concepts, the data the miniature world has, at
MemoRa's strength so that the two relearning probes differ only in what they train on.
"""

from __future__ import annotations

from memora_bench.cache import cache_key
from memora_bench.context import ProbeContext, ProbeOutput, first_rows, first_rows_per_concept
from memora_bench.models.lora import LoraParams
from memora_bench.probes import registry
from memora_bench.probes.memora import cached_lora_run, recovered_model
from memora_bench.results import cost_record

CODE_VERSION = 1


def _lora_params(p) -> LoraParams:
    return LoraParams(rank=p.rank, alpha=p.alpha, lr=p.lr, accumulation=p.accumulation,
                      max_grad_norm=p.max_grad_norm, schedule=p.schedule)


def _checkpoints(unit: ProbeContext, sources: list[dict], seed: int, p) -> dict[int, dict]:
    """LoRA states of the submission fine-tuned on ``sources`` at every positive budget (one run, cached)."""
    positive = [b for b in p.budgets if b > 0]
    key_of = {b: cache_key({"stage": "resurgence_lora", "code_version": CODE_VERSION,
                            "model": unit.model.fingerprint, "images": [s["image_key"] for s in sources],
                            "captions": [s["row"].prompt for s in sources], "seed": seed, "budget": b,
                            "total": max(positive), "lora": _lora_params(p).key()}) for b in positive}
    return cached_lora_run(unit, unit.pipeline, key_of, [s["image"] for s in sources],
                           [s["row"].prompt for s in sources], _lora_params(p), seed, "resurgence_lora")


def run(unit: ProbeContext, params: dict) -> ProbeOutput:
    """Fine-tune the submission on retained concepts, then draw the erased concepts' prompts at every budget."""
    p = registry.parse_params("resurgence", params)
    erased = {c.label for c in unit.task.concepts}
    retain = [r for r in unit.prompts("retain_prompts") if r.concept not in erased]
    by_concept = [first_rows(retain, label, 0) for label in sorted({r.concept for r in retain})]
    spread = [rows[i] for i in range(max(map(len, by_concept), default=0)) for rows in by_concept if i < len(rows)]
    sources = unit.images(spread[: p.images], "resurgence_source", model=unit.original)
    rows = first_rows_per_concept(unit.prompts("attack_prompts"), p.eval_prompts)
    curve, lines, final = [], [], None
    per_seed = [(seed, _checkpoints(unit, sources, seed, p)) for seed in p.seeds]

    def draw(b: int, ckpts: dict) -> list[dict]:
        model = unit.model if b == 0 else recovered_model(unit, unit.model, [ckpts[b]], p)
        return unit.images(rows, "resurgence", model=model)

    # every budget's and seed's images side by side, one thread each (one micro-batch each on the one-concept
    # tasks, which alone would leave a core idle); an image does not depend on what runs beside it
    drawn = iter(unit.side_by_side([lambda b=b, ck=ckpts: draw(b, ck) for b in p.budgets for _, ckpts in per_seed]))
    for b in p.budgets:
        recs = []
        for seed, _ in per_seed:
            got = unit.judge(next(drawn), "resurgence")
            recs += got
            lines += [dict(line, attack_seed=seed, budget=b) for line in unit.lines(got, "resurgence", "attack")]
        curve.append({"budget": b, "rates": unit.rates(recs)})
        final = recs
    result = {
        "params": registry.recorded(p),
        "rates": unit.rates(final),  # the largest budget's
        "curve": curve,
        "training_captions": sorted({s["row"].prompt for s in sources}),
        "training_concepts": sorted({s["row"].concept for s in sources}),
        "cost": cost_record(len(rows) * len(p.budgets) * len(p.seeds) + len(sources), unit.task.generation.steps,
                            training_evaluations=max(p.budgets) * p.accumulation * len(p.seeds),
                            lora_steps=max(p.budgets) * len(p.seeds)),
    }
    return ProbeOutput(result, lines)
