"""Load a task's base model and apply a submission's declared component, strictly.

The component is data, declared in the manifest and never guessed from a file name:

- ``unet``: a full or partial UNet state dict (safetensors, or ``.pt`` read with ``weights_only=True``);
  a partial dict replaces exactly the tensors it names; unknown keys, shape or dtype mismatches and
  non-finite values are errors.
- ``text_encoder``: the same for the text encoder, or a ``transformers`` ``CLIPTextModel`` folder
  (``config.json`` and one weights file, as AdvUnlearn releases its encoders), which must match the base
  model's text-encoder architecture and hold every tensor.
- ``pipeline``: a diffusers pipeline folder replacing the base model whole (MACE releases these); ``.bin``
  weights are accepted only when every one of them loads with ``weights_only=True``.
- ``lora``: a diffusers / peft LoRA adapter for the UNet, fused at scale 1.
- ``spm``: an SPM adapter (kohya ``lora_unet_*`` layout), fused at multiplier 1 (see ``models/spm.py``).
- ``unet-delta8`` / ``text_encoder-delta8``: 8-bit weight changes (``models/delta.py``).

No silent partial load: every problem is collected and raised as one :class:`CheckpointError`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from memora_bench import miniworld
from memora_bench.miniworld import quiet_libraries
from memora_bench.models import delta
from memora_bench.models.errors import CheckpointError, compvis_hint
from memora_bench.models.spm import fuse_spm
from memora_bench.models.text import hide_words
from memora_bench.paths import repo_root
from memora_bench.specs import BaseModel, Submission, sha256_file

MAX_CHECKPOINT_BYTES = 8 * 1024**3


def load_base(base: BaseModel):
    """A base pipeline: a model of the shipped miniature world (``world/base``, ``world/oracle``), a local
    diffusers folder, or a Hub model with a pinned revision (SD-1.4)."""
    local = repo_root() / base.id
    if base.id.startswith("world/"):
        manifest = miniworld.load_manifest()
        if manifest["version"] != base.revision:
            raise miniworld.WorldError(
                f"task expects world revision {base.revision!r}, the shipped world is {manifest['version']!r}")
        return miniworld.load_pipeline(base.id.split("/", 1)[1])
    from diffusers import StableDiffusionPipeline

    quiet_libraries()
    source = str(local) if local.is_dir() else base.id
    pipe = StableDiffusionPipeline.from_pretrained(
        source, revision=None if local.is_dir() else base.revision, dtype=torch.float32,
        safety_checker=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors or pickle-free ``.pt``/``.bin`` file; pickled code is refused unrun."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises several types for a malformed header
            raise CheckpointError([f"{path}: malformed safetensors file ({err})"]) from None
    if suffix in (".pt", ".pth", ".bin", ".ckpt"):
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError([f"{path}: refused, not unpickled: not a weights-only torch file "
                                   f"({_torch_load_reason(err)}); submit safetensors"]) from None
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError([f"{path}: expected a flat dict of tensors"])
        return obj
    raise CheckpointError([f"{path}: unknown checkpoint format {suffix!r}; expected .safetensors or .pt"])


def _torch_load_reason(err: Exception) -> str:
    """The informative part of torch.load's error: which global the pickle needs, or why the file is unreadable.

    torch's own message goes on to suggest turning weights-only loading off, advice an untrusted file must not get.
    """
    text = str(err)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0].splitlines()[0]
        return f"its pickle needs {detail.removeprefix('Unsupported global: ')}" if detail else "unsupported pickle"
    return f"{type(err).__name__}: {text.splitlines()[0].split('. ')[0][:200]}"


def check_state_dict(sd: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], where: str,
                     partial: bool = True) -> list[str]:
    """Every problem of ``sd`` against the reference model's state dict."""
    problems = []
    for key in sorted(set(sd) - set(reference)):
        problems.append(f"{where}: unexpected tensor {key!r}" + (compvis_hint(key) or _component_hint(key, reference)))
    if not partial:
        for key in sorted(set(reference) - set(sd)):
            problems.append(f"{where}: missing tensor {key!r}")
    for key in sorted(set(sd) & set(reference)):
        t, ref = sd[key], reference[key]
        if tuple(t.shape) != tuple(ref.shape):
            problems.append(f"{where}: {key!r} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}")
        elif not t.is_floating_point():
            problems.append(f"{where}: {key!r} has dtype {t.dtype}, expected a floating-point tensor")
        elif not torch.isfinite(t).all():
            problems.append(f"{where}: {key!r} contains NaN or Inf")
    if not sd:
        problems.append(f"{where}: the checkpoint holds no tensors")
    return problems


