"""FMN: Forget-Me-Not (Zhang et al., 2023; SHI-Labs/Forget-Me-Not, ``src/train_attn.py``).

Attention re-steering: on noisy latents of the concept's images, every cross-attention layer's attention
probabilities on the concept's tokens (and, with ``use_pooler``, on every end-of-text token, which the SD
tokenizer also pads with) are collected and their norm is minimised.

Defaults are the reference's ``configs/attn.yaml`` (35 steps, batch 1, AdamW lr 2e-6 weight decay 0.01,
constant schedule, grad-norm clip 1, ``use_pooler`` on), the learning rate scaled with the pre-training rate
(2e-6 -> 1e-5). The concept is named by its word (``use_ti`` off: no textual-inversion token is learnt first),
the prompt is the reference's "a photo of {concept}" / "a photo in the style of {concept}" template, and the
concept images are 16 images the base model draws for the card's concept prompt.
``only_optimize_ca`` is off as in the reference (the whole UNet is trained; stored as an 8-bit delta).
Deviation: ``use_ti`` is off (the reference first learns a textual-inversion token for the concept from its
images and re-steers attention away from that token).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from memora_bench.unlearning.common import (
    Target,
    changed,
    forget_set,
    module_params,
    text_context,
    train_only,
)


@dataclass(frozen=True)
class FMNParams:
    steps: int = 35
    lr: float = 1e-5
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    use_pooler: bool = True
    only_optimize_ca: bool = False
    concept_images: int = 16
    image_seed: int = 930_000
    seed: int = 0


class _AttentionProbes:
    """Cross-attention processor that computes attention explicitly and keeps the probabilities on the
    concept's token positions."""

    def __init__(self):
        self.positions: torch.Tensor | None = None  # (B, 77) bool
        self.collected: list[torch.Tensor] = []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        batch = hidden_states.shape[0]
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, attention_mask)  # (B * heads, queries, 77)
        heads = probs.shape[0] // batch
        mask = self.positions.repeat_interleave(heads, 0)[:, None, :].expand_as(probs)
        self.collected.append(probs[mask])
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out))

    def loss(self) -> torch.Tensor:
        return torch.cat(self.collected).norm()


def token_positions(tokenizer, prompt: str, concept: str, use_pooler: bool) -> torch.Tensor:
    """Bool (77,): the concept's token span in the prompt, plus every end-of-text token if ``use_pooler``."""
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids
    concept_ids = tokenizer(concept, add_special_tokens=False).input_ids
    pos = torch.zeros(len(ids), dtype=torch.bool)
    for i in range(len(ids) - len(concept_ids) + 1):
        if ids[i : i + len(concept_ids)] == concept_ids:
            pos[i : i + len(concept_ids)] = True
    if not pos.any():
        raise ValueError(f"concept {concept!r} not found in the tokens of {prompt!r}")
    if use_pooler:
        pos |= torch.tensor(ids) == tokenizer.eos_token_id
    return pos


def fmn(pipe, target: Target, p: FMNParams) -> dict[str, torch.Tensor]:
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(p.seed)
    unet, sched, tok = pipe.unet, pipe.scheduler, pipe.tokenizer
    z0, _, concepts = forget_set(pipe, target, p.concept_images, p.image_seed)
    prompts = [f"a photo in the style of {c}" if target.is_style(c) else f"a photo of {c}" for c in concepts]
    positions = [token_positions(tok, prompt, c, p.use_pooler) for prompt, c in zip(prompts, concepts)]
    ctx = text_context(pipe, prompts)
    positions = torch.stack(positions)

    probes = _AttentionProbes()
    original = dict(unet.attn_processors)
    unet.set_attn_processor({name: (probes if ".attn2." in name else proc) for name, proc in original.items()})
    params = module_params(unet, "xattn" if p.only_optimize_ca else "all")
    trainable = train_only(unet, params)
    opt = torch.optim.AdamW(trainable, lr=p.lr, weight_decay=p.weight_decay)
    unet.train()
    try:
        for _ in tqdm(range(p.steps), desc=f"fmn {target.task}", leave=False):
            i = int(torch.randint(0, len(z0), (1,), generator=gen))
            noise = torch.randn(z0[i : i + 1].shape, generator=gen)
            t = torch.randint(0, sched.config.num_train_timesteps, (1,), generator=gen)
            probes.positions, probes.collected = positions[i : i + 1], []
            unet(sched.add_noise(z0[i : i + 1], noise, t), t, encoder_hidden_states=ctx[i : i + 1])
            loss = probes.loss()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, p.max_grad_norm)
            opt.step()
    finally:
        unet.set_attn_processor(original)
    unet.eval().requires_grad_(False)
    return changed(params)
