"""The static leaderboard: rows from result files, escaping, downloads, bad input (browser tests: see
test_leaderboard_browser.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from memora_bench.leaderboard.build import LeaderboardError, build_site, slug
from tests.helpers import make_result, write_result

EVIL = "<script>alert(1)</script>"


def memora_block(k_curve=(10, 30), oracle=(0, 1), ceiling=40, memory=0.8, label="STM", n=40):
    import numpy as np

    from memora_bench.scoring import rate

    def r(k):
        return rate([np.array([i < k]) for i in range(n)], 200, 0).as_dict()

    return {"params": {"budgets": [0, 50], "attack_seeds": [0]}, "cost": {"images": 80, "model_evaluations": 8000},
            "rates": {"seven": r(k_curve[-1]), "all": r(k_curve[-1])},
            "concepts": {"seven": {"curve": [r(k) for k in k_curve], "oracle_curve": [r(k) for k in oracle],
                                   "ceiling": r(ceiling), "eval_prompts": [], "training_images": [],
                                   "score": {"budgets": [0, 50], "b_half": 50.0, "b_half_interval": [50.0, None],
                                             "memory": memory, "memory_interval": [memory - 0.1, memory + 0.1],
                                             "label": label, "curve": [], "best": [], "oracle_curve": [],
                                             "ceiling": ceiling / n}}}}


@pytest.fixture()
def results(tmp_path):
    folder = tmp_path / "results"
    a = make_result("method-a", plain_k=12)
    a["probes"]["memora"] = memora_block(memory=0.2, label="LTM")
    b = make_result("method-b", plain_k=5)
    b["probes"]["memora"] = memora_block(memory=0.9, label="STM")
    # an adversarial probe on one row: its column appears for the whole task, "–" where it did not run
    attacked = make_result("method-b", plain_k=27)["probes"]["plain"]["rates"]
    b["probes"]["unlearndiffatk"] = {"params": {"k": 3}, "cost": {"images": 60, "model_evaluations": 9000},
                                     "rates": {**b["probes"]["plain"]["rates"], "all": attacked["all"]}}
    orig = make_result("original", plain_k=50)
    orig["submission"]["control"] = True
    evil = make_result("evil", plain_k=20)  # names are plain (the schema's character set); free text is not
    evil["submission"]["method"] = EVIL + " <b>bold</b> & <img src=x onerror=alert(2)>"
    evil["submission"]["erased"] = [EVIL]
    for r in (a, b, orig, evil):
        write_result(folder, r)
    write_result(folder, make_result("method-a", task="mini-bold", plain_k=3))
    return folder


def test_rows_hold_the_result_numbers_and_controls_come_last(results, tmp_path):
    out = tmp_path / "site"
    summary = build_site([results], out)
    assert summary == {"out": str(out), "tables": 2, "pages": 4, "results": 5, "images": 0}
    data = json.loads((out / "leaderboard.json").read_text())["rows"]
    seven = [r for r in data if r["task"] == "mini-seven"]
    # methods ordered by memory index (lower first), then plain rate; controls last
    assert [r["submission"] for r in seven] == ["method-a", "method-b", "evil", "original"]
    files = {r: json.loads((results / r / "mini-seven.json").read_text()) for r in ("method-a", "original")}
    for row in seven:
        if row["submission"] in files:
            res = files[row["submission"]]
            assert row["plain"] == res["probes"]["plain"]["rates"]["all"]["rate"]
            assert row["plain_detail"].startswith(f"{res['probes']['plain']['rates']['all']['k']}/60 ")
            assert row["retain"] == res["utility"]["retain"]["all"]["rate"]
    b = next(r for r in seven if r["submission"] == "method-b")
    assert b["adv:unlearndiffatk"] == 27 / 60 and b["adv:unlearndiffatk_detail"].startswith("27/60 ")
    assert seven[0]["adv:unlearndiffatk"] is None  # method-a did not run it
    a = seven[0]
    assert a["memory"] == 0.2 and a["label"] == "LTM" and a["b_half"] == 50.0 and a["memora@50"] == 30 / 40
    with (out / "leaderboard.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["submission"] for r in rows] == [r["submission"] for r in data]
    assert float(rows[0]["plain"]) == pytest.approx(data[0]["plain"])


def test_html_in_names_and_manifests_is_rendered_as_text(results, tmp_path):
    out = tmp_path / "site"
    build_site([results], out)
    pages = [out / "index.html", out / "submissions" / f"{slug('evil')}.html"]
    for page in pages:
        html = page.read_text()
        assert "<script>alert(1)</script>" not in html and "onerror=alert(2)>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;img src=x onerror=alert(2)&gt;" in pages[1].read_text()
    assert "/" not in slug(EVIL) and slug("a") != slug("a/")


def test_submission_page_has_curves_and_provenance(results, tmp_path):
    out = tmp_path / "site"
    build_site([results], out)
    html = (out / "submissions" / f"{slug('method-a')}.html").read_text()
    assert html.count("<svg") == 1 and "retrain oracle" in html and 'class="ceiling"' in html
    assert "Provenance" in html and "mini-v1" in html and "result_file" in html
    # the curve says what its axes are and which line is which
    assert "LoRA relearning steps (log scale)" in html and "images showing the concept" in html
    assert 'class="legend"' in html and "retrain oracle (floor)" in html and "original model (ceiling)" in html
    index = (out / "index.html").read_text()
    assert '<p class="about">Suite mini-v1 v1 · results up to 2026-11-23' in index


def test_bad_inputs_are_named(results, tmp_path):
    (results / "broken.json").write_text("{not json")
    (results / "other.json").write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(LeaderboardError) as info:
        build_site([results, tmp_path / "missing"], tmp_path / "site")
    text = str(info.value)
    assert "broken.json: not a JSON result file" in text and "other.json: not a valid result file" in text
    assert "missing: no such file or folder" in text
    dup = tmp_path / "dup"
    write_result(dup, make_result("method-a"))
    (results / "broken.json").unlink()
    (results / "other.json").unlink()
    with pytest.raises(LeaderboardError, match="a second result for submission 'method-a' on task 'mini-seven'"):
        build_site([results, dup], tmp_path / "site")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LeaderboardError, match="no result files found"):
        build_site([empty], tmp_path / "s2")


def test_cli_exit_codes(results, tmp_path):
    from tests.test_evaluate import run_cli

    ok = run_cli("leaderboard", results, "--out", tmp_path / "site", "--cache-dir", tmp_path / "nocache")
    assert ok.returncode == 0 and "2 task table(s), 4 submission page(s)" in ok.stdout
    bad = run_cli("leaderboard", tmp_path / "nothing", "--out", tmp_path / "site2")
    assert bad.returncode == 2 and "no such file or folder" in bad.stderr


def test_the_original_model_strip_comes_from_the_original_not_the_oracle(tmp_path):
    """Both controls run without a checkpoint on the task's base model; only the original erased nothing.
    (The oracle, first by name, was shown as "original model" until this was fixed.)"""
    from memora_bench.leaderboard.build import _original_for

    results = {}
    for name, erased in (("oracle", ["seven", "three", "eight", "bold"]), ("original", []), ("method-a", ["seven"])):
        r = make_result(name, plain_k=3)
        r["submission"].update(control=name != "method-a", erased=erased)
        if name == "method-a":
            r["submission"]["checkpoint"] = {"path": "u.safetensors", "sha256": "0" * 64, "component": "unet"}
        else:
            r["submission"]["checkpoint"] = None
        results[(name, "mini-seven")] = (r, tmp_path / f"{name}.json")
    data, path = _original_for(results, "mini-seven", results[("method-a", "mini-seven")][0]["base_model"])
    assert data["submission"]["name"] == "original" and path.name == "original.json"


def test_the_forgetting_label_is_the_worst_case_over_probes(tmp_path):
    """MemoRa says LTM for both methods; UnlearnDiffAtk brings seven back on method-c beyond the oracle, so
    its label is partial, decided by that probe; without the oracle's result LTM cannot be claimed."""
    import numpy as np

    from memora_bench.scoring import rate

    def adv(k, n=8):
        r = rate([np.array([i < k]) for i in range(n)], 200, 0).as_dict()
        return {"params": {}, "cost": {"images": n, "model_evaluations": 1}, "rates": {"seven": r, "all": r}}

    folder = tmp_path / "results"
    c = make_result("method-c", plain_k=1)
    c["probes"]["memora"] = memora_block(memory=0.05, label="LTM")
    c["probes"]["unlearndiffatk"] = adv(7)
    d = make_result("method-d", plain_k=1)
    d["probes"]["memora"] = memora_block(memory=0.05, label="LTM")
    d["probes"]["unlearndiffatk"] = adv(0)
    oracle = make_result("oracle", plain_k=0)
    oracle["submission"].update(control=True, erased=["seven"])
    oracle["probes"]["memora"] = memora_block(memory=0.0, label="LTM")
    oracle["probes"]["unlearndiffatk"] = adv(0)
    for r in (c, d, oracle):
        write_result(folder, r)
    build_site([folder], tmp_path / "site")
    rows = {r["submission"]: r for r in json.loads((tmp_path / "site" / "leaderboard.json").read_text())["rows"]}
    assert (rows["method-c"]["label"], rows["method-c"]["label_detail"]) == ("partial", "by UnlearnDiffAtk")
    assert (rows["method-d"]["label"], rows["method-d"]["label_detail"]) == ("LTM", "like the oracle under every probe")
    (folder / "oracle" / "mini-seven.json").unlink()
    build_site([folder], tmp_path / "site2")
    rows = {r["submission"]: r for r in json.loads((tmp_path / "site2" / "leaderboard.json").read_text())["rows"]}
    assert (rows["method-d"]["label"], rows["method-d"]["label_detail"]) == ("undefined", "by UnlearnDiffAtk")


