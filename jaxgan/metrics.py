"""Sample-quality metrics as pure NumPy functions of feature arrays (float [N, D]) or logits.

Every function works in float64 whatever its input, so a number depends on the features and the
protocol, not on the dtype they were stored in. The feature network (Inception-v3, the digit
classifier) is chosen elsewhere (`jaxgan.features`); these functions only see its outputs.
"""

import numpy as np

# Rows of the real set compared with the whole fake set at once in `prdc`: bounds its memory to
# PRDC_CHUNK x N float64 distances (80 MB for 10,000 fake samples) instead of N x N.
PRDC_CHUNK = 1024


class FeatureStatistics:
    """Running mean and covariance of features fed batch by batch, in float64.

    Holds the sum and the sum of outer products (D + D*D float64 numbers), so 50,000 x 2,048
    Inception features never need to sit in memory at once to get their FID statistics.
    """

    def __init__(self, dim: int):
        self.count = 0
        self._sum = np.zeros(dim, np.float64)
        self._sum_of_outer_products = np.zeros((dim, dim), np.float64)

    def update(self, features: np.ndarray) -> None:
        """Adds features float [B, D]."""
        features = np.asarray(features, np.float64)
        self.count += len(features)
        self._sum += features.sum(axis=0)
        self._sum_of_outer_products += features.T @ features

    @property
    def mean(self) -> np.ndarray:
        """float64 [D]."""
        return self._sum / self.count

    @property
    def covariance(self) -> np.ndarray:
        """float64 [D, D], unbiased (divides by N - 1, as numpy.cov and pytorch-fid do)."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.count}")
        mean = self.mean
        return (self._sum_of_outer_products - self.count * np.outer(mean, mean)) / (self.count - 1)


def frechet_distance_from_statistics(mean_a: np.ndarray, covariance_a: np.ndarray,
                                     mean_b: np.ndarray, covariance_b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mean_a, covariance_a) and N(mean_b, covariance_b).

    ||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2))   (Dowson & Landau 1982; as FID in
    Heusel et al. 2017, "GANs trained by a two time-scale update rule...").

    The trace of the matrix square root is taken as the sum of the square roots of the eigenvalues
    of the symmetric matrix C_a^(1/2) C_b C_a^(1/2), which has the same eigenvalues as C_a C_b
    (similar matrices). Both are positive semi-definite, so the eigenvalues are real and >= 0 up to
    round-off (clipped at 0): the result is finite and real even for rank-deficient covariances,
    where pytorch-fid's scipy.linalg.sqrtm of the non-symmetric C_a C_b needs its epsilon * I
    fallback. On well-conditioned covariances both give the same number (tested).
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    covariance_a, covariance_b = np.asarray(covariance_a, np.float64), np.asarray(covariance_b, np.float64)
    sqrt_a = _symmetric_sqrt(covariance_a)
    product = sqrt_a @ covariance_b @ sqrt_a
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)  # symmetrised against round-off
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    difference = mean_a - mean_b
    return float(difference @ difference + np.trace(covariance_a) + np.trace(covariance_b) - 2.0 * trace_sqrt)


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The positive semi-definite square root of a symmetric PSD matrix float64 [D, D]."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID-style Fréchet distance between the Gaussian fits of features float [Na, D] and [Nb, D]."""
    statistics = []
    for features in (features_a, features_b):
        accumulator = FeatureStatistics(np.shape(features)[1])
        accumulator.update(features)
        statistics.append(accumulator)
    a, b = statistics
    return frechet_distance_from_statistics(a.mean, a.covariance, b.mean, b.covariance)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / D + 1)^3 for rows of x [n, D] and y [m, D] -> [n, m] (Binkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: (mean, standard deviation) over subsets of the unbiased MMD^2 with the cubic polynomial kernel.

    Binkowski et al. 2018, "Demystifying MMD GANs", as computed by TF-GAN and torch-fidelity: each
    subset draws `subset_size` rows of each set without replacement (NumPy generator of `seed`), and
        MMD^2 = sum_{i != j} k(a_i, a_j) / (m (m - 1)) + sum_{i != j} k(b_i, b_j) / (m (m - 1))
                - 2 sum_{i, j} k(a_i, b_j) / m^2.
    The standard deviation is NumPy's (ddof=0), as torch-fidelity reports it.

    Args:
      features_a, features_b: float [Na, D] and [Nb, D], each with at least `subset_size` rows.
    """
    features_a, features_b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if min(len(features_a), len(features_b)) < subset_size:
        raise ValueError(f"KID subsets of {subset_size} need at least {subset_size} samples in each set; "
                         f"got {len(features_a)} and {len(features_b)}")
    rng = np.random.default_rng(seed)
    m = subset_size
    estimates = []
    for _ in range(num_subsets):
        a = features_a[rng.choice(len(features_a), m, replace=False)]
        b = features_b[rng.choice(len(features_b), m, replace=False)]
        k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        estimates.append(within - 2.0 * k_ab.sum() / (m * m))
    return float(np.mean(estimates)), float(np.std(estimates))


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score: (mean, standard deviation) over `splits` contiguous splits of the samples.

    IS = exp(E_x KL(p(y|x) || p(y))) with p(y) the mean of p(y|x) over the split (Salimans et al.
    2016, "Improved techniques for training GANs"; splits and ddof=0 as in their code and
    torch-fidelity). 1 for uniform predictions; the number of classes for confident, class-balanced ones.

    Args:
      logits: float [N, K] unnormalised class scores (the 1008 of Inception, or the digit classifier's 10).
    """
    logits = np.asarray(logits, np.float64)
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    scores = []
    for part in np.array_split(log_p, splits):
        log_marginal = np.log(np.exp(part).mean(axis=0))
        kl = (np.exp(part) * (part - log_marginal)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def prdc(real_features: np.ndarray, fake_features: np.ndarray, nearest_k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of fake features against real ones (k-NN manifolds).

    Precision and recall: Kynkäänniemi et al. 2019, "Improved precision and recall metric for
    assessing generative models"; density and coverage: Naeem et al. 2020, "Reliable fidelity and
    diversity metrics for generative models". Same definitions as their `prdc` package (tested equal):
    a sample's radius is the Euclidean distance to its k-th nearest neighbour in its own set (itself
    excluded); precision is the fraction of fakes inside some real sample's ball, recall the fraction
    of reals inside some fake's ball, density the mean number of real balls holding a fake divided
    by k, coverage the fraction of real balls holding at least one fake.

    Args:
      real_features: float [Nr, D], Nr > nearest_k.
      fake_features: float [Nf, D], Nf > nearest_k.
    Returns:
      {"precision", "recall", "density", "coverage"}; all in [0, 1] except density in [0, Nr / k].
    """
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    real_radii = _kth_neighbour_distances(real, nearest_k)
    fake_radii = _kth_neighbour_distances(fake, nearest_k)
    real_balls_per_fake = np.zeros(len(fake), np.int64)
    fake_balls_per_real_hit, real_ball_covered = [], []
    for start in range(0, len(real), PRDC_CHUNK):
        distances = _pairwise_distances(real[start:start + PRDC_CHUNK], fake)  # [chunk, Nf]
        radii = real_radii[start:start + PRDC_CHUNK, None]
        real_balls_per_fake += (distances < radii).sum(axis=0)
        fake_balls_per_real_hit.append((distances < fake_radii[None, :]).any(axis=1))
        real_ball_covered.append(distances.min(axis=1) < radii[:, 0])
    return {
        "precision": float((real_balls_per_fake > 0).mean()),
        "recall": float(np.concatenate(fake_balls_per_real_hit).mean()),
        "density": float(real_balls_per_fake.mean() / nearest_k),
        "coverage": float(np.concatenate(real_ball_covered).mean()),
    }


def _pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances float64 [n, m] between rows of x [n, D] and y [m, D]."""
    squared = (x * x).sum(axis=1)[:, None] + (y * y).sum(axis=1)[None, :] - 2.0 * x @ y.T
    return np.sqrt(np.clip(squared, 0.0, None))


def _kth_neighbour_distances(features: np.ndarray, k: int) -> np.ndarray:
    """float64 [N]: each row's distance to its k-th nearest other row (the row itself is the 0th)."""
    if len(features) <= k:
        raise ValueError(f"{k} nearest neighbours need more than {k} samples, got {len(features)}")
    radii = []
    for start in range(0, len(features), PRDC_CHUNK):
        distances = _pairwise_distances(features[start:start + PRDC_CHUNK], features)
        radii.append(np.partition(distances, k, axis=1)[:, k])
    return np.concatenate(radii)
