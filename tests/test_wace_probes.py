"""The WACE probes (noise-based, diffusion completion, inpainting) end to end on the miniature world: what
each draws, how it counts, and that a warm rerun reads every image from the cache."""

from __future__ import annotations

import json

import pytest

from memora_bench.paths import repo_root
from memora_bench.probes.registry import ParamError, parse_params
from memora_bench.results import load_result, stable_part
from tests.test_evaluate import run_cli

SUITE = repo_root() / "tests" / "fixtures" / "benchmark" / "mini-wace.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("wace")
    res = run_cli("evaluate", "original", "--suite", SUITE, "--out", root / "out", "--cache-dir", root / "cache",
                  "--json", check=True)
    return root, json.loads(res.stdout)


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_each_probe_draws_and_counts_what_its_reference_does(runs):
    root, summary = runs
    result = load_result(root / "out" / "original" / "mini-seven-small.json")  # validates against the schema
    probes = result["probes"]
    # noise-based: 2 etas x 2 variance scales per prompt, the prompt counted once, by its best variant
    nb = probes["noise_based"]
    assert nb["cost"]["images"] == 4 and nb["rates"]["seven"]["n"] == 1
    (prompt,) = nb["per_prompt"]
    assert (prompt["eta"], prompt["variance_scale"]) == [(1.0, 1.0), (1.0, 1.04), (1.85, 1.0), (1.85, 1.04)][
        prompt["best_variant"]]
    assert nb["rates"]["seven"]["k"] == (prompt["variants_hit"] > 0)
    # completion: 2 interrupt steps x (concept prompt, empty prompt), each image judged
    c = probes["completion"]
    assert c["rates"]["seven"]["n"] == 4 and c["cost"]["images"] == 4
    assert c["by_finish"]["concept"]["seven"]["n"] == 2 and c["by_finish"]["neutral"]["seven"]["n"] == 2
    assert set(c["by_interrupt"]) == {"0", "2"}
    assert c["rates"]["seven"]["k"] == c["by_finish"]["concept"]["seven"]["k"] + c["by_finish"]["neutral"]["seven"]["k"]
    # inpainting: each prompt's centre painted by the submission under the prompt and under the empty prompt
    ip = probes["inpainting"]
    assert ip["rates"]["seven"]["n"] == 4 and ip["by_finish"]["neutral"]["seven"]["n"] == 2
    assert ip["rates"]["seven"]["k"] == ip["by_finish"]["concept"]["seven"]["k"] + ip["by_finish"]["neutral"]["seven"]["k"]
    lines = _lines(root / "out" / "original" / "mini-seven-small.images.jsonl")
    for probe, n in (("noise_based", 1), ("completion", 4), ("inpainting", 4)):
        mine = [x for x in lines if x["probe"] == probe]
        assert len(mine) == n and sum(x["hit"] for x in mine) == probes[probe]["rates"]["seven"]["k"]
    assert len({x["image_key"] for x in lines}) == len(lines)
    assert set(summary["results"][0]["probes"]) == {"plain", "noise_based", "completion", "inpainting"}


def test_a_warm_rerun_reads_every_image_and_writes_the_same_result(runs, tmp_path):
    root, _ = runs
    res = run_cli("evaluate", "original", "--suite", SUITE, "--out", tmp_path / "out", "--cache-dir", root / "cache",
                  "--json", check=True)
    again = load_result(tmp_path / "out" / "original" / "mini-seven-small.json")
    first = load_result(root / "out" / "original" / "mini-seven-small.json")
    assert again["timing"]["images_generated"] == 0, json.loads(res.stdout)
    assert stable_part(again) == stable_part(first)
    assert (tmp_path / "out" / "original" / "mini-seven-small.images.jsonl").read_bytes() == \
        (root / "out" / "original" / "mini-seven-small.images.jsonl").read_bytes()


@pytest.mark.parametrize("probe,params,message", [
    ("completion", {"interrupt_steps": [2, 1]}, "interrupt_steps must be increasing"),
    ("completion", {"interrupt_steps": [49]}, r"in \[0, steps - 1\)"),
    ("noise_based", {"etas": []}, "etas must be non-empty"),
    ("noise_based", {"eta": [1.0]}, "did you mean 'etas'"),
    ("inpainting", {"mask_fraction": 1.5}, r"mask_fraction must be in \(0, 1\]"),
])
def test_bad_parameters_are_named(probe, params, message):
    with pytest.raises(ParamError, match=message):
        parse_params(probe, params)
