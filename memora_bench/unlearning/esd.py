"""ESD: Erasing Concepts from Diffusion Models (Gandikota et al., ICCV 2023; rohitgandikota/erasing).

The model is fine-tuned so that, under the concept's prompt, it predicts the frozen model's noise *guided away*
from the concept: target = eps*(x_t, "") - eta (eps*(x_t, c) - eps*(x_t, "")). Each step draws x_t by
sampling with the model being trained from fresh noise, CFG ``start_guidance``, up to a random DDIM step.
ESD-x trains the cross-attention layers (``attn2``), ESD-u every other Linear/Conv2d layer.

Defaults are the paper's (1000 iterations, batch 1, Adam, negative guidance 1.0, start guidance 3, DDIM 50);
the learning rate is scaled with the pre-training rate: SD's 1e-4 -> ESD's 1e-5 becomes 5e-4 -> 5e-5 here.
Deviation: the reference code pairs the DDIM step with a DDPM timestep drawn from a window that does not
match the sampled noise level; we use the DDIM step's own timestep, as the authors' diffusers port does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from memora_bench.unlearning.common import (
    Target,
    changed,
    ddim_partial_sample,
    module_params,
    text_context,
    train_only,
)


@dataclass(frozen=True)
class ESDParams:
    iterations: int = 1000
    lr: float = 5e-5
    negative_guidance: float = 1.0
    start_guidance: float = 3.0
    ddim_steps: int = 50
    seed: int = 0


def _esd(pipe, target: Target, p: ESDParams, rule: str) -> dict[str, torch.Tensor]:
    from tqdm.auto import tqdm

    frozen = copy.deepcopy(pipe.unet).eval().requires_grad_(False)
    unet = pipe.unet
    params = module_params(unet, rule)
    opt = torch.optim.Adam(train_only(unet, params), lr=p.lr)
    prompts = list(target.erased)  # the concept's name, as the paper erases "Van Gogh" or "car"
    ctx = text_context(pipe, prompts)
    null = text_context(pipe, [""])
    gen = torch.Generator().manual_seed(p.seed)
    unet.train()
    for it in tqdm(range(p.iterations), desc=f"esd-{rule} {target.task}", leave=False):
        c = ctx[it % len(ctx)][None]  # several concepts (a pair task) take turns
        stop = int(torch.randint(0, p.ddim_steps, (1,), generator=gen))
        x_t, t = ddim_partial_sample(unet, pipe, c, null, p.start_guidance, p.ddim_steps, stop, gen)
        with torch.no_grad():
            e0 = frozen(x_t, t, encoder_hidden_states=null).sample
            ep = frozen(x_t, t, encoder_hidden_states=c).sample
        loss = F.mse_loss(unet(x_t, t, encoder_hidden_states=c).sample, e0 - p.negative_guidance * (ep - e0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    unet.eval().requires_grad_(False)
    return changed(params)


def esd_x(pipe, target: Target, p: ESDParams) -> dict[str, torch.Tensor]:
    return _esd(pipe, target, p, "xattn")


def esd_u(pipe, target: Target, p: ESDParams) -> dict[str, torch.Tensor]:
    return _esd(pipe, target, p, "noxattn")
