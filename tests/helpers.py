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
