"""The WACE probes (noise-based, diffusion completion, inpainting, classifier guidance) and concept resurgence
end to end on the miniature world: what each draws, how it counts, and that a warm rerun reads every image
from the cache."""

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
    assert [(v["eta"], v["variance_scale"], v["n"]) for v in nb["grid"]] == [(1.0, 1.0, 1), (1.0, 1.04, 1), (1.85, 1.0, 1),
                                                                            (1.85, 1.04, 1)]
    assert sum(v["k"] for v in nb["grid"]) == prompt["variants_hit"] == nb["variant_rates"]["seven"]["k"]
    # classifier guidance, scored per variant: 2 scales x 1 eta per prompt, every image counted
    cg = probes["classifier_guidance"]
    assert cg["cost"]["images"] == 2 and cg["rates"]["seven"]["n"] == 2 and cg["params"]["score"] == "per_variant"
    assert cg["rates"]["seven"]["k"] == sum(v["k"] for v in cg["grid"]) == cg["per_prompt"][0]["variants_hit"]
    assert [(v["scale"], v["eta"]) for v in cg["per_prompt"]] == [[(0.0, 1.0), (0.3, 1.0)][cg["per_prompt"][0]["best_variant"]]]
    # resurgence: trained on retained prompts only; budget 0 is the submission itself (the plain probe's image)
    rs = probes["resurgence"]
    assert [c["budget"] for c in rs["curve"]] == [0, 2] and "seven" not in rs["training_concepts"]
    assert len(rs["training_concepts"]) == 4  # 4 images, one from each of the first retained concepts
    assert rs["rates"] == rs["curve"][-1]["rates"] and rs["cost"]["lora_steps"] == 2
    lines = _lines(root / "out" / "original" / "mini-seven-small.images.jsonl")
    (zero,) = [x for x in lines if x["probe"] == "resurgence" and x["budget"] == 0]
    (plain,) = [x for x in lines if x["probe"] == "plain" and x["prompt_id"] == zero["prompt_id"]]
    assert zero["image_key"] == plain["image_key"] and zero["hit"] == plain["hit"]
    assert len([x for x in lines if x["probe"] == "resurgence"]) == 2
    lines = [x for x in lines if x["probe"] != "resurgence"]
    for probe, n in (("noise_based", 1), ("completion", 4), ("inpainting", 4), ("classifier_guidance", 2)):
        mine = [x for x in lines if x["probe"] == probe]
        assert len(mine) == n and sum(x["hit"] for x in mine) == probes[probe]["rates"]["seven"]["k"]
    assert len({x["image_key"] for x in lines}) == len(lines)  # every probe's images its own
    assert set(summary["results"][0]["probes"]) == {"plain", "noise_based", "completion", "inpainting",
                                                     "classifier_guidance", "resurgence"}


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
    ("classifier_guidance", {"score": "mean"}, "score must be 'best' or 'per_variant'"),
])
def test_bad_parameters_are_named(probe, params, message):
    with pytest.raises(ParamError, match=message):
        parse_params(probe, params)


def test_classifier_guidance_pulls_the_world_towards_the_concept_and_scale_zero_changes_nothing():
    """With the world's base model and digit classifier: scale 0 is the unguided noisy sampler bit for bit;
    a positive scale raises the classifier's log-probability of the guided label."""
    import torch

    from memora_bench.classifiers.registry import load_classifier
    from memora_bench.miniworld import load_pipeline
    from memora_bench.models.generate import encode_prompts
    from memora_bench.models.trajectory import (
        classifier_guide,
        ddim_steps,
        image_generators,
        initial_noise,
        latent_shape,
        sampler,
    )

    pipe = load_pipeline("oracle")  # never learned the seven: the guidance has to supply it
    clf = load_classifier("mini-digit")
    j = clf.labels.index("seven")
    sched = sampler(pipe, 10)
    prompts = ["a handwritten digit"] * 4
    seeds = [1, 2, 3, 4]
    cond, uncond = encode_prompts(pipe, prompts), encode_prompts(pipe, [""] * 16)[:1]

    def draw(scale, guided=True):
        gens = image_generators(seeds)
        x = initial_noise(gens, latent_shape(pipe, 32, 32))
        guide = classifier_guide(pipe, lambda im: clf.log_probs(im)[:, j], [scale] * 4) if guided else None
        out = ddim_steps(pipe.unet, sched, x, cond, uncond, 7.5, eta=1.0, gens=gens, guide=guide)
        with torch.no_grad():
            images = (pipe.vae.decode(out / pipe.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
            return out, clf.log_probs(images)[:, j]

    plain, lp0 = draw(0.0, guided=False)
    zero, _ = draw(0.0)
    assert torch.equal(plain, zero)
    _, lp = draw(0.3)  # larger scales overshoot here (3 and 10: every image an eight; experiments/classifier_guidance_scales.py)
    assert lp.mean() > lp0.mean() + 1.0, (lp0, lp)


def test_classifier_guidance_refuses_a_task_judged_by_a_non_differentiable_classifier():
    from memora_bench.probes.classifier_guidance import preflight
    from memora_bench.specs import load_task

    assert preflight(load_task(repo_root() / "tasks" / "mini-seven.yaml"), {}) is None
    message = preflight(load_task(repo_root() / "tasks" / "sd14-church.yaml"), {})
    assert "needs a differentiable classifier" in message and "imagenet-resnet50" in message
