"""The trajectory samplers of the WACE probes (memora_bench/models/trajectory.py) against diffusers and the
deterministic sampler, with stub noise predictors whose answer is known."""

from types import SimpleNamespace

import pytest
import torch

from memora_bench.models.inversion import denoise_from, sampler
from memora_bench.models.trajectory import (
    center_mask,
    ddim_steps,
    derived_seed,
    image_generators,
    inpaint,
    initial_noise,
)
from tests.test_inversion import _conds, pipe  # noqa: F401  (pipe is a fixture)


class StateStub(torch.nn.Module):
    """eps depends on the latent, the timestep and the prompt."""

    def forward(self, x, t, encoder_hidden_states):
        ctx = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return SimpleNamespace(sample=0.1 * x + 0.01 * float(t) / 1000 + 0.05 * ctx)


def _latents(n, seed=4):
    return torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_eta_zero_is_the_deterministic_sampler(pipe):
    sched = sampler(pipe, 50)
    z, (cond, uncond) = _latents(3), _conds(3)
    ours = ddim_steps(StateStub(), sched, z, cond, uncond, 7.5, start=10)
    assert torch.equal(ours, denoise_from(StateStub(), sched, z, cond, uncond, 7.5, 10))
    # start/stop split a trajectory exactly: the first 3 steps, then the rest
    half = ddim_steps(StateStub(), sched, z, cond, uncond, 7.5, start=0, stop=3)
    assert torch.equal(ddim_steps(StateStub(), sched, half, cond, uncond, 7.5, start=3),
                       ddim_steps(StateStub(), sched, z, cond, uncond, 7.5))


def test_a_noisy_step_is_diffusers_ddim_step_with_the_noise_scaled(pipe):
    """For eta <= 1 the reference's step is diffusers' DDIM step with eta; the variance scale multiplies the
    added noise only. The noise comes from each image's own generator, after nothing else is drawn."""
    sched = sampler(pipe, 50)
    z, (cond, uncond) = _latents(2), _conds(2)
    t = int(sched.timesteps[5])
    for eta, vs in ((0.5, 1.0), (1.0, 1.03)):
        ours = ddim_steps(StateStub(), sched, z, cond, uncond, 3.0, start=5, stop=6, eta=eta, variance_scale=vs,
                          gens=image_generators([11, 12]))
        e = StateStub()(torch.cat([z, z]), t, torch.cat([uncond.expand(2, -1, -1), cond])).sample.chunk(2)
        eps = e[0] + 3.0 * (e[1] - e[0])
        noise = initial_noise(image_generators([11, 12]), (4, 8, 8))
        ref = sampler(pipe, 50)
        deterministic = ref.step(eps, t, z, eta=eta, variance_noise=torch.zeros_like(z)).prev_sample
        noisy = ref.step(eps, t, z, eta=eta, variance_noise=noise).prev_sample
        expected = deterministic + vs * (noisy - deterministic)
        assert torch.allclose(ours, expected, atol=1e-5), (eta, vs)


def test_eta_above_one_takes_the_absolute_value_and_stays_finite(pipe):
    sched = sampler(pipe, 50)
    z, (cond, uncond) = _latents(2), _conds(2)
    out = ddim_steps(StateStub(), sched, z, cond, uncond, 7.5, eta=[1.85, 1.0], variance_scale=[1.04, 1.0],
                     gens=image_generators([1, 2]))
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="one generator per image"):
        ddim_steps(StateStub(), sched, z, cond, uncond, 7.5, eta=1.0)
    with pytest.raises(ValueError, match="one value per image"):
        ddim_steps(StateStub(), sched, z, cond, uncond, 7.5, eta=[1.0, 1.0, 1.0], gens=image_generators([1, 2]))


def test_each_image_owns_its_noise_whatever_the_batch():
    from memora_bench.probes.noise_based import draw_images
    from tests.helpers import tiny_pipeline

    tiny = tiny_pipeline()
    prompts = [f"a handwritten digit {i}" for i in range(18)]
    seeds = [derived_seed(7, j) for j in range(18)]
    etas, scales = [1.0 + 0.05 * j for j in range(18)], [1.0 + 0.01 * (j % 4) for j in range(18)]
    together = draw_images(tiny, prompts, seeds, etas, scales, 6, 7.5, 32, 32)
    alone = draw_images(tiny, prompts[17:], seeds[17:], etas[17:], scales[17:], 6, 7.5, 32, 32)
    assert (together[17:] == alone).all()
    assert not (together[0] == together[1]).all()
    assert derived_seed(7, 0) != derived_seed(7, 1) and derived_seed(7, 0) == derived_seed(7, 0)


def test_center_mask_is_the_centred_square():
    m = center_mask(512, 512, 0.5)
    assert m.sum() == 256 * 256 and m[0, 0, 128, 128] == 1 and m[0, 0, 127, 128] == 0 and m[0, 0, 383, 383] == 1
    assert center_mask(32, 32, 0.5)[0, 0].nonzero().min(0).values.tolist() == [8, 8]


def test_inpainting_keeps_the_known_latents_outside_the_mask(pipe):
    sched = sampler(pipe, 20)
    known, noise, (cond, uncond) = _latents(2, 5), _latents(2, 6), _conds(2)
    mask = torch.nn.functional.interpolate(center_mask(32, 32, 0.5), size=(8, 8))
    out = inpaint(StateStub(), sched, known, mask, noise, cond, uncond, 7.5)
    outside = mask.expand_as(out) == 0
    assert torch.equal(out[outside], known[outside])
    assert not torch.allclose(out[~outside], known[~outside])
