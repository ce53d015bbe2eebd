"""Shared test helpers: a tiny random SD-shaped pipeline built from configs (diffusers' dummy-components idea)."""

from __future__ import annotations

import torch


def tiny_pipeline(seed: int = 0):
    """A random StableDiffusionPipeline with the miniature world's architecture and SD's real tokenizer."""
    import tempfile
    from pathlib import Path

    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from memora_bench.world import configs
    from memora_bench.world.tokenizer import load_tokenizer, write_tokenizer

    torch.manual_seed(seed)
    tok = load_tokenizer(write_tokenizer(Path(tempfile.mkdtemp()) / "tok"))
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**configs.VAE).eval(),
        text_encoder=CLIPTextModel(CLIPTextConfig(**configs.TEXT_ENCODER)).eval(),
        tokenizer=tok,
        unet=UNet2DConditionModel(**configs.UNET).eval(),
        scheduler=DDIMScheduler(**configs.SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_result(submission: str = "sub", task: str = "mini-seven", plain_k: int = 10, n: int = 60,
                retain_k: int = 180, retain_n: int = 200, task_version: int = 1) -> dict:
    """A minimal, schema-valid result whose rates come from the real scoring code."""
    import numpy as np

    from memora_bench.scoring import rate

    def r(k, n):
        return rate([np.array([i < k]) for i in range(n)], 200, 0).as_dict()

    sha = "a" * 64
    return {
        "schema_version": 1, "created": "2026-11-23T00:00:00+00:00", "images_file": f"{task}.images.jsonl",
        "suite": {"name": "mini-v1", "version": 1, "sha256": sha, "bootstrap": 200, "bootstrap_seed": 0,
                  "confidence": 0.95},
        "task": {"name": task, "version": task_version, "sha256": sha,
                 "concepts": [{"name": "seven", "kind": "object", "prompt": "a handwritten seven", "label": "seven"}],
                 "attack_prompts": {"file": "a.csv", "sha256": sha}, "retain_prompts": {"file": "r.csv", "sha256": sha},
                 "classifiers": [{"name": "mini-digit", "id": "mini-digit", "sha256": sha, "threshold": 0.5}],
                 "generation": {"scheduler": "ddim", "steps": 50, "guidance": 7.5, "height": 32, "width": 32,
                                "images_per_prompt": 1}},
        "base_model": {"id": "world/base", "revision": "mini-world-v2"},
        "submission": {"name": submission, "method": "m", "control": False, "manifest_sha256": sha,
                       "erased": ["seven"], "checkpoint": None},
        "probes": {"plain": {"params": {}, "rates": {"seven": r(plain_k, n), "all": r(plain_k, n)},
                             "cost": {"images": n, "model_evaluations": 100 * n}}},
        "utility": {"retain": {"all": r(retain_k, retain_n)}},
        "environment": {"memora_bench": "0", "python": "3", "torch": "2", "diffusers": "0", "transformers": "5",
                        "device": "cpu", "torch_threads": 2, "micro_batch": 32},
        "timing": {"stages": {}, "probes": {"plain": {"wall_s": 1.0, "cpu_s": 1.0}}, "total_wall_s": 1.0,
                   "images_generated": 0, "images_cached": 0},
    }


def write_result(folder, result: dict):
    import json
    from pathlib import Path

    path = Path(folder) / result["submission"]["name"] / f"{result['task']['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return path


def sd14_shaped_pipeline(seed: int = 0):
    """A tiny random pipeline with Stable Diffusion 1.4's *layout*: the same blocks, layers and module names
    (so the same state-dict keys and the same SPM / LoRA addresses), with narrow channels.

    SD-1.4's own configs (CompVis/stable-diffusion-v1-4): UNet block_out_channels (320, 640, 1280, 1280),
    cross_attention_dim 768, attention_head_dim 8; CLIP ViT-L/14 text encoder, 12 layers of width 768; VAE
    block_out_channels (128, 256, 512, 512). Here every width is 32 or 64 and the text encoder has 2 layers."""
    import tempfile
    from pathlib import Path

    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from memora_bench.world.tokenizer import load_tokenizer, write_tokenizer

    torch.manual_seed(seed)
    tok = load_tokenizer(write_tokenizer(Path(tempfile.mkdtemp()) / "tok"))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(32,) * 4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=32, sample_size=64,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32,
    ))
    pipe = StableDiffusionPipeline(
        vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=tok, unet=unet.eval(),
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                clip_sample=False, set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def with_memora(result, curve_k, oracle_k, ceiling_k=16, n=48, auto_k=None):
    """``result`` with a MemoRa block whose rates and score come from the real scoring code."""
    import numpy as np

    from memora_bench.scoring import rate, recovery_score

    budgets = [0, 25, 100]

    def hits(ks):  # per attack seed (3), per budget: 16 prompts, the first k//3 of them hit
        return [[np.array([i < k // 3 for i in range(16)]) for k in ks] for _ in range(3)]

    def pooled(k):
        return rate([np.array([i < k // 3] * 3) for i in range(16)], 200, 0).as_dict()

    ceiling = np.array([i < ceiling_k for i in range(16)])
    score = recovery_score(budgets, hits(curve_k), hits(oracle_k), ceiling, 200, 0, 0.5, 0.15, 0.95)
    entry = {"curve": [pooled(k) for k in curve_k], "oracle_curve": [pooled(k) for k in oracle_k],
             "ceiling": rate([ceiling[i : i + 1] for i in range(16)], 200, 0).as_dict(), "score": score.as_dict()}
    memora = {"params": {"budgets": budgets}, "concepts": {"seven": entry},
              "rates": {"seven": entry["curve"][-1], "all": entry["curve"][-1]},
              "cost": {"images": 3 * n, "model_evaluations": 1}}
    if auto_k is not None:
        memora["auto"] = {"seven": {"0.5": pooled(auto_k)}}
    result["probes"]["memora"] = memora
    return result