_UNET_PREFIXES = ("down_blocks.", "up_blocks.", "mid_block.", "conv_in.", "conv_out.", "conv_norm_out.", "time_embedding.")
_TEXT_PREFIXES = ("text_model.", "embeddings.", "encoder.layers.", "final_layer_norm.")


def _component_hint(key: str, reference: dict) -> str:
    """Say so when a tensor belongs to the other component than the one the manifest declares."""
    ref_is_unet = any(k.startswith(_UNET_PREFIXES) for k in reference)
    if key.startswith(_UNET_PREFIXES) and not ref_is_unet:
        return " (a UNet tensor: should checkpoint.component be 'unet'?)"
    if key.startswith(_TEXT_PREFIXES) and ref_is_unet:
        return " (a text-encoder tensor: should checkpoint.component be 'text_encoder'?)"
    return ""


def _override_module(module: torch.nn.Module, sd: dict[str, torch.Tensor], where: str,
                     partial: bool = True) -> None:
    reference = module.state_dict()
    problems = check_state_dict(sd, reference, where, partial=partial)
    if problems:
        raise CheckpointError(problems)
    merged = dict(reference)
    merged.update({k: v.to(reference[k].dtype) for k, v in sd.items()})
    module.load_state_dict(merged, strict=True)


def checkpoint_path(submission: Submission) -> Path:
    folder = Path(submission.path).parent
    return folder / submission.checkpoint.path


def verify_checkpoint_file(submission: Submission) -> Path:
    """The checkpoint path, after checking it exists inside the folder with the declared sha256."""
    path = checkpoint_path(submission)
    problems = []
    if not path.exists():
        raise CheckpointError([f"{path}: checkpoint file missing"])
    if path.is_symlink() or any(p.is_symlink() for p in path.parents if p != p.parent and
                                Path(submission.path).parent in p.parents):
        problems.append(f"{path}: symlinks are not accepted inside a submission")
    if path.is_dir():
        problems += [f"{p}: symlinks are not accepted inside a submission" for p in sorted(path.rglob("*"))
                     if p.is_symlink()]
        if problems:  # never hash or read what a link inside the folder points at
            raise CheckpointError(problems)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if sum(p.stat().st_size for p in files) > MAX_CHECKPOINT_BYTES:  # refused before hashing gigabytes
        raise CheckpointError(problems + [f"{path}: larger than the {MAX_CHECKPOINT_BYTES // 1024**3} GiB limit"])
    digest = sha256_file(path) if path.is_file() else folder_sha256(path)
    if digest != submission.checkpoint.sha256:
        problems.append(f"{path}: sha256 is {digest}, the manifest says {submission.checkpoint.sha256}")
    if problems:
        raise CheckpointError(problems)
    return path


def verify_submission(submission: Submission) -> str | None:
    """The sha256 of the submission's checkpoint, computed from its files, after checking every file: inside
    the folder, no symlink, within the size limit, the declared sha256, every weight file readable without
    running code and finite. None for a control (no checkpoint).

    Run before any cached work is reused for a submission: cache keys derive from the digest this returns,
    never from the manifest's word, so a warm cache cannot vouch for a file it never saw."""
    if submission.checkpoint is None:
        return None
    path = verify_checkpoint_file(submission)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    problems = []
    for f in files:
        try:
            sd = read_state_dict(f)
        except CheckpointError as err:
            problems += err.problems
            continue
        problems += [f"{f}: {key!r} contains NaN or Inf" for key, t in sorted(sd.items())
                     if t.is_floating_point() and not torch.isfinite(t).all()]
    if problems:
        raise CheckpointError(problems)
    return submission.checkpoint.sha256  # equal to the files' digest: verify_checkpoint_file checked it


def folder_sha256(folder: Path) -> str:
    """sha256 over a folder: the sorted (relative path, file sha256) lines."""
    import hashlib

    lines = [f"{p.relative_to(folder).as_posix()} {sha256_file(p)}" for p in sorted(folder.rglob("*")) if p.is_file()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def load_submission_pipeline(submission: Submission, base: BaseModel):
    """The base model with the submission's declared component applied (or the base itself for a control),
    then a known-answer control's recipe (:func:`memora_bench.models.text.hide_words`)."""
    pipe = _with_checkpoint(submission, base)
    if submission.recipe is not None:
        hide_words(pipe, submission.recipe.hide)
    return pipe


def _with_checkpoint(submission: Submission, base: BaseModel):
    if submission.checkpoint is None:
        return load_base(base)
    path = verify_checkpoint_file(submission)
    component = submission.checkpoint.component
    if component == "pipeline":
        return load_pipeline_folder(path)
    pipe = load_base(base)
    if component == "unet":
        _override_module(pipe.unet, read_state_dict(path), str(path))
    elif component == "text_encoder":
        te = pipe.text_encoder
        if path.is_dir():
            sd = normalise_text_encoder_keys(read_text_encoder_folder(path, te.config), te.state_dict())
            _override_module(te, sd, str(path), partial=False)
        else:
            _override_module(te, normalise_text_encoder_keys(read_state_dict(path), te.state_dict()), str(path))
    elif component in ("unet-delta8", "text_encoder-delta8"):
        module = pipe.unet if component == "unet-delta8" else pipe.text_encoder
        _override_module(module, delta.decode(read_state_dict(path), module.state_dict(), str(path)), str(path))
    elif component == "lora":
        apply_lora(pipe, path)
    elif component == "spm":
        fuse_spm(pipe.unet, read_state_dict(path if path.is_file() else _single_weights_file(path)), str(path))
    else:
        raise CheckpointError([f"{path}: unknown component {component!r}"])
    return pipe


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
# Architecture fields of a CLIP text encoder that must agree with the base model's (the rest are defaults).
TEXT_ENCODER_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                       "max_position_embeddings", "hidden_act")


