"""Sampling with a modified diffusion trajectory, for the probes of "When Are Concepts Erased From Diffusion
Models?" (Lu et al., NeurIPS 2025; code ``kevinlu4588/WhenAreConceptsErased``, WACE below).

- **Noise-based sampling** (WACE ``src/probes/noise_based_probe.py`` with its
  ``schedulers/eta_ddim_scheduler.py``): DDIM with ``eta`` above 1 and the added noise scaled by a
  ``variance_scale``. One step from ``t`` to ``t'`` with the guided noise estimate ``e``::

      x0  = (x - sqrt(1 - a(t)) e) / sqrt(a(t))
      s   = eta * sqrt((1 - a(t')) / (1 - a(t)) * (1 - a(t) / a(t')))
      x'  = sqrt(a(t')) x0 + sqrt(|1 - a(t') - s^2|) e + s * variance_scale * z

  (the absolute value is the reference's: with eta > 1, ``s^2`` can exceed ``1 - a(t')``).
- **Completion** (WACE ``diffusion_completion_probe.py``): one model runs the first steps of a deterministic
  DDIM trajectory, another finishes it (:func:`ddim_steps` with ``start``/``stop``).
- **Inpainting** (WACE ``inpainting_probe.py``): a text-to-image UNet paints the centre of a known image
  (:func:`inpaint`, diffusers' rule for a 4-channel UNet).

Every image owns its randomness: its starting latent and the noise ``z`` of each step come from one CPU
generator seeded for that image (the reference passes one generator through its variants one after the
other; here each variant has its own, so an image does not depend on which others are drawn with it). The
networks run on fixed padded micro-batches (:func:`memora_bench.models.inversion.guided_eps`), so an image is
the same in any batch.
"""

from __future__ import annotations

import numpy as np
import torch

from memora_bench.models.generate import MICRO_BATCH, encode_prompts, map_micro_batches
from memora_bench.models.inversion import _alpha, _pad_rows, guided_eps, sampler

__all__ = ["unconditional", "center_mask", "classifier_guide", "derived_seed", "ddim_steps", "image_generators", "initial_noise", "inpaint", "latent_shape",
           "sampler"]


def unconditional(pipe) -> torch.Tensor:
    """The empty prompt's text embedding (1, 77, D), computed on a full micro-batch as every network call here."""
    return encode_prompts(pipe, [""] * MICRO_BATCH)[:1]


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (a prompt's seed and a variant's index), the same on every machine."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def latent_shape(pipe, height: int, width: int) -> tuple[int, int, int]:
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    return pipe.unet.config.in_channels, height // factor, width // factor


