"""jaxgan.metrics against closed forms, plain re-implementations and the published `prdc` package."""

import numpy as np
import prdc as prdc_reference
import pytest
import scipy.linalg

from jaxgan import metrics


def random_covariance(rng, dim, rank=None):
    factor = rng.normal(size=(dim, rank or dim))
    return factor @ factor.T / dim + (0 if rank else 0.1 * np.eye(dim))


def test_frechet_distance_of_gaussians_equals_the_closed_form():
    rng = np.random.default_rng(0)
    dim = 6
    mean_a, mean_b = rng.normal(size=dim), rng.normal(size=dim)
    covariance_a, covariance_b = random_covariance(rng, dim), random_covariance(rng, dim)
    # Independent reference: pytorch-fid's formula with scipy's general (non-symmetric) sqrtm.
    expected = (np.sum((mean_a - mean_b) ** 2) + np.trace(covariance_a) + np.trace(covariance_b)
                - 2 * np.trace(scipy.linalg.sqrtm(covariance_a @ covariance_b).real))
    assert metrics.frechet_distance_from_statistics(mean_a, covariance_a, mean_b, covariance_b) == \
        pytest.approx(expected, rel=1e-10)
    # Commuting (diagonal) covariances: tr(sqrt(C_a C_b)) = sum sqrt(a_i b_i), by hand.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    by_hand = 1.0 + 4 + 9 + 4 + 1 + 0.25 - 2 * (2 + 2 + 1.5) + 3 * 0.5 ** 2
    assert metrics.frechet_distance_from_statistics(np.zeros(3), np.diag(a), np.full(3, 0.5), np.diag(b)) == \
        pytest.approx(by_hand, rel=1e-12)


def test_frechet_distance_of_samples_approaches_the_gaussians_and_is_symmetric():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200_000, 3))
    b = rng.normal(size=(200_000, 3)) * 2.0 + 1.0
    # N(0, I) vs N(1, 4I): 3 * 1 + 3 + 12 - 2 * 3 * 2 = 6.
    assert metrics.frechet_distance(a, b) == pytest.approx(6.0, abs=0.05)
    assert metrics.frechet_distance(a, b) == pytest.approx(metrics.frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_of_a_set_with_itself_is_zero_even_when_rank_deficient():
    rng = np.random.default_rng(2)
    full = rng.normal(size=(500, 20))
    assert abs(metrics.frechet_distance(full, full)) < 1e-9
    # 10 samples in 20 dimensions: rank-9 covariances, where a plain sqrtm of C_a C_b struggles.
    few = rng.normal(size=(10, 20))
    others = rng.normal(size=(10, 20))
    assert abs(metrics.frechet_distance(few, few)) < 1e-6
    distance = metrics.frechet_distance(few, others)
    assert np.isfinite(distance) and distance > 0
    low_rank = random_covariance(rng, 20, rank=3)
    assert abs(metrics.frechet_distance_from_statistics(np.zeros(20), low_rank, np.zeros(20), low_rank)) < 1e-6


def test_streamed_statistics_equal_numpy_mean_and_covariance():
    rng = np.random.default_rng(3)
    features = (rng.normal(size=(1000, 16)) * 3 + 100).astype(np.float32)  # offset: cancellation check
    statistics = metrics.FeatureStatistics(16)
    for start in range(0, 1000, 96):
        statistics.update(features[start:start + 96])
    assert statistics.count == 1000
    np.testing.assert_allclose(statistics.mean, features.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(statistics.covariance, np.cov(features.astype(np.float64), rowvar=False),
                               rtol=1e-7, atol=1e-9)


def brute_force_unbiased_mmd2(x, y):
    """The unbiased MMD^2 of Binkowski et al. written as the sums over index pairs."""
    def k(u, v):
        return (np.dot(u, v) / len(u) + 1) ** 3
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_with_one_subset_of_everything_equals_the_brute_force_mmd():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.3
    mean, std = metrics.kernel_inception_distance(x, y, num_subsets=1, subset_size=12)
    assert mean == pytest.approx(brute_force_unbiased_mmd2(x, y), rel=1e-10)
    assert std == 0.0


def test_kid_is_unbiased_for_equal_distributions_and_positive_for_shifted_ones():
    rng = np.random.default_rng(5)
    # Many independent draws of the same distribution: the mean estimate is ~0 (it can be negative).
    estimates = [metrics.kernel_inception_distance(rng.normal(size=(100, 8)), rng.normal(size=(100, 8)),
                                                   num_subsets=1, subset_size=100)[0] for _ in range(300)]
    assert abs(np.mean(estimates)) < 3 * np.std(estimates) / np.sqrt(len(estimates))
    assert min(estimates) < 0 < max(estimates)
    a = rng.normal(size=(400, 8))
    shifted_mean, _ = metrics.kernel_inception_distance(a, rng.normal(size=(400, 8)) + 1.0,
                                                        num_subsets=10, subset_size=100)
    assert shifted_mean > 0.1
    with pytest.raises(ValueError, match="at least 500"):
        metrics.kernel_inception_distance(a, a, subset_size=500)


def test_inception_score_of_uniform_and_of_confident_balanced_predictions():
    assert metrics.inception_score(np.zeros((100, 10)), splits=5) == pytest.approx((1.0, 0.0))
    confident = 50.0 * np.tile(np.eye(10), (10, 1))  # every class equally often in every split
    mean, std = metrics.inception_score(confident, splits=10)
    assert mean == pytest.approx(10.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
    one_class = 50.0 * np.tile(np.eye(10)[:1], (100, 1))  # confident but one mode: no diversity
    assert metrics.inception_score(one_class, splits=2)[0] == pytest.approx(1.0)


def test_prdc_hand_cases():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(200, 4))
    same = metrics.prdc(real, real.copy(), nearest_k=5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = metrics.prdc(real, real + 100.0, nearest_k=5)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_equals_the_published_prdc_package(monkeypatch):
    rng = np.random.default_rng(7)
    real = rng.normal(size=(700, 16)).astype(np.float32)
    fake = (rng.normal(size=(900, 16)) * 1.2 + 0.2).astype(np.float32)
    monkeypatch.setattr(metrics, "PRDC_CHUNK", 256)  # several chunks, uneven last one
    ours = metrics.prdc(real, fake, nearest_k=5)
    expected = prdc_reference.compute_prdc(real, fake, nearest_k=5)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(expected[key]), abs=1e-6), key
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1
