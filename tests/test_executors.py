"""`evaluate --executor ray` on a local Ray instance writes the same result files as a local run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memora_bench.paths import repo_root
from memora_bench.results import load_result, stable_part

ROOT = repo_root()
SMALL_SUITE = ROOT / "tests" / "fixtures" / "benchmark" / "mini-small.yaml"
MEMORA_SUITE = ROOT / "tests" / "fixtures" / "benchmark" / "mini-memora-seeds.yaml"
TWO_CONCEPTS_SUITE = ROOT / "tests" / "fixtures" / "benchmark" / "mini-memora-two-concepts.yaml"


def _evaluate(out: Path, cache: Path, *extra, suite: Path = SMALL_SUITE, **env_extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", **env_extra)
    return subprocess.run([sys.executable, "-m", "memora_bench.cli", "evaluate", "original",
                           "--suite", str(suite), "--out", str(out), "--cache-dir", str(cache), "--json",
                           *extra], capture_output=True, text=True, env=env, timeout=1200)


def _local_and_ray(tmp_path, suite: Path) -> dict:
    """Evaluate ``original`` locally and on a local Ray instance (separate cold caches, so the Ray tasks compute
    everything themselves); assert the image lines are byte-identical and the results equal but for time.
    Returns the Ray run's result."""
    local = _evaluate(tmp_path / "local", tmp_path / "cache-local", suite=suite)
    assert local.returncode == 0, local.stderr
    ray = _evaluate(tmp_path / "ray", tmp_path / "cache-ray", "--executor", "ray", suite=suite)
    assert ray.returncode == 0, ray.stderr
    assert json.loads(ray.stdout)["results"]
    files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.json*"))
    assert len(files) == 2  # the result and its image lines (one job)
    a, b = [(tmp_path / side / f) for f in files if f.suffix == ".jsonl" for side in ("local", "ray")]
    assert a.read_bytes() == b.read_bytes()
    ra, rb = [load_result(tmp_path / side / f) for f in files if f.suffix == ".json" for side in ("local", "ray")]
    assert stable_part(ra) == stable_part(rb)
    assert set(rb["timing"]["probes"]) == set(rb["probes"])
    assert (ra["timing"]["executor"], rb["timing"]["executor"]) == ("local", "ray")
    return rb


def test_memora_shards_are_its_shared_stages_then_one_per_attack_seed():
    from memora_bench.parts import part_shards
    from memora_bench.specs import load_suite

    shards = part_shards(load_suite(MEMORA_SUITE))
    assert shards == {"memora": [["memora#prep"], ["memora#seed=0", "memora#seed=1"]]}
    assert part_shards(load_suite(SMALL_SUITE)) == {}


@pytest.mark.slow
def test_ray_run_of_memora_shards_by_attack_seed_and_matches_local(tmp_path):
    """The plain probe and MemoRa on Ray: the plain probe and the utility measures as Ray tasks, MemoRa's
    shared stages, then each attack seed as its own Ray task, then the probe's part reading the cache; the
    result equals the local run's byte for byte."""
    rb = _local_and_ray(tmp_path, MEMORA_SUITE)
    assert set(rb["timing"]["probes"]) == {"plain", "memora"}
    # the LoRA runs happened in the seed shards: the probe's own part found them cached
    assert rb["timing"]["stages"]["memora_lora"]["cpu_s"] > 0
    assert rb["timing"]["probes"]["memora"]["cpu_s"] < rb["timing"]["stages"]["memora_lora"]["cpu_s"]


