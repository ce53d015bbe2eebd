"""The CI recipe of docs/ci.md works as written: its workflow file's evaluate and compare commands run on a
temporary submission (the install step is the package's own install, run by every CI job of this project)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from safetensors.torch import save_file

from memora_bench import miniworld
from memora_bench.paths import repo_root

ROOT = repo_root()
WORKFLOW = ROOT / "docs" / "examples" / "robustness.yml"
SMALL_SUITE = ROOT / "tests" / "fixtures" / "benchmark" / "mini-small.yaml"
KEY = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"


def test_the_docs_show_the_workflow_file_verbatim():
    assert WORKFLOW.read_text() in (ROOT / "docs" / "ci.md").read_text()


def test_the_workflow_commands_run_on_a_temporary_submission(tmp_path):
    flow = yaml.safe_load(WORKFLOW.read_text())
    steps = {s.get("name", ""): s for s in flow["jobs"]["gate"]["steps"]}
    assert any("cache" in s.get("uses", "") for s in steps.values()), "the recipe caches the task's shared work"
    evaluate, compare = steps["Evaluate the checkpoint"]["run"], steps["Fail if robustness regressed"]["run"]
    # a submission of the user's repository, made as docs/submitting.md says
    pipe = miniworld.load_pipeline("base")
    ckpt = tmp_path / "unet.safetensors"
    save_file({KEY: pipe.unet.state_dict()[KEY].clone() * 0.5}, str(ckpt))
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, **{k: str(v) for k, v in flow["env"].items()})
    env.update(SUITE=str(SMALL_SUITE), PATH=f"{bin_dir}:{env['PATH']}")  # the fixture suite keeps it to a minute
    card = SMALL_SUITE.parent.parent / "tasks" / "mini-seven-small.yaml"  # the fixture suite's task
    init = subprocess.run(["memora-bench", "init", env["SUBMISSION"], "--checkpoint", str(ckpt), "--component", "unet",
                           "--tasks", str(card)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    reference = evaluate.replace("--out new-results", "--out reference-results")
    for command in (reference, evaluate, compare):
        res = subprocess.run(["bash", "-c", f"set -euo pipefail; {command}"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, (command, res.stdout, res.stderr)
    assert "0 of" in res.stdout and "regressed" in res.stdout, res.stdout
    assert (tmp_path / ".memora-cache").is_dir()
