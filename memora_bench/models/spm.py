"""SPM adapters (Lyu et al., "One-dimensional Adapter to Rule Them All", CVPR 2024; Con6924/SPM), fused.

SPM saves its adapter in the kohya / SD-webui LoRA layout: for every ``Linear`` or ``Conv2d`` inside the
UNet's ``Transformer2DModel`` blocks (the default; ``ResnetBlock2D``, ``Downsample2D`` and ``Upsample2D``
children are also addressable), three tensors named after the module's dotted path with dots replaced by
underscores and the prefix ``lora_unet_``::

    lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight  (rank, in[, kh, kw])
    lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight    (out, rank[, 1, 1])
    lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha             ()

The layer adds ``multiplier * alpha / rank * up(down(x))``; fusing it into the weight gives
``W + multiplier * alpha / rank * up @ down`` (for a k x k convolution, the composition of the two
convolutions). The reference's *facilitated transport* sets the multiplier per prompt from the prompt's
similarity to the erased concept; a fused checkpoint cannot do that, so the benchmark applies the adapter at
a fixed multiplier of 1 (the reference's ``--spm_multiplier 1``), the strongest erasure for every prompt.
Every key must name a module of this UNet: unknown modules, missing halves and shape mismatches are errors.
"""

from __future__ import annotations

import torch

from memora_bench.models.errors import CheckpointError

PREFIX = "lora_unet_"
TARGET_PARENTS = ("Transformer2DModel", "ResnetBlock2D", "Downsample2D", "Upsample2D")


def addressable_modules(unet: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """SPM name -> module, for every Linear / Conv2d inside the block types SPM addresses."""
    names: dict[str, torch.nn.Module] = {}
    for parent_name, parent in unet.named_modules():
        if type(parent).__name__ not in TARGET_PARENTS:
            continue
        for child_name, child in parent.named_modules():
            if isinstance(child, (torch.nn.Linear, torch.nn.Conv2d)):
                names[PREFIX + f"{parent_name}.{child_name}".replace(".", "_")] = child
    return names


def fuse_spm(unet: torch.nn.Module, sd: dict[str, torch.Tensor], where: str, multiplier: float = 1.0) -> int:
    """Fuse an SPM adapter into ``unet`` in place; returns the number of modules changed.

    Raises :class:`memora_bench.models.errors.CheckpointError` listing every problem, before any weight
    is touched."""

    modules = addressable_modules(unet)
    problems: list[str] = []
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        for part in (".lora_down.weight", ".lora_up.weight", ".alpha"):
            if key.endswith(part):
                groups.setdefault(key[: -len(part)], {})[part.strip(".").split(".")[0]] = value
                break
        else:
            problems.append(f"{where}: unexpected tensor {key!r} (an SPM adapter holds only "
                            f"'<module>.lora_down.weight', '<module>.lora_up.weight' and '<module>.alpha')")
    updates: dict[str, torch.Tensor] = {}
    for name in sorted(groups):
        g = groups[name]
        if name not in modules:
            problems.append(f"{where}: {name!r} names no Linear or Conv2d of this UNet's attention or resnet blocks")
            continue
        if "lora_down" not in g or "lora_up" not in g:
            problems.append(f"{where}: {name!r} needs both lora_down.weight and lora_up.weight")
            continue
        down, up = g["lora_down"].float(), g["lora_up"].float()
        if not (torch.isfinite(down).all() and torch.isfinite(up).all()):
            problems.append(f"{where}: {name!r} contains NaN or Inf")
            continue
        rank = down.shape[0]
        alpha = float(g["alpha"]) if "alpha" in g and g["alpha"].numel() == 1 else float(rank)
        if "alpha" in g and g["alpha"].numel() != 1:
            problems.append(f"{where}: {name!r}.alpha must be a scalar, got shape {tuple(g['alpha'].shape)}")
            continue
        weight = modules[name].weight
        delta = _product(up, down, weight.shape)
        if delta is None:
            problems.append(f"{where}: {name!r}: lora_up {tuple(up.shape)} x lora_down {tuple(down.shape)} does not "
                            f"fit the module's weight {tuple(weight.shape)}")
            continue
        updates[name] = delta * (multiplier * alpha / rank)
    if not groups and not problems:
        problems.append(f"{where}: the adapter holds no SPM tensors")
    if problems:
        raise CheckpointError(problems)
    with torch.no_grad():
        for name, delta in updates.items():
            w = modules[name].weight
            w.copy_((w.float() + delta).to(w.dtype))
    return len(updates)


def _product(up: torch.Tensor, down: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """The weight change up o down in the module's weight shape, or None when the shapes do not compose."""
    if up.dim() == 4 and up.shape[2:] == (1, 1):
        up2 = up[:, :, 0, 0]
    elif up.dim() == 2:
        up2 = up
    else:
        return None
    if up2.shape[1] != down.shape[0]:
        return None
    if len(shape) == 2:  # Linear (SPM stores linear halves as 2-D; 1x1 conv halves are squeezed)
        down2 = down[:, :, 0, 0] if down.dim() == 4 and down.shape[2:] == (1, 1) else down
        if down2.dim() != 2:
            return None
        delta = up2 @ down2
    elif down.dim() == 4:  # Conv2d: down is a k x k conv to rank channels, up a 1x1 conv
        delta = torch.einsum("or,rikl->oikl", up2, down)
    else:
        return None
    return delta if tuple(delta.shape) == tuple(shape) else None
