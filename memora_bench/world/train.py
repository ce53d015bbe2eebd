"""Train the miniature world from real digits, with fixed seeds: `memora-bench world train`.

Stages, each writing its own files under ``world/`` (a finished stage is skipped unless forced):

1. ``classifiers``: the digit and style CNNs, on the training split in all three styles.
2. ``vae``: a 3-block AutoencoderKL on the training split in all three styles; its latent scaling factor
   is set, as SD's is, to 1 / std of the training latents.
3. ``base``: the CLIP tokenizer (written from open_clip's BPE file), then the text encoder and UNet trained
   together on captioned digits: the base model that unlearning methods start from.
4. ``oracle``: the retrain oracle, a UNet trained from scratch with the same recipe and seed on the data
   without the erased concepts; the text encoder stays the base's, frozen (as SD is retrained on a fixed CLIP).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from memora_bench.classifiers.mini import (
    DIGIT_LABELS,
    STYLE_LABELS,
    SmallCNN,
    load_mini_classifier,
)
from memora_bench.digits import STYLES, load_split, sample_caption, stylise
from memora_bench.world import configs
from memora_bench.world.tokenizer import load_tokenizer, write_tokenizer

STAGES = ("classifiers", "vae", "base", "oracle")


@dataclass(frozen=True)
class DiffusionRecipe:
    """Hyper-parameters of the text-encoder + UNet training; recorded in the model card."""

    seed: int = 1234
    steps: int = 3000
    batch_size: int = 128
    lr: float = 5e-4
    warmup: int = 100
    caption_dropout: float = 0.1  # empty caption, for classifier-free guidance
    identity_drop: float = 0.1  # caption names only the style
    train_text_encoder: bool = True
    ema_decay: float = 0.999  # the shipped weights are this EMA (warmed up as diffusers' EMAModel does)
    exclude_digits: tuple[int, ...] = ()
    exclude_styles: tuple[str, ...] = ()


# The retrain oracle never sees any concept a miniature task erases (the card says so).
ORACLE_EXCLUDE_DIGITS = (3, 7, 8)
ORACLE_EXCLUDE_STYLES = ("bold",)


def _styled_dataset(images: np.ndarray, labels: np.ndarray):
    """All (image, digit, style) triples of a split: every image in every style."""
    xs, ys, ss = [], [], []
    for si, style in enumerate(STYLES):
        xs.append(stylise(images, style))
        ys.append(labels)
        ss.append(np.full(len(labels), si))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ss)


def _cpu_seconds() -> float:
    return time.process_time()


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# --- 1. classifiers ---------------------------------------------------------------------------------------

def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 px and +-8 degree rotations, so generated digits are judged fairly."""
    n = len(x)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * (8 * math.pi / 180)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 / 16)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def train_classifier(kind: str, out: Path, seed: int = 7, epochs: int = 12, batch_size: int = 128) -> dict:
    """Train the ``digit`` or ``style`` classifier; returns its held-out accuracy and confusion matrix."""
    from safetensors.torch import save_file

    labels = DIGIT_LABELS if kind == "digit" else STYLE_LABELS
    split = load_split()
    x, y, s = _styled_dataset(split.train_images, split.train_labels)
    target = torch.from_numpy(y if kind == "digit" else s)
    x = torch.from_numpy(x).unsqueeze(1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SmallCNN(len(labels))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    t0 = _cpu_seconds()
    model.train()
    with tqdm(total=steps, desc=f"{kind} classifier") as bar:
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch_size):
                idx = perm[i : i + batch_size]
                loss = F.cross_entropy(model(_augment(x[idx], gen)), target[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    clf = load_mini_classifier(out, labels)
    hx, hy, hs = _styled_dataset(split.heldout_images, split.heldout_labels)
    truth = hy if kind == "digit" else hs
    pred = clf.probs(hx).argmax(1)
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    np.add.at(confusion, (truth, pred), 1)
    per_style = {st: float((pred[hs == i] == truth[hs == i]).mean()) for i, st in enumerate(STYLES)}
    return {
        "file": out.name,
        "sha256": clf.sha256,
        "labels": list(labels),
        "heldout_accuracy": float((pred == truth).mean()),
        "heldout_accuracy_by_style": per_style,
        "heldout_n": int(len(truth)),
        "confusion": confusion.tolist(),
        "seed": seed,
        "epochs": epochs,
        "cpu_seconds": round(_cpu_seconds() - t0, 1),
    }


# --- 2. VAE -----------------------------------------------------------------------------------------------

def _to_rgb(x: np.ndarray) -> torch.Tensor:
    """(N, 32, 32) grey in [0, 1] -> (N, 3, 32, 32) in [-1, 1], as SD's VAE expects."""
    t = torch.from_numpy(x).float().unsqueeze(1) * 2 - 1
    return t.expand(-1, 3, -1, -1).contiguous()


def train_vae(out: Path, seed: int = 11, steps: int = 2500, batch_size: int = 32, kl_weight: float = 1e-4) -> dict:
    """Train the autoencoder (L1 + MSE reconstruction, small KL) and set its scaling factor."""
    from diffusers import AutoencoderKL

    split = load_split()
    x, _, _ = _styled_dataset(split.train_images, split.train_labels)
    data = _to_rgb(x)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vae = AutoencoderKL(**configs.VAE)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    t0 = _cpu_seconds()
    vae.train()
    with tqdm(total=steps, desc="vae") as bar:
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = 1e-3 * _cosine(step, steps, 200)
            batch = data[torch.randint(0, len(data), (batch_size,), generator=gen)]
            post = vae.encode(batch).latent_dist
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
            rec = vae.decode(z).sample
            loss = F.l1_loss(rec, batch) + F.mse_loss(rec, batch) + kl_weight * post.kl().mean() / z[0].numel()
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
    vae.eval()
    with torch.inference_mode():
        latents = torch.cat([vae.encode(data[i : i + 512]).latent_dist.mean for i in range(0, len(data), 512)])
        rec = torch.cat([vae.decode(latents[i : i + 512]).sample for i in range(0, len(latents), 512)])
    scaling = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    vae.save_pretrained(str(out))
    return {
        "seed": seed,
        "steps": steps,
        "scaling_factor": scaling,
        "train_reconstruction_mae": float((rec - data).abs().mean() / 2),
        "cpu_seconds": round(_cpu_seconds() - t0, 1),
    }


# --- 3 and 4. text encoder + UNet ---------------------------------------------------------------------------

def _encode_latent_stats(vae, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        parts = [vae.encode(data[i : i + 512]).latent_dist for i in range(0, len(data), 512)]
    return torch.cat([p.mean for p in parts]).clone(), torch.cat([p.std for p in parts]).clone()


def train_diffusion(world: Path, recipe: DiffusionRecipe, text_encoder=None, desc: str = "unet") -> tuple:
    """Train a UNet (and, for the base, the text encoder) on captioned digits; returns (unet, te, report)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = load_tokenizer(world / "base" / "tokenizer")
    vae = AutoencoderKL.from_pretrained(str(world / "base" / "vae")).eval()
    split = load_split()
    x, y, s = _styled_dataset(split.train_images, split.train_labels)
    keep = ~np.isin(y, recipe.exclude_digits) & ~np.isin(np.array(STYLES)[s], recipe.exclude_styles)
    x, y, s = x[keep], y[keep], s[keep]
    mean, std = _encode_latent_stats(vae, _to_rgb(x))
    scale = vae.config.scaling_factor

    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    noise_sched = DDPMScheduler(**{k: v for k, v in configs.SCHEDULER.items() if k != "set_alpha_to_one"})
    unet = UNet2DConditionModel(**configs.UNET)
    if text_encoder is None:
        text_encoder = CLIPTextModel(CLIPTextConfig(**configs.TEXT_ENCODER))
    params = list(unet.parameters())
    if recipe.train_text_encoder:
        params += list(text_encoder.parameters())
        text_encoder.train()
    else:
        text_encoder.requires_grad_(False).eval()
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=1e-2)
    token_cache: dict[str, list[int]] = {}

    def tokens(captions: list[str]) -> torch.Tensor:
        for c in captions:
            if c not in token_cache:
                token_cache[c] = tokenizer(c, padding="max_length", max_length=77, truncation=True).input_ids
        return torch.tensor([token_cache[c] for c in captions])

    trained = {"unet": unet, "text_encoder": text_encoder} if recipe.train_text_encoder else {"unet": unet}
    ema = {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in trained.items()}
    ckpt = world / ".checkpoints" / f"{desc.split()[0]}.pt"
    state = _Checkpoint(ckpt, recipe)
    start, losses, cpu_before = state.restore(trained, ema, opt, gen, rng)
    t0 = _cpu_seconds() - cpu_before
    unet.train()
    with tqdm(total=recipe.steps, initial=start, desc=desc) as bar:
        for step in range(start, recipe.steps):
            for g in opt.param_groups:
                g["lr"] = recipe.lr * _cosine(step, recipe.steps, recipe.warmup)
            idx = torch.randint(0, len(x), (recipe.batch_size,), generator=gen)
            captions = [
                "" if rng.random() < recipe.caption_dropout
                else sample_caption(int(y[i]), STYLES[int(s[i])], rng, recipe.identity_drop)
                for i in idx.tolist()
            ]
            z = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * scale
            noise = torch.randn(z.shape, generator=gen)
            t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(z),), generator=gen)
            context = text_encoder(tokens(captions))[0]
            pred = unet(noise_sched.add_noise(z, noise, t), t, encoder_hidden_states=context).sample
            loss = F.mse_loss(pred, noise)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            _ema_update(ema, trained, min(recipe.ema_decay, (1 + step) / (10 + step)))
            losses.append(loss.item())
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
            if (step + 1) % CHECKPOINT_EVERY == 0 and step + 1 < recipe.steps:
                state.save(step + 1, trained, ema, opt, gen, rng, losses, _cpu_seconds() - t0)
    for name, m in trained.items():
        m.load_state_dict(ema[name])
    unet.eval()
    text_encoder.eval()
    report = {
        "recipe": asdict(recipe),
        "train_images": int(len(x)),
        "final_loss": float(np.mean(losses[-200:])),
        "weights": f"EMA, decay {recipe.ema_decay}",
        "cpu_seconds": round(_cpu_seconds() - t0, 1),
        "unet_parameters": sum(p.numel() for p in unet.parameters()),
        "text_encoder_parameters": sum(p.numel() for p in text_encoder.parameters()),
    }
    state.remove()
    return unet, text_encoder, report


CHECKPOINT_EVERY = 250


def _ema_update(ema: dict, models: dict, decay: float) -> None:
    with torch.no_grad():
        for name, m in models.items():
            for k, v in m.state_dict().items():
                if v.dtype.is_floating_point:
                    ema[name][k].mul_(decay).add_(v, alpha=1 - decay)
                else:
                    ema[name][k].copy_(v)


class _Checkpoint:
    """Resumable training: every ``CHECKPOINT_EVERY`` steps the whole state (weights, EMA, optimiser, every
    random generator) goes to ``world/.checkpoints/``; a restarted run continues exactly where it stopped."""

    def __init__(self, path: Path, recipe: DiffusionRecipe):
        self.path, self.recipe = path, asdict(recipe)

    def restore(self, models, ema, opt, gen, rng) -> tuple[int, list, float]:
        if not self.path.exists():
            return 0, [], 0.0
        saved = torch.load(self.path, weights_only=True)  # tensors, numbers, strings: no code is unpickled
        if saved["recipe"] != self.recipe:
            print(f"[world] {self.path.name}: recipe changed since the checkpoint; starting afresh")
            return 0, [], 0.0
        for name, m in models.items():
            m.load_state_dict(saved["models"][name])
            ema[name] = saved["ema"][name]
        opt.load_state_dict(saved["opt"])
        gen.set_state(saved["gen"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        print(f"[world] resuming {self.path.name} at step {saved['step']}")
        return saved["step"], saved["losses"], saved["cpu_seconds"]

    def save(self, step, models, ema, opt, gen, rng, losses, cpu_seconds) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save({"recipe": self.recipe, "step": step, "models": {n: m.state_dict() for n, m in models.items()},
                    "ema": ema, "opt": opt.state_dict(), "gen": gen.get_state(), "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "losses": losses, "cpu_seconds": cpu_seconds}, tmp)
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _save_fp16(model, folder: Path) -> None:
    """Store weights in fp16 (half the bytes); they are loaded back as fp32 and that fp32 model IS the model."""
    model.to(torch.float16).save_pretrained(str(folder))
    model.to(torch.float32)


def build_base(world: Path, recipe: DiffusionRecipe) -> dict:
    """Tokenizer + text encoder + UNet + scheduler around the trained VAE: a StableDiffusionPipeline folder."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline

    base = world / "base"
    write_tokenizer(base / "tokenizer")
    unet, te, report = train_diffusion(world, recipe, desc="base (text encoder + unet)")
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(str(base / "vae")),
        text_encoder=te,
        tokenizer=load_tokenizer(base / "tokenizer"),
        unet=unet,
        scheduler=DDIMScheduler(**configs.SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.scheduler.save_pretrained(str(base / "scheduler"))
    _save_fp16(pipe.unet, base / "unet")
    _save_fp16(pipe.text_encoder, base / "text_encoder")
    pipe.save_config(str(base))
    return report


def build_oracle(world: Path, recipe: DiffusionRecipe) -> dict:
    """Retrain oracle: UNet from scratch, frozen base text encoder, data without the erased concepts."""
    from transformers import CLIPTextModel

    te = CLIPTextModel.from_pretrained(str(world / "base" / "text_encoder"), dtype=torch.float32)
    unet, _, report = train_diffusion(world, recipe, text_encoder=te, desc="oracle unet")
    _save_fp16(unet, world / "oracle" / "unet")
    return report
