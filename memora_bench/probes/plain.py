"""The plain probe: the task's attack prompts and seeds as written (UnlearnDiffAtk's "pre-attack ASR")."""

from __future__ import annotations

def run(unit, params: dict) -> tuple[dict, list[dict]]:
    """Generate (or fetch) one image per (prompt, seed), judge it, and return (probe result, image lines)."""
    from memora_bench.runner import image_lines, rates_by_concept, task_prompts

    from memora_bench.probes.registry import parse_params

    parse_params("plain", params)  # it has none: any given is an error
    records = unit.judge(unit.images(task_prompts(unit.task, "attack_prompts"), "attack"), "attack")
    result = {
        "params": {},
        "rates": rates_by_concept(unit, records),
        "cost": {"images": len(records), "model_evaluations": len(records) * unit.task.generation.steps * 2},
    }
    return result, image_lines(records, "plain", "attack")
