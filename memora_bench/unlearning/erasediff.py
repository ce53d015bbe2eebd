"""EraseDiff (Wu et al., 2024; JingWu321/EraseDiff, ``sd/train_scripts/erasediff_cls.py``).

Unlearning as a bi-level problem solved first-order (BOME): each epoch first takes ``K`` steps that fit the
forget images under their concept prompt to what the model predicts for an unrelated prompt on the same noisy
latent, records that loss L_f*, restores the weights, then updates them with the ordinary diffusion loss on
the remaining data plus lambda (L_f - L_f*).

Defaults are those of the reference's class-forgetting script (2 epochs, K = 1, lambda 1, batch 16, Adam, full
UNet, unrelated prompt "a photo of a pokemon"); the learning rate is scaled with the pre-training rate
(1e-5 -> 5e-5). The forget set is 512 images the base model draws for the card's concept prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from memora_bench.unlearning.common import (
    RetainData,
    Target,
    changed,
    diffusion_loss,
    forget_set,
    module_params,
    text_context,
    train_only,
)


@dataclass(frozen=True)
class EraseDiffParams:
    forget_images: int = 512
    image_seed: int = 920_000
    unrelated_prompt: str = "a photo of a pokemon"
    epochs: int = 2
    k_steps: int = 1
    lambda_bome: float = 1.0
    batch_size: int = 16
    lr: float = 5e-5
    retain_images: int = 1024
    seed: int = 0


def _forget_loss(unet, sched, z, c, c_noise, gen):
    noise = torch.randn(z.shape, generator=gen)
    t = torch.randint(0, sched.config.num_train_timesteps, (len(z),), generator=gen)
    x_t = sched.add_noise(z, noise, t)
    with torch.no_grad():
        target = unet(x_t, t, encoder_hidden_states=c_noise.expand(len(z), -1, -1)).sample
    return F.mse_loss(unet(x_t, t, encoder_hidden_states=c).sample, target)


def erasediff(pipe, target: Target, p: EraseDiffParams) -> dict[str, torch.Tensor]:
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(p.seed)
    unet, sched = pipe.unet, pipe.scheduler
    z_f, c_f, _ = forget_set(pipe, target, p.forget_images // len(target.erased), p.image_seed)
    c_noise = text_context(pipe, [p.unrelated_prompt])
    retain = RetainData(pipe, target, p.retain_images, p.seed)
    params = module_params(unet, "all")
    opt = torch.optim.Adam(train_only(unet, params), lr=p.lr)
    batches = (len(z_f) + p.batch_size - 1) // p.batch_size
    unet.train()
    for _ in tqdm(range(p.epochs), desc=f"erasediff {target.task}", leave=False):
        start = {k: w.detach().clone() for k, w in params.items()}
        inner = []
        for _ in range(p.k_steps):  # [1] theta_i^K on the forgetting objective alone
            for _ in range(batches):
                idx = torch.randint(0, len(z_f), (p.batch_size,), generator=gen)
                loss = _forget_loss(unet, sched, z_f[idx], c_f[idx], c_noise, gen)
                opt.zero_grad()
                loss.backward()
                opt.step()
                inner.append(loss.item())
        with torch.no_grad():  # restore theta_i
            for k, w in params.items():
                w.copy_(start[k])
        l_star = sum(inner) / len(inner)
        for _ in range(batches):  # [2] theta_{i+1}
            idx = torch.randint(0, len(z_f), (p.batch_size,), generator=gen)
            z_r, c_r = retain.batch(p.batch_size, gen)
            loss_q = _forget_loss(unet, sched, z_f[idx], c_f[idx], c_noise, gen) - l_star
            loss = diffusion_loss(unet, sched, z_r, c_r, gen) + p.lambda_bome * loss_q
            opt.zero_grad()
            loss.backward()
            opt.step()
    unet.eval().requires_grad_(False)
    return changed(params)
