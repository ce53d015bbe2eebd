"""Weight deltas stored in 8 bits: ``unet-delta8`` and ``text_encoder-delta8`` checkpoints.

A method that fine-tunes most of a model (ESD-u, SalUn, EraseDiff) changes every large tensor, so its partial
state dict is as large as the model. Its *change* from the base model is small, though, and stores well in
8 bits: for each changed tensor ``K`` the file holds ``K.delta_q`` (int8, the tensor's shape) and
``K.delta_scale`` (float32, one scale per output row, i.e. per index of dimension 0), and the weight is

    W = W_base + delta_q * delta_scale   (broadcast over the trailing dimensions)

The rounding error is at most half a step, ``max|delta_row| / 254``: for fine-tuning deltas this is far below
what fp16 storage of the whole weight would lose (about ``|W| / 2048``).
"""

from __future__ import annotations

import torch

from memora_bench.models.errors import CheckpointError, compvis_hint

Q, SCALE = ".delta_q", ".delta_scale"


def encode(new: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """8-bit deltas of ``new`` against ``base`` (same keys and shapes)."""
    out = {}
    for key, w in new.items():
        delta = (w.float() - base[key].float()).reshape(len(w) if w.dim() else 1, -1)
        scale = delta.abs().amax(1) / 127.0
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.round(delta / scale[:, None]).clamp(-127, 127).to(torch.int8)
        out[key + Q] = q.reshape(w.shape).contiguous()
        out[key + SCALE] = scale.float().contiguous()
    return out


def decode(stored: dict[str, torch.Tensor], base: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """The full tensors ``W_base + q * scale``; raises CheckpointError listing every problem."""

    problems, out = [], {}
    keys = sorted({k[: -len(Q)] for k in stored if k.endswith(Q)} | {k[: -len(SCALE)] for k in stored if k.endswith(SCALE)})
    for k in sorted(k for k in stored if not k.endswith((Q, SCALE))):
        problems.append(f"{where}: tensor {k!r} is neither a '{Q}' nor a '{SCALE}' entry of a delta8 file")
    for key in keys:
        q, scale = stored.get(key + Q), stored.get(key + SCALE)
        if q is None or scale is None:
            problems.append(f"{where}: {key!r} needs both '{key}{Q}' and '{key}{SCALE}'")
            continue
        if key not in base:
            problems.append(f"{where}: unexpected tensor {key!r}" + compvis_hint(key))
            continue
        ref = base[key]
        rows = len(ref) if ref.dim() else 1
        if q.dtype != torch.int8:
            problems.append(f"{where}: {key}{Q} has dtype {q.dtype}, expected torch.int8")
        elif tuple(q.shape) != tuple(ref.shape):
            problems.append(f"{where}: {key}{Q} has shape {tuple(q.shape)}, expected {tuple(ref.shape)}")
        elif tuple(scale.shape) != (rows,) or not scale.is_floating_point():
            problems.append(f"{where}: {key}{SCALE} must be a float tensor of shape ({rows},)")
        elif not torch.isfinite(scale).all():
            problems.append(f"{where}: {key}{SCALE} contains NaN or Inf")
        else:
            delta = q.float().reshape(rows, -1) * scale.float()[:, None]
            out[key] = (ref.float() + delta.reshape(ref.shape)).to(ref.dtype)
    if not keys and not problems:
        problems.append(f"{where}: the checkpoint holds no tensors")
    if problems:
        raise CheckpointError(problems)
    return out


def max_relative_error(new: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> float:
    """Largest |decoded - new| / max|new - base| over tensors: the storage error relative to the change."""
    decoded = decode(encode(new, base), base, "delta8")
    worst = 0.0
    for k, w in new.items():
        change = float((w.float() - base[k].float()).abs().max())
        if change > 0:
            worst = max(worst, float((decoded[k].float() - w.float()).abs().max()) / change)
    return worst
