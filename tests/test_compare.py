import json
import os
import subprocess
import sys

import pytest

from memora_bench.results import validate_result
from tests.helpers import make_result, with_memora, write_result


def cli(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "memora_bench.cli", "compare", *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_helper_results_are_schema_valid():
    validate_result(make_result())


def test_unchanged_passes_and_weakened_fails(tmp_path):
    old = write_result(tmp_path / "old", make_result(plain_k=6))
    same = write_result(tmp_path / "same", make_result(plain_k=6))
    worse = write_result(tmp_path / "worse", make_result(plain_k=40))
    ok = cli(old, same)
    assert ok.returncode == 0 and "0 of 2 robustness score(s) regressed" in ok.stdout
    bad = cli(old, worse)
    assert bad.returncode == 1 and "REGRESSED" in bad.stdout
    # Folders are matched by (submission, task).
    assert cli(tmp_path / "old", tmp_path / "worse").returncode == 1


def test_overlapping_intervals_do_not_fail_but_tolerance_can(tmp_path):
    old = write_result(tmp_path / "old", make_result(plain_k=6))
    slightly = write_result(tmp_path / "new", make_result(plain_k=10))
    assert cli(old, slightly).returncode == 0
    assert cli(old, slightly, "--tolerance", "0.05").returncode == 1
    assert cli(old, slightly, "--tolerance", "0.10").returncode == 0


def test_improvement_and_utility_drop_do_not_gate(tmp_path):
    old = write_result(tmp_path / "old", make_result(plain_k=30, retain_k=190))
    new = write_result(tmp_path / "new", make_result(plain_k=2, retain_k=20))
    res = cli(old, new, "--json")
    assert res.returncode == 0
    rows = json.loads(res.stdout)["rows"]
    assert any(r["score"] == "utility/retain/all" and not r["gates"] for r in rows)


def test_bad_inputs_exit_2(tmp_path):
    old = write_result(tmp_path / "old", make_result())
    assert cli(old, tmp_path / "nope.json").returncode == 2
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    res = cli(old, junk)
    assert res.returncode == 2 and "not a JSON result file" in res.stderr
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"schema_version": 1}))
    assert "not a valid result file" in cli(old, invalid).stderr
    other_version = write_result(tmp_path / "v2", make_result(task_version=2))
    res = cli(old, other_version)
    assert res.returncode == 2 and "task version differs" in res.stderr
    # the same version, an edited card: refused, except under --exact (which shows whether a count moved)
    edited = make_result()
    edited["task"]["sha256"] = "f" * 64
    edited = write_result(tmp_path / "edited", edited)
    res = cli(old, edited)
    assert res.returncode == 2 and "the task card differs" in res.stderr
    assert cli(old, edited, "--exact").returncode == 0
    other_task = write_result(tmp_path / "t", make_result(task="mini-bold"))
    res = cli(old, other_task)
    assert res.returncode == 2 and "missing in NEW" in res.stderr
    assert cli(old, old, "--tolerance", "2").returncode == 2


def test_exact_fails_on_any_moved_count(tmp_path):
    old = write_result(tmp_path / "old", make_result(plain_k=6, retain_k=180))
    better = write_result(tmp_path / "better", make_result(plain_k=5, retain_k=180))
    utility = write_result(tmp_path / "utility", make_result(plain_k=6, retain_k=179))
    same = write_result(tmp_path / "same", make_result(plain_k=6, retain_k=180))
    assert cli(old, better).returncode == 0
    assert cli(old, better, "--exact").returncode == 1
    assert cli(old, utility, "--exact").returncode == 1
    assert cli(old, same, "--exact").returncode == 0


