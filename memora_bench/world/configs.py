"""Architectures of the miniature world: small, but the same diffusers classes as Stable Diffusion 1.4.

32x32 RGB digits -> a 3-block ``AutoencoderKL`` (4 x 8 x 8 latents) -> a ``UNet2DConditionModel`` with
cross-attention on a 2-layer ``CLIPTextModel`` of width 64 that uses the real CLIP tokenizer (49,408
tokens, 77 positions), sampled with SD-1.4's ``DDIMScheduler`` settings.
"""

VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
)

TEXT_ENCODER = dict(
    vocab_size=49408,
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
    projection_dim=64,
)

UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(64, 96, 128),
    layers_per_block=1,
    cross_attention_dim=64,
    attention_head_dim=4,
    norm_num_groups=32,
)

# Stable Diffusion 1.4's scheduler settings (scheduler/scheduler_config.json of CompVis/stable-diffusion-v1-4).
SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)
