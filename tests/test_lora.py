import numpy as np
import pytest
import torch

from memora_bench.models import lora
from memora_bench.models.generate import GenerationConfig, encode_prompts, generate
from tests.helpers import tiny_pipeline

CONFIG = GenerationConfig(steps=4)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=3)


def _train(pipe, seed, budgets=(2, 5)):
    import copy

    unet = copy.deepcopy(pipe.unet)
    g = torch.Generator().manual_seed(0)
    mean, std = torch.randn(6, 4, 8, 8, generator=g), torch.rand(6, 4, 8, 8, generator=g) * 0.1
    ctx = encode_prompts(pipe, ["a handwritten seven"]).clone()
    seen = {}
    lora.train(unet, dict(pipe.scheduler.config), mean, std, ctx, lora.LoraParams(accumulation=2), list(budgets), seed,
               lambda step, state, loss: seen.__setitem__(step, (state, loss)))
    return seen


def test_training_is_deterministic_for_a_seed_and_checkpoints_each_budget(pipe):
    a, b, c = _train(pipe, 7), _train(pipe, 7), _train(pipe, 8)
    assert sorted(a) == [2, 5]
    for step in a:
        assert a[step][0].keys() == b[step][0].keys()
        assert all(torch.equal(a[step][0][k], b[step][0][k]) for k in a[step][0])
        assert a[step][1] == b[step][1]
    assert any(not torch.equal(a[5][0][k], c[5][0][k]) for k in a[5][0])
    # Training moved the adapter between the two budgets.
    assert any(not torch.equal(a[2][0][k], a[5][0][k]) for k in a[2][0])
    keys = list(a[5][0])
    assert any(".attn1.to_q.lora_A" in k for k in keys) and any(".attn2.to_out.0.lora_B" in k for k in keys)


def test_lora_at_scale_zero_reproduces_the_base_images_exactly(pipe):
    import copy

    state = _train(pipe, 7)[5][0]
    prompts, seeds = ["a handwritten seven", "a bold two"], [11, 12]
    base = generate(pipe, prompts, seeds, CONFIG)
    recovered = copy.copy(pipe)
    recovered.unet = copy.deepcopy(pipe.unet)
    lora.load_adapter(recovered.unet, state, lora.LoraParams(), scale=0.0)
    assert np.array_equal(generate(recovered, prompts, seeds, CONFIG), base)
    lora.set_scale(recovered.unet, 1.0)
    assert not np.array_equal(generate(recovered, prompts, seeds, CONFIG), base)


def test_cosine_schedule_matches_diffusers():
    from diffusers.optimization import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler("cosine", optimizer=opt, num_warmup_steps=0, num_training_steps=10)
    ours = []
    for step in range(10):
        ours.append(lora._cosine(step, 10, 0))
        assert opt.param_groups[0]["lr"] == pytest.approx(ours[-1])
        opt.step()
        sched.step()


def test_auto_memora_mix_of_a_model_with_itself_is_that_model(pipe):
    """AutoMemoRa's MixedUNet inside a pipeline copy: eps_U + w (eps_U - eps_U) = eps_U, image for image."""
    import copy

    from memora_bench.probes.memora import MixedUNet

    config = GenerationConfig(steps=5)
    mixed = copy.copy(pipe)
    mixed.unet = MixedUNet(pipe.unet, pipe.unet, 0.5)
    assert mixed.device == pipe.device
    a = generate(pipe, ["a handwritten seven"], [3], config)
    b = generate(mixed, ["a handwritten seven"], [3], config)
    assert np.array_equal(a, b)