def load_pipeline_folder(path: Path):
    """A diffusers pipeline folder, after checking every pickle-format weight file loads weights-only."""
    from diffusers import StableDiffusionPipeline

    if not path.is_dir():
        raise CheckpointError([f"{path}: component 'pipeline' needs a diffusers folder"])
    if not (path / "model_index.json").is_file():
        raise CheckpointError([f"{path}: not a diffusers pipeline folder (no model_index.json)"])
    problems = []
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES[1:]):
        try:
            read_state_dict(f)
        except CheckpointError as err:
            problems.extend(err.problems)
    if problems:
        raise CheckpointError(problems)
    quiet_libraries()
    try:
        pipe = StableDiffusionPipeline.from_pretrained(str(path), dtype=torch.float32, safety_checker=None,
                                                       requires_safety_checker=False)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError([f"{path}: not a loadable StableDiffusionPipeline folder ({err})"]) from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def read_text_encoder_folder(path: Path, base_config) -> dict[str, torch.Tensor]:
    """The tensors of a transformers ``CLIPTextModel`` folder whose config matches the base text encoder."""
    import json

    problems = []
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError([f"{path}: a text-encoder folder needs a readable config.json ({err})"]) from None
    for field in TEXT_ENCODER_FIELDS:
        want = getattr(base_config, field, None)
        if want is not None and config.get(field) != want:
            problems.append(f"{path / 'config.json'}: {field} is {config.get(field)!r}, the base model's text encoder "
                            f"has {want!r}")
    files = [path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()]
    if not files:
        problems.append(f"{path}: no model.safetensors or pytorch_model.bin")
    if problems:
        raise CheckpointError(problems)
    sd = read_state_dict(files[0])
    # transformers < 4.31 saved the position ids as a tensor; they are a constant buffer now.
    ids = sd.pop("text_model.embeddings.position_ids", None)
    if ids is not None and not torch.equal(ids.flatten().long(), torch.arange(ids.numel())):
        raise CheckpointError([f"{files[0]}: text_model.embeddings.position_ids is not 0..{ids.numel() - 1}"])
    return sd


def normalise_text_encoder_keys(sd: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept both CLIP text-encoder key layouts: transformers 4 wrote ``text_model.encoder...`` (every
    released SD-1.4 encoder), transformers 5 writes ``encoder...``. A key is renamed only when the
    other spelling is the one this model has."""
    out = {}
    for key, value in sd.items():
        if key not in reference and key.startswith("text_model.") and key[len("text_model."):] in reference:
            key = key[len("text_model."):]
        elif key not in reference and "text_model." + key in reference:
            key = "text_model." + key
        out[key] = value
    return out


def apply_lora(pipe, path: Path) -> None:
    """Load a UNet LoRA (diffusers/peft format, a file or a folder) and fuse it at scale 1, strictly."""
    sd = read_state_dict(path if path.is_file() else _single_weights_file(path))
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    try:
        pipe.load_lora_weights(sd, adapter_name="submission")
    except Exception as err:
        raise CheckpointError([f"{path}: not a LoRA adapter for this UNet ({err})"]) from None
    pipe.fuse_lora(lora_scale=1.0)
    pipe.unload_lora_weights()
    after = pipe.unet.state_dict()
    if all(torch.equal(before[k], after[k]) for k in before):
        raise CheckpointError([f"{path}: the adapter changed no UNet weight (keys matched nothing)"])


def _single_weights_file(folder: Path) -> Path:
    files = sorted(folder.glob("*.safetensors"))
    if len(files) != 1:
        raise CheckpointError([f"{folder}: expected exactly one .safetensors adapter file, found {len(files)}"])
    return files[0]
