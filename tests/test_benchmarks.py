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
ROUNDS = 3


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
        naive_runs.append((per_prompt_pipeline_loop(pipe, prompts, seeds), time.perf_counter() - t0))

    batched = benchmark.pedantic(generate, args=(pipe, prompts, seeds, config), setup=naive_round, rounds=ROUNDS,
                                 iterations=1)
    naive, naive_s = naive_runs[-1][0], min(t for _, t in naive_runs)
    assert len(naive_runs) == ROUNDS
    batched_s = benchmark.stats.stats.min
    ratio = naive_s / batched_s
    benchmark.extra_info.update(images=N, per_prompt_loop_s=round(naive_s, 2), batched_s=round(batched_s, 2),
                                speedup=round(ratio, 2), batched_images_per_s=round(N / batched_s, 2))
    print(f"\nbatched {N / batched_s:.2f} img/s vs per-prompt loop {N / naive_s:.2f} img/s: {ratio:.2f}x")
    assert batched.shape == naive.shape
    # Our loop is diffusers' StableDiffusionPipeline in batches: same images up to float rounding.
    assert np.abs(naive * 255 - batched.astype(np.float64)).max() <= 2.0
    assert ratio >= 5.0, f"batched generation is only {ratio:.2f}x the per-prompt pipeline loop"
