"""Errors of checkpoint loading, and the hints they carry (a leaf: every loader imports it)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that cannot be applied; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def compvis_hint(key: str) -> str:
    """A pointer to diffusers' converter for a tensor named in the CompVis/LDM layout ('' otherwise)."""
    if key.startswith(("model.diffusion_model.", "diffusion_model.", "cond_stage_model.")):
        return (" (CompVis/LDM key layout: convert it to diffusers keys with diffusers' "
                "scripts/convert_original_stable_diffusion_to_diffusers.py, or submit a diffusers state dict)")
    return ""
