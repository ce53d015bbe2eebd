"""Known-answer controls: checkpoints whose truth is known by construction (``controls/``, docs in
``controls/README.md``), built with fixed seeds by ``memora-bench controls build``.

- ``hidden-original-<task>``: the original model with the concept's words hidden in the text encoder (the
  manifest's ``recipe.hide``; :func:`memora_bench.models.text.hide_words`). Nothing was removed: truth STM.
- ``hidden-oracle-<task>``: the same on the retrain oracle, which never learned the concept: truth LTM.
- ``ladder-<k>-<task>``: the retrain oracle taught the concept for ``k`` steps, then hidden the same way.
  Teaching is a LoRA (rank 8 on the UNet's attention projections, small enough to commit) trained on real
  training digits of the concept mixed half and half with the oracle's own training data, with the world's
  captions; one run per task, checkpointed at every k. Its truth is how much it knows: ``q_k``, the un-hidden
  model's plain rate on the task's prompts, measured here and recorded in ``build.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from memora_bench.cache import Cache
from memora_bench.digits import DIGIT_WORDS, STYLES, load_split, sample_caption, stylise
from memora_bench.miniworld import load_pipeline
from memora_bench.models import lora
from memora_bench.models.parallel import Runtime
from memora_bench.paths import repo_root
from memora_bench.runner import evaluate
from memora_bench.specs import load_submission, load_suite, load_task, sha256_file

LADDER_STEPS = (10, 25, 50, 100, 200, 400)  # k = 0 is hidden-oracle-<task> itself
ORACLE_DIGITS_EXCLUDED = (3, 7, 8)  # what the shipped oracle never saw (world/MODEL_CARD.md)
ORACLE_STYLES_EXCLUDED = ("bold",)


@dataclass(frozen=True)
class TeachParams:
    steps: tuple[int, ...] = LADDER_STEPS
    rank: int = 8
    lr: float = 1e-3
    batch_size: int = 32
    concept_share: float = 0.5  # of each batch: images of the concept; the rest the oracle's own data
    caption_dropout: float = 0.1
    seed: int = 0


def controls_dir() -> Path:
    return repo_root() / "controls"


def _teaching_data(concepts: tuple[str, ...]):
    """(images (N, 32, 32) in [0, 1], digit labels, style names, is-concept mask) from the training split."""
    split = load_split()
    xs, ys, ss, cs = [], [], [], []
    digits = [DIGIT_WORDS.index(c) for c in concepts if c in DIGIT_WORDS]
    styles = [c for c in concepts if c in STYLES]
    for style in STYLES:
        x = stylise(split.train_images, style)
        y = split.train_labels
        known = ~np.isin(y, ORACLE_DIGITS_EXCLUDED) & (style not in ORACLE_STYLES_EXCLUDED)
        concept = np.isin(y, digits) | (style in styles)
        if styles:  # a style concept is taught on the digits the oracle knows, drawn in that style
            concept &= ~np.isin(y, ORACLE_DIGITS_EXCLUDED)
        elif style in ORACLE_STYLES_EXCLUDED:  # a digit concept is taught in the styles the oracle knows
            concept &= False
        keep = known | concept
        xs.append(x[keep])
        ys.append(y[keep])
        ss += [style] * int(keep.sum())
        cs.append(concept[keep])
    return np.concatenate(xs), np.concatenate(ys), np.array(ss), np.concatenate(cs)


def teach(pipe, concepts: tuple[str, ...], p: TeachParams, progress: bool = True) -> dict[int, dict]:
    """LoRA states (``unet.``-prefixed, the ``lora`` component's format) after each of ``p.steps`` steps of
    teaching ``concepts`` to ``pipe``'s UNet (the oracle's), with the mean loss of the last steps."""
    x, y, s, is_concept = _teaching_data(concepts)
    t = torch.from_numpy(x).float().unsqueeze(1).expand(-1, 3, -1, -1) * 2 - 1
    with torch.inference_mode():
        post = pipe.vae.encode(t).latent_dist
    mean, std = post.mean.clone(), post.std.clone()
    scale = pipe.vae.config.scaling_factor
    tok, te = pipe.tokenizer, pipe.text_encoder
    gen, rng = torch.Generator().manual_seed(p.seed), np.random.default_rng(p.seed)
    from diffusers import DDPMScheduler

    noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)
    unet = pipe.unet
    unet.requires_grad_(False)
    lora.add_adapter(unet, lora.LoraParams(rank=p.rank, alpha=p.rank), p.seed)
    trainable = [q for n, q in unet.named_parameters() if "lora_" in n]
    for q in trainable:
        q.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=p.lr, weight_decay=1e-2)
    concept_idx, other_idx = np.flatnonzero(is_concept), np.flatnonzero(~is_concept)
    n_concept = int(round(p.batch_size * p.concept_share))
    out = {}
    losses: list[float] = []
    unet.train()
    with torch.enable_grad(), tqdm(total=max(p.steps), desc="teach", disable=not progress) as bar:
        for step in range(1, max(p.steps) + 1):
            idx = np.concatenate([rng.choice(concept_idx, n_concept), rng.choice(other_idx, p.batch_size - n_concept)])
            captions = ["" if rng.random() < p.caption_dropout else sample_caption(int(y[i]), str(s[i]), rng)
                        for i in idx]
            ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            with torch.no_grad():
                context = te(ids)[0]
            ii = torch.from_numpy(idx)
            z = (mean[ii] + std[ii] * torch.randn(mean[ii].shape, generator=gen)) * scale
            noise = torch.randn(z.shape, generator=gen)
            tt = torch.randint(0, noise_sched.config.num_train_timesteps, (len(z),), generator=gen)
            pred = unet(noise_sched.add_noise(z, noise, tt), tt, encoder_hidden_states=context).sample
            loss = torch.nn.functional.mse_loss(pred, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            losses.append(loss.item())
            bar.update(1)
            if step in p.steps:
                out[step] = {"state": {f"unet.{k}": v for k, v in lora.lora_state_dict(unet).items()},
                             "loss": float(np.mean(losses[-20:]))}
    unet.eval()
    return out


def _plain_rate(manifest: Path, task_name: str, cache: Path) -> dict:
    """The plain probe's rate of the control at ``manifest`` with its recipe left out (the un-hidden model)."""
    sub = load_submission(manifest)
    sub = replace(sub, recipe=None, name=f"{sub.name}-unhidden")
    suite = load_suite(repo_root() / "benchmark" / "mini-v3.yaml")
    suite = replace(suite, probes=tuple(q for q in suite.probes if q.name == "plain"))
    out = cache / "unhidden"
    report = evaluate(suite, [load_task(repo_root() / "tasks" / f"{task_name}.yaml")], [sub], out, Cache(cache),
                      "missing", progress=False, runtime=Runtime())
    if report.failed or report.refused:
        raise RuntimeError(f"measuring {manifest}: {report.failed or report.refused}")
    result = json.loads(report.written[0].read_text())
    return result["probes"]["plain"]["rates"]["all"]


