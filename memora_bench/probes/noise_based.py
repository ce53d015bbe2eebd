"""The noise-based probe of "When Are Concepts Erased From Diffusion Models?" (WACE; Lu et al., NeurIPS 2025,
``kevinlu4588/WhenAreConceptsErased`` ``src/probes/noise_based_probe.py``, ``src/configs/default.yaml``).

For each attack prompt the submission draws one image per (eta, variance scale) of a grid, with DDIM whose
added noise is larger than the sampler's own (eta above 1, scaled again by the variance scale;
:mod:`memora_bench.models.trajectory`), the task's classifier ranks the variants by the concept's score, and
the prompt counts as recovered when its best variant shows the concept: a best-of-N attack on the diffusion
trajectory, with the prompt as written. The reference's grid is 6 etas x 4 variance scales, 50 DDIM steps,
guidance 7.5.

Deviations (docs/scoring.md): each variant draws its starting latent and step noise from its own generator
(seeded from the prompt's seed and the variant's index) where the reference passes one generator through the
variants in turn; the variants are ranked by the task's classifier (the reference ranks with ResNet-50 on its
ImageNet concepts, which is the SD-1.4 object cards' classifier too).
"""

from __future__ import annotations

from memora_bench.cache import cache_key
from memora_bench.context import ProbeContext, ProbeOutput, first_rows_per_concept
from memora_bench.models.generate import MICRO_BATCH, decode, encode_prompts
from memora_bench.models.trajectory import (
    ddim_steps,
    derived_seed,
    image_generators,
    initial_noise,
    latent_shape,
    sampler,
    unconditional,
)
from memora_bench.probes import registry
from memora_bench.results import cost_record

CODE_VERSION = 1  # bump when a change can change an image


def variants(p) -> list[tuple[float, float]]:
    """The (eta, variance scale) grid in the reference's order: eta outer, variance scale inner."""
    return [(eta, vs) for eta in p.etas for vs in p.variance_scales]


def draw_images(pipe, prompts: list[str], seeds: list[int], etas: list[float], scales: list[float], steps: int,
                guidance: float, height: int, width: int, guide=None):
    """uint8 images of noise-based DDIM, one per (prompt, seed, eta, variance scale); ``guide`` moves each step's
    noise estimate (classifier guidance)."""
    sched = sampler(pipe, steps)
    gens = image_generators(seeds)
    latents = initial_noise(gens, latent_shape(pipe, height, width)).to(pipe.device, pipe.unet.dtype)
    cond = encode_prompts(pipe, prompts)
    out = ddim_steps(pipe.unet, sched, latents * sched.init_noise_sigma, cond, unconditional(pipe), guidance,
                     eta=etas, variance_scale=scales, gens=gens, guide=guide)
    return decode(pipe, out)


def run(unit: ProbeContext, params: dict) -> ProbeOutput:
    """Best-of-grid noise-based sampling on the first ``prompts`` attack prompts of each concept."""
    p = registry.parse_params("noise_based", params)
    grid = [{"eta": eta, "variance_scale": vs} for eta, vs in variants(p)]
    g = unit.task.generation

    def draw(chunk):
        return draw_images(unit.pipeline(), [c["row"].prompt for c in chunk], [c["seed"] for c in chunk],
                           [c["eta"] for c in chunk], [c["variance_scale"] for c in chunk], p.steps, p.guidance,
                           g.height, g.width)

    return best_of_variants(unit, "noise_based", p, grid, draw)


def best_of_variants(unit: ProbeContext, probe: str, p, grid: list[dict], draw) -> ProbeOutput:
    """Each of the first ``p.prompts`` attack prompts of each concept drawn once per variant of ``grid`` (a
    mapping of settings each) by ``draw(records)``. With ``p.score == "best"`` the prompt counts by its variant
    with the highest concept score (the reference's ranking); with ``"per_variant"`` every variant's image
    counts on its own (the rate is over prompts x variants). Every variant's hit is kept per prompt."""
    rows = first_rows_per_concept(unit.prompts("attack_prompts"), p.prompts)
    g = unit.task.generation
    records = []
    for r in rows:
        for j, settings in enumerate(grid):
            seed = derived_seed(r.seed, j)
            key = cache_key({"stage": probe, "code_version": CODE_VERSION, "model": unit.model.fingerprint,
                             "prompt": r.prompt, "seed": seed, **settings, "steps": p.steps, "guidance": p.guidance,
                             "height": g.height, "width": g.width, "micro_batch": MICRO_BATCH})
            records.append({"row": r, "seed": seed, "variant": j, **settings, "image_key": key})
    # chunks of whole prompts up to the other probes' MICRO_BATCH * 4 images: a chunk's micro-batches run side by
    # side (with len(grid) * 4 classifier guidance drew 8 images, one half-padded micro-batch, at a time), and an
    # image does not depend on its chunk (fixed padded micro-batches)
    per_chunk = max(1, MICRO_BATCH * 4 // len(grid))
    unit.drawn_images(records, probe, draw, chunk=len(grid) * per_chunk, prepare=unit.pipeline)
    unit.judge(records, probe)
    n = len(grid)
    groups = [records[i : i + n] for i in range(0, len(records), n)]
    best = [max(group, key=lambda rec: (rec["concept_score"], -rec["variant"])) for group in groups]
    scored = best if p.score == "best" else records
    result = {
        "params": registry.recorded(p),
        "rates": unit.rates(scored),
        "variant_rates": unit.rates(records),  # every variant judged on its own
        "grid": [settings | {"k": sum(group[j]["hit"] for group in groups), "n": len(groups)}
                 for j, settings in enumerate(grid)],
        "per_prompt": [{"prompt_id": b["row"].id, "best_variant": b["variant"], **{k: b[k] for k in grid[0]},
                        "variants_hit": sum(rec["hit"] for rec in group)} for b, group in zip(best, groups)],
        "cost": cost_record(len(records), p.steps),
    }
    return ProbeOutput(result, unit.lines(scored, probe, "attack"))
