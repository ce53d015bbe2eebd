import numpy as np
import pytest

from memora_bench import scoring


@pytest.mark.parametrize(
    "k, n, lo, hi",
    [
        # DESIGN.md's UnlearnDiffAtk reference intervals (percent, one decimal).
        (108, 142, 68.4, 82.3),
        (30, 142, 15.2, 28.6),
    ],
)
def test_wilson_matches_published_intervals(k, n, lo, hi):
    a, b = scoring.wilson(k, n)
    assert round(100 * a, 1) == lo and round(100 * b, 1) == hi


def test_wilson_edges():
    assert scoring.wilson(0, 10)[0] == 0.0 and scoring.wilson(10, 10)[1] == 1.0
    assert scoring.wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        scoring.wilson(11, 10)


def test_bootstrap_is_seeded_and_contains_the_rate():
    clusters = [np.array([i % 3 == 0]) for i in range(60)]
    a = scoring.bootstrap_interval(clusters, 500, seed=1)
    assert a == scoring.bootstrap_interval(clusters, 500, seed=1)
    assert a[0] < 20 / 60 < a[1]
    r = scoring.rate(clusters, 500, 1)
    assert (r.k, r.n) == (20, 60) and r.as_dict()["rate"] == pytest.approx(1 / 3)


def test_bootstrap_resamples_whole_prompts():
    # Two prompts with 50 images each, one all hits, one all misses: the rate can only be 0, 0.5 or 1.
    clusters = [np.ones(50, bool), np.zeros(50, bool)]
    lo, hi = scoring.bootstrap_interval(clusters, 400, seed=0)
    assert (lo, hi) == (0.0, 1.0)


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 4))
    assert scoring.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([3.0, 0, 0, 0])
    assert scoring.frechet_distance(a, shifted) == pytest.approx(9.0, rel=1e-6)
    scaled = rng.normal(size=(4000, 4)) * 2.0
    # For N(0, I) and N(0, 4I): Tr(I + 4I - 2 * 2I) = 4 * 1 = 4.
    assert scoring.frechet_distance(rng.normal(size=(4000, 4)), scaled) == pytest.approx(4.0, abs=0.4)
