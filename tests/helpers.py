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
