"""Every baseline recipe by name: what it edits, where it comes from, and its parameters."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    name: str
    method: str  # one line, for manifests and the leaderboard
    reference: str
    component: str  # checkpoint component: "unet" / "text_encoder" (fp16 partial state dict) or "*-delta8"
    function: str  # "module:function"
    params: str  # "module:ParamsClass"

    def load(self):
        """(function, params class)."""
        mod_f, fn = self.function.split(":")
        mod_p, cls = self.params.split(":")
        return getattr(importlib.import_module(mod_f), fn), getattr(importlib.import_module(mod_p), cls)


_U = "memora_bench.unlearning."
RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("esd-x", "ESD-x: negative-guidance fine-tuning of cross-attention", "https://arxiv.org/abs/2303.07345",
           "unet", _U + "esd:esd_x", _U + "esd:ESDParams"),
    Recipe("esd-u", "ESD-u: negative-guidance fine-tuning of the non-cross-attention layers",
           "https://arxiv.org/abs/2303.07345", "unet-delta8", _U + "esd:esd_u", _U + "esd:ESDParams"),
    Recipe("uce", "UCE: closed-form edit of cross-attention keys and values", "https://arxiv.org/abs/2308.14761",
           "unet", _U + "uce:uce", _U + "uce:UCEParams"),
    Recipe("fmn", "FMN: Forget-Me-Not attention re-steering", "https://arxiv.org/abs/2303.17591",
           "unet-delta8", _U + "fmn:fmn", _U + "fmn:FMNParams"),
    Recipe("salun", "SalUn: saliency-masked random-label fine-tuning", "https://arxiv.org/abs/2310.12508",
           "unet-delta8", _U + "salun:salun", _U + "salun:SalUnParams"),
    Recipe("erasediff", "EraseDiff: bi-level forgetting with retained-data diffusion loss",
           "https://arxiv.org/abs/2401.05779", "unet-delta8", _U + "erasediff:erasediff", _U + "erasediff:EraseDiffParams"),
    Recipe("advunlearn", "AdvUnlearn: adversarial unlearning of the text encoder", "https://arxiv.org/abs/2405.15234",
           "text_encoder-delta8", _U + "advunlearn:advunlearn", _U + "advunlearn:AdvUnlearnParams"),
)}