def image_generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def _draw(gens: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.cat([torch.randn((1, *shape), generator=g) for g in gens])


def initial_noise(gens: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """Each image's starting latent, the first draw of its own generator."""
    return _draw(gens, shape)


def _per_row(values, n: int) -> torch.Tensor:
    v = torch.as_tensor(values if np.ndim(values) else [values] * n, dtype=torch.float32)
    if v.shape != (n,):
        raise ValueError(f"expected one value per image ({n}), got shape {tuple(v.shape)}")
    return v.view(n, 1, 1, 1)


@torch.inference_mode()
def ddim_steps(unet, sched, latents: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, guidance: float,
               start: int = 0, stop: int | None = None, eta=0.0, variance_scale=1.0,
               gens: list[torch.Generator] | None = None, guide=None) -> torch.Tensor:
    """DDIM sampling steps ``start`` to ``stop`` (exclusive; default: to the end) of ``sched``'s timesteps.

    ``eta`` and ``variance_scale`` are one value or one per image; with ``eta`` 0 the steps are deterministic
    (and equal :func:`memora_bench.models.inversion.denoise_from`), otherwise ``gens`` (one generator per image)
    supply the noise of every step, in step order. ``guide(x, eps, t, a_t)``, if given, returns the noise
    estimate to step with (classifier guidance)."""
    if sched.config.prediction_type != "epsilon":
        raise ValueError(f"only epsilon-prediction models are supported, got {sched.config.prediction_type!r}")
    n = len(latents)
    eta_t, vs_t = _per_row(eta, n), _per_row(variance_scale, n)
    stochastic = bool((eta_t > 0).any())
    if stochastic and (gens is None or len(gens) != n):
        raise ValueError("eta > 0 needs one generator per image")
    timesteps = [int(t) for t in sched.timesteps]
    stop = len(timesteps) if stop is None else stop
    ratio = sched.config.num_train_timesteps // sched.num_inference_steps
    x = latents
    for t in timesteps[start:stop]:
        eps = guided_eps(unet, x, t, cond, uncond, guidance)
        a_t, a_prev = _alpha(sched, t), _alpha(sched, t - ratio)
        if guide is not None:
            eps = guide(x, eps, t, a_t)
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if sched.config.clip_sample:
            x0 = x0.clamp(-sched.config.clip_sample_range, sched.config.clip_sample_range)
        std = eta_t * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - std**2).abs().sqrt() * eps
        if stochastic:
            x = x + std * vs_t * _draw(gens, tuple(x.shape[1:])).to(x.device, x.dtype)
    return x


def center_mask(height: int, width: int, fraction: float) -> torch.Tensor:
    """A (1, 1, H, W) mask: 1 in the centred rectangle of ``fraction`` of each side (the part to paint), 0 around
    it (WACE's 256 x 256 square in a 512 x 512 image is ``fraction`` 0.5)."""
    mh, mw = round(height * fraction), round(width * fraction)
    top, left = (height - mh) // 2, (width - mw) // 2
    mask = torch.zeros(1, 1, height, width)
    mask[..., top : top + mh, left : left + mw] = 1
    return mask


@torch.inference_mode()
def inpaint(unet, sched, known: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, cond: torch.Tensor,
            uncond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Inpainting with a text-to-image UNet, as diffusers' ``StableDiffusionInpaintPipeline`` does for a
    4-channel UNet: sample from ``noise``; after each DDIM step, outside ``mask`` (latent-sized, 1 = paint)
    put back the known latents noised to the next step's level with the same noise (clean after the last)."""
    timesteps = [int(t) for t in sched.timesteps]
    x = noise * sched.init_noise_sigma
    for j, t in enumerate(timesteps):
        x = ddim_steps(unet, sched, x, cond, uncond, guidance, start=j, stop=j + 1)
        back = known if j == len(timesteps) - 1 else sched.add_noise(known, noise, torch.tensor([timesteps[j + 1]]))
        x = (1 - mask) * back + mask * x
    return x


def classifier_guide(pipe, log_prob, scales, micro_batch: int = MICRO_BATCH):
    """WACE's classifier guidance as a ``guide`` for :func:`ddim_steps`: ``eps - sqrt(1 - a_t) * scale * g``
    with ``g`` the gradient, with respect to the latent, of the log-probability of the concept
    (``log_prob(images)``: float RGB (N, 3, H, W) in [0, 1] to (N,)) of the image decoded from the step's clean
    estimate (the noise estimate held fixed). The reference takes ``g`` from a classifier of noisy latents
    trained for each concept; the miniature world's classifiers judge images, so the clean estimate is decoded
    first. Computed on fixed padded micro-batches, as every network call here."""
    sf = pipe.vae.config.scaling_factor

    def guide(x, eps, t, a_t):
        n = len(x)
        scale = _per_row(scales, n).to(x)

        def one(i):
            xi = _pad_rows(x[i : i + micro_batch], micro_batch)
            ei = _pad_rows(eps[i : i + micro_batch], micro_batch)
            with torch.inference_mode(False), torch.enable_grad():
                xg = xi.clone().requires_grad_(True)
                x0 = (xg - (1 - a_t).sqrt() * ei.clone()) / a_t.sqrt()
                images = (pipe.vae.decode(x0 / sf).sample / 2 + 0.5).clamp(0, 1)
                (grad,) = torch.autograd.grad(log_prob(images).sum(), xg)
            return grad[: len(x[i : i + micro_batch])]

        g = torch.cat(map_micro_batches(x.device, one, range(0, n, micro_batch)))
        return eps - (1 - a_t).sqrt() * scale * g

    return guide
