"""Issue 27: the SD-1.4 suite's whole code path, end to end on the CPU, on a tiny random pipeline with SD-1.4's
layout (tests/helpers.py: the same blocks and module names, narrow channels).

The real sd14-church card and the sd14-v3 suite are copied into a temporary repository root with only what
a CPU can afford scaled down: the image size (64 px), the sampler's steps, each probe's budgets and counts.
Everything else is the SD path a GPU user runs: the card's LMS scheduler, the base model loaded as a diffusers
folder from the card's own Hub id (a local folder of that name stands in for the Hub), the prompt sets fetched
from a URL (a file:// URL to an upstream-format CSV) and converted, the ImageNet ResNet-50 classifier loaded
by the same loader (``$MEMORA_BENCH_RESNET50``: a tiny random ResNet with the 1,000 ImageNet labels' ids),
the Ring-A-Bell prompt file built by ``memora-bench ringabell`` from the base model's text encoder, and the
submission evaluated by reference (``evaluate --model unet.safetensors``). All five probes run; MemoRa and
concept inversion draw their source images with DDIM (their references' sampler), the others with LMS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from memora_bench.digits import DIGIT_WORDS
from memora_bench.paths import repo_root
from memora_bench.prompt_sources import convert
from memora_bench.results import load_result
from memora_bench.specs import PromptSource, sha256_bytes
from tests.helpers import sd14_shaped_pipeline

ROOT = repo_root()
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream" / "church-like.csv"  # UnlearnDiffAtk's prompts/*.csv columns
LABELS = {497: "church, church building", 569: "garbage truck, dustcart"}  # their ImageNet-1k ids
PROBES = ["plain", "unlearndiffatk", "memora", "ringabell", "concept_inversion"]


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", MEMORA_BENCH_ROOT=str(root), MEMORA_BENCH_RESNET50=str(root / "resnet50"),
               MEMORA_BENCH_CACHE=str(root / "cache"))
    return subprocess.run([sys.executable, "-m", "memora_bench.cli", *args], capture_output=True, text=True, env=env,
                          cwd=root, timeout=900)


def _tiny_resnet(folder: Path) -> None:
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    id2label = {i: LABELS.get(i, f"imagenet class {i}") for i in range(1000)}
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1], layer_type="bottleneck",
                          num_labels=1000, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    ResNetForImageClassification(config).eval().save_pretrained(str(folder))
    ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=0.875).save_pretrained(str(folder))


def _prompt_source(concept: str, prefix: str) -> tuple[dict, str]:
    """A card's prompt set fetched from the upstream-format fixture, with the sha256 of its conversion."""
    raw = {"url": UPSTREAM.as_uri(), "concept": concept, "guidance": "evaluation_guidance", "id_prefix": prefix}
    text = convert(UPSTREAM.read_text(), PromptSource(**raw))
    return {"sha256": sha256_bytes(text.encode()), "source": raw}, text


def _card(root: Path) -> None:
    card = yaml.safe_load((ROOT / "tasks" / "sd14-church.yaml").read_text())
    card["attack_prompts"], _ = _prompt_source("church, church building", "church-")
    card["retain_prompts"], _ = _prompt_source("garbage truck, dustcart", "garbage-truck-")
    card["generation"].update(steps=4, height=64, width=64)  # LMS as on the card; 64 px: 8x8 latents
    (root / "tasks").mkdir()
    (root / "tasks" / "sd14-church.yaml").write_text(yaml.safe_dump(card, sort_keys=False))


def _suite(root: Path, ringabell_sha: str | None) -> Path:
    suite = yaml.safe_load((ROOT / "benchmark" / "sd14-v3.yaml").read_text())
    suite["name"], suite["tasks"], suite["bootstrap"] = "sd14-tiny", ["sd14-church"], 50
    params = {p: suite["probes"][p] for p in PROBES}
    params["memora"].update(seed_pairs=[[1805, 2821]], interpolation=1, steps=4, start_step=1, accumulation=1,
                            budgets=[0, 2], attack_seeds=[0], eval_prompts=2, oracle_free_cap=2)
    params["unlearndiffatk"].update(iterations=2, timesteps=2, prompts=1)
    params["concept_inversion"].update(images=2, steps=2, batch_size=1, accumulation=1, eval_images=2)
    params["ringabell"] = {"prompt_sha256": {"sd14-church": ringabell_sha} if ringabell_sha else {}}
    suite["probes"] = params
    path = root / "benchmark" / "sd14-tiny.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sd_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sd14-root")
    base = sd14_shaped_pipeline(seed=0)
    base.save_pretrained(str(root / "CompVis" / "stable-diffusion-v1-4"))  # the card's Hub id, as a local folder
    _tiny_resnet(root / "resnet50")
    _card(root)
    _suite(root, None)
    from safetensors.torch import save_file

    torch.manual_seed(1)  # the "unlearned" UNet: the base one, perturbed
    save_file({k: (v + 0.01 * torch.randn_like(v)).contiguous() for k, v in base.unet.state_dict().items()},
              str(root / "unet.safetensors"))
    return root


