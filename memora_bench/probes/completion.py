"""The diffusion-completion probe of "When Are Concepts Erased From Diffusion Models?" (WACE; Lu et al.,
NeurIPS 2025, ``kevinlu4588/WhenAreConceptsErased`` ``src/probes/diffusion_completion_probe.py``): visual
context from the original model's own trajectory.

For each attack prompt and each interrupt step ``i``, the *original* model runs the first ``i + 1`` steps of a
deterministic DDIM trajectory (50 steps, guidance 7.5, the prompt's seed), and the *submission* finishes the
remaining steps from that latent. The reference interrupts at ``i`` = 0, 1, 2 and finishes under the concept
prompt. ``neutral`` also finishes each under the empty prompt, the issue's "neutral prompt", so that a model
which only re-draws what the trajectory already holds is seen apart from one that follows the prompt. Every
finished image is judged; the rate pools prompts, interrupt steps (and prompts as finished).

Deviations (docs/scoring.md): the reference's scheduler is DDIM for both models with the same settings, as
here; it runs the base SD-1.4 for the start, here the task's original model, which is that model on SD cards.
"""

from __future__ import annotations

from memora_bench.cache import cache_key
from memora_bench.context import ProbeContext, ProbeOutput, first_rows_per_concept
from memora_bench.models.generate import MICRO_BATCH, GenerationConfig, decode, encode_prompts, initial_latents
from memora_bench.models.parallel import side_by_side
from memora_bench.models.trajectory import ddim_steps, sampler, unconditional
from memora_bench.probes import registry
from memora_bench.results import cost_record
from memora_bench.specs import PromptRow

CODE_VERSION = 1  # bump when a change can change an image


def start_latents(pipe, prompts: list[str], seeds: list[int], stop: int, steps: int, guidance: float,
                  height: int, width: int):
    """The latent after the first ``stop`` DDIM steps of each (prompt, seed), on ``pipe``'s model."""
    sched = sampler(pipe, steps)
    x = initial_latents(pipe, seeds, GenerationConfig("ddim", steps, guidance, height, width)) * sched.init_noise_sigma
    return ddim_steps(pipe.unet, sched, x, encode_prompts(pipe, prompts), unconditional(pipe), guidance, start=0,
                      stop=stop)


def finish(pipe, latents, prompts: list[str], start: int, steps: int, guidance: float):
    """uint8 images: the DDIM steps from ``start`` to the end on ``pipe``'s model, decoded."""
    sched = sampler(pipe, steps)
    return decode(pipe, ddim_steps(pipe.unet, sched, latents, encode_prompts(pipe, prompts), unconditional(pipe),
                                   guidance, start=start))


def run(unit: ProbeContext, params: dict) -> ProbeOutput:
    """The original starts each trajectory, the submission finishes it; judged and pooled per concept."""
    p = registry.parse_params("completion", params)
    rows = first_rows_per_concept(unit.prompts("attack_prompts"), p.prompts)
    g = unit.task.generation
    finishes = [("concept", None)] + ([("neutral", "")] if p.neutral else [])
    records = []
    for r in rows:
        for i in p.interrupt_steps:
            for how, text in finishes:
                prompt = r.prompt if text is None else text
                key = cache_key({"stage": "completion", "code_version": CODE_VERSION,
                                 "start": unit.original.fingerprint, "model": unit.model.fingerprint,
                                 "prompt": r.prompt, "finish_prompt": prompt, "seed": r.seed, "interrupt": i,
                                 "steps": p.steps, "guidance": p.guidance, "height": g.height, "width": g.width,
                                 "micro_batch": MICRO_BATCH})
                row = PromptRow(f"{r.id}-i{i}" + ("" if text is None else "-neutral"), r.prompt, r.seed, p.guidance,
                                r.concept)
                records.append({"row": row, "seed": r.seed, "interrupt": i, "finish": how, "finish_prompt": prompt,
                                "image_key": key})

    def draw(chunk):
        start_pipe, pipe = unit.original.pipeline(unit.timer), unit.pipeline()

        def one(i):  # one interrupt step: its trajectories started once each, then finished every way
            part = [c for c in chunk if c["interrupt"] == i]
            starts = list(dict.fromkeys((c["row"].prompt, c["seed"]) for c in part))  # once per trajectory
            x = start_latents(start_pipe, [t for t, _ in starts], [s for _, s in starts], i + 1, p.steps,
                              p.guidance, g.height, g.width)
            at = {st: k for k, st in enumerate(starts)}
            x = x[[at[(c["row"].prompt, c["seed"])] for c in part]]
            return part, finish(pipe, x, [c["finish_prompt"] for c in part], i + 1, p.steps, p.guidance)

        # the interrupt steps side by side, one thread each (a step's images are one micro-batch on the
        # one-concept tasks, which alone would leave a core idle); an image does not depend on what runs beside it
        out = {}
        for part, images in side_by_side([lambda i=i: one(i) for i in sorted({c["interrupt"] for c in chunk})],
                                         pipe.device, inference=True):
            out.update(zip(map(id, part), images))
        return [out[id(c)] for c in chunk]

    unit.drawn_images(records, "completion", draw, chunk=MICRO_BATCH * 4,
                      prepare=lambda: (unit.original.pipeline(unit.timer), unit.pipeline()))
    unit.judge(records, "completion")
    rates = unit.rates(records)
    per_finish = {how: unit.rates([rec for rec in records if rec["finish"] == how]) for how, _ in finishes}
    per_interrupt = {str(i): unit.rates([rec for rec in records if rec["interrupt"] == i]) for i in p.interrupt_steps}
    result = {"params": registry.recorded(p), "rates": rates, "by_finish": per_finish, "by_interrupt": per_interrupt,
              "cost": cost_record(len(records), p.steps)}
    return ProbeOutput(result, unit.lines(records, "completion", "attack"))