def test_memora_params_are_strict_and_checked():
    from memora_bench.probes.memora import parse_params

    assert parse_params({"budgets": [0, 5], "attack_seeds": [1]}).budgets == (0, 5)
    with pytest.raises(ValueError, match=r"unknown MemoRa parameter 'budget' \(did you mean 'budgets'\?\)"):
        parse_params({"budget": [0, 5]})
    with pytest.raises(ValueError, match="budgets must be increasing and start at 0"):
        parse_params({"budgets": [5, 0]})
    assert parse_params({"budgets": [0, 5, 10], "headline_budgets": [5, 10]}).headline_budgets == (5, 10)
    with pytest.raises(ValueError, match=r"headline_budgets \[7\] must be among the budgets"):
        parse_params({"budgets": [0, 5], "headline_budgets": [7]})


def _train_one_image_at_a_time(unet, scheduler_config, mean, std, ctx, params, total, seed):
    """The reference loop as written in diffusers' script: one image per forward, loss / accumulation,
    backward, and an optimizer step every ``accumulation`` images."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_config(scheduler_config)
    gen = torch.Generator().manual_seed(seed)
    unet.requires_grad_(False)
    lora.add_adapter(unet, params, seed)
    trainable = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=params.lr, betas=(0.9, 0.999), weight_decay=params.weight_decay, eps=1e-8)
    order, losses = [], []
    with torch.enable_grad():
        for step in range(1, total + 1):
            for g in opt.param_groups:
                g["lr"] = params.lr * lora._cosine(step - 1, total, params.warmup)
            for _ in range(params.accumulation):
                if not order:
                    order = torch.randperm(len(mean), generator=gen).tolist()
                i = order.pop()
                z = mean[i : i + 1] + std[i : i + 1] * torch.randn(mean[i : i + 1].shape, generator=gen)
                noise = torch.randn(z.shape, generator=gen)
                t = torch.randint(0, sched.config.num_train_timesteps, (1,), generator=gen)
                loss = torch.nn.functional.mse_loss(unet(sched.add_noise(z, noise, t), t, encoder_hidden_states=ctx).sample, noise)
                (loss / params.accumulation).backward()
                losses.append(loss.item())
            torch.nn.utils.clip_grad_norm_(trainable, params.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
    return lora.lora_state_dict(unet), losses


def test_accumulated_micro_batches_in_one_pass_equal_one_image_at_a_time(pipe):
    """The trainer computes an optimizer step's micro-batches in one forward pass; the adapter it learns is the
    one the reference's one-image-per-forward loop learns (same draws, same gradient up to float rounding)."""
    import copy

    g = torch.Generator().manual_seed(0)
    mean, std = torch.randn(5, 4, 8, 8, generator=g), torch.rand(5, 4, 8, 8, generator=g) * 0.1
    ctx = encode_prompts(pipe, ["a handwritten seven"]).clone()
    params = lora.LoraParams(accumulation=4)
    seen = {}
    lora.train(copy.deepcopy(pipe.unet), dict(pipe.scheduler.config), mean, std, ctx, params, [6], 11,
               lambda step, state, loss: seen.__setitem__(step, (state, loss)))
    (state, loss), = seen.values()
    reference, losses = _train_one_image_at_a_time(copy.deepcopy(pipe.unet), dict(pipe.scheduler.config), mean, std, ctx,
                                              params, 6, 11)
    assert loss == pytest.approx(sum(losses[-16:]) / 16, rel=1e-5)  # the same draws, the same forward passes
    assert state.keys() == reference.keys()
    moved = max(float((state[k] - lora_init).abs().max()) for k, lora_init in _initial(pipe, params, 11).items())
    assert moved > 3e-4  # six AdamW steps of lr 1e-4 moved the adapter, so the comparison below is not trivial
    # Adam divides by the gradient's running RMS, so float rounding in a near-zero gradient entry can move
    # that entry by a fraction of one step (lr = 1e-4): allowed up to a fifth of a step
    for k in reference:
        torch.testing.assert_close(state[k], reference[k], rtol=1e-4, atol=2e-5)


def _initial(pipe, params, seed):
    import copy

    unet = copy.deepcopy(pipe.unet)
    lora.add_adapter(unet, params, seed)
    return lora.lora_state_dict(unet)
