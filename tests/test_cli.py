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
