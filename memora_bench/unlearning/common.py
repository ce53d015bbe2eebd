"""What every baseline recipe shares: the task's concepts as prompts, parameter selection, seeded sampling.

A recipe is a function ``recipe(pipe, target, params) -> dict[str, Tensor]`` that edits ``pipe`` in place and
returns the tensors it changed (a partial state dict of one component). It reads only the task card's erased
concepts and the names of the other concepts: never the task's attack or retain prompt sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from memora_bench.digits import (
    DIGIT_WORDS,
    STYLE_CONCEPTS,
    STYLES,
    load_split,
    sample_caption,
    stylise,
)
from memora_bench.models.generate import GenerationConfig, encode_prompts, generate


@dataclass(frozen=True)
class Target:
    """The concepts a baseline erases for one task, and the ones it should keep."""

    task: str
    erased: tuple[str, ...]
    prompts: tuple[str, ...] = ()  # the task card's prompt of each erased concept ("a handwritten seven")

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(c for c in (*DIGIT_WORDS, *STYLE_CONCEPTS) if c not in self.erased)

    def is_style(self, concept: str) -> bool:
        return concept in STYLE_CONCEPTS

    def guide(self, concept: str) -> str:
        """The generic concept an erased one is mapped towards: the empty prompt for an object (as UCE and
        ESD do for objects), the word every caption shares, 'handwritten', for a style (as 'art' for artists)."""
        return "handwritten" if self.is_style(concept) else ""


def pseudo_concept(target: Target, concept: str) -> str:
    """A different, kept concept to relabel an erased one with (SalUn's class c -> c + 1): the next digit
    that is not erased, or the other style."""
    if target.is_style(concept):
        return next(s for s in STYLE_CONCEPTS if s != concept and s not in target.erased)
    i = DIGIT_WORDS.index(concept)
    return next(DIGIT_WORDS[(i + k) % 10] for k in range(1, 10) if DIGIT_WORDS[(i + k) % 10] not in target.erased)


def concept_prompt(concept: str) -> str:
    """The plain description of a concept, as a task card writes it ("a handwritten seven", "a bold handwritten
    digit")."""
    return f"a {concept} handwritten digit" if concept in STYLE_CONCEPTS else f"a handwritten {concept}"


class RetainData:
    """Real training digits (never the held-out split) of every kept concept, with their training captions,
    encoded once to VAE latent distributions: the "remaining data" of SalUn and EraseDiff."""

    def __init__(self, pipe, target: Target, size: int, seed: int):
        import numpy as np

        split = load_split()
        rng = np.random.default_rng(seed)
        erased_digits = [DIGIT_WORDS.index(c) for c in target.erased if c in DIGIT_WORDS]
        styles = [s for s in STYLES if s not in target.erased]
        keep = np.flatnonzero(~np.isin(split.train_labels, erased_digits))
        pick = rng.choice(keep, size=size, replace=False)
        style_of = rng.choice(len(styles), size=size)
        images = np.stack([stylise(split.train_images[i : i + 1], styles[s])[0] for i, s in zip(pick, style_of)])
        self.captions = [sample_caption(int(split.train_labels[i]), styles[s], rng, 0.0) for i, s in zip(pick, style_of)]
        x = torch.from_numpy(images).float().unsqueeze(1).expand(-1, 3, -1, -1) * 2 - 1
        with torch.inference_mode():
            post = pipe.vae.encode(x).latent_dist
        self.mean, self.std = post.mean.clone(), post.std.clone()
        self.scale = pipe.vae.config.scaling_factor
        self.context = text_context(pipe, self.captions)

    def batch(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(clean latents, text context) of ``n`` random retain examples."""
        idx = torch.randint(0, len(self.mean), (n,), generator=gen)
        z = (self.mean[idx] + self.std[idx] * torch.randn(self.mean[idx].shape, generator=gen)) * self.scale
        return z, self.context[idx]


def diffusion_loss(unet, scheduler, z0: torch.Tensor, context: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The standard epsilon-MSE training loss at uniformly drawn timesteps."""
    import torch.nn.functional as F

    noise = torch.randn(z0.shape, generator=gen)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z0),), generator=gen)
    return F.mse_loss(unet(scheduler.add_noise(z0, noise, t), t, encoder_hidden_states=context).sample, noise)


def module_params(model: torch.nn.Module, rule: str) -> dict[str, torch.nn.Parameter]:
    """Parameters of the Linear and Conv2d layers a rule selects, by state-dict name.

    ``xattn``: the cross-attention layers (``attn2``), ESD-x; ``noxattn``: every other layer, ESD-u;
    ``kv``: the cross-attention key and value projections; ``all``: every Linear and Conv2d layer.
    """
    selectors = {
        "xattn": lambda name: "attn2" in name,
        "noxattn": lambda name: "attn2" not in name,
        "kv": lambda name: "attn2.to_k" in name or "attn2.to_v" in name,
        "all": lambda name: True,
    }
    if rule not in selectors:
        raise ValueError(f"unknown parameter rule {rule!r}; expected one of {sorted(selectors)}")
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and selectors[rule](name):
            for pname, p in module.named_parameters(recurse=False):
                out[f"{name}.{pname}"] = p
    return out


