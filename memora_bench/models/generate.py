"""Batched, deterministic text-to-image sampling over the components of a diffusers SD pipeline.

Every image owns its starting noise: a ``torch.Generator`` seeded with the image's own seed draws its
latent, so an image is the same whether it is generated alone or inside any batch. Sampling is
classifier-free guidance with a deterministic scheduler (DDIM with eta = 0, or LMS), no safety checker.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch


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


@torch.inference_mode()
def generate(pipe, prompts: list[str], seeds: list[int], config: GenerationConfig, batch_size: int = 64,
             progress: bool = False) -> np.ndarray:
    """Images (N, H, W, 3) uint8 for each (prompt, seed) pair, generated in batches."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    from tqdm.auto import tqdm

    uncond = encode_prompts(pipe, [""])
    out = []
    starts = range(0, len(prompts), batch_size)
    for i in tqdm(starts, desc="generate", unit="batch", disable=not progress):
        p, s = prompts[i : i + batch_size], seeds[i : i + batch_size]
        latents = sample_latents(pipe, encode_prompts(pipe, p), uncond, initial_latents(pipe, s, config), config)
        out.append(decode(pipe, latents))
    return np.concatenate(out) if out else np.zeros((0, config.height, config.width, 3), np.uint8)
