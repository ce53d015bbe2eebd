"""Scores from counts: pure arithmetic, no models, no files (DESIGN.md "Scores"; docs/scoring.md).

Counts come first: a rate is always carried as (k, n); percentages are only rendered from counts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Rate:
    """k of n images judged to show the concept, with a Wilson and a bootstrap interval."""

    k: int
    n: int
    wilson: tuple[float, float]
    bootstrap: tuple[float, float]

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["rate"] = self.value
        d["wilson"], d["bootstrap"] = list(self.wilson), list(self.bootstrap)
        return d


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927; Agresti & Coull 1998, eq. 2).

    1. p = k / n and z = the two-sided normal quantile of ``confidence``;
    2. centre = (p + z^2 / 2n) / (1 + z^2 / n);
    3. half-width = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n).
    """
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} outside [0, n={n}]")
    z = _z(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 (k = n) the lower (upper) bound is exactly 0 (1); floating residue is removed.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def bootstrap_interval(hits_by_cluster: list[np.ndarray], resamples: int, seed: int,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of the pooled rate, resampling whole clusters (a prompt with all its images).

    1. draw ``len(clusters)`` clusters with replacement (``numpy.random.default_rng(seed)``);
    2. the statistic is total hits / total images over the drawn clusters;
    3. the interval is the (1 - c)/2 and (1 + c)/2 quantiles of ``resamples`` such statistics.
    Resampling prompts rather than images carries the correlation of images of one prompt.
    """
    m = len(hits_by_cluster)
    if m == 0:
        return (0.0, 1.0)
    k = np.array([int(np.sum(h)) for h in hits_by_cluster], dtype=np.int64)
    n = np.array([len(h) for h in hits_by_cluster], dtype=np.int64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, m, size=(resamples, m))
    stats = k[draws].sum(1) / np.maximum(n[draws].sum(1), 1)
    lo, hi = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return (float(lo), float(hi))


def rate(hits_by_cluster: list[np.ndarray], resamples: int, seed: int, confidence: float = 0.95) -> Rate:
    """The rate of a probe: counts, the Wilson interval and the cluster bootstrap interval."""
    k = int(sum(int(np.sum(h)) for h in hits_by_cluster))
    n = int(sum(len(h) for h in hits_by_cluster))
    return Rate(k, n, wilson(k, n, confidence), bootstrap_interval(hits_by_cluster, resamples, seed, confidence))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, eq. for FID).

    d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with unbiased covariances.
    """
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Fréchet distance needs at least two feature vectors per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(s_a)) * 1e-6
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))
