import numpy as np
import pytest

from memora_bench.models.generate import GenerationConfig, generate
from tests.helpers import tiny_pipeline

CONFIG = GenerationConfig(steps=4)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def test_same_image_alone_or_in_any_batch(pipe):
    prompts = [f"a handwritten {w}" for w in ("one", "two", "three", "four", "five")] * 8
    seeds = list(range(100, 140))
    together = generate(pipe, prompts, seeds, CONFIG)
    assert together.shape == (40, 32, 32, 3) and together.dtype == np.uint8
    alone = [generate(pipe, [p], [s], CONFIG)[0] for p, s in zip(prompts[:3], seeds[:3])]
    for i, img in enumerate(alone):
        assert np.array_equal(img, together[i]), f"image {i} differs when generated alone"
    # Another grouping: the last 7 images, shuffled with other prompts around them.
    mixed = generate(pipe, ["a bold nine"] * 5 + prompts[33:], [1, 2, 3, 4, 5] + seeds[33:], CONFIG)
    assert np.array_equal(mixed[5:], together[33:])


def test_seed_and_prompt_change_the_image(pipe):
    a = generate(pipe, ["a handwritten seven"] * 2, [1, 2], CONFIG)
    b = generate(pipe, ["a handwritten two"], [1], CONFIG)
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b[0])


def test_mismatched_lengths_are_refused(pipe):
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        generate(pipe, ["a", "b"], [1], CONFIG)


def test_lms_scheduler_runs_and_unknown_is_refused(pipe):
    img = generate(pipe, ["a handwritten seven"], [3], GenerationConfig(scheduler="lms", steps=3))
    assert img.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="unknown scheduler"):
        generate(pipe, ["x"], [1], GenerationConfig(scheduler="euler", steps=2))


def test_context_projections_are_computed_once_per_run_and_change_nothing(pipe, monkeypatch):
    import contextlib

    from memora_bench.models import generate as gen

    layers = [m for m in pipe.unet.modules() if getattr(m, "is_cross_attention", False)]
    assert layers
    calls = []
    hooks = [m.to_k.register_forward_hook(lambda *a: calls.append(1)) for m in layers]
    try:
        reused = generate(pipe, ["a handwritten seven", "a bold two"], [5, 6], CONFIG)
        assert len(calls) == len(layers)  # one projection per layer for the whole 4-step run, not one per step
        calls.clear()
        monkeypatch.setattr(gen, "project_context_once", lambda unet: contextlib.nullcontext())
        recomputed = generate(pipe, ["a handwritten seven", "a bold two"], [5, 6], CONFIG)
        assert len(calls) == len(layers) * CONFIG.steps
    finally:
        for h in hooks:
            h.remove()
    assert np.array_equal(reused, recomputed)
    assert not any(isinstance(m, gen._ProjectOnce) for m in pipe.unet.modules())  # the UNet is given back as it was



def test_threads_sampling_one_unet_at_once_get_the_images_of_one_thread_alone(pipe):
    """MemoRa draws with one model from two threads at once (its ceiling and concept images; AutoMemoRa's
    mixed models share the submission's UNet)."""
    from memora_bench.models.parallel import side_by_side

    jobs = [(["a handwritten seven"] * 3, [1, 2, 3]), (["a bold two", "a thin one"], [4, 5])]
    alone = [generate(pipe, p, s, CONFIG) for p, s in jobs]
    together = side_by_side([lambda p=p, s=s: generate(pipe, p, s, CONFIG) for p, s in jobs])
    for a, b in zip(alone, together):
        assert np.array_equal(a, b)


def test_context_reuse_layers_stay_until_the_last_thread_leaves(pipe):
    """Thread A enters, thread B enters, A leaves: B still samples with the reuse layers, which are swapped
    back when B leaves; the UNet is then as it was (and can be copied: no thread-local state is left)."""
    import copy
    import threading

    from memora_bench.models import generate as gen

    def swapped() -> int:
        return sum(isinstance(m, gen._ProjectOnce) for m in pipe.unet.modules())

    layers = sum(getattr(m, "is_cross_attention", False) for m in pipe.unet.modules())
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with gen.project_context_once(pipe.unet):
            a_in.set()
            b_in.wait(5)
            seen["both_inside"] = swapped()
        a_out.set()

    def b():
        a_in.wait(5)
        with gen.project_context_once(pipe.unet):
            b_in.set()
            a_out.wait(5)
            seen["after_a_left"] = swapped()

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert layers and seen == {"both_inside": 2 * layers, "after_a_left": 2 * layers}  # to_k and to_v, once each
    assert swapped() == 0 and gen._SWAPPED == {}
    copy.deepcopy(pipe.unet)


def test_a_unet_copied_while_another_thread_samples_with_it_is_a_plain_copy(pipe):
    """MemoRa builds recovered models (copies of the submission's UNet) while other threads sample with that
    UNet: the copy gets the plain projection layers and draws the same images."""
    import copy

    from memora_bench.models import generate as gen

    with gen.project_context_once(pipe.unet):  # what a sampling thread holds
        clone = copy.deepcopy(pipe.unet)
    assert not any(isinstance(m, gen._ProjectOnce) for m in clone.modules())
    twin = copy.copy(pipe)
    twin.unet = clone
    prompts, seeds = ["a handwritten seven", "a bold two"], [8, 9]
    assert np.array_equal(generate(twin, prompts, seeds, CONFIG), generate(pipe, prompts, seeds, CONFIG))
