"""The shipped miniature world: integrity, accuracy, and that the base model draws its concepts."""

import json
import shutil
import subprocess
import sys

import pytest

from memora_bench import miniworld
from memora_bench.classifiers.mini import load_world_classifier
from memora_bench.paths import world_dir

WORLD = world_dir()


@pytest.fixture(scope="module")
def manifest():
    return miniworld.load_manifest()


def test_every_weight_file_matches_its_sha256(manifest):
    miniworld.verify_files(manifest)
    assert manifest["total_bytes"] <= 60 * 1024**2
    for rel in ("base/model_index.json", "base/unet/diffusion_pytorch_model.safetensors",
                "base/text_encoder/model.safetensors", "base/vae/diffusion_pytorch_model.safetensors",
                "base/tokenizer/vocab.json", "oracle/unet/diffusion_pytorch_model.safetensors",
                "classifiers/digit.safetensors", "classifiers/style.safetensors"):
        assert rel in manifest["files"], rel


def test_classifiers_reach_their_accuracy_on_heldout_digits(manifest):
    from memora_bench.digits import STYLES, load_split, stylise

    split = load_split()
    digit, style = load_world_classifier("digit"), load_world_classifier("style")
    for i, s in enumerate(STYLES):
        images = stylise(split.heldout_images, s)
        assert (digit.probs(images).argmax(1) == split.heldout_labels).mean() >= 0.97, s
        assert (style.probs(images).argmax(1) == i).mean() >= 0.95, s
    assert manifest["classifiers"]["digit"]["heldout_accuracy"] >= 0.97
    assert manifest["classifiers"]["style"]["heldout_accuracy"] >= 0.95


def test_base_styles_meet_the_target(manifest):
    from memora_bench.digits import STYLE_CONCEPTS

    base = manifest["models"]["base"]["concept_rates"]
    for s in STYLE_CONCEPTS:
        assert base[s] >= 0.85, (s, base[s])


def test_base_digits_meet_the_target(manifest):
    from memora_bench.digits import DIGIT_WORDS

    base = manifest["models"]["base"]["concept_rates"]
    assert all(base[d] >= 0.90 for d in DIGIT_WORDS), base


def _oracle(manifest):
    oracle = manifest["models"]["oracle"]
    assert not oracle.get("missing"), "the oracle is not built"
    return oracle


def test_oracle_is_near_chance_on_its_excluded_concepts(manifest):
    oracle = _oracle(manifest)
    for c in oracle["excluded_digits"] + oracle["excluded_styles"]:
        assert oracle["concept_rates"][c] <= 0.15, (c, oracle["concept_rates"][c])


def test_oracle_keeps_the_other_digits(manifest):
    from memora_bench.digits import DIGIT_WORDS

    oracle = _oracle(manifest)
    kept = [d for d in DIGIT_WORDS if d not in oracle["excluded_digits"]]
    assert all(oracle["concept_rates"][d] >= 0.90 for d in kept), oracle["concept_rates"]


def test_base_model_draws_each_concept_as_the_card_says(manifest):
    """A small seeded sample per concept reproduces the model card's per-image verdicts exactly."""
    from memora_bench.models.generate import GenerationConfig, generate
    from memora_bench.world.measure import GENERATION, concept_hits, concept_rate_plan

    pipe = miniworld.load_pipeline("base")
    digit, style = load_world_classifier("digit"), load_world_classifier("style")
    card = manifest["models"]["base"]["concept_hits"]
    n = 3
    prompts, seeds, concepts = [], [], []
    for concept in card:
        p, s = concept_rate_plan(concept, n)
        prompts += p
        seeds += s
        concepts += [concept] * n
    images = generate(pipe, prompts, seeds, GenerationConfig(**GENERATION))
    for i in range(0, len(images), n):
        c = concepts[i]
        hits = concept_hits(c, images[i : i + n], digit, style)
        assert "".join("1" if h else "0" for h in hits) == card[c][:n], c
    assert sum(card[c][:n].count("1") for c in card) >= 0.85 * n * len(card)


def test_world_tokenizer_is_sd_clip():
    from memora_bench.world.tokenizer import load_tokenizer

    tok = load_tokenizer(WORLD / "base" / "tokenizer")
    assert tok("<|startoftext|>").input_ids[0] == 49406


def test_pipeline_loads_with_diffusers_from_pretrained():
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(WORLD / "base"), dtype=torch.float32)
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert pipe.unet.dtype == torch.float32


@pytest.fixture()
def world_copy(tmp_path):
    dst = tmp_path / "world"
    shutil.copytree(WORLD, dst)
    return dst


def test_altered_weight_file_names_file_and_rebuild_command(world_copy):
    target = world_copy / "base" / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(miniworld.WorldError) as info:
        miniworld.load_pipeline("base", world_copy)
    assert str(target) in str(info.value) and "altered" in str(info.value)
    assert "memora-bench world train" in str(info.value)


def test_missing_weight_file_names_file_and_rebuild_command(world_copy):
    target = world_copy / "classifiers" / "digit.safetensors"
    target.unlink()
    with pytest.raises(miniworld.WorldError) as info:
        load_world_classifier("digit", world_copy)
    assert f"missing weight file {target}" in str(info.value)
    assert "memora-bench world train" in str(info.value)


def test_missing_manifest(world_copy):
    (world_copy / "world.json").unlink()
    with pytest.raises(miniworld.WorldError, match="manifest missing.*memora-bench world train"):
        miniworld.load_manifest(world_copy)


def test_world_info_json_exposes_accuracies_and_rates():
    res = subprocess.run([sys.executable, "-m", "memora_bench.cli", "world", "info", "--json", "--verify"],
                         capture_output=True, text=True, check=True)
    data = json.loads(res.stdout)
    assert data["classifiers"]["digit"]["heldout_accuracy"] >= 0.97
    assert set(data["models"]["base"]["concept_rates"]) >= {"seven", "bold", "italic"}
    text = subprocess.run([sys.executable, "-m", "memora_bench.cli", "world", "info"], capture_output=True,
                          text=True, check=True).stdout
    assert "concept rates" in text and "sha256" in text


def test_world_info_fails_cleanly_when_a_file_is_altered(world_copy):
    import os

    (world_copy / "oracle" / "unet" / "config.json").write_text("{}")
    env = dict(os.environ, MEMORA_BENCH_ROOT=str(world_copy.parent))
    res = subprocess.run([sys.executable, "-m", "memora_bench.cli", "world", "info", "--verify"],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert "oracle/unet/config.json" in res.stderr and "memora-bench world train" in res.stderr
