"""AdvUnlearn (Zhang et al., NeurIPS 2024; OPTML-Group/AdvUnlearn, ``train-scripts/AdvUnlearn.py``).

Adversarial unlearning of the text encoder: ESD's objective (the encoder's embedding of the concept must make
the frozen UNet predict noise guided away from the concept) is trained on the prompt *with an adversarial
soft token prepended*, found by an inner attack that makes the current model reproduce the original model's
concept prediction. After every step, a retain step keeps the encoder's embeddings of other prompts close to
the original encoder's ("iter" retaining).

Defaults are the reference's (text encoder, all layers without final layer norm; 1000 iterations, Adam lr
1e-5; start guidance 3, negative guidance 1; warm-up 200 iterations without attack; attack: 1 prefix token in
word-embedding space, 30 Adam steps of lr 1e-3, initialised from the latest adversarial token, renewed every
iteration; retain batch 5, 1 retain step per iteration), the learning rate scaled with the pre-training rate as
for ESD (1e-5 -> 5e-5). Retain prompts are the world's training captions of the kept concepts (the reference
uses COCO object prompts). x_t and timesteps as in ``esd.py`` (the DDIM step's own timestep).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from memora_bench.digits import DIGIT_WORDS, STYLES, sample_caption
from memora_bench.models.text import encode_word_embeddings, prefix_ids
from memora_bench.unlearning.common import (
    Checkpointer,
    Target,
    ddim_partial_sample,
    ddim_partial_samples,
    text_context,
)


@dataclass(frozen=True)
class AdvUnlearnParams:
    iterations: int = 1000
    lr: float = 5e-5
    start_guidance: float = 3.0
    negative_guidance: float = 1.0
    ddim_steps: int = 50
    warmup_iter: int = 200
    attack_step: int = 30
    attack_lr: float = 1e-3
    adv_prompt_num: int = 1
    retain_batch: int = 5
    retain_step: int = 1
    retain_captions: int = 500
    seed: int = 0


def _with_adv(table_embeds: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Word embeddings of [start, adv tokens, prompt..., padding] truncated to the sequence length."""
    k = adv.shape[1]
    return torch.cat([table_embeds[:, :1], adv, table_embeds[:, 1:-k]], dim=1)


def _attack(pipe, te, table, ids, emb_p, null, adv, p: AdvUnlearnParams, gen) -> torch.Tensor:
    """The inner attack: ``attack_step`` Adam steps on the prefix token's word embedding so that the current
    encoder makes the frozen UNet reproduce the original encoder's concept prediction, each step on a fresh
    x_t sampled from the original prompt. x_t and the original prediction do not depend on the token, so the
    steps' draws are sampled as one batch first (same distribution as the reference's one-by-one draws). As in
    the reference (``soft_prompt_attack``), the token's gradient is not reset between steps."""
    unet = pipe.unet
    if adv is None:
        adv = table(torch.randint(0, table.num_embeddings, (1, p.adv_prompt_num), generator=gen)).detach()
    stops = [int(s) for s in torch.randint(0, p.ddim_steps, (p.attack_step,), generator=gen)]
    x_t, t = ddim_partial_samples(unet, pipe, emb_p, null, p.start_guidance, p.ddim_steps, stops, gen)
    with torch.no_grad():
        e_p = unet(x_t, t, encoder_hidden_states=emb_p.expand(len(stops), -1, -1)).sample
    trained = [w for w in te.parameters() if w.requires_grad]
    te.eval().requires_grad_(False)
    adv = adv.clone().requires_grad_(True)
    attack_opt = torch.optim.Adam([adv], lr=p.attack_lr)
    adv_ids = prefix_ids(ids, p.adv_prompt_num)
    words = table(ids).detach()
    for i in range(p.attack_step):
        cond = encode_word_embeddings(te, adv_ids, _with_adv(words, adv))
        loss = F.mse_loss(unet(x_t[i:i + 1], t[i], encoder_hidden_states=cond).sample, e_p[i:i + 1])
        loss.backward()
        attack_opt.step()
    for w in trained:
        w.requires_grad_(True)
    return adv.detach()


