"""UnlearnDiffAtk pieces: the simplex projection, the attack loop's bookkeeping on a tiny pipeline."""

import pytest
import torch

from memora_bench.probes import unlearndiffatk as uda
from tests.helpers import tiny_pipeline


def bisection_projection(a: torch.Tensor, xi: float = 1e-9) -> torch.Tensor:
    """The reference's projection onto {0 <= u <= 1, sum u = 1}, by bisection on the shift mu."""
    lo, hi = float(a.min()) - 1, float(a.max())
    while hi - lo > xi:
        mu = (lo + hi) / 2
        if float((a - mu).clamp(0, 1).sum()) > 1:
            lo = mu
        else:
            hi = mu
    return (a - (lo + hi) / 2).clamp(0, 1)


def test_simplex_projection_matches_the_reference_bisection():
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(6, 50, generator=gen, dtype=torch.float64) * 0.3
    proj = uda.project_simplex(v)
    assert torch.allclose(proj.sum(-1), torch.ones(6, dtype=torch.float64))
    assert (proj >= 0).all()
    for row, p in zip(v, proj):
        assert torch.allclose(p, bisection_projection(row), atol=1e-7)
    assert torch.allclose(uda.project_simplex(proj), proj)  # idempotent
    uniform = torch.full((1, 10), 0.1, dtype=torch.float64)
    assert torch.allclose(uda.project_simplex(uniform), uniform)


def test_sampled_timesteps_are_the_reference_grid():
    assert uda.sampled_timesteps(50) == list(range(10, 1000, 20))
    assert uda.sampled_timesteps(2) == [250, 750]


def test_params_are_strict():
    with pytest.raises(ValueError, match="unknown UnlearnDiffAtk parameter"):
        uda.parse_params({"kk": 3})
    with pytest.raises(ValueError, match=">= 1"):
        uda.parse_params({"k": 0})


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def _x0(n):
    return torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(1))


def test_attack_stops_each_prompt_at_its_first_success(pipe):
    p = uda.AttackParams(k=2, iterations=3, timesteps=4)
    calls = []

    def judge(texts, active):
        calls.append(list(active))
        return [len(calls) >= 2 and i == 0 for i in active]  # prompt 0 succeeds at the second round

    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    state = uda.attack(pipe, _x0(2), ["a handwritten seven", "the digit 7"], gens, p, judge)
    assert calls == [[0, 1], [0, 1], [1], [1]]
    assert state[0]["success"] and state[0]["steps"] == 6 and state[0]["candidates"] == 2
    assert not state[1]["success"] and state[1]["steps"] == 12 and state[1]["candidates"] == 4
    # the adversarial prompt keeps the original words after k new tokens
    assert state[1]["prompt"].endswith("the digit 7") and state[1]["prompt"] != "the digit 7"


def test_attack_is_deterministic(pipe):
    p = uda.AttackParams(k=2, iterations=2, timesteps=2)
    runs = []
    for _ in range(2):
        gens = [torch.Generator().manual_seed(5)]
        runs.append(uda.attack(pipe, _x0(1), ["a handwritten seven"], gens, p, lambda t, a: [False] * len(a)))
    assert runs[0] == runs[1]