def test_memora_gates_on_every_curve_point_and_the_oracle_only_under_exact(tmp_path):
    from memora_bench.compare import compare, load_results

    def result(folder, curve, oracle, auto):
        return write_result(tmp_path / folder, with_memora(make_result(plain_k=6), curve, oracle, auto_k=auto))

    old = result("old", [3, 6, 9], [0, 3, 3], 9)
    names = {r.score: r.gates for r in compare(load_results(old), load_results(old))}
    assert {k: v for k, v in names.items() if k.startswith("memora")} == {
        "memora/seven": True, "memora/all": True, "memora/seven@0": True, "memora/seven@25": True,
        "memora-auto/seven@w0.5": True, "memora-oracle/seven@0": False, "memora-oracle/seven@25": False,
        "memora-oracle/seven@100": False}
    # The largest budget unchanged, but the concept came back much sooner: regressed.
    sooner = result("sooner", [3, 45, 9], [0, 3, 3], 9)
    res = cli(old, sooner)
    assert res.returncode == 1 and "memora/seven@25" in next(x for x in res.stdout.splitlines() if "REGRESSED" in x)
    assert cli(old, result("auto", [3, 6, 9], [0, 3, 3], 45)).returncode == 1
    # The oracle's curve is the floor: informative, gating only under --exact.
    floor = result("floor", [3, 6, 9], [0, 30, 30], 9)
    assert cli(old, floor).returncode == 0 and cli(old, floor, "--exact").returncode == 1
    assert cli(old, result("same", [3, 6, 9], [0, 3, 3], 9), "--exact").returncode == 0


def weakened_salun(folder, fraction: float):
    """salun-mini-seven with its weight change scaled by ``fraction``: the same submission, a weaker checkpoint."""
    from safetensors.torch import load_file, save_file

    from memora_bench.models import delta
    from memora_bench.paths import repo_root, world_dir
    from memora_bench.specs import sha256_file

    base = load_file(str(world_dir() / "base" / "unet" / "diffusion_pytorch_model.safetensors"))
    src = repo_root() / "baselines" / "salun-mini-seven"
    full = delta.decode(load_file(str(src / "unet-delta8.safetensors")), base, str(src))
    folder.mkdir(parents=True)
    save_file({k: (base[k] + fraction * (v - base[k])).contiguous() for k, v in full.items()},
              str(folder / "unet.safetensors"))
    manifest = (src / "submission.yaml").read_text().split("checkpoint:")[0]
    (folder / "submission.yaml").write_text(
        manifest + f"checkpoint: {{path: unet.safetensors, sha256: '{sha256_file(folder / 'unet.safetensors')}', "
                   "component: unet}\n")
    return folder


@pytest.mark.slow
def test_gate_fails_on_a_weakened_real_checkpoint(tmp_path):
    """The committed SalUn result against a run of SalUn with half its weight change: compare must exit 1.

    (The unchanged checkpoint passing with --exact against the same committed result is `make gate`, in CI.)
    """
    from memora_bench import cli as memora_cli
    from memora_bench.paths import repo_root

    sub = weakened_salun(tmp_path / "salun-mini-seven", 0.5)
    # mini-v1 (the plain probe): the gate's mechanism on a real checkpoint, without MemoRa's minutes.
    assert memora_cli.main(["evaluate", str(sub), "--suite", "mini-v1", "--tasks", "mini-seven", "--out", str(tmp_path / "out"),
                            "--cache-dir", str(tmp_path / "cache"), "--json"]) == 0
    old, new = repo_root() / "results" / "mini-v1" / "salun-mini-seven", tmp_path / "out" / "salun-mini-seven"
    res = cli(old, new)  # the committed result predates the code hash: another code version
    assert res.returncode == 2 and "the code that made them differs" in res.stderr, res.stdout + res.stderr
    res = cli(old, new, "--allow-mismatch")  # comparing across code versions is intended here
    assert res.returncode == 1 and "REGRESSED" in res.stdout, res.stdout + res.stderr
    rows = {r["score"]: r for r in json.loads(cli(old, new, "--json", "--allow-mismatch").stdout)["rows"]}
    seven = rows["plain/seven"]
    assert seven["regressed"] and seven["gates"]
    assert (seven["old_k"], seven["old_n"]) == (2, 60)  # the committed SalUn: 2 of 60 sevens
    assert seven["new_k"] >= 12  # half the change brings sevens back (23 of 60 when measured)