def advunlearn(pipe, target: Target, p: AdvUnlearnParams,
               checkpoint: Checkpointer | None = None) -> dict[str, torch.Tensor]:
    import numpy as np
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    te, unet, tok = pipe.text_encoder, pipe.unet, pipe.tokenizer
    unet.requires_grad_(False).eval()
    te_orig = copy.deepcopy(te).eval().requires_grad_(False)
    table = te.get_input_embeddings()
    words = list(target.erased)
    kept_digits = [i for i, w in enumerate(DIGIT_WORDS) if w not in target.erased]
    kept_styles = [s for s in STYLES if s not in target.erased]
    retain_pool = [sample_caption(int(rng.choice(kept_digits)), str(rng.choice(kept_styles)), rng, 0.0)
                   for _ in range(p.retain_captions)]
    null = text_context(pipe, [""])

    params = {n: w for n, w in te.named_parameters() if "final_layer_norm" not in n}
    te.requires_grad_(False)
    for w in params.values():
        w.requires_grad_(True)
    opt = torch.optim.Adam(list(params.values()), lr=p.lr)

    def ids_of(prompts):
        return tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                   return_tensors="pt").input_ids

    adv, start = None, 0
    state = checkpoint.load() if checkpoint else None
    if state:
        with torch.no_grad():
            for n, w in params.items():
                w.copy_(state["weights"][n])
        opt.load_state_dict(state["optimizer"])
        adv, start = state["adv"], state["iteration"]
        gen.set_state(state["torch_generator"])
        rng.bit_generator.state = state["numpy_generator"]
    for it in tqdm(range(start, p.iterations), initial=start, total=p.iterations, desc=f"advunlearn {target.task}",
                   leave=False):
        word = words[it % len(words)]
        ids = ids_of([word])
        with torch.no_grad():
            emb_p = te_orig(ids)[0]
        if it >= p.warmup_iter:  # inner attack on the current encoder, from the latest adversarial token
            adv = _attack(pipe, te, table, ids, emb_p, null, adv, p, gen)
        te.train()
        # unlearning step: ESD's target, on the (adversarially prefixed) prompt, through the trained encoder
        stop = int(torch.randint(0, p.ddim_steps, (1,), generator=gen))
        with torch.no_grad():
            x_t, t = ddim_partial_sample(unet, pipe, emb_p, null, p.start_guidance, p.ddim_steps, stop, gen)
            e0 = unet(x_t, t, encoder_hidden_states=null).sample
            ep = unet(x_t, t, encoder_hidden_states=emb_p).sample
        if adv is None:
            emb_n = te(ids)[0]
        else:
            adv_ids = prefix_ids(ids, p.adv_prompt_num)
            emb_n = encode_word_embeddings(te, adv_ids, _with_adv(table(ids), adv))
        loss = F.mse_loss(unet(x_t, t, encoder_hidden_states=emb_n).sample, e0 - p.negative_guidance * (ep - e0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        for _ in range(p.retain_step):  # "iter" retaining on other concepts' captions
            pick = rng.choice(len(retain_pool), size=p.retain_batch, replace=False)
            r_ids = ids_of([retain_pool[i] for i in pick])
            stop = int(torch.randint(0, p.ddim_steps, (1,), generator=gen))
            with torch.no_grad():
                r_emb_p = te_orig(r_ids)[0]
                r_x, r_t = ddim_partial_sample(unet, pipe, r_emb_p, null.expand(p.retain_batch, -1, -1),
                                               p.start_guidance, p.ddim_steps, stop, gen)
                r_ep = unet(r_x, r_t, encoder_hidden_states=r_emb_p).sample
            r_loss = F.mse_loss(unet(r_x, r_t, encoder_hidden_states=te(r_ids)[0]).sample, r_ep)
            opt.zero_grad()
            r_loss.backward()
            opt.step()
        if checkpoint and (it + 1) % checkpoint.every == 0 and it + 1 < p.iterations:
            checkpoint.save({"weights": {n: w.detach().clone() for n, w in params.items()},
                             "optimizer": opt.state_dict(), "adv": adv, "torch_generator": gen.get_state(),
                             "numpy_generator": rng.bit_generator.state}, it + 1)
    te.eval().requires_grad_(False)
    return {k: w.detach().clone() for k, w in params.items()}
