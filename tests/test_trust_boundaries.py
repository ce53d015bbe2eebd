"""Trust boundaries: what an outside tester broke, each failing safely now.

A warm cache never vouches for a checkpoint; the leaderboard writes only under ``--out``; YAML cannot
explode or hide duplicate keys; ``compare`` refuses what it cannot compare and recomputes from the counts;
names are plain; the cache heals and shares work in flight. Each case: exit 2 with a clear message,
nothing written where it should not be, no result carrying a hash that is not its file's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from memora_bench import cli
from memora_bench.paths import repo_root
from memora_bench.specs import sha256_file
from tests.helpers import make_result, write_result
from tests.test_bad_inputs import UNET_KEY, Marker, World, good_tensor

ROOT = repo_root()


def run(argv, capsys) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


# --- 1. a warm cache never vouches for a checkpoint ------------------------------------------------------------

def _legit(w: World) -> Path:
    t = good_tensor()
    t[0, 0] += 0.5  # a real change, so the submission is not the base model
    return w.checkpoint({UNET_KEY: t})


def test_a_malicious_file_behind_a_warm_cache_is_refused(tmp_path, capsys):
    w = World(tmp_path)
    legit = _legit(w)
    declared = sha256_file(legit / "w.safetensors")
    code, said = run(w.evaluate(legit), capsys)
    assert code == 0, said
    warm = files_under(tmp_path / "cache")
    assert any(p.suffix == ".png" for p in warm)

    # Another submission: a pickle that runs code, whose manifest declares the legit file's sha256.
    evil = tmp_path / "evil"
    evil.mkdir()
    Marker.path = str(tmp_path / "PWNED")
    torch.save({UNET_KEY: Marker()}, evil / "w.pt")
    manifest = (legit / "submission.yaml").read_text().replace("name: sub", "name: evil")
    (evil / "submission.yaml").write_text(manifest.replace("path: w.safetensors", "path: w.pt"))
    code, said = run(w.evaluate(evil), capsys)
    assert code == 2, said
    assert f"sha256 is {sha256_file(evil / 'w.pt')}, the manifest says {declared}" in said
    assert not (tmp_path / "out" / "evil").exists() and not (tmp_path / "PWNED").exists()

    # The author retrains, overwrites the file and forgets the hash: the old numbers do not come back.
    t = good_tensor()
    t[0, 0] -= 0.5
    save_file({UNET_KEY: t}, str(legit / "w.safetensors"))
    code, said = run(w.evaluate(legit, extra=("--overwrite", "always")), capsys)
    assert code == 2 and f"the manifest says {declared}" in said, said


def test_a_symlink_inside_the_folder_is_refused_even_with_a_warm_cache(tmp_path, capsys):
    w = World(tmp_path)
    legit = _legit(w)
    assert run(w.evaluate(legit), capsys)[0] == 0
    (legit / "real.safetensors").write_bytes((legit / "w.safetensors").read_bytes())
    (legit / "w.safetensors").unlink()
    (legit / "w.safetensors").symlink_to(legit / "real.safetensors")  # inside the folder, same bytes
    code, said = run(w.evaluate(legit, extra=("--overwrite", "always")), capsys)
    assert code == 2 and "symlinks are not accepted inside a submission" in said, said


def test_cache_keys_come_from_the_verified_file_not_the_manifest(tmp_path):
    from memora_bench.runner import submission_model
    from memora_bench.specs import load_submission

    w = World(tmp_path)
    sub = load_submission(_legit(w))
    with pytest.raises(ValueError, match="needs its verified sha256"):
        submission_model(sub, None)
    assert submission_model(sub, "f" * 64).fingerprint["checkpoint"]["sha256"] == "f" * 64


# --- 2. the leaderboard follows no untrusted path ----------------------------------------------------------------

def _result_with_lines(folder: Path, lines: list[dict]) -> Path:
    path = write_result(folder, make_result("crafted"))
    (path.parent / "mini-seven.images.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_the_leaderboard_refuses_image_keys_that_are_paths(tmp_path, capsys):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    line = {"probe": "plain", "prompt_set": "attack", "prompt_id": "a", "prompt": "p", "seed": 0, "hit": True,
            "image_key": "../../../secret"}
    _result_with_lines(tmp_path / "results", [line])
    (tmp_path / "cache").mkdir()
    before = files_under(tmp_path)
    code, said = run(["leaderboard", tmp_path / "results", "--out", tmp_path / "site", "--cache-dir",
                      tmp_path / "cache"], capsys)
    assert code == 2 and "image_key is not a cache key" in said, said
    outside = {p for p in files_under(tmp_path) - before if tmp_path / "site" not in p.parents}
    assert outside == set()
    assert not [p for p in files_under(tmp_path / "site") if p.read_bytes() == secret.read_bytes()]


def test_a_result_cannot_point_its_images_file_elsewhere(tmp_path):
    from memora_bench.results import ResultError, load_result

    path = write_result(tmp_path, dict(make_result(), images_file="../../etc/passwd"))
    with pytest.raises(ResultError, match="images_file"):
        load_result(path)


def test_spreadsheet_formulas_are_neutralised(tmp_path):
    from memora_bench.leaderboard.build import build_site, spreadsheet_safe

    assert spreadsheet_safe('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert [spreadsheet_safe(v) for v in ("+1", "-x", "@SUM(A1)", "ok", -0.5, 3)] == ["'+1", "'-x", "'@SUM(A1)",
                                                                                    "ok", -0.5, 3]
    r = make_result("formula")
    r["submission"]["method"] = '=HYPERLINK("http://evil","x")'
    write_result(tmp_path / "results", r)
    build_site([tmp_path / "results"], tmp_path / "site")
    csv_text = (tmp_path / "site" / "leaderboard.csv").read_text()
    assert "=HYPERLINK" in csv_text and ",=HYPERLINK" not in csv_text and '"=HYPERLINK' not in csv_text


# --- 3. YAML: no alias bombs, no duplicate keys, bounded messages ------------------------------------------------

BOMB = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
    f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8)) + "name: *i\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    w = World(tmp_path)
    folder = w.submission(text=BOMB)
    start = time.perf_counter()
    code, said = run(["validate", "--no-load", folder], capsys)
    assert code == 2 and "aliases (*name) are not allowed" in said, said
    assert time.perf_counter() - start < 5 and len(said) < 2000


def test_duplicate_keys_and_oversized_specs_are_refused(tmp_path, capsys):
    from memora_bench.specs import MAX_SPEC_BYTES

    w = World(tmp_path)
    from tests.test_bad_inputs import MANIFEST

    folder = w.submission(text=MANIFEST + "method: other\n")
    code, said = run(["validate", "--no-load", folder], capsys)
    assert code == 2 and "duplicate key 'method', line 8" in said, said
    folder = w.submission(text=MANIFEST + "notes: '" + "x" * MAX_SPEC_BYTES + "'\n")
    code, said = run(["validate", "--no-load", folder], capsys)
    assert code == 2 and "a spec file is refused unread" in said and len(said) < 1000, said


def test_a_long_value_is_not_echoed_whole(tmp_path, capsys):
    w = World(tmp_path)
    from tests.test_bad_inputs import MANIFEST

    folder = w.submission(text=MANIFEST.replace("erased: [seven]", "erased: seven") + "control: '" + "y" * 100_000 + "'\n")
    code, said = run(["validate", "--no-load", folder], capsys)
    assert code == 2 and "'control' must be bool" in said and len(said) < 2000, said


# --- 4. compare refuses what it cannot compare, and recomputes from counts ---------------------------------------

def _compare(tmp_path, capsys, old: dict | list, new: dict | list, *extra) -> tuple[int, str]:
    folders = []
    for name, results in (("old", old), ("new", new)):
        for r in results if isinstance(results, list) else [results]:
            write_result(tmp_path / name / (r.pop("_sub", "") or "."), r)
        folders.append(tmp_path / name)
    return run(["compare", *folders, *extra], capsys)


def test_compare_refuses_results_of_different_suites(tmp_path, capsys):
    new = make_result()
    new["suite"]["name"] = "mini-v3"
    code, said = _compare(tmp_path, capsys, make_result(), new, "--exact")
    assert code == 2 and "suite name differs (mini-v1 vs mini-v3)" in said and "--allow-mismatch" in said, said
    code, said = run(["compare", tmp_path / "old", tmp_path / "new", "--exact", "--allow-mismatch"], capsys)
    assert code == 0 and "0 of 3 robustness score(s) regressed" in said, said


def test_compare_refuses_other_probe_parameters_and_package_versions(tmp_path, capsys):
    new = make_result()
    new["probes"]["plain"]["params"] = {"x": 1}
    new["environment"]["memora_bench"] = "9"
    code, said = _compare(tmp_path, capsys, make_result(), new)
    assert code == 2 and "the parameters of probe plain differ" in said and "memora-bench version differs" in said


def test_compare_refuses_results_of_other_code_except_under_exact(tmp_path, capsys):
    old, new = make_result(), make_result()
    old["environment"]["code"], new["environment"]["code"] = "a" * 64, "b" * 64
    code, said = _compare(tmp_path, capsys, old, new)
    assert code == 2 and "the code that made them differs (aaaaaaaaaaaa vs bbbbbbbbbbbb" in said, said
    code, said = run(["compare", tmp_path / "old", tmp_path / "new", "--exact"], capsys)
    assert code == 0, said  # the project's gate: new code must reproduce the old counts


def test_code_version_is_a_content_hash_of_the_package():
    from memora_bench.provenance import code_version

    assert len(code_version()) == 64 and code_version() == code_version()


def test_compare_refuses_two_results_for_one_submission_and_task(tmp_path, capsys):
    worse = make_result(plain_k=50)
    worse["_sub"] = "copy"
    code, said = _compare(tmp_path, capsys, make_result(), [make_result(), worse])
    assert code == 2 and "a second result for submission 'sub' on task 'mini-seven'" in said, said


def test_compare_recomputes_from_counts_an_edited_k_is_refused(tmp_path, capsys):
    new = make_result(plain_k=15)
    new["probes"]["plain"]["rates"]["all"]["k"] = 45  # rate and intervals still say 15/60
    code, said = _compare(tmp_path, capsys, make_result(plain_k=15), new)
    assert code == 2 and "rate 0.25 is not k/n = 45/60" in said, said


def test_the_schema_refuses_k_above_n_and_non_finite_numbers(tmp_path, capsys):
    bad = make_result()
    bad["probes"]["plain"]["rates"]["all"].update(k=70)
    code, said = _compare(tmp_path, capsys, make_result(), bad)
    assert code == 2 and "k=70 is not a count in [0, n=60]" in said, said
    path = write_result(tmp_path / "nan", make_result())
    path.write_text(path.read_text().replace('"rate": 0.16666666666666666', '"rate": NaN', 1))
    code, said = run(["compare", tmp_path / "old", tmp_path / "nan"], capsys)
    assert code == 2 and "NaN is not a number a result may hold" in said, said


def test_a_memora_result_without_budgets_is_bad_input_not_a_regression(tmp_path, capsys):
    from tests.test_leaderboard import memora_block

    bad = make_result()
    bad["probes"]["memora"] = memora_block()
    del bad["probes"]["memora"]["params"]["budgets"]
    code, said = _compare(tmp_path, capsys, make_result(), bad)
    assert code == 2 and "probes.memora.params.budgets: missing" in said and "Traceback" not in said, said
    code, said = run(["leaderboard", tmp_path / "new", "--out", tmp_path / "site"], capsys)
    assert code == 2 and "probes.memora.params.budgets: missing" in said, said


def test_an_unexpected_error_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from memora_bench import compare

    def boom(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(compare, "compare", boom)
    code, said = _compare(tmp_path, capsys, make_result(), make_result())
    assert code == 2 and said.count("\n") == 1 and "unexpected KeyError in 'compare'" in said
    assert str(tmp_path / "old") in said


# --- 5. strict loaders: probe parameters, non-finite weights, names --------------------------------------------

def test_validate_checks_every_probe_parameter(tmp_path, capsys):
    suite = tmp_path / "benchmark" / "s.yaml"
    suite.parent.mkdir()
    suite.write_text((ROOT / "benchmark" / "mini-v3.yaml").read_text()
                     .replace("    budgets: [0,", "    budget: [0,").replace("lr: 0.0001", "lr: fast")
                     .replace("    k: 3\n", "    k: 0\n"))
    code, said = run(["validate", suite], capsys)
    assert code == 2, said
    assert "unknown MemoRa parameter 'budget' (did you mean 'budgets'?)" in said
    assert "MemoRa parameter 'lr' must be float, got 'fast'" in said
    assert "UnlearnDiffAtk: k, iterations and timesteps must be >= 1" in said


def test_nan_weights_in_a_lora_or_a_pipeline_fail_validate(tmp_path, capsys):
    w = World(tmp_path)
    folder = w.checkpoint({"lora.down.weight": torch.full((4, 4), float("nan"))}, component="lora")
    code, said = run(["validate", "--no-load", folder], capsys)
    assert code == 2 and "'lora.down.weight' contains NaN or Inf" in said, said
    pipe = tmp_path / "p" / "pipe"
    shutil.copytree(ROOT / "world" / "base", pipe)
    unet = pipe / "unet" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    sd = load_file(str(unet))
    sd[UNET_KEY] = torch.full_like(sd[UNET_KEY], float("inf"))
    save_file(sd, str(unet))
    from memora_bench.models.loading import folder_sha256
    from tests.test_bad_inputs import MANIFEST

    (tmp_path / "p" / "submission.yaml").write_text(MANIFEST.replace("name: sub", "name: p") + "checkpoint: {path: pipe, "
                                                    f"sha256: '{folder_sha256(pipe)}', component: pipeline}}\n")
    code, said = run(["validate", "--no-load", tmp_path / "p"], capsys)
    assert code == 2 and f"{UNET_KEY!r} contains NaN or Inf" in said, said


def test_generation_refuses_non_finite_latents():
    from memora_bench.models.generate import NonFiniteError, decode

    with pytest.raises(NonFiniteError, match="NaN or infinite latents"):
        decode(object(), torch.tensor([[[[float("nan")]]]]))


@pytest.mark.parametrize("name,says", [
    ('""', "'' is not a valid name"),
    ('"sub\u202egnp"', "contains invisible or control characters (U+202E)"),
    ('"s\u200bub"', "contains invisible or control characters (U+200B)"),
    ('"ѕub"', "is not a valid name"),  # a Cyrillic dze that looks like an s
])
def test_names_are_plain(tmp_path, capsys, name, says):
    from tests.test_bad_inputs import MANIFEST

    w = World(tmp_path)
    folder = w.submission(text=MANIFEST.replace("name: sub", f"name: {name}"))
    code, said = run(["validate", "--no-load", folder], capsys)
    assert code == 2 and says in said, said


def test_an_invisible_character_in_free_text_is_refused(tmp_path, capsys):
    from tests.test_bad_inputs import MANIFEST

    w = World(tmp_path)
    folder = w.submission(text=MANIFEST.replace("method: m", 'method: "ES\u200dD"'))
    code, said = run(["validate", "--no-load", folder], capsys)
    assert code == 2 and "'method' contains invisible or control characters (U+200D)" in said, said


# --- 6. the cache heals and shares work in flight -----------------------------------------------------------------

SMALL_SUITE = ROOT / "tests" / "fixtures" / "benchmark" / "mini-small.yaml"


def _evaluate(out: Path, cache: Path, *extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "memora_bench.cli", "evaluate", "original", "--suite",
                           str(SMALL_SUITE), "--out", str(out), "--cache-dir", str(cache), "--json", *extra],
                          capture_output=True, text=True, env=env, timeout=900)


def test_a_corrupted_entry_is_named_removed_and_recomputed(tmp_path):
    from memora_bench.results import load_result, stable_part

    cache = tmp_path / "cache"
    first = _evaluate(tmp_path / "a", cache)
    assert first.returncode == 0, first.stderr
    png = sorted((cache / "images").rglob("*.png"))[0]
    png.write_bytes(png.read_bytes()[:40])  # truncated by hand
    stale = cache / "images" / ".stale.png.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = cache / "images" / ".fresh.png.tmp"
    fresh.write_bytes(b"another run writing now")
    again = _evaluate(tmp_path / "b", cache)
    assert again.returncode == 0, again.stderr
    assert f"cache entry {png} could not be read" in again.stderr and "removed, it is recomputed" in again.stderr
    a = load_result(tmp_path / "a" / "original" / "mini-seven-small.json")
    b = load_result(tmp_path / "b" / "original" / "mini-seven-small.json")
    assert stable_part(a) == stable_part(b) and b["timing"]["images_generated"] == 1
    assert not stale.exists() and fresh.exists()
    third = _evaluate(tmp_path / "c", cache)
    assert third.returncode == 0 and "could not be read" not in third.stderr


def test_a_lock_makes_a_second_holder_wait(tmp_path):
    from memora_bench.cache import Cache

    cache, key, order = Cache(tmp_path), "ab" * 32, []

    def second():
        with cache.lock(key):
            order.append("second")

    with cache.lock(key):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]


def test_two_runs_on_one_cache_do_the_work_once(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    procs = [subprocess.Popen([sys.executable, "-m", "memora_bench.cli", "evaluate", "original", "--suite",
                               str(SMALL_SUITE), "--out", str(tmp_path / name), "--cache-dir", str(cache)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name in ("a", "b")]
    for p in procs:
        p.communicate(timeout=900)
        assert p.returncode == 0
    from memora_bench.results import load_result, stable_part

    a, b = (load_result(tmp_path / n / "original" / "mini-seven-small.json") for n in ("a", "b"))
    assert stable_part(a) == stable_part(b)
    total = a["timing"]["images_generated"] + a["timing"]["images_cached"]
    assert a["timing"]["images_generated"] + b["timing"]["images_generated"] == total
