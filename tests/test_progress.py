"""What evaluate tells the person waiting (memora_bench/progress.py): stage lines, the time left, quiet."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from memora_bench.paths import repo_root
from memora_bench.progress import TYPICAL_SECONDS, Progress

SMALL_SUITE = repo_root() / "tests" / "fixtures" / "benchmark" / "mini-small.yaml"


def test_the_time_left_follows_the_typical_costs_scaled_by_this_runs_speed():
    now = [0.0]
    out = io.StringIO()
    p = Progress([("a", "t1", ["plain", "memora"]), ("b", "t1", ["plain", "memora"])], "lines", out,
                 clock=lambda: now[0])
    p.unit(0)
    p.stage_start("plain")
    assert p.left() == TYPICAL_SECONDS["memora"] + TYPICAL_SECONDS["plain"] + TYPICAL_SECONDS["memora"]
    now[0] = 2 * TYPICAL_SECONDS["plain"]  # this machine is twice as slow as the typical one
    p.stage_end("plain")
    p.stage_start("memora")
    assert p.left() == 2 * (TYPICAL_SECONDS["plain"] + TYPICAL_SECONDS["memora"])
    text = out.getvalue()
    assert text.startswith("[1/2] a / t1: 2 stages (plain, memora)\n")
    assert "  plain: done in 24 s\n" in text and "  memora: running (about 3:50; then about 4:14 left)" in text
    quiet = Progress([("a", "t", ["plain"])], "quiet", io.StringIO())
    quiet.unit(0)
    quiet.stage_start("plain")
    quiet.stage_end("plain")
    assert quiet.stream.getvalue() == "" and not quiet.bars


def test_evaluate_prints_a_line_per_stage_and_no_third_party_bars(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "memora_bench.cli", "evaluate", "original", "--suite", str(SMALL_SUITE),
           "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines[0] == "[1/1] original / mini-seven-small: 2 stages (plain, utility)"
    assert any(line.startswith("  plain: running (about") for line in lines)
    assert any(line.startswith("  utility: done in") for line in lines)
    assert "Loading pipeline components" not in res.stderr and "Loading weights" not in res.stderr
    quiet = subprocess.run(cmd + ["--quiet", "--overwrite", "missing"], capture_output=True, text=True, env=env,
                           timeout=900)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
