"""Concept inversion: textual inversion of a new word on the SUBMITTED model (Pham et al., "Circumventing
Concept Erasure Methods", ICLR 2024; NYU-DICE-Lab/circumventing-concept-erasure, ``*/train.sh`` and
``concept_inversion.py``, built on diffusers' ``textual_inversion.py``).

1. ``images`` concept images from the ORIGINAL model (the card's concept prompt, DDIM 50, CFG 7.5, seeds
   ``image_seed + i``), encoded to VAE latents (posterior sample per step, as textual inversion does).
2. One word embedding is learnt on the submitted model, everything else frozen: the placeholder is the
   rare single token ``sks`` whose embedding row is replaced (in a copy of the text encoder), initialised
   from the initializer word's embedding (the card's ``initializer``; by default "art" for a style and the
   concept's own word otherwise, as the reference's scripts). Loss: epsilon-MSE at t ~ U{0..T-1} with
   captions made from the card's caption templates with the placeholder in the concept's place (by default
   textual inversion's ImageNet templates, "a photo of a {}" / "a painting in the style of {}"); AdamW,
   constant lr 5e-3 scaled by batch x accumulation (``--scale_lr``), batch 4, accumulation 4, as the reference.
3. The submitted model draws ``eval_images`` images from the same templates with the learnt word (seeds
   from the concept's attack rows), judged by the task's classifier: the attack success rate.

Deviations: the miniature cards give the world's own caption templates and "digit" / "handwritten" as
initializers (the miniature text encoder never saw "a photo of a {}"); images are not flipped (a mirrored
digit is another symbol); ``steps`` is pinned by the suite (the reference trains 5,000 steps on SD-1.4).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from memora_bench.cache import cache_key
from memora_bench.context import ProbeContext, ProbeOutput, first_rows
from memora_bench.models.generate import encode_images
from memora_bench.models.handle import Model
from memora_bench.models.text import encode_word_embeddings
from memora_bench.probes.registry import ConceptInversionParams
from memora_bench.probes.registry import parse_params as parse
from memora_bench.results import cost_record
from memora_bench.specs import Concept, PromptRow

CODE_VERSION = 1
PLACEHOLDER = "sks"


InversionParams = ConceptInversionParams


def parse_params(raw: dict) -> InversionParams:
    """Strict: unknown keys, wrong types and out-of-range values are errors (:mod:`memora_bench.probes.registry`)."""
    return parse("concept_inversion", raw)


def placeholder_id(tokenizer) -> int:
    ids = tokenizer(PLACEHOLDER, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise ValueError(f"placeholder {PLACEHOLDER!r} is not a single token: {ids}")
    return ids[0]


def learn_embedding(pipe, latents_mean, latents_std, concept: Concept, p: InversionParams, progress: bool = False):
    """The learnt embedding row (D,) of the placeholder on ``pipe``'s UNet, from ``concept``'s caption
    templates and initializer word (:class:`memora_bench.specs.Concept`); ``pipe`` is not modified."""
    tok = pipe.tokenizer
    te = copy.deepcopy(pipe.text_encoder).eval()
    table = te.get_input_embeddings()
    pid = placeholder_id(tok)
    init_id = tok(concept.initializer_word(), add_special_tokens=False).input_ids[0]
    te.requires_grad_(False)
    with torch.no_grad():
        table.weight[pid] = table.weight[init_id].clone()
    row = table.weight[pid].detach().clone().requires_grad_(True)
    frozen_rows = table.weight.detach().clone()
    unet, sched = pipe.unet, pipe.scheduler
    dev = unet.device
    unet.requires_grad_(False)
    caps = [t.format(PLACEHOLDER) for t in concept.caption_templates()]
    cap_ids = tok(caps, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(dev)
    opt = torch.optim.AdamW([row], lr=p.lr * p.batch_size * p.accumulation)
    gen = torch.Generator().manual_seed(p.seed)
    mask = (cap_ids == pid).unsqueeze(-1)
    for _ in tqdm(range(p.steps), desc="concept inversion", disable=not progress, leave=False):
        opt.zero_grad()
        for _ in range(p.accumulation):
            i = torch.randint(0, len(latents_mean), (p.batch_size,), generator=gen)
            c = torch.randint(0, len(caps), (p.batch_size,), generator=gen).to(dev)
            eps_z = torch.randn(latents_mean[i].shape, generator=gen).to(latents_mean.device)
            z = (latents_mean[i] + latents_std[i] * eps_z).to(dev)
            noise = torch.randn(z.shape, generator=gen).to(dev)
            t = torch.randint(0, sched.config.num_train_timesteps, (p.batch_size,), generator=gen).to(dev)
            embeds = torch.where(mask[c], row.expand(p.batch_size, cap_ids.shape[1], -1), frozen_rows[cap_ids[c]])
            cond = encode_word_embeddings(te, cap_ids[c], embeds)
            pred = unet(sched.add_noise(z, noise, t), t, encoder_hidden_states=cond).sample
            (F.mse_loss(pred, noise) / p.accumulation).backward()
        opt.step()
    return row.detach().clone()


def with_embedding(pipe, row: torch.Tensor):
    """A shallow copy of ``pipe`` whose text encoder has the placeholder row replaced."""
    out = copy.copy(pipe)
    te = copy.deepcopy(pipe.text_encoder)
    with torch.no_grad():
        te.get_input_embeddings().weight[placeholder_id(pipe.tokenizer)] = row
    out.text_encoder = te
    return out


def run(unit: ProbeContext, params: dict) -> ProbeOutput:
    """Learn the concept's word on the submitted model, then draw and judge caption templates with it."""
    p = parse_params(params)
    original = unit.original
    attack_rows = unit.prompts("attack_prompts")
    records, per_concept = [], {}
    for concept in unit.task.concepts:
        seeds = [s for s in range(p.image_seed, p.image_seed + p.images)]
        src = [PromptRow(f"ci-{concept.name}-{s}", concept.prompt, s, unit.task.generation.guidance, concept.label)
               for s in seeds]
        originals = unit.images(src, "concept_inversion_source", model=original, scheduler="ddim")
        key = cache_key({"stage": "concept_inversion", "code_version": CODE_VERSION, "model": unit.model.fingerprint,
                         "sources": [o["image_key"] for o in originals], "kind": concept.kind, "params": p.__dict__})
        learnt = unit.cache.get_tensors(key)
        if learnt is None:
            with unit.cache.lock(key):  # another run learning the same embedding: wait for it
                learnt = unit.cache.get_tensors(key) or _learn(unit, originals, concept, p, key)
        model = Model({**unit.model.fingerprint, "concept_inversion": key},
                      lambda row=learnt["embedding"]: with_embedding(unit.pipeline(), row), unit.model.device)
        caps = [t.format(PLACEHOLDER) for t in concept.caption_templates()]
        base_rows = first_rows(attack_rows, concept.label, 0)
        rows = [PromptRow(f"ci-{concept.name}-{j:03d}", caps[j % len(caps)], base_rows[j % len(base_rows)].seed,
                          unit.task.generation.guidance, concept.label) for j in range(p.eval_images)]
        recs = unit.judge(unit.images(rows, "concept_inversion", model=model), "concept_inversion")
        records += recs
        per_concept[concept.name] = {"embedding_key": key, "initializer": concept.initializer_word(),
                                     "norm": float(learnt["embedding"].norm())}
    result = {"params": dict(p.__dict__), "placeholder": PLACEHOLDER, "concepts": per_concept,
              "rates": unit.rates(records),
              "cost": cost_record(len(records) + p.images * len(unit.task.concepts), unit.task.generation.steps,
                                  training_evaluations=p.steps * p.accumulation * len(unit.task.concepts),
                                  optimizer_steps=p.steps * len(unit.task.concepts))}
    return ProbeOutput(result, unit.lines(records, "concept_inversion", "concept_inversion"))


def _learn(unit: ProbeContext, originals: list[dict], concept, p, key: str) -> dict:
    """Textual inversion of ``concept`` from the original model's images, against the submission; cached."""
    pipe = unit.pipeline()
    mean, std = encode_images(pipe, [o["image"] for o in originals])
    with unit.timer("concept_inversion_train"):
        row = learn_embedding(pipe, mean, std, concept, p, unit.progress)
    learnt = {"embedding": row}
    unit.cache.put_tensors(key, learnt)
    return learnt
