"""Read-only access to the shipped miniature world: its manifest, integrity checks and model loading.

The manifest ``world/world.json`` lists every weight file with its sha256; a missing or altered file is an
error that names the file and the command that rebuilds it. Training code lives in
:mod:`memora_bench.world` and is not imported from here.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from memora_bench.paths import world_dir
from memora_bench.specs import sha256_file

MANIFEST = "world.json"
REBUILD = "memora-bench world train"
MODELS = ("base", "oracle")


class WorldError(RuntimeError):
    """The shipped world is missing, incomplete or altered."""


def load_manifest(world: Path | None = None) -> dict:
    """The world's manifest (versions, file hashes, accuracies, concept rates)."""
    world = world or world_dir()
    path = world / MANIFEST
    if not path.exists():
        raise WorldError(f"miniature world manifest missing: {path}; rebuild the world with `{REBUILD}`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise WorldError(f"miniature world manifest {path} is not valid JSON ({err}); rebuild with `{REBUILD}`")


def verify_files(manifest: dict, world: Path | None = None, only: str | None = None) -> None:
    """Check that every listed file (or every file under folder ``only``) exists with its recorded sha256.

    Raises one :class:`WorldError` that lists every problem.
    """
    world = world or world_dir()
    problems = []
    for rel, meta in manifest["files"].items():
        if only is not None and not rel.startswith(only.rstrip("/") + "/"):
            continue
        path = world / rel
        if not path.exists():
            problems.append(f"missing weight file {path}")
        elif sha256_file(path) != meta["sha256"]:
            problems.append(f"altered weight file {path} (sha256 differs from {MANIFEST})")
    if problems:
        raise WorldError("; ".join(problems) + f". Rebuild the world with `{REBUILD}`")


def quiet_libraries() -> None:
    """diffusers' and transformers' loading bars and advisory warnings off: ``evaluate`` says itself what runs
    (:mod:`memora_bench.progress`); errors still show. Called where a model is loaded, so that a run that
    loads none (a warm rerun) never imports the two libraries."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.disable_progress_bar()
        lib.set_verbosity_error()
    # Multi-MemoRa attaches one LoRA per concept to one UNet on purpose; peft warns at the second
    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute in the model",
                            category=UserWarning)


def load_pipeline(model: str = "base", world: Path | None = None, verify: bool = True):
    """The world's ``StableDiffusionPipeline`` (fp32, no safety checker); ``oracle`` swaps in the oracle UNet."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    quiet_libraries()

    if model not in MODELS:
        raise ValueError(f"unknown world model {model!r}; expected one of {MODELS}")
    world = world or world_dir()
    if verify:
        manifest = load_manifest(world)
        verify_files(manifest, world, only="base")
        if model == "oracle":
            verify_files(manifest, world, only="oracle")
    pipe = StableDiffusionPipeline.from_pretrained(
        str(world / "base"), dtype=torch.float32, safety_checker=None, requires_safety_checker=False
    )
    if model == "oracle":
        pipe.unet = UNet2DConditionModel.from_pretrained(str(world / "oracle" / "unet"), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe
