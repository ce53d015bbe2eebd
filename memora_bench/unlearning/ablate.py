"""A simple concept ablation for the demo submission (model-based Ablating Concepts, Kumari et al. 2023).

The UNet's cross-attention key and value projections (``attn2.to_k``, ``attn2.to_v``) are fine-tuned so
that, on noisy latents of the concept's own images, the prediction under a concept prompt matches the
frozen model's prediction under an anchor prompt:

    L = || eps_theta(x_t, c_concept) - sg(eps_theta0(x_t, c_anchor)) ||^2

Only K/V change, so the checkpoint is a small partial UNet state dict. It is the demo's stand-in until
the baselines (ESD, UCE, FMN, ...) are built; it is not tuned on any task's attack prompts.

Rebuild: ``python -m memora_bench.unlearning.ablate``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from memora_bench.miniworld import load_pipeline
from memora_bench.models.generate import GenerationConfig, encode_prompts, generate
from memora_bench.specs import sha256_file


@dataclass(frozen=True)
class AblateParams:
    concept_prompts: tuple[str, ...] = ("a handwritten seven", "the digit 7", "a drawing of the number seven",
                                        "a picture of a seven", "the number 7, handwritten")
    anchor_prompt: str = "a handwritten digit"
    images: int = 64  # concept images drawn from the base model (DDIM 50, CFG 7.5)
    image_seed: int = 900_000
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-4
    seed: int = 0


def kv_keys(unet) -> list[str]:
    return [k for k in unet.state_dict() if ".attn2.to_k." in k or ".attn2.to_v." in k]


def ablate(pipe, p: AblateParams) -> dict[str, torch.Tensor]:
    """Fine-tune cross-attention K/V of ``pipe.unet``; returns the changed tensors."""
    prompts = [p.concept_prompts[i % len(p.concept_prompts)] for i in range(p.images)]
    images = generate(pipe, prompts, [p.image_seed + i for i in range(p.images)], GenerationConfig())
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.inference_mode():
        z0 = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
        concept_ctx = encode_prompts(pipe, list(p.concept_prompts))
        anchor_ctx = encode_prompts(pipe, [p.anchor_prompt])
    z0, concept_ctx, anchor_ctx = z0.clone(), concept_ctx.clone(), anchor_ctx.clone()
    frozen = copy.deepcopy(pipe.unet).eval().requires_grad_(False)
    unet = pipe.unet
    unet.requires_grad_(False)
    names = set(kv_keys(unet))
    params = [w for n, w in unet.named_parameters() if n in names]
    for w in params:
        w.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=0.0)
    sched = pipe.scheduler
    gen = torch.Generator().manual_seed(p.seed)
    unet.train()
    for _ in range(p.steps):
        idx = torch.randint(0, len(z0), (p.batch_size,), generator=gen)
        noise = torch.randn(z0[idx].shape, generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (p.batch_size,), generator=gen)
        xt = sched.add_noise(z0[idx], noise, t)
        ctx = concept_ctx[torch.randint(0, len(concept_ctx), (p.batch_size,), generator=gen)]
        with torch.no_grad():
            target = frozen(xt, t, encoder_hidden_states=anchor_ctx.expand(p.batch_size, -1, -1)).sample
        loss = F.mse_loss(unet(xt, t, encoder_hidden_states=ctx).sample, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    unet.eval().requires_grad_(False)
    return {k: v.detach().clone() for k, v in unet.state_dict().items() if k in names}


def build_demo(out_dir: Path) -> dict:
    """Build ``submissions/demo-ablate-seven``: checkpoint and manifest."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    params = AblateParams()
    t0 = time.process_time()
    tensors = ablate(load_pipeline("base"), params)
    cpu = time.process_time() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "unet-kv.safetensors"
    save_file({k: v.to(torch.float16).contiguous() for k, v in tensors.items()}, str(ckpt))
    recipe = {"recipe": "memora_bench.unlearning.ablate", "params": asdict(params), "cpu_seconds": round(cpu, 1),
              "tensors": len(tensors), "stored_dtype": "float16"}
    manifest = "\n".join([
        "name: demo-ablate-seven",
        "method: concept ablation of cross-attention K/V (demo stand-in)",
        "authors: [memora-bench]",
        "reference: https://arxiv.org/abs/2303.13516",
        "base_model: {id: world/base, revision: mini-world-v2}",
        "erased: [seven]",
        "tasks: [mini-seven]",
        f"checkpoint: {{path: unet-kv.safetensors, sha256: {sha256_file(ckpt)}, component: unet}}",
        "notes: >-",
        "  Built by python -m memora_bench.unlearning.ablate with " + json.dumps(recipe, sort_keys=True),
        "",
    ])
    (out_dir / "submission.yaml").write_text(manifest)
    return recipe


if __name__ == "__main__":
    from memora_bench.paths import repo_root

    print(build_demo(repo_root() / "submissions" / "demo-ablate-seven"))
