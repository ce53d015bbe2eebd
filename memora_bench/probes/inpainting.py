"""The inpainting probe of "When Are Concepts Erased From Diffusion Models?" (WACE; Lu et al., NeurIPS 2025,
``kevinlu4588/WhenAreConceptsErased`` ``src/probes/inpainting_probe.py``): visual context from the concept's
own image.

For each attack prompt, the original model's image of that prompt (the plain probe's image, the reference's
"base images") loses its centre (a square of half the side: the reference's 256 px of 512), and the submission
paints it back under the prompt, with diffusers' inpainting rule for a text-to-image UNet
(:func:`memora_bench.models.trajectory.inpaint`; 50 steps, guidance 7.5, strength 1: the pipeline's
defaults). The finished image is judged whole: a model that cannot draw the concept leaves a broken one.
``neutral`` also paints each under the empty prompt (the issue's "neutral prompt"): the visual context alone.

Deviations (docs/scoring.md): DDIM instead of the SD-1.4 folder's default PNDM sampler (one sampler for every
trajectory probe here); the known image is encoded to the VAE posterior's mean instead of a sample; the
starting noise is the prompt's seed's, as every image here.
"""

from __future__ import annotations

import torch

from memora_bench.cache import cache_key
from memora_bench.context import ProbeContext, ProbeOutput, first_rows_per_concept
from memora_bench.models.generate import MICRO_BATCH, GenerationConfig, decode, encode_images, encode_prompts, initial_latents
from memora_bench.models.trajectory import center_mask, inpaint, sampler, unconditional
from memora_bench.probes import registry
from memora_bench.results import cost_record
from memora_bench.specs import PromptRow

CODE_VERSION = 1  # bump when a change can change an image


def paint(pipe, known_images, prompts: list[str], seeds: list[int], fraction: float, steps: int, guidance: float):
    """uint8 images: the centre of each known image painted by ``pipe``'s model under its prompt."""
    h, w = known_images[0].shape[:2]
    known, _ = encode_images(pipe, known_images)
    mask = torch.nn.functional.interpolate(center_mask(h, w, fraction), size=known.shape[-2:]).to(known)
    noise = initial_latents(pipe, seeds, GenerationConfig("ddim", steps, guidance, h, w))
    sched = sampler(pipe, steps)
    return decode(pipe, inpaint(pipe.unet, sched, known, mask, noise, encode_prompts(pipe, prompts),
                                unconditional(pipe), guidance))


def run(unit: ProbeContext, params: dict) -> ProbeOutput:
    """The submission paints the centre of the original's image of each attack prompt back."""
    p = registry.parse_params("inpainting", params)
    rows = first_rows_per_concept(unit.prompts("attack_prompts"), p.prompts)
    sources = unit.images(rows, "attack", model=unit.original)
    g = unit.task.generation
    finishes = [("concept", None)] + ([("neutral", "")] if p.neutral else [])
    records = []
    for r, src in zip(rows, sources):
        for how, text in finishes:
            prompt = r.prompt if text is None else text
            key = cache_key({"stage": "inpainting", "code_version": CODE_VERSION, "model": unit.model.fingerprint,
                             "source": src["image_key"], "prompt": prompt, "seed": r.seed, "mask": p.mask_fraction,
                             "steps": p.steps, "guidance": p.guidance, "micro_batch": MICRO_BATCH})
            row = r if text is None else PromptRow(f"{r.id}-neutral", r.prompt, r.seed, r.guidance, r.concept)
            records.append({"row": row, "seed": r.seed, "source": src["image"], "finish": how, "finish_prompt": prompt,
                            "image_key": key})

    def draw(chunk):
        return paint(unit.pipeline(), [c["source"] for c in chunk], [c["finish_prompt"] for c in chunk],
                     [c["seed"] for c in chunk], p.mask_fraction, p.steps, p.guidance)

    unit.drawn_images(records, "inpainting", draw, chunk=MICRO_BATCH * 4, prepare=unit.pipeline)
    unit.judge(records, "inpainting")
    by_finish = {how: unit.rates([rec for rec in records if rec["finish"] == how]) for how, _ in finishes}
    result = {"params": registry.recorded(p), "rates": unit.rates(records), "by_finish": by_finish,
              "cost": cost_record(len(records), p.steps), "image_size": [g.height, g.width]}
    return ProbeOutput(result, unit.lines(records, "inpainting", "attack"))