def test_a_rebuild_without_the_cache_keeps_the_images_the_site_already_has(tmp_path):
    """A fresh clone has no cache: rebuilding the committed site must keep its images, not drop them."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    results = tmp_path / "results"
    for sub in ("original", "esd-x-mini-seven"):
        shutil.copytree(root / "results" / "mini-v3" / sub, results / sub)
    out = tmp_path / "site"
    assert build_site([results], out)["images"] == 0  # no cache, no earlier site: "not in cache" boxes
    page = out / "submissions" / f"{slug('esd-x-mini-seven')}.html"
    assert "../img/" not in page.read_text()
    committed = sorted((root / "leaderboard" / "img").glob("*.png"))
    (out / "img").mkdir()
    for f in committed:
        shutil.copyfile(f, out / "img" / f.name)
    build_site([results], out)
    shown = {f.split('"')[0] for f in page.read_text().split('src="../img/')[1:]}
    assert shown and all((out / "img" / name).is_file() for name in shown)


def test_paper_links_come_from_the_result_or_its_hash_matched_manifest_and_only_http():
    from memora_bench.leaderboard.build import papers
    from memora_bench.specs import sha256_file

    root = Path(__file__).resolve().parents[1]
    manifest = root / "baselines" / "salun-mini-seven" / "submission.yaml"

    def result(name, **sub):
        return ({"submission": {"name": name, **sub}}, None)

    found = papers({
        ("hashed", "t"): result("hashed", manifest_sha256=sha256_file(manifest)),
        ("own", "t"): result("own", reference="https://example.org/paper", authors=["A. Author"]),
        ("script", "t"): result("script", reference="javascript:alert(1)"),
        ("unknown", "t"): result("unknown", manifest_sha256="0" * 64),
    })
    assert found["hashed"]["reference"] == yaml.safe_load(manifest.read_text())["reference"]
    assert found["own"] == {"reference": "https://example.org/paper", "authors": ("A. Author",)}
    assert "script" not in found and "unknown" not in found


def test_keep_images_puts_the_shown_images_beside_the_results_and_a_fresh_build_reads_them(tmp_path):
    """`leaderboard --keep-images` copies every image a page shows into `<results folder>/img/`; a build from
    those results alone (no cache, no earlier site) then shows every one of them."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    results = tmp_path / "results"
    for sub in ("original", "esd-x-mini-seven"):
        shutil.copytree(root / "results" / "mini-v4" / sub, results / sub)
    first = tmp_path / "first"
    shutil.copytree(root / "leaderboard" / "img", first / "img")  # an earlier build's images, no cache
    build_site([results], first, cache_dir=tmp_path / "no-cache", keep_images=True)
    page = f"submissions/{slug('esd-x-mini-seven')}.html"

    def shown(site):
        text = (site / page).read_text()
        return {f.split('"')[0] for f in text.split('src="../img/')[1:]}, text.count("not in cache")

    images, missing = shown(first)
    assert images, "the committed site has none of this page's images"
    kept = {p.name for p in (results / "img").glob("*.png")}
    assert images <= kept
    fresh = tmp_path / "fresh"
    build_site([results], fresh, cache_dir=tmp_path / "no-cache")
    assert shown(fresh) == (images, missing)
    assert all((fresh / "img" / name).read_bytes() == (first / "img" / name).read_bytes() for name in images)


