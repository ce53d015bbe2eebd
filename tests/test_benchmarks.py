"""Performance figures, measured as ratios within one run (marker ``benchmark``; deselected by default).

``MEMORA_BENCH_SHORT=1`` (used by CI) measures fewer images; the ratios are the same quantity.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from memora_bench import miniworld
from memora_bench.models.generate import GenerationConfig, generate

pytestmark = pytest.mark.benchmark
SHORT = os.environ.get("MEMORA_BENCH_SHORT") == "1"
N = 32 if SHORT else 64  # the short mode still fills two whole micro-batches (16), one per core
# The per-prompt loop makes one pipeline call per image, one after the other, so its seconds per image do not
# depend on how many images it draws: the short mode times it on the first half of the workload (the batched
# side keeps all N, which its micro-batches need) and compares images per second.
N_LOOP = N // 2 if SHORT else N
ROUNDS = 3
REGRESSION_FLOOR = 4.0  # batched vs per-prompt loop; the target itself (5x) is reported, see below


@pytest.fixture(scope="module")
def pipe():
    return miniworld.load_pipeline("base")


def _workload():
    from memora_bench.world.measure import concept_rate_plan

    prompts, seeds = concept_rate_plan("seven", N)
    return prompts, seeds


def per_prompt_pipeline_loop(pipe, prompts, seeds):
    """The naive way: one diffusers pipeline call per (prompt, seed)."""
    out = []
    for p, s in zip(prompts, seeds):
        img = pipe(p, height=32, width=32, num_inference_steps=50, guidance_scale=7.5,
                   generator=torch.Generator("cpu").manual_seed(s), output_type="np").images[0]
        out.append(img)
    return np.stack(out)


def test_batched_generation_vs_per_prompt_pipeline_loop(benchmark, pipe):
    prompts, seeds = _workload()
    config = GenerationConfig()
    generate(pipe, prompts[:2], seeds[:2], config)  # warm-up
    # The two sides alternate (naive, batched, naive, batched, ...) so that a slow spell of this shared machine
    # falls on both, and each side's fastest round counts (timeit's advice: the minimum is the run least
    # disturbed by other work). Single runs here ranged from 4.7x to 6.0x.
    naive_runs = []

    def naive_round():
        t0 = time.perf_counter()
        naive_runs.append((per_prompt_pipeline_loop(pipe, prompts[:N_LOOP], seeds[:N_LOOP]),
                           time.perf_counter() - t0))

    batched = benchmark.pedantic(generate, args=(pipe, prompts, seeds, config), setup=naive_round, rounds=ROUNDS,
                                 iterations=1)
    naive, naive_s = naive_runs[-1][0], min(t for _, t in naive_runs)
    assert len(naive_runs) == ROUNDS
    batched_s = benchmark.stats.stats.min
    ratio = (naive_s / N_LOOP) / (batched_s / N)
    benchmark.extra_info.update(images=N, per_prompt_loop_images=N_LOOP, per_prompt_loop_s=round(naive_s, 2),
                                batched_s=round(batched_s, 2), speedup=round(ratio, 2),
                                batched_images_per_s=round(N / batched_s, 2))
    print(f"\nbatched {N / batched_s:.2f} img/s vs per-prompt loop {N_LOOP / naive_s:.2f} img/s: {ratio:.2f}x")
    assert batched.shape[1:] == naive.shape[1:] and len(batched) == N and len(naive) == N_LOOP
    # Our loop is diffusers' StableDiffusionPipeline in batches: same images up to float rounding.
    assert np.abs(naive * 255 - batched[:N_LOOP].astype(np.float64)).max() <= 2.0
    # The design target is 5x, and on this machine the figure sits near it: clean-clone CI runs measured 6.32x,
    # 5.89x, 5.39x and 4.86x (sessions 12-16), so asserting 5.0 fails on noise alone. The
    # assertion is a regression floor: running the micro-batches one after another instead of side by side would
    # roughly halve the figure (generate.py: two side by side ran about 2x one), and losing batching would bring
    # it near 1x. docs/performance.md records the measured figures against the 5x target.
    benchmark.extra_info.update(target=5.0, meets_target=bool(ratio >= 5.0))
    assert ratio >= REGRESSION_FLOOR, f"batched generation is only {ratio:.2f}x the per-prompt pipeline loop"


def bare_unet_loop(pipe, n: int, config: GenerationConfig) -> None:
    """Only the UNet forwards ``generate`` makes for ``n`` images: the same guided micro-batches, laid out on the
    cores the same way, without text encoding, scheduler arithmetic or decoding."""
    from memora_bench.models.generate import MICRO_BATCH, map_micro_batches

    unet = pipe.unet
    rows = 2 * MICRO_BATCH
    size = config.height // 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    context = torch.randn(rows, pipe.tokenizer.model_max_length, unet.config.cross_attention_dim)
    x = torch.randn(rows, unet.config.in_channels, size, size)
    timesteps = torch.linspace(999, 0, config.steps).long()

    def one(_):
        for t in timesteps:
            unet(x, t, encoder_hidden_states=context)

    map_micro_batches(pipe.device, one, range(0, n, MICRO_BATCH))


def test_pipeline_overhead_vs_bare_unet_loop(benchmark, pipe):
    """Target: the whole generation path costs <= 1.25x the UNet forwards it makes."""
    prompts, seeds = _workload()
    config = GenerationConfig()
    generate(pipe, prompts[:2], seeds[:2], config)  # warm-up
    bare_runs = []

    def bare_round():
        t0 = time.perf_counter()
        bare_unet_loop(pipe, N, config)
        bare_runs.append(time.perf_counter() - t0)

    benchmark.pedantic(generate, args=(pipe, prompts, seeds, config), setup=bare_round, rounds=ROUNDS, iterations=1)
    assert len(bare_runs) == ROUNDS
    ratio = benchmark.stats.stats.min / min(bare_runs)
    benchmark.extra_info.update(images=N, bare_unet_s=round(min(bare_runs), 2),
                                pipeline_s=round(benchmark.stats.stats.min, 2), overhead=round(ratio, 3))
    print(f"\npipeline {benchmark.stats.stats.min:.2f} s vs bare UNet loop {min(bare_runs):.2f} s: {ratio:.3f}x")
    assert ratio <= 1.25, f"the pipeline costs {ratio:.2f}x its UNet forwards"


@pytest.fixture(scope="module")
def memora_inputs(pipe):
    """Six clean latents of the concept (three MemoRa seed pairs) and the prompt's text embeddings."""
    from memora_bench.models.generate import encode_prompts
    from memora_bench.probes.memora import MemoraParams

    p = MemoraParams()
    seeds = [s for pair in p.seed_pairs for s in pair]
    images = generate(pipe, ["a handwritten seven"] * len(seeds), seeds, GenerationConfig())
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.inference_mode():
        z0 = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
    return p, z0, encode_prompts(pipe, ["a handwritten seven"]), encode_prompts(pipe, [""])


