"""The Fréchet reference (held-out real digits' feature Gaussian) ships beside the digit classifier, so a fresh
cache does not pay ~10 s of loading, deskewing and featurising 3,000 digits; the shipped file must be what the
code computes, and is used only for the classifier it was made from."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from memora_bench import utility
from memora_bench.cache import Cache
from memora_bench.classifiers.registry import load_classifier
from memora_bench.scoring import frechet_distance, frechet_distance_from, gaussian_statistics


@pytest.fixture(scope="module")
def clf():
    return load_classifier("mini-digit")


def test_the_shipped_statistics_are_the_computed_ones(clf):
    shipped = utility.shipped_reference_statistics(clf)
    assert shipped is not None, "world/classifiers/digit.reference.safetensors is missing or made for another classifier"
    fresh = utility.compute_reference_statistics(clf)
    for name in ("mean", "cov"):
        assert shipped[name].shape == fresh[name].shape
        np.testing.assert_allclose(shipped[name].numpy(), fresh[name].numpy(), rtol=1e-6, atol=1e-9)


def test_a_fresh_cache_reads_the_shipped_file_without_loading_the_digits(clf, tmp_path, monkeypatch):
    def refuse():
        raise AssertionError("the held-out digits were loaded although the statistics ship with the classifier")

    monkeypatch.setattr(utility, "load_split", refuse)
    unit = SimpleNamespace(cache=Cache(tmp_path / "cache"))
    mu, cov = utility.reference_statistics(unit, clf)
    shipped = utility.shipped_reference_statistics(clf)
    assert np.array_equal(mu, shipped["mean"].numpy()) and np.array_equal(cov, shipped["cov"].numpy())
    assert not any((tmp_path / "cache").rglob("*.safetensors"))  # the shipped file is read, not copied


def test_without_the_shipped_file_the_statistics_are_computed_once_and_cached(clf, tmp_path, monkeypatch):
    monkeypatch.setattr(utility, "shipped_reference_statistics", lambda clf: None)
    unit = SimpleNamespace(cache=Cache(tmp_path / "cache"))
    mu, cov = utility.reference_statistics(unit, clf)
    monkeypatch.setattr(utility, "load_split", lambda: (_ for _ in ()).throw(AssertionError("computed twice")))
    again = utility.reference_statistics(unit, clf)  # from the cache
    assert np.array_equal(again[0], mu) and np.array_equal(again[1], cov)


def test_a_file_made_for_another_classifier_is_ignored(clf, tmp_path):
    other = SimpleNamespace(sha256="0" * 64, features=clf.features)
    utility.write_reference_statistics(clf, tmp_path / utility.REFERENCE_FILE)
    assert utility.shipped_reference_statistics(clf, tmp_path) is not None
    assert utility.shipped_reference_statistics(other, tmp_path) is None
    assert utility.shipped_reference_statistics(clf, tmp_path / "nowhere") is None


def test_the_distance_from_statistics_is_the_distance_from_features():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 5)), rng.normal(1.0, 2.0, size=(400, 5))
    assert frechet_distance(a, b) == frechet_distance_from(*gaussian_statistics(a), *gaussian_statistics(b))
    with pytest.raises(ValueError, match="at least two"):
        gaussian_statistics(np.zeros((1, 5)))
    assert Path(utility.REFERENCE_FILE).suffix == ".safetensors"
