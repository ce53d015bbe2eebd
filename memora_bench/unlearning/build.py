"""Build a baseline checkpoint for a miniature task: ``memora-bench baselines build NAME [--task TASK]``.

Each build writes ``baselines/<name>-<task>/``: the changed tensors of one component (fp16 safetensors), a
``submission.yaml`` that ``memora-bench evaluate`` accepts like any other submission, and ``build.json`` with
the recipe, every parameter, the seed, the CPU time and the checkpoint's sha256.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from dataclasses import asdict
from pathlib import Path

from memora_bench.miniworld import load_pipeline
from memora_bench.models import delta
from memora_bench.specs import load_task, sha256_file
from memora_bench.unlearning.common import Checkpointer, Target
from memora_bench.unlearning.registry import RECIPES

MINI_TASKS = ("mini-seven", "mini-bold", "mini-three-eight")
STORED_DTYPE = "float16"
RESUME_FILE = ".resume.pt"  # a long recipe's state while it runs (git-ignored); a rebuild continues from it
LOCK_FILE = ".build.lock"  # held while a build runs (git-ignored): two builds of one baseline would share RESUME_FILE


class BuildBusy(RuntimeError):
    """Another process is building the same baseline."""


@contextlib.contextmanager
def exclusive(folder: Path):
    """Hold ``folder/LOCK_FILE`` for the duration of a build. The lock is the kernel's (``flock``), so it is
    released when its process ends, however it ends: a killed build leaves no stale lock."""
    import fcntl
    import os

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise BuildBusy(f"{folder.name} is being built by another process (pid {f.read().strip() or '?'})") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield


def folder_name(recipe: str, task: str) -> str:
    return f"{recipe}-{task}"


def build(recipe_name: str, task_name: str, root: Path, params_override: dict | None = None) -> dict:
    """Run one recipe on the world's base model for one task; returns the build record. Raises ``BuildBusy``
    if another process is building the same baseline."""
    with exclusive(root / "baselines" / folder_name(recipe_name, task_name)):
        return _build(recipe_name, task_name, root, params_override)


def _build(recipe_name: str, task_name: str, root: Path, params_override: dict | None) -> dict:
    import torch
    from safetensors.torch import save_file

    if recipe_name not in RECIPES:
        raise KeyError(f"unknown baseline {recipe_name!r}; known: {', '.join(RECIPES)}")
    recipe = RECIPES[recipe_name]
    task = load_task(root / "tasks" / f"{task_name}.yaml")
    function, params_cls = recipe.load()
    params = params_cls(**(params_override or {}))
    target = Target(task=task.name, erased=tuple(c.name for c in task.concepts), prompts=tuple(c.prompt for c in task.concepts))

    torch.manual_seed(params.seed)
    pipe = load_pipeline("base")
    module = pipe.text_encoder if recipe.component.startswith("text_encoder") else pipe.unet
    base_sd = {k: v.clone() for k, v in module.state_dict().items()}
    out = root / "baselines" / folder_name(recipe_name, task_name)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    if "checkpoint" in inspect.signature(function).parameters:  # a long recipe: resumable
        checkpoint = Checkpointer(out / RESUME_FILE, asdict(params))
        tensors = function(pipe, target, params, checkpoint=checkpoint)
        cpu = time.process_time() - t0 + checkpoint.prior_cpu
    else:
        checkpoint = None
        tensors = function(pipe, target, params)
        cpu = time.process_time() - t0
    ckpt = out / f"{recipe.component}.safetensors"
    tmp = ckpt.with_suffix(".tmp")
    storage_error = None
    if recipe.component.endswith("-delta8"):
        stored = delta.encode(tensors, base_sd)
        storage_error = delta.max_relative_error(tensors, base_sd)
        dtype = "int8 delta + float32 row scales"
    else:
        stored = {k: v.to(getattr(torch, STORED_DTYPE)).contiguous() for k, v in tensors.items()}
        dtype = STORED_DTYPE
    save_file(stored, str(tmp))
    tmp.replace(ckpt)
    record = {
        "recipe": recipe_name,
        "method": recipe.method,
        "reference": recipe.reference,
        "task": task_name,
        "erased": list(target.erased),
        "params": asdict(params),
        "seed": params.seed,
        "cpu_seconds": round(cpu, 1),
        "component": recipe.component,
        "tensors": len(tensors),
        "parameters": int(sum(v.numel() for v in tensors.values())),
        "stored_dtype": dtype,
        "storage_max_error_relative_to_change": storage_error,
        "checkpoint": ckpt.name,
        "sha256": sha256_file(ckpt),
        "bytes": ckpt.stat().st_size,
        "torch": torch.__version__,
    }
    (out / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    manifest = "\n".join([
        f"name: {folder_name(recipe_name, task_name)}",
        f"method: \"{recipe.method}\"",
        "authors: [memora-bench (reproduction)]",
        f"reference: {recipe.reference}",
        f"base_model: {{id: {task.base_model.id}, revision: {task.base_model.revision}}}",
        f"erased: [{', '.join(target.erased)}]",
        f"tasks: [{task_name}]",
        f"checkpoint: {{path: {ckpt.name}, sha256: {record['sha256']}, component: {recipe.component}}}",
        "notes: >-",
        f"  Built by `memora-bench baselines build {recipe_name} --task {task_name}`; recipe, parameters, seed and",
        "  CPU time are in build.json.",
        "",
    ])
    (out / "submission.yaml").write_text(manifest)
    if checkpoint:
        checkpoint.clear()
    return record