@pytest.mark.parametrize("stage", ["inversion", "slerp_and_denoise", "lora_step"])
def test_memora_stage_cost(benchmark, pipe, memora_inputs, stage):
    """Seconds per MemoRa stage for one concept (3 seed pairs, 10 interpolation steps, DDIM 50 from step 15)."""
    import copy

    from memora_bench.models import lora
    from memora_bench.models.inversion import denoise_from, invert, sampler, slerp
    from memora_bench.probes.memora import _lora_params

    p, z0, cond, uncond = memora_inputs
    sched = sampler(pipe, p.steps)
    zt = invert(pipe.unet, sched, z0, cond.expand(len(z0), -1, -1), uncond, p.guidance, p.start_step)
    if stage == "inversion":
        out = benchmark.pedantic(invert, args=(pipe.unet, sched, z0, cond.expand(len(z0), -1, -1), uncond,
                                              p.guidance, p.start_step), rounds=2, iterations=1)
        assert out.shape == z0.shape and torch.isfinite(out).all()
        assert not torch.allclose(out, z0, atol=0.1)  # inverted 35 of 50 DDIM steps towards noise
    elif stage == "slerp_and_denoise":
        k = p.interpolation

        def run():
            mixed = torch.stack([slerp(zt[2 * i], zt[2 * i + 1], j / k) for i in range(len(p.seed_pairs))
                                 for j in range(k + 1)])
            return denoise_from(pipe.unet, sched, mixed, cond.expand(len(mixed), -1, -1), uncond, p.guidance,
                                p.start_step)

        out = benchmark.pedantic(run, rounds=2, iterations=1)
        assert out.shape == (len(p.seed_pairs) * (k + 1), *z0.shape[1:]) and torch.isfinite(out).all()
    else:
        unet = copy.deepcopy(pipe.unet)
        latents, context = z0.clone(), cond.clone()  # plain tensors (made outside inference mode) for autograd
        steps = 2
        losses = []

        def run():
            lora.train(copy.deepcopy(unet), pipe.scheduler.config, latents, torch.zeros_like(latents), context,
                       _lora_params(p),
                       [steps], seed=0, on_budget=lambda step, state, loss: losses.append(loss))

        benchmark.pedantic(run, rounds=2, iterations=1)
        assert len(losses) == 2 and all(np.isfinite(losses))
        benchmark.extra_info.update(optimizer_steps_per_round=steps,
                                    seconds_per_step=round(benchmark.stats.stats.min / steps, 3))
    benchmark.extra_info.update(stage=stage, seconds=round(benchmark.stats.stats.min, 3))


@pytest.fixture(scope="module")
def workload_images(pipe):
    """The workload's images, drawn once for both classifiers."""
    prompts, seeds = _workload()
    return generate(pipe, prompts, seeds, GenerationConfig())


@pytest.mark.parametrize("name", ["mini-digit", "nudenet"])
def test_classifier_throughput(benchmark, workload_images, name):
    """Images per second through a task classifier (the miniature digit classifier, NudeNet's shipped detector)."""
    from memora_bench.classifiers.registry import load_classifier

    images = workload_images
    clf = load_classifier(name)
    if name == "nudenet":
        images = images[:8]  # a detector at 320 px: a few images give a stable rate
    scores = benchmark.pedantic(clf.scores, args=(images,), rounds=3, iterations=1)
    assert len(scores) == len(images) and np.isfinite(scores).all()
    rate = len(images) / benchmark.stats.stats.min
    benchmark.extra_info.update(classifier=name, images=len(images), images_per_s=round(rate, 1))
    print(f"\n{name}: {rate:.1f} images/s")
