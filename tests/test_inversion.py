"""Exactness of inversion, denoising and slerp with stub noise predictors whose answer is known."""

from types import SimpleNamespace

import pytest
import torch

from memora_bench.models.inversion import denoise_from, invert, sampler, slerp
from memora_bench.world import configs


class TimeOnlyStub(torch.nn.Module):
    """eps depends on the timestep and the prompt only: DDIM inversion is then exactly invertible."""

    def __init__(self):
        super().__init__()
        self.pattern = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    def forward(self, x, t, encoder_hidden_states):
        scale = torch.sin(torch.as_tensor(float(t)) / 100.0)
        ctx = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return SimpleNamespace(sample=(self.pattern * scale + ctx).expand(len(x), -1, -1, -1).clone())


class StateStub(torch.nn.Module):
    """eps depends on the latent too (not exactly invertible), to compare with diffusers' inverse scheduler."""

    def forward(self, x, t, encoder_hidden_states):
        return SimpleNamespace(sample=0.1 * x + 0.01 * float(t) / 1000 + encoder_hidden_states.mean() * 0.0)


@pytest.fixture()
def pipe():
    from diffusers import DDIMScheduler

    return SimpleNamespace(scheduler=DDIMScheduler(**configs.SCHEDULER))


def _conds(n):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 77, 64, generator=g), torch.randn(1, 77, 64, generator=g)


def test_inversion_then_denoising_returns_the_start_latent(pipe):
    sched = sampler(pipe, 50)
    z0 = torch.randn(5, 4, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cond, uncond = (c.double() for c in _conds(5))
    unet = TimeOnlyStub().double()
    unet.pattern = unet.pattern.double()
    for step in (0, 15, 49):
        zt = invert(unet, sched, z0, cond, uncond, 7.5, step)
        back = denoise_from(unet, sched, zt, cond, uncond, 7.5, step)
        assert torch.allclose(back, z0, atol=1e-9), step
    assert not torch.allclose(invert(unet, sched, z0, cond, uncond, 7.5, 15), z0)


def test_inversion_agrees_with_diffusers_ddim_inverse_scheduler(pipe):
    from diffusers import DDIMInverseScheduler

    sched = sampler(pipe, 50)
    inv = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    inv.set_timesteps(50)
    z0 = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    cond, uncond = _conds(3)
    unet = StateStub()
    ours = invert(unet, sched, z0, cond, uncond, 7.5, 15)
    x = z0
    for t in inv.timesteps[: 50 - 15]:
        e = unet(torch.cat([x, x]), t, torch.cat([uncond.expand(3, -1, -1), cond])).sample.chunk(2)
        x = inv.step(e[0] + 7.5 * (e[1] - e[0]), t, x).prev_sample
    assert int(inv.timesteps[50 - 15 - 1]) == int(sched.timesteps[15]) == 681
    assert torch.allclose(ours, x, atol=1e-5)


def test_denoising_agrees_with_diffusers_ddim_scheduler_step(pipe):
    sched = sampler(pipe, 50)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    cond, uncond = _conds(2)
    unet = StateStub()
    ours = denoise_from(unet, sched, z, cond, uncond, 3.0, 10)
    ref = sampler(pipe, 50)
    x = z
    for t in ref.timesteps[10:]:
        e = unet(torch.cat([x, x]), t, torch.cat([uncond.expand(2, -1, -1), cond])).sample.chunk(2)
        x = ref.step(e[0] + 3.0 * (e[1] - e[0]), t, x).prev_sample
    assert torch.allclose(ours, x, atol=1e-5)


def test_batch_invariance_of_inversion(pipe):
    from tests.helpers import tiny_pipeline

    tiny = tiny_pipeline()
    sched = sampler(pipe, 10)
    z0 = torch.randn(40, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    cond, uncond = _conds(40)
    together = invert(tiny.unet, sched, z0, cond, uncond, 7.5, 7)
    alone = invert(tiny.unet, sched, z0[35:36], cond[35:36], uncond, 7.5, 7)
    assert torch.equal(together[35:36], alone)


def test_slerp_endpoints_norm_and_parallel_guard():
    g = torch.Generator().manual_seed(6)
    a, b = torch.randn(4, 8, 8, generator=g), torch.randn(4, 8, 8, generator=g)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-6)
    ua, ub = a / a.norm(), b / b.norm()
    for t in (0.1, 0.5, 0.9):
        assert slerp(ua, ub, t).norm().item() == pytest.approx(1.0, abs=1e-6)
    # Nearly parallel latents: finite, and equal to linear interpolation.
    c = a * (1 + 1e-7)
    mid = slerp(a, c, 0.5)
    assert torch.isfinite(mid).all() and torch.allclose(mid, (a + c) / 2, atol=1e-6)
    # Orthogonal unit vectors at t=0.5 meet at 45 degrees.
    e1, e2 = torch.zeros(2), torch.zeros(2)
    e1[0], e2[1] = 1.0, 1.0
    assert torch.allclose(slerp(e1, e2, 0.5), torch.tensor([2**-0.5, 2**-0.5]), atol=1e-6)
