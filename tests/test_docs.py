"""The docs' copy-paste examples, run as written (with file contents and hashes filled in)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

import torch
from safetensors.torch import save_file

from memora_bench.paths import repo_root

DOCS = repo_root() / "docs"


def blocks(doc: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (DOCS / doc).read_text(), flags=re.S)


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "memora_bench.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd)


def test_submitting_example_validates(tmp_path):
    manifest = blocks("submitting.md", "yaml")[0]
    folder = tmp_path / "my-method"
    folder.mkdir()
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"
    save_file({key: torch.zeros(64, 64)}, str(folder / "unet.safetensors"))
    digest = hashlib.sha256((folder / "unet.safetensors").read_bytes()).hexdigest()
    (folder / "submission.yaml").write_text(manifest.replace("0" * 64, digest))
    res = cli("validate", "--load", folder)
    assert res.returncode == 0, res.stderr
    # The doc's own placeholder hash is caught.
    (folder / "submission.yaml").write_text(manifest)
    res = cli("validate", folder)
    assert res.returncode == 2 and "sha256" in res.stderr


def test_validate_loads_weights_only_with_load(tmp_path):
    """`validate` checks files and hashes in seconds; a tensor the base model does not have is found only when
    the checkpoint is applied (`--load`)."""
    manifest = blocks("submitting.md", "yaml")[0]
    folder = tmp_path / "my-method"
    folder.mkdir()
    save_file({"down_blocks.0.no_such_layer.weight": torch.zeros(4, 4)}, str(folder / "unet.safetensors"))
    digest = hashlib.sha256((folder / "unet.safetensors").read_bytes()).hexdigest()
    (folder / "submission.yaml").write_text(manifest.replace("0" * 64, digest))
    assert cli("validate", folder).returncode == 0
    res = cli("validate", "--load", folder)
    assert res.returncode == 2 and "no_such_layer" in res.stderr, res.stderr


def test_adding_a_task_example_validates(tmp_path):
    card = blocks("adding-a-task.md", "yaml")[0]
    rows = blocks("adding-a-task.md", "csv")[0]
    tasks = tmp_path / "tasks"
    (tasks / "prompts").mkdir(parents=True)
    for kind in ("attack", "retain"):
        text = rows if kind == "attack" else rows.replace(",nine\n", ",eight\n")
        (tasks / "prompts" / f"mini-nine-{kind}.csv").write_text(text)
        digest = hashlib.sha256(text.encode()).hexdigest()
        card = card.replace("<sha256 of the file>", digest, 1)
    (tasks / "mini-nine.yaml").write_text(card)
    res = cli("validate", tasks / "mini-nine.yaml")
    assert res.returncode == 0, res.stderr
    assert "checked 1 file(s): 0 problem(s)" in res.stdout


def test_the_readme_quotes_the_committed_demo_headline():
    """The README's demo headline is the one the committed result of the demo under the official suite gets
    (against the committed oracle and original), so a change of the suite or the score cannot leave it stale."""
    from memora_bench.paths import DEFAULT_SUITE
    from memora_bench.results import load_result
    from memora_bench.verdict import concept_headlines

    root = repo_root()
    demo = load_result(root / "submissions" / "demo-ablate-seven" / "results" / DEFAULT_SUITE / "demo-ablate-seven"
                       / "mini-seven.json")
    oracle = load_result(root / "results" / DEFAULT_SUITE / "oracle" / "mini-seven.json")
    original = load_result(root / "results" / DEFAULT_SUITE / "original" / "mini-seven.json")
    [h] = concept_headlines(demo, oracle, original)
    quoted = f'"{h["headline"]} (decided by {", ".join(h["decided_by"])}), index {h["verdict"].index:.2f}"'
    readme = " ".join((root / "README.md").read_text().split())
    assert quoted in readme, f"README should quote the demo's headline {quoted}"
