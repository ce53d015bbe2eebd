"""Submitting without writing a manifest by hand: `memora-bench init`, `evaluate --model` (a UNet file and a
diffusers pipeline folder) and the Python API `memora_bench.evaluate` (issue 27, item 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from memora_bench import miniworld
from memora_bench.paths import repo_root
from memora_bench.results import load_result
from memora_bench.specs import load_submission, load_task
from memora_bench.submit import SubmitError, checkpoint_sha256, make_submission, resolve_model

ROOT = repo_root()
FIXTURES = ROOT / "tests" / "fixtures"
SMALL_SUITE = FIXTURES / "benchmark" / "mini-small.yaml"
KEY = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"


def cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "memora_bench.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def unet_file(tmp_path_factory) -> Path:
    """A partial UNet state dict: one cross-attention key projection of the world's UNet, scaled by 0.5."""
    pipe = miniworld.load_pipeline("base")
    path = tmp_path_factory.mktemp("ckpt") / "half-to-k.safetensors"
    save_file({KEY: pipe.unet.state_dict()[KEY].clone() * 0.5}, str(path))
    return path


def test_init_writes_a_manifest_that_validates_and_links_the_checkpoint(unet_file, tmp_path):
    folder = tmp_path / "my-method"
    res = cli("init", folder, "--checkpoint", unet_file, "--component", "unet", "--tasks", "mini-seven",
              "--method", "half of one key projection", "--authors", "Ada,Grace")
    assert res.returncode == 0, res.stderr
    sub = load_submission(folder)
    assert sub.checkpoint.sha256 == checkpoint_sha256(unet_file) and sub.checkpoint.path == unet_file.name
    assert (sub.erased, sub.tasks, sub.authors) == (("seven",), ("mini-seven",), ("Ada", "Grace"))
    assert not (folder / unet_file.name).is_symlink()
    assert cli("validate", "--load", folder).returncode == 0
    again = cli("init", folder, "--checkpoint", unet_file, "--component", "unet", "--tasks", "mini-seven")
    assert again.returncode == 2 and "exists" in again.stderr
    bad = cli("init", tmp_path / "x", "--checkpoint", tmp_path / "missing.pt", "--component", "unetz",
              "--tasks", "mini-seven")
    assert bad.returncode == 2 and "no such file" in bad.stderr and "component 'unetz'" in bad.stderr


def test_a_folder_checkpoint_gets_the_folder_hash(tmp_path):
    pipe = miniworld.load_pipeline("base")
    pipe.text_encoder.save_pretrained(tmp_path / "te")
    sub = make_submission(tmp_path / "sub", tmp_path / "te", "text_encoder", [load_task(ROOT / "tasks" / "mini-seven.yaml")])
    assert sub.checkpoint.path == "te" and len(sub.checkpoint.sha256) == 64
    assert sub.checkpoint.sha256 == checkpoint_sha256(tmp_path / "sub" / "te")
    with pytest.raises(SubmitError, match="letters, digits"):
        make_submission(tmp_path / "sub2", tmp_path / "te", "text_encoder",
                        [load_task(ROOT / "tasks" / "mini-seven.yaml")], name="my method")


def test_a_hub_reference_offline_is_one_clear_error():
    with pytest.raises(SubmitError, match="cannot fetch from the Hugging Face Hub"):
        resolve_model("nobody-here/no-such-model@0123abc")
    with pytest.raises(SubmitError, match="not a Hub reference"):
        resolve_model("no/such/../file.safetensors")


def test_evaluate_model_on_a_unet_file_and_on_a_pipeline_folder(unet_file, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    res = cli("evaluate", "--model", unet_file, "--component", "unet", "--tasks", "mini-seven-small",
              "--suite", SMALL_SUITE, "--out", out, "--cache-dir", cache)
    assert res.returncode == 0, res.stderr
    result = load_result(out / "half-to-k" / "mini-seven-small.json")
    manifest = load_submission(out / "half-to-k" / "half-to-k")
    assert result["submission"]["checkpoint"]["sha256"] == manifest.checkpoint.sha256 == checkpoint_sha256(unet_file)
    assert result["probes"]["plain"]["rates"]["all"]["n"] > 0
    pipe = miniworld.load_pipeline("base")
    pipe.save_pretrained(tmp_path / "world-base-pipeline")
    res = cli("evaluate", "--model", tmp_path / "world-base-pipeline", "--component", "pipeline", "--name", "as-folder",
              "--tasks", "mini-seven-small", "--suite", SMALL_SUITE, "--out", out, "--cache-dir", cache)
    assert res.returncode == 0, res.stderr
    folder = load_result(out / "as-folder" / "mini-seven-small.json")
    original = cli("evaluate", "original", "--suite", SMALL_SUITE, "--out", out, "--cache-dir", cache)
    assert original.returncode == 0, original.stderr
    base = load_result(out / "original" / "mini-seven-small.json")
    # the pipeline folder is the base model itself: the same counts as the original
    assert folder["probes"]["plain"]["rates"] == base["probes"]["plain"]["rates"]
    missing = cli("evaluate", "--model", unet_file, "--suite", SMALL_SUITE, "--out", out)
    assert missing.returncode == 2 and "--model needs --component" in missing.stderr


def test_the_python_api_returns_the_records(unet_file, tmp_path):
    import memora_bench

    records = memora_bench.evaluate(model=str(unet_file), component="unet", tasks=["mini-seven-small"],
                                    suite=str(SMALL_SUITE), out=tmp_path / "out", cache_dir=tmp_path / "cache")
    [r] = records
    assert r["submission"]["name"] == "half-to-k" and Path(r["path"]).exists()
    assert json.loads(Path(r["path"]).read_text())["probes"] == r["probes"]
    assert r["headlines"] == {}  # the plain probe alone gives no verdict
    with pytest.raises(memora_bench.EvaluationError, match="not in suite"):
        memora_bench.evaluate("original", suite=str(SMALL_SUITE), tasks=["mini-bold"], out=tmp_path / "o")
