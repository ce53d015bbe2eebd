"""Handlers of ``memora-bench world train`` and ``memora-bench world info``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from memora_bench.classifiers.registry import load_classifier
from memora_bench.exits import EXIT_BAD_INPUT, EXIT_OK
from memora_bench.miniworld import WorldError, load_manifest, verify_files
from memora_bench.paths import world_dir
from memora_bench.utility import REFERENCE_FILE, write_reference_statistics
from memora_bench.world import train as recipes
from memora_bench.world.measure import measure_world

REBUILD = "memora-bench world train"


def _write_report(world: Path, stage: str, report: dict) -> None:
    folder = world / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{stage}.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(folder / f"{stage}.json")


def _done(world: Path, stage: str) -> bool:
    return (world / "reports" / f"{stage}.json").exists()


def train(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    world = world_dir()
    stages = args.stage or ["classifiers", "reference", "vae", "base", "oracle", "measure"]
    for stage in stages:
        if _done(world, stage) and not args.force:
            print(f"[world] {stage}: already built (reports/{stage}.json); --force rebuilds it")
            continue
        print(f"[world] {stage}: building")
        if stage == "classifiers":
            report = {kind: recipes.train_classifier(kind, world / "classifiers" / f"{kind}.safetensors")
                      for kind in ("digit", "style")}
        elif stage == "vae":
            report = recipes.train_vae(world / "base" / "vae")
        elif stage == "base":
            report = recipes.build_base(world, recipes.DiffusionRecipe())
        elif stage == "oracle":
            recipe = recipes.DiffusionRecipe(
                train_text_encoder=False,
                exclude_digits=recipes.ORACLE_EXCLUDE_DIGITS,
                exclude_styles=recipes.ORACLE_EXCLUDE_STYLES,
            )
            report = recipes.build_oracle(world, recipe)
        elif stage == "reference":
            report = write_reference_statistics(load_classifier("mini-digit"), world / "classifiers" / REFERENCE_FILE)
        else:
            report = measure_world(world)
        _write_report(world, stage, report)
        print(f"[world] {stage}: done, report in {world / 'reports' / (stage + '.json')}")
    return EXIT_OK


def info(args) -> int:
    try:
        manifest = load_manifest()
        if args.verify:
            verify_files(manifest)
    except WorldError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(manifest, indent=2))
        return EXIT_OK
    print(_render_info(manifest))
    return EXIT_OK


def _render_info(m: dict) -> str:
    lines = [f"miniature world {m['version']} at {world_dir()}", ""]
    lines.append("classifiers (held-out real digits, all three styles):")
    for name, c in m["classifiers"].items():
        lines.append(f"  {name:6s} accuracy {c['heldout_accuracy']:.4f} on {c['heldout_n']}  sha256 {c['sha256'][:16]}")
    lines.append("")
    concepts = list(next(iter(m["models"].values()))["concept_rates"])
    lines.append("concept rates (share of images that show the concept):")
    lines.append("  " + "model".ljust(8) + "".join(c[:7].rjust(8) for c in concepts))
    for name, model in m["models"].items():
        if model.get("missing"):
            lines.append("  " + name.ljust(8) + f"  not built (`{REBUILD} --stage {name}`)")
            continue
        lines.append("  " + name.ljust(8) + "".join(f"{model['concept_rates'][c]:8.2f}" for c in concepts))
    lines.append("")
    lines.append("files:")
    for rel, f in m["files"].items():
        lines.append(f"  {rel:48s} {f['bytes'] / 1e6:6.2f} MB  {f['sha256'][:16]}")
    lines.append(f"  total {m['total_bytes'] / 1e6:.1f} MB; rebuild with `{REBUILD}`")
    return "\n".join(lines)


def run(args) -> int:
    return train(args) if args.world_command == "train" else info(args)