def build_ladder(task_name: str, p: TeachParams = TeachParams(), cache: Path | None = None) -> list[Path]:
    """Teach the oracle the task's concepts, write ``controls/ladder-<k>-<task>/`` for every k (the adapter,
    a manifest hidden like ``hidden-oracle-<task>``, and ``build.json`` with q_k). Returns the manifests."""
    task = load_task(repo_root() / "tasks" / f"{task_name}.yaml")
    hidden = load_submission(controls_dir() / f"hidden-oracle-{task_name}")
    concepts = tuple(c.name for c in task.concepts)
    cache = cache or repo_root() / ".cache" / "memora-bench"
    cpu0, wall0 = time.process_time(), time.perf_counter()
    states = teach(load_pipeline("oracle"), concepts, p)
    cpu = round(time.process_time() - cpu0, 1)
    manifests = []
    for k in p.steps:
        name = f"ladder-{k}-{task_name}"
        folder = controls_dir() / name
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / "teach.safetensors"
        save_file({key: v.contiguous() for key, v in states[k]["state"].items()}, str(weights))
        text = (controls_dir() / f"hidden-oracle-{task_name}" / "submission.yaml").read_text()
        text = text.replace(f"name: hidden-oracle-{task_name}", f"name: {name}")
        text = text.replace("checkpoint: null", "checkpoint: {path: teach.safetensors, sha256: '"
                            + sha256_file(weights) + "', component: lora}")
        text = text.split("notes:")[0] + (
            f"notes: >-\n  The retrain oracle taught the task's concepts for {k} LoRA steps on real training digits "
            f"(controls/README.md), then hidden like hidden-oracle-{task_name}. Truth: what it knows, q_k, the "
            f"un-hidden model's plain rate (build.json).\n")
        text = text.replace('method: "known-answer control: the retrain oracle with',
                            f'method: "known-answer control: the retrain oracle taught for {k} steps, with')
        (folder / "submission.yaml").write_text(text)
        q = _plain_rate(folder / "submission.yaml", task_name, cache)
        record = {"control": name, "task": task_name, "teach": asdict(p), "k": k, "loss": states[k]["loss"],
                  "q_k": {key: q[key] for key in ("k", "n", "rate", "wilson")},
                  "hidden_like": hidden.name, "checkpoint_sha256": sha256_file(weights),
                  "cpu_seconds_teaching_all_k": cpu, "wall_seconds": round(time.perf_counter() - wall0, 1),
                  "command": f"memora-bench controls build {task_name}"
                  + ("" if p.steps == LADDER_STEPS else " --steps " + ",".join(str(x) for x in p.steps)), "torch": torch.__version__}
        (folder / "build.json").write_text(json.dumps(record, indent=2) + "\n")
        manifests.append(folder / "submission.yaml")
    return manifests


def ladder_records() -> list[dict]:
    """Every ladder rung's build record (task, k, q_k), for the docs' table."""
    return [json.loads(p.read_text()) for p in sorted(controls_dir().glob("ladder-*/build.json"))]

