"""The classifier-guidance probe of "When Are Concepts Erased From Diffusion Models?" (WACE; Lu et al.,
NeurIPS 2025, ``kevinlu4588/WhenAreConceptsErased`` ``src/probes/noise_based_probe.py`` with
``use_classifier_guidance``, ``guided_generation_latent``).

For each attack prompt the submission draws one image per (classifier scale, eta) of a grid with DDIM whose
noise estimate is pushed, at every step, along the gradient of the task classifier's log-probability of the
concept (:func:`memora_bench.models.trajectory.classifier_guide`), and the prompt counts by its best variant
(:func:`memora_bench.probes.noise_based.best_of_variants`).

Deviations (docs/scoring.md): the reference's classifier reads noisy latents (one trained per concept, with the
timestep as input); here the task's image classifier reads the image decoded from each step's clean estimate,
so it needs a differentiable classifier (the miniature world's; a task whose classifier is not is refused before
any work). The reference's scales (25-193, for its latent classifier) do not carry over to another classifier:
a suite pins its own.
"""

from __future__ import annotations

from memora_bench.classifiers.registry import DIFFERENTIABLE
from memora_bench.context import ProbeContext, ProbeOutput
from memora_bench.models.trajectory import classifier_guide
from memora_bench.probes import registry
from memora_bench.probes.noise_based import best_of_variants, draw_images


def preflight(task, params: dict) -> str | None:
    """A task whose classifiers cannot give a gradient cannot run this probe (None: it can)."""
    other = [ref.name for ref in task.classifiers if ref.name not in DIFFERENTIABLE]
    if other:
        return (f"classifier guidance needs a differentiable classifier; task {task.name!r} is judged by "
                f"{', '.join(other)} (differentiable here: {', '.join(sorted(DIFFERENTIABLE))}); leave the probe "
                "out with --probes")
    return None


def run(unit: ProbeContext, params: dict) -> ProbeOutput:
    p = registry.parse_params("classifier_guidance", params)
    grid = [{"scale": s, "eta": eta} for s in p.scales for eta in p.etas]
    g = unit.task.generation

    def draw(chunk):
        labels = list(dict.fromkeys(c["row"].concept for c in chunk))
        if len(labels) > 1:  # a chunk of whole prompts may span concepts, judged by different classifiers
            return [im for lab in labels for im in draw([c for c in chunk if c["row"].concept == lab])]
        clf, _ = unit.classifier_for(labels[0])
        j = clf.labels.index(labels[0])
        pipe = unit.pipeline()
        guide = classifier_guide(pipe, lambda images: clf.log_probs(images)[:, j], [c["scale"] for c in chunk])
        return draw_images(pipe, [c["row"].prompt for c in chunk], [c["seed"] for c in chunk],
                           [c["eta"] for c in chunk], [1.0] * len(chunk), p.steps, p.guidance, g.height, g.width,
                           guide=guide)

    return best_of_variants(unit, "classifier_guidance", p, grid, draw)