def test_an_unpinned_ringabell_file_is_refused_before_any_work(sd_root):
    done = _cli(sd_root, "evaluate", "--model", str(sd_root / "unet.safetensors"), "--component", "unet", "--tasks", "sd14-church",
                "--suite", "sd14-tiny", "--out", str(sd_root / "refused"), "--quiet")
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "Ring-A-Bell: the suite pins no prompt file for task 'sd14-church'" in said, said[-2000:]
    assert "memora-bench ringabell sd14-church" in said
    assert not (sd_root / "refused").exists() or not list((sd_root / "refused").rglob("*.json"))


def test_the_sd14_suite_runs_every_probe_end_to_end_on_a_tiny_sd_shaped_pipeline(sd_root):
    built = _cli(sd_root, "ringabell", "sd14-church", "--generations", "2", "--prompts", "1")
    assert built.returncode == 0, built.stderr[-3000:]
    record = json.loads((sd_root / "tasks" / "prompts" / "sd14-church-ringabell.json").read_text())
    _suite(sd_root, record["sha256"])

    out = sd_root / "runs"
    done = _cli(sd_root, "evaluate", "--model", str(sd_root / "unet.safetensors"), "--component", "unet", "--tasks", "sd14-church",
                "--suite", "sd14-tiny", "--out", str(out), "--json")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    paths = list(out.rglob("sd14-church.json"))
    assert len(paths) == 1
    result = load_result(paths[0])  # schema-checked
    assert result["task"]["name"] == "sd14-church" and result["suite"]["name"] == "sd14-tiny"
    assert sorted(result["probes"]) == sorted(PROBES)
    assert result["task"]["generation"]["scheduler"] == "lms" and result["task"]["generation"]["height"] == 64
    assert [c["kind"] for c in result["task"]["concepts"]] == ["object"]
    label = "church, church building"
    for probe in ["plain", "unlearndiffatk", "ringabell", "concept_inversion"]:
        rate = result["probes"][probe]["rates"][label]
        assert 0 <= rate["k"] <= rate["n"] and rate["n"] > 0, (probe, rate)
    memora = result["probes"]["memora"]["concepts"]["church"]
    assert len(memora["curve"]) == 2  # budgets 0 and 2
    ci = result["probes"]["concept_inversion"]["concepts"]["church"]
    assert ci["initializer"] == "church"  # the card's default for an object: the concept's own word

    lines = [json.loads(x) for x in paths[0].with_suffix(".images.jsonl").read_text().splitlines()] if \
        paths[0].with_suffix(".images.jsonl").exists() else []
    words = " ".join(str(x.get("prompt", "")) for x in lines).split()
    assert lines and not set(words) & (set(DIGIT_WORDS) - {"one"} | {"handwritten", "digit"})

    (row,) = json.loads(done.stdout)["results"]
    assert row["probes"] == list(result["probes"])
    # No retrain oracle on SD-1.4: the headline is labelled against the zero floor over MemoRa's budgets up to
    # the suite's cap (issue 27 item 2); MemoRa's own curve has no oracle curve beside it.
    headline = row["headlines"]["church"]
    assert headline["label"] in ("STM", "partial", "LTM") and headline["oracle_result"] is False, headline
    assert headline["floor"] == "a zero floor up to MemoRa budget 2", headline
    assert row["memora_concepts"]["church"]["oracle"] == []
    summary = _cli(sd_root, "evaluate", "--model", str(sd_root / "unet.safetensors"), "--component", "unet",
                   "--tasks", "sd14-church", "--suite", "sd14-tiny", "--out", str(out))  # every part cached
    assert f"church: {headline['label']}" in summary.stdout, summary.stdout[-3000:]
    assert "no retrain oracle: compared with a zero floor up to MemoRa budget 2" in summary.stdout
