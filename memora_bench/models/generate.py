"""Batched, deterministic text-to-image sampling over the components of a diffusers SD pipeline.

Every image owns its starting noise: a ``torch.Generator`` seeded with the image's own seed draws its
latent. On CPU a network's output for one row drifts (about 1e-6) with the batch size, but not with the
row's position or its neighbours at a fixed batch size; so the networks always run on a fixed micro-batch
of ``MICRO_BATCH`` rows, padded with copies of the last row. An image is then bit-identical whether it is
generated alone or inside any batch. Sampling is classifier-free guidance with a deterministic scheduler
(DDIM with eta = 0, or LMS), no safety checker.

On CPU each micro-batch runs on one thread, and as many micro-batches run side by side as torch has
threads: the small convolutions of a miniature UNet split poorly across cores (two threads on one batch gave
1.6x one thread here, two single-threaded micro-batches side by side about 2x). A micro-batch's numbers do
not depend on how many run beside it, so images stay bit-identical on any number of cores.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler, LMSDiscreteScheduler
from tqdm.auto import tqdm

from memora_bench.models.parallel import one_thread, side_by_side

__all__ = ["GenerationConfig", "MICRO_BATCH", "NonFiniteError", "decode", "encode_images", "encode_prompts", "generate",
           "initial_latents", "make_scheduler", "map_micro_batches", "one_thread", "project_context_once",
           "sample_latents"]

MICRO_BATCH = 16


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


def encode_images(pipe, images) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 RGB images (N, H, W, 3) to the VAE posterior's mean and standard deviation, times the scaling
    factor, as SD's latents are. Computed in inference mode and returned as clones, which autograd accepts."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().to(pipe.device) / 127.5 - 1
    with torch.inference_mode():
        post = pipe.vae.encode(x).latent_dist
        sf = pipe.vae.config.scaling_factor
        mean, std = post.mean * sf, post.std * sf
    return mean.clone(), std.clone()


def initial_latents(pipe, seeds: list[int], config: GenerationConfig) -> torch.Tensor:
    """One latent per seed, each drawn from its own CPU generator (batch-independent)."""
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    shape = (1, pipe.unet.config.in_channels, config.height // factor, config.width // factor)
    draws = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s))) for s in seeds]
    return torch.cat(draws).to(pipe.device, pipe.unet.dtype)


class _ProjectOnce(torch.nn.Module):
    """A cross-attention key or value projection that reuses its output while its input is the same tensor.

    The text context does not change during one sampling run, so the projections of all 77 context tokens
    are computed at the first step and reused at the others: the very tensor the layer would compute again.
    """

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self._seen = inner, threading.local()  # micro-batches on other threads have their own

    def __deepcopy__(self, memo):
        """A copy of a UNet made while another thread samples with it gets the plain layer (the reuse state
        is per thread and per run, and cannot be copied)."""
        return copy.deepcopy(self.inner, memo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = self._seen
        if getattr(seen, "input", None) is not x:  # held here, so no other tensor can take its identity
            seen.input, seen.output = x, self.inner(x)
        return seen.output


_SWAP_LOCK = threading.Lock()
_SWAPPED: dict[int, tuple[int, list]] = {}  # id(unet) -> (threads inside the block, the layers swapped)


@contextlib.contextmanager
def project_context_once(unet: torch.nn.Module):
    """Within the block, each cross-attention layer of ``unet`` projects a given text context only once.

    Threads may sample with one UNet at once (each has its own reuse state): the layers are swapped in when
    the first thread enters and swapped back when the last one leaves."""
    with _SWAP_LOCK:
        users, swapped = _SWAPPED.get(id(unet), (0, []))
        if users == 0:
            swapped = [m for m in unet.modules() if getattr(m, "is_cross_attention", False)
                       and not isinstance(m.to_k, _ProjectOnce)]
            for m in swapped:
                m.to_k, m.to_v = _ProjectOnce(m.to_k), _ProjectOnce(m.to_v)
        _SWAPPED[id(unet)] = (users + 1, swapped)
    try:
        yield
    finally:
        with _SWAP_LOCK:
            users, swapped = _SWAPPED.pop(id(unet))
            if users > 1:
                _SWAPPED[id(unet)] = (users - 1, swapped)
            else:
                for m in swapped:
                    m.to_k, m.to_v = m.to_k.inner, m.to_v.inner


@torch.inference_mode()
def sample_latents(pipe, cond: torch.Tensor, uncond: torch.Tensor, latents: torch.Tensor, config: GenerationConfig,
                   unet=None) -> torch.Tensor:
    """Run the guided reverse process from ``latents`` (already unit-variance noise) to clean latents."""
    unet = unet or pipe.unet
    scheduler = make_scheduler(pipe, config.scheduler)
    scheduler.set_timesteps(config.steps, device=pipe.device)
    latents = latents * scheduler.init_noise_sigma
    context = torch.cat([uncond.expand(len(cond), -1, -1), cond])
    with project_context_once(unet):
        for t in scheduler.timesteps:
            model_in = scheduler.scale_model_input(torch.cat([latents, latents]), t)
            eps_u, eps_c = unet(model_in, t, encoder_hidden_states=context).sample.chunk(2)
            eps = eps_u + config.guidance * (eps_c - eps_u)
            latents = scheduler.step(eps, t, latents).prev_sample
    return latents


class NonFiniteError(RuntimeError):
    """Generation produced NaN or infinity: the model is broken, and a clamped image would hide it."""


@torch.inference_mode()
def decode(pipe, latents: torch.Tensor) -> np.ndarray:
    """Latents to uint8 RGB images (N, H, W, 3); non-finite values are an error, never a black image."""
    if not torch.isfinite(latents).all():
        raise NonFiniteError("the model produced NaN or infinite latents (its weights or the sampler diverged); "
                             "no image is cached or judged")
    images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    if not torch.isfinite(images).all():
        raise NonFiniteError("the VAE decoded NaN or infinite pixels; no image is cached or judged")
    images = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
    return (images * 255).round().astype(np.uint8)


def _pad(items: list, size: int) -> list:
    return items + [items[-1]] * (size - len(items))


def map_micro_batches(device, fn, starts) -> list:
    """``[fn(i) for i in starts]``, each call in inference mode, side by side
    (:func:`memora_bench.models.parallel.side_by_side`). Results come in the order of ``starts``."""
    return side_by_side([lambda i=i: fn(i) for i in starts], device, inference=True)


def generate(pipe, prompts: list[str], seeds: list[int], config: GenerationConfig, progress: bool = False,
             micro_batch: int = MICRO_BATCH) -> np.ndarray:
    """Images (N, H, W, 3) uint8 for each (prompt, seed) pair, computed in padded micro-batches."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    if not prompts:
        return np.zeros((0, config.height, config.width, 3), np.uint8)
    uncond = map_micro_batches(pipe.device, lambda _: encode_prompts(pipe, _pad([""], micro_batch))[:1], [0])[0]
    with tqdm(total=len(prompts), desc="generate", unit="img", disable=not progress, leave=False) as bar:

        def one(i: int) -> np.ndarray:
            p, s = prompts[i : i + micro_batch], seeds[i : i + micro_batch]
            cond = encode_prompts(pipe, _pad(p, micro_batch))
            latents = initial_latents(pipe, _pad(s, micro_batch), config)
            images = decode(pipe, sample_latents(pipe, cond, uncond, latents, config))[: len(p)]
            bar.update(len(p))
            return images

        return np.concatenate(map_micro_batches(pipe.device, one, range(0, len(prompts), micro_batch)))