def train_only(model: torch.nn.Module, params: dict[str, torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """Freeze ``model`` except ``params``; returns them as a list for the optimiser."""
    model.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    return list(params.values())


def changed(params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in params.items()}


def text_context(pipe, prompts: list[str]) -> torch.Tensor:
    """Text-encoder hidden states (N, 77, D), outside inference mode so they may enter autograd graphs."""
    return encode_prompts(pipe, prompts).clone()


def concept_images(pipe, prompts: list[str], n: int, seed: int) -> torch.Tensor:
    """``n`` images of the base model for ``prompts`` (cycled), DDIM 50, CFG 7.5, as clean VAE latents."""
    images = generate(pipe, [prompts[i % len(prompts)] for i in range(n)], [seed + i for i in range(n)],
                      GenerationConfig())
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.inference_mode():
        z = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
    return z.clone()


def forget_set(pipe, target: Target, per_concept: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The forget images of every erased concept: ``per_concept`` base-model images of its card prompt (seeds
    ``seed + 1000 k + i`` for the k-th concept) as clean latents, their prompts' text contexts, and the
    concept of each image."""
    latents, contexts, concepts = [], [], []
    for k, concept in enumerate(target.erased):
        prompt = target.prompts[k] if target.prompts else concept_prompt(concept)
        latents.append(concept_images(pipe, [prompt], per_concept, seed + 1000 * k))
        contexts.append(text_context(pipe, [prompt]).expand(per_concept, -1, -1))
        concepts += [concept] * per_concept
    return torch.cat(latents), torch.cat(contexts), concepts


def ddim_partial_sample(unet, pipe, cond: torch.Tensor, uncond: torch.Tensor, guidance: float, steps: int,
                        stop: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample with ``unet`` from fresh noise for ``stop`` of ``steps`` DDIM steps; returns (x_t, t)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    size = pipe.unet.config.sample_size
    x = torch.randn((len(cond), pipe.unet.config.in_channels, size, size), generator=gen)
    with torch.no_grad():
        for t in sched.timesteps[:stop]:
            eps_u, eps_c = unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
            x = sched.step(eps_u + guidance * (eps_c - eps_u), t, x).prev_sample
    return x, sched.timesteps[stop]



def ddim_partial_samples(unet, pipe, cond: torch.Tensor, uncond: torch.Tensor, guidance: float, steps: int,
                         stops: list[int], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``ddim_partial_sample`` for several independent draws with one prompt (``cond`` and ``uncond`` of batch 1):
    draw i starts from its own noise and stops after ``stops[i]`` steps. The draws run as one batch, each leaving
    it when it reaches its stop, so n draws cost about one draw's number of UNet calls. Returns (x_t with one
    row per draw, the timestep of each draw)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    size = pipe.unet.config.sample_size
    x = torch.randn((len(stops), pipe.unet.config.in_channels, size, size), generator=gen)
    stop_at = torch.tensor(stops)
    with torch.no_grad():
        for j, t in enumerate(sched.timesteps[:max(stops, default=0)]):
            live = (stop_at > j).nonzero().flatten()
            xs = x[live]
            n = len(live)
            context = torch.cat([uncond.expand(n, -1, -1), cond.expand(n, -1, -1)])
            eps_u, eps_c = unet(torch.cat([xs, xs]), t, encoder_hidden_states=context).sample.chunk(2)
            x[live] = sched.step(eps_u + guidance * (eps_c - eps_u), t, xs).prev_sample
    return x, sched.timesteps[stop_at]


class Checkpointer:
    """Lets a long recipe resume where it stopped: every ``every`` iterations the recipe hands its whole state
    (weights, optimiser, random generators) to ``save``, which writes it atomically with the CPU time spent so far;
    a new build of the same recipe, task and parameters ``load``s it and continues. The resumed result equals an
    uninterrupted run's. The file is removed once the checkpoint is written (``clear``)."""

    def __init__(self, path, params: dict, every: int = 20):
        import time
        from pathlib import Path

        self.path, self.params, self.every = Path(path), params, every
        self.prior_cpu = 0.0
        self._start = time.process_time()

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        state = torch.load(self.path, weights_only=True)  # tensors, ints and dicts only: never unpickle code
        if state["params"] != self.params:  # another parameter set: start afresh
            return None
        self.prior_cpu = state["cpu_seconds"]
        return state

    def save(self, state: dict, iteration: int) -> None:
        import time

        tmp = self.path.with_suffix(".tmp")
        cpu = self.prior_cpu + time.process_time() - self._start
        torch.save({**state, "iteration": iteration, "params": self.params, "cpu_seconds": cpu}, tmp)
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
