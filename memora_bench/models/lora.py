"""Few-shot LoRA relearning on the UNet, as MemoRa runs diffusers' ``train_text_to_image_lora.py``.

What the reference script does, and this module with it:

1. a peft LoRA adapter (rank r, alpha r, Gaussian init) on ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of
   every UNet attention layer; everything else frozen;
2. per micro-batch: a latent drawn from the VAE posterior of a training image (``latent_dist.sample()``,
   times the scaling factor), Gaussian noise, ``t ~ U{0 .. T-1}``, the noisy latent from the DDPM forward
   process, and the MSE between the UNet's epsilon prediction and the noise; the caption of every image
   is the concept prompt (the text encoder is frozen, so its embedding is computed once);
3. AdamW (lr 1e-4, betas (0.9, 0.999), weight decay 1e-2, eps 1e-8), gradient accumulation over
   ``accumulation`` micro-batches of 1 image, gradient-norm clipping at 1.0, a cosine schedule with no
   warm-up over the whole run (or, as mini-v4 pins, a constant rate: then the checkpoint at budget b is
   exactly what an attacker who stops at b gets); a *step* (a budget unit) is one optimizer step. The micro-batches of a step
   are drawn in the reference's order and computed in one forward pass (the same gradient: the UNet has no
   batch statistics), 2-4x faster on CPU than one image per pass;
4. images are shuffled each epoch by a seeded generator.

Deviation: the reference also flips images at random (``--random_flip``); a mirrored digit is another
symbol, so the miniature world does not flip. One run is checkpointed at every budget of the sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from memora_bench.models import BUILD_LOCK

TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
ADAPTER = "memora"


@dataclass(frozen=True)
class LoraParams:
    rank: int = 4
    alpha: int = 4
    lr: float = 1e-4
    accumulation: int = 4
    max_grad_norm: float = 1.0
    weight_decay: float = 1e-2
    warmup: int = 0
    schedule: str = "cosine"  # "cosine" over the whole run (the reference's), or "constant"

    def key(self) -> dict:
        """What a cache key records (the schedule only when not the reference's, so older keys stand)."""
        d = dict(self.__dict__)
        if d["schedule"] == "cosine":
            del d["schedule"]
        return d


def add_adapter(unet, params: LoraParams, seed: int) -> None:
    """Add a Gaussian-initialised LoRA adapter to the UNet's attention projections (seeded)."""
    from peft import LoraConfig

    with BUILD_LOCK:  # seeding, drawing and creating parameters: not interleaved with another thread's
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=params.rank, lora_alpha=params.alpha, init_lora_weights="gaussian",
                                    target_modules=list(TARGET_MODULES)), adapter_name=ADAPTER)


def lora_state_dict(unet) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(unet, adapter_name=ADAPTER).items()}


def load_adapter(unet, state: dict[str, torch.Tensor], params: LoraParams, scale: float = 1.0) -> None:
    """Attach a trained adapter to ``unet`` (which has none yet) at ``scale``; every key must load."""
    from peft import LoraConfig
    from peft.utils import set_peft_model_state_dict

    with BUILD_LOCK:
        unet.add_adapter(LoraConfig(r=params.rank, lora_alpha=params.alpha, target_modules=list(TARGET_MODULES)),
                         adapter_name=ADAPTER)
    result = set_peft_model_state_dict(unet, state, adapter_name=ADAPTER)
    unexpected = getattr(result, "unexpected_keys", []) or []
    if unexpected:
        raise ValueError(f"LoRA state has keys the UNet does not: {unexpected[:3]}")
    set_scale(unet, scale)


def set_scale(unet, scale: float) -> None:
    """Multiply the adapter's contribution by ``scale`` (0 gives the base model back exactly)."""
    from peft.tuners.lora import LoraLayer

    for module in unet.modules():
        if isinstance(module, LoraLayer) and ADAPTER in module.scaling:
            module.scaling[ADAPTER] = scale * module.lora_alpha[ADAPTER] / module.r[ADAPTER]