def _one_and_two_threads(tmp_path, suite: Path, task: str) -> tuple[dict, dict, bytes]:
    """Evaluate ``original`` on one thread and on two (cold caches); assert the image lines are byte-identical
    and the results equal but for time. Returns the two results and the image lines."""
    runs = {}
    for threads in ("1", "2"):
        res = _evaluate(tmp_path / threads, tmp_path / f"cache-{threads}", suite=suite, OMP_NUM_THREADS=threads)
        assert res.returncode == 0, res.stderr
        runs[threads] = tmp_path / threads / "original"
    lines = [(runs[t] / f"{task}.images.jsonl").read_bytes() for t in ("1", "2")]
    assert lines[0] == lines[1]
    ra, rb = [load_result(runs[t] / f"{task}.json") for t in ("1", "2")]
    assert (ra["environment"].pop("torch_threads"), rb["environment"].pop("torch_threads")) == (1, 2)
    assert stable_part(ra) == stable_part(rb)
    return ra, rb, lines[0]


@pytest.mark.slow
def test_multi_and_auto_memora_side_by_side_equal_one_after_the_other(tmp_path):
    """Two concepts: MemoRa's attack seeds (each LoRA run with its images), Multi-MemoRa's (budget, seed)
    models and AutoMemoRa's (concept, w, seed) mixed models, which all sample with the submission's own UNet,
    draw side by side on two threads the very images of a one-thread run."""
    _, rb, lines = _one_and_two_threads(tmp_path, TWO_CONCEPTS_SUITE, "mini-three-eight-fast")
    probes = [json.loads(x)["probe"] for x in lines.splitlines()]
    assert probes.count("memora_multi") == 1 * 2 * 2 * 3  # budget 2, seeds 0 and 1, both concepts, 3 prompts
    assert probes.count("memora_auto") == 2 * 2 * 3  # both concepts, w 0.5, seeds 0 and 1, 3 prompts
    assert {json.loads(x)["attack_seed"] for x in lines.splitlines() if json.loads(x)["probe"] == "memora"} == {0, 1}
    memora = rb["probes"]["memora"]
    assert set(memora["multi"]["2"]) == {"three", "eight"} and set(memora["auto"]) == {"three", "eight"}
    for stage in ("memora_side_by_side", "memora_multi_side_by_side", "memora_auto_side_by_side",
                  "memora_original_side_by_side"):
        assert stage in rb["timing"]["stages"]


def test_the_device_is_read_once_from_the_environment_and_cpu_unless_asked(monkeypatch):
    import torch

    from memora_bench.models.parallel import Runtime

    monkeypatch.delenv("MEMORA_BENCH_DEVICE", raising=False)
    assert Runtime.from_env() == Runtime("cpu")
    monkeypatch.setenv("MEMORA_BENCH_DEVICE", "no-such-device")
    with pytest.raises(ValueError, match="MEMORA_BENCH_DEVICE='no-such-device': .*is not a torch device"):
        Runtime.from_env()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            Runtime("cuda")


def test_nothing_below_the_command_line_reads_the_device_from_the_environment():
    from memora_bench.paths import repo_root

    readers = [p.relative_to(repo_root()).as_posix() for p in (repo_root() / "memora_bench").rglob("*.py")
               if "MEMORA_BENCH_DEVICE" in p.read_text() or "DEVICE_ENV" in p.read_text()]
    assert readers == ["memora_bench/models/parallel.py"]


def test_a_result_records_the_cpu_whose_kernels_made_it(monkeypatch, tmp_path):
    """The CPU's instruction set selects torch's kernels, so the result says which CPU and which kernels."""
    import torch

    from memora_bench.models import parallel

    env = parallel.Runtime("cpu").environment(16)
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["cpu"] == parallel.cpu_name() and env["cpu"]
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU @ 2.0GHz\nflags\t: avx2\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: real_open(info if p == "/proc/cpuinfo" else p, *a, **k))
    assert parallel.cpu_name() == "Some CPU @ 2.0GHz"
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: (_ for _ in ()).throw(OSError("no procfs")))
    monkeypatch.setattr(parallel.platform, "processor", lambda: "")
    monkeypatch.setattr(parallel.platform, "machine", lambda: "x86_64")
    assert parallel.cpu_name() == "x86_64"