def test_image_lines_read_the_same_from_a_gzip_copy(tmp_path):
    """The committed results keep their image lines gzip-compressed (`<task>.images.jsonl.gz`); they read back
    exactly as the plain file."""
    import gzip
    import shutil

    from memora_bench.results import load_image_lines, load_result

    root = Path(__file__).resolve().parents[1] / "results" / "mini-v4" / "original"
    shutil.copy(root / "mini-seven.json", tmp_path / "mini-seven.json")
    packed = root / "mini-seven.images.jsonl.gz"
    (tmp_path / "mini-seven.images.jsonl").write_bytes(gzip.decompress(packed.read_bytes()))
    result = load_result(tmp_path / "mini-seven.json")
    plain = load_image_lines(result, tmp_path / "mini-seven.json")
    assert plain and load_image_lines(result, root / "mini-seven.json") == plain


def test_a_probe_that_pools_several_parts_shows_each_on_the_submission_page():
    from memora_bench.leaderboard.build import probe_breakdown

    def r(k, n):
        return {"all": {"k": k, "n": n}}

    resurgence = {"rates": r(13, 16), "curve": [{"budget": 0, "rates": r(0, 16)}, {"budget": 200, "rates": r(13, 16)}]}
    assert probe_breakdown(resurgence) == [("after 0 fine-tuning steps", "0/16"), ("after 200 fine-tuning steps", "13/16")]
    completion = {"rates": r(7, 48), "by_finish": {"concept": r(6, 24), "neutral": r(1, 24)},
                  "by_interrupt": {"0": r(3, 16), "2": r(4, 16)}}
    assert probe_breakdown(completion) == [("finished under the prompt", "6/24"), ("finished under the empty prompt", "1/24"),
                                           ("from interrupt step 0", "3/16"), ("from interrupt step 2", "4/16")]
    grid = {"rates": r(5, 16), "grid": [{"eta": 1.0, "variance_scale": 1.04, "k": 5, "n": 8}]}
    assert probe_breakdown(grid) == [("eta 1.0, variance scale 1.04", "5/8")]
    # MemoRa's curve entries are per concept (no "budget"/"rates" pair at the top): nothing is broken down
    assert probe_breakdown({"rates": r(1, 8), "concepts": {}}) == []


def test_concept_resurgence_gets_a_strip_of_its_largest_budget():
    from memora_bench.leaderboard.build import resurgence_lines

    def line(prompt, budget, seed=0):
        return {"probe": "resurgence", "prompt_id": prompt, "seed": 7, "budget": budget, "attack_seed": seed}

    lines = [line(f"attack-{i:03d}", b) for b in (0, 100, 200) for i in range(10)] + [line("attack-000", 200, 1)]
    got = resurgence_lines(lines + [{"probe": "plain", "prompt_id": "attack-000", "seed": 7}])
    assert [x["budget"] for x in got] == [200] * 8 and {x["attack_seed"] for x in got} == {0}
    assert [x["prompt_id"] for x in got] == [f"attack-{i:03d}" for i in range(8)]
    assert resurgence_lines([{"probe": "plain", "prompt_id": "attack-000", "seed": 7}]) == []
