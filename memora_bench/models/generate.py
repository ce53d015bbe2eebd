"""Batched, deterministic text-to-image sampling over the components of a diffusers SD pipeline.

Every image owns its starting noise: a ``torch.Generator`` seeded with the image's own seed draws its
latent. On CPU a network's output for one row drifts (about 1e-6) with the batch size, but not with the
row's position or its neighbours at a fixed batch size; so the networks always run on a fixed micro-batch
of ``MICRO_BATCH`` rows, padded with copies of the last row. An image is then bit-identical whether it is
generated alone or inside any batch. Sampling is classifier-free guidance with a deterministic scheduler
(DDIM with eta = 0, or LMS), no safety checker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MICRO_BATCH = 32


@dataclass(frozen=True)
class GenerationConfig:
    """Everything besides (prompt, seed) that determines an image."""

    scheduler: str = "ddim"
    steps: int = 50
    guidance: float = 7.5
    height: int = 32
    width: int = 32


def make_scheduler(pipe, name: str):
    """A fresh scheduler of kind ``name`` built from the pipeline's own scheduler config."""
    from diffusers import DDIMScheduler, LMSDiscreteScheduler

    kinds = {"ddim": DDIMScheduler, "lms": LMSDiscreteScheduler}
    if name not in kinds:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {sorted(kinds)}")
    return kinds[name].from_config(pipe.scheduler.config)


@torch.inference_mode()
def encode_prompts(pipe, prompts: list[str]) -> torch.Tensor:
    """CLIP last hidden states (N, 77, D) for prompts, padded to the tokenizer's max length as SD does."""
    tok = pipe.tokenizer(
        prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    return pipe.text_encoder(tok.input_ids.to(pipe.device))[0]


def initial_latents(pipe, seeds: list[int], config: GenerationConfig) -> torch.Tensor:
    """One latent per seed, each drawn from its own CPU generator (batch-independent)."""
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    shape = (1, pipe.unet.config.in_channels, config.height // factor, config.width // factor)
    draws = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s))) for s in seeds]
    return torch.cat(draws).to(pipe.device, pipe.unet.dtype)


@torch.inference_mode()
def sample_latents(pipe, cond: torch.Tensor, uncond: torch.Tensor, latents: torch.Tensor, config: GenerationConfig,
                   unet=None) -> torch.Tensor:
    """Run the guided reverse process from ``latents`` (already unit-variance noise) to clean latents."""
    unet = unet or pipe.unet
    scheduler = make_scheduler(pipe, config.scheduler)
    scheduler.set_timesteps(config.steps, device=pipe.device)
    latents = latents * scheduler.init_noise_sigma
    context = torch.cat([uncond.expand(len(cond), -1, -1), cond])
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        eps_u, eps_c = unet(model_in, t, encoder_hidden_states=context).sample.chunk(2)
        eps = eps_u + config.guidance * (eps_c - eps_u)
        latents = scheduler.step(eps, t, latents).prev_sample
    return latents


@torch.inference_mode()
def decode(pipe, latents: torch.Tensor) -> np.ndarray:
    """Latents to uint8 RGB images (N, H, W, 3)."""
    images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    images = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
    return (images * 255).round().astype(np.uint8)


def _pad(items: list, size: int) -> list:
    return items + [items[-1]] * (size - len(items))


@torch.inference_mode()
def generate(pipe, prompts: list[str], seeds: list[int], config: GenerationConfig, progress: bool = False,
             micro_batch: int = MICRO_BATCH) -> np.ndarray:
    """Images (N, H, W, 3) uint8 for each (prompt, seed) pair, computed in padded micro-batches."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    from tqdm.auto import tqdm

    uncond = encode_prompts(pipe, _pad([""], micro_batch))[:1]
    out = []
    with tqdm(total=len(prompts), desc="generate", unit="img", disable=not progress, leave=False) as bar:
        for i in range(0, len(prompts), micro_batch):
            p, s = prompts[i : i + micro_batch], seeds[i : i + micro_batch]
            cond = encode_prompts(pipe, _pad(p, micro_batch))
            latents = initial_latents(pipe, _pad(s, micro_batch), config)
            out.append(decode(pipe, sample_latents(pipe, cond, uncond, latents, config))[: len(p)])
            bar.update(len(p))
    return np.concatenate(out) if out else np.zeros((0, config.height, config.width, 3), np.uint8)
