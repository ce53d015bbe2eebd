import subprocess
import sys
import time


def test_help_is_instant_and_imports_nothing_heavy():
    code = (
        "import sys, time; t = time.perf_counter(); from memora_bench.cli import build_cli; build_cli();"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'numpy') if m in sys.modules];"
        "print(heavy, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "[]", f"memora_bench.cli imports heavy modules: {out}"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "memora_bench.cli", "--help"], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    assert res.returncode == 0
    assert "world" in res.stdout and "Exit codes" in res.stdout
    assert elapsed < 1.0, f"--help took {elapsed:.2f} s"


def test_unknown_subcommand_is_bad_input():
    res = subprocess.run([sys.executable, "-m", "memora_bench.cli", "frobnicate"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "invalid choice" in res.stderr


def test_ls_shows_versions_status_and_every_evaluable_submission(capsys):
    """Issue 28: suites with version and official / retired; every submission `evaluate` takes by name."""
    import json

    from memora_bench.cli import main
    from memora_bench.paths import DEFAULT_SUITE

    assert main(["ls", "suites", "--json"]) == 0
    suites = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert suites[DEFAULT_SUITE]["status"] == "official" and suites["mini-v1"]["status"] == "retired"
    assert all(r["version"] >= 1 for r in suites.values())
    assert main(["ls", "submissions", "--json"]) == 0
    subs = {r["name"]: r["folder"] for r in json.loads(capsys.readouterr().out)}
    assert subs["original"] == "submissions" and subs["esd-x-mini-seven"] == "baselines"
    assert subs["hidden-original-mini-seven"] == "controls" and len([f for f in subs.values() if f == "baselines"]) == 21
    assert main(["ls", "suites"]) == 0
    assert "status official" in capsys.readouterr().out
