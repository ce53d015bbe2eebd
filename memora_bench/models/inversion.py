"""Deterministic DDIM inversion, partial denoising and spherical interpolation, for MemoRa.

Notation: a sampler with ``steps`` DDIM steps visits timesteps ``T[0] > T[1] > ... > T[steps-1]`` (for SD's
settings and 50 steps: 981, 961, ..., 1); a latent "at step k" is at noise level ``T[k]``. With
alpha-bar ``a(t)`` (``a(-step) = final_alpha_cumprod``) and the guided noise prediction ``e``:

- one **sampling** step from ``T[k]`` to ``t' = T[k] - step``:
  ``x0 = (x - sqrt(1 - a(T[k])) e) / sqrt(a(T[k]))``, ``x' = sqrt(a(t')) x0 + sqrt(1 - a(t')) e``
  (``DDIMScheduler.step`` with eta = 0);
- one **inversion** step from ``t' `` up to ``T[k]``: the same two lines with the roles of the two
  alpha-bars swapped, ``e`` evaluated at ``(x, T[k])`` (``DDIMInverseScheduler.step``).

Inverting a clean latent to step ``k`` runs the inversion steps for ``T[steps-1], ..., T[k]``; denoising
from step ``k`` runs the sampling steps for ``T[k], ..., T[steps-1]``. When ``e`` depends on the timestep
only, the two are exact inverses (tested). Every network call runs on a fixed padded micro-batch, as in
:mod:`memora_bench.models.generate`, so results do not depend on how work is batched.

The reference implementation (gmum/MemoRa ``src/utils/latent_iversion.py``) keeps the latent one step
below the one it restarts sampling from; this implementation is exact (docs/scoring.md).
"""

from __future__ import annotations

import torch

from memora_bench.models.generate import MICRO_BATCH, map_micro_batches


def sampler(pipe, steps: int):
    """A DDIM scheduler built from the pipeline's config, with ``steps`` timesteps set."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    return sched


def _pad_rows(x: torch.Tensor, size: int) -> torch.Tensor:
    if len(x) == size:
        return x
    return torch.cat([x, x[-1:].expand(size - len(x), *x.shape[1:])])


@torch.inference_mode()
def guided_eps(unet, x: torch.Tensor, t, cond: torch.Tensor, uncond: torch.Tensor, guidance: float,
               micro_batch: int = MICRO_BATCH) -> torch.Tensor:
    """Classifier-free-guided noise prediction, computed on fixed padded micro-batches of ``x`` (side by side
    on CPU, as :func:`memora_bench.models.generate.map_micro_batches` runs them)."""

    def one(i: int) -> torch.Tensor:
        xi, ci = x[i : i + micro_batch], cond[i : i + micro_batch]
        n = len(xi)
        xi, ci = _pad_rows(xi, micro_batch), _pad_rows(ci, micro_batch)
        context = torch.cat([uncond.expand(micro_batch, -1, -1), ci])
        eps_u, eps_c = unet(torch.cat([xi, xi]), t, encoder_hidden_states=context).sample.chunk(2)
        return (eps_u + guidance * (eps_c - eps_u))[:n]

    return torch.cat(map_micro_batches(x.device, one, range(0, len(x), micro_batch)))


def _alpha(sched, t: int) -> torch.Tensor:
    return sched.alphas_cumprod[t] if t >= 0 else sched.final_alpha_cumprod


def _move(x: torch.Tensor, eps: torch.Tensor, a_from: torch.Tensor, a_to: torch.Tensor) -> torch.Tensor:
    """The deterministic DDIM update from alpha-bar ``a_from`` to ``a_to`` with noise estimate ``eps``."""
    x0 = (x - (1 - a_from).sqrt() * eps) / a_from.sqrt()
    return a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps


@torch.inference_mode()
def invert(unet, sched, latents: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, guidance: float,
           to_step: int) -> torch.Tensor:
    """DDIM-invert clean latents up to the noise level of sampling step ``to_step``."""
    timesteps = [int(t) for t in sched.timesteps]
    if not 0 <= to_step < len(timesteps):
        raise ValueError(f"to_step must be in [0, {len(timesteps)}), got {to_step}")
    ratio = sched.config.num_train_timesteps // sched.num_inference_steps
    x = latents
    for t in reversed(timesteps[to_step:]):
        eps = guided_eps(unet, x, t, cond, uncond, guidance)
        x = _move(x, eps, _alpha(sched, t - ratio), _alpha(sched, t))
    return x


@torch.inference_mode()
def denoise_from(unet, sched, latents: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, guidance: float,
                 from_step: int) -> torch.Tensor:
    """Run the DDIM sampling steps from step ``from_step`` to the end; returns clean latents."""
    timesteps = [int(t) for t in sched.timesteps]
    ratio = sched.config.num_train_timesteps // sched.num_inference_steps
    x = latents
    for t in timesteps[from_step:]:
        eps = guided_eps(unet, x, t, cond, uncond, guidance)
        x = _move(x, eps, _alpha(sched, t), _alpha(sched, t - ratio))
    return x


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, dot_threshold: float = 0.9995) -> torch.Tensor:
    """Spherical interpolation between two latents (flattened), as MemoRa interpolates inverted pairs.

    ``sin((1-t) w) / sin w * a + sin(t w) / sin w * b`` with ``cos w`` the cosine between ``a`` and ``b``.
    When the two are nearly parallel (``|cos w| > dot_threshold``) ``sin w`` vanishes and the formula is
    unstable, so it falls back to linear interpolation.
    """
    fa, fb = a.reshape(-1).double(), b.reshape(-1).double()
    cos = torch.dot(fa, fb) / (fa.norm() * fb.norm())
    if cos.abs() > dot_threshold:
        out = (1 - t) * fa + t * fb
    else:
        omega = torch.arccos(cos.clamp(-1, 1))
        so = torch.sin(omega)
        out = torch.sin((1 - t) * omega) / so * fa + torch.sin(t * omega) / so * fb
    return out.reshape(a.shape).to(a.dtype)