def train(unet, scheduler_config: dict, latent_mean: torch.Tensor, latent_std: torch.Tensor, context: torch.Tensor,
          params: LoraParams, budgets: list[int], seed: int,
          on_budget: Callable[[int, dict[str, torch.Tensor], float], None], progress: bool = False) -> None:
    """Train a LoRA for ``max(budgets)`` optimizer steps; call ``on_budget(step, lora_state, loss)`` at each budget.

    ``latent_mean``/``latent_std`` are the VAE posterior of the training images (already multiplied by the
    scaling factor); ``context`` is the concept prompt's text embedding (1, 77, D), or one caption's per
    training image (N, 77, D). Budget 0 is the untouched model and is not reported here.
    """
    from diffusers import DDPMScheduler
    from tqdm.auto import tqdm

    total = max(budgets)
    dev = next(unet.parameters()).device  # random draws stay on CPU generators, then move (device-independent)
    context = context.to(dev)
    noise_sched = DDPMScheduler.from_config(scheduler_config)
    gen = torch.Generator().manual_seed(seed)
    unet.requires_grad_(False)
    add_adapter(unet, params, seed)
    trainable = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=params.lr, betas=(0.9, 0.999), weight_decay=params.weight_decay, eps=1e-8)
    n = len(latent_mean)
    if len(context) not in (1, n):
        raise ValueError(f"context must have 1 row or one per training image ({n}), got {len(context)}")
    order: list[int] = []
    unet.train()
    losses: list[float] = []
    with torch.enable_grad(), tqdm(total=total, desc="memora lora", disable=not progress, leave=False) as bar:
        for step in range(1, total + 1):
            for g in opt.param_groups:
                g["lr"] = params.lr * (_cosine(step - 1, total, params.warmup) if params.schedule == "cosine" else 1.0)
            z, noise, t, picked = _micro_batches(latent_mean, latent_std, order, n, params.accumulation,
                                                 noise_sched.config.num_train_timesteps, gen)
            z, noise, t = z.to(dev), noise.to(dev), t.to(dev)
            # the accumulated micro-batches of one image each, in one forward pass: the UNet treats every
            # image on its own (GroupNorm, no batch statistics), so the gradient of the mean of the per-image
            # losses is the accumulated gradient of (loss_i / accumulation)
            pred = unet(noise_sched.add_noise(z, noise, t), t,
                        encoder_hidden_states=context.expand(len(z), -1, -1) if len(context) == 1
                        else context[picked]).sample
            per_image = (pred.float() - noise.float()).pow(2).flatten(1).mean(1)
            per_image.mean().backward()
            losses.extend(per_image.tolist())
            torch.nn.utils.clip_grad_norm_(trainable, params.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            bar.update(1)
            if step in budgets:
                on_budget(step, lora_state_dict(unet), float(sum(losses[-4 * params.accumulation:]) /
                                                              min(len(losses), 4 * params.accumulation)))
    unet.eval()
    unet.requires_grad_(False)


def _micro_batches(latent_mean, latent_std, order: list[int], n: int, count: int, timesteps: int, gen):
    """The ``count`` micro-batches of one optimizer step, drawn in the reference's order (per image: the next
    image of a seeded shuffle, its posterior sample, the noise, the timestep); ``order`` is consumed. Also
    returns the images' indices."""
    zs, noises, ts, picked = [], [], [], []
    for _ in range(count):
        if not order:
            order.extend(torch.randperm(n, generator=gen).tolist())
        i = order.pop()
        picked.append(i)
        eps_z = torch.randn(latent_mean[i : i + 1].shape, generator=gen).to(latent_mean.device)
        zs.append(latent_mean[i : i + 1] + latent_std[i : i + 1] * eps_z)
        noises.append(torch.randn(zs[-1].shape, generator=gen))
        ts.append(torch.randint(0, timesteps, (1,), generator=gen))
    return torch.cat(zs), torch.cat(noises), torch.cat(ts), picked


def _cosine(step: int, total: int, warmup: int) -> float:
    """diffusers' ``get_scheduler("cosine")``: linear warm-up, then half a cosine from 1 to 0."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
