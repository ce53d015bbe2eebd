"""The plain probe: the task's attack prompts and seeds as written (UnlearnDiffAtk's "pre-attack ASR")."""

from __future__ import annotations

from memora_bench.context import ProbeContext, ProbeOutput
from memora_bench.probes.registry import parse_params
from memora_bench.results import cost_record


def run(ctx: ProbeContext, params: dict) -> ProbeOutput:
    """Generate (or fetch) one image per (prompt, seed), judge it, and return (probe result, image lines)."""
    parse_params("plain", params)  # it has none: any given is an error
    records = ctx.judge(ctx.images(ctx.prompts("attack_prompts"), "attack"), "attack")
    result = {"params": {}, "rates": ctx.rates(records),
              "cost": cost_record(len(records), ctx.task.generation.steps)}
    return ProbeOutput(result, ctx.lines(records, "plain", "attack"))
