"""The 2-D Gaussian mixtures of the PacGAN protocol, their samples, metrics and pictures.

Ring: 8 modes on the unit circle, std 0.01. Grid: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05.
Samples are drawn on the fly, uniformly over the modes, from (seed, step) alone, so any step's
batch can be drawn again without a data set on disk.

Metrics (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018; see docs BENCHMARKS.md section 1):
a sample is high quality when it lies within 3 standard deviations per axis of its nearest mode,
a mode is captured when at least one high-quality sample is nearest to it, and the reverse KL
compares the histogram of high-quality samples over the modes with the uniform one.
The per-axis box is the wording of BENCHMARKS.md; PacGAN's released code (MetricLogger in
fjxmlzn/PacGAN) counts a sample within the disc |x - mean| < 3 std instead, which holds 98.9 %
of a mode's own samples against the box's 99.5 %.
"""

import dataclasses
import itertools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxgan import sampling

PROTOCOL_SAMPLES = 2500  # samples PacGAN's protocol scores per trial
HIGH_QUALITY_STDS = 3.0  # half-width, in standard deviations per axis, of a mode's high-quality box
PLOT_SIZE = 512  # pixels per side of `plot`'s square pictures


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: `==` on array fields is ambiguous
class Mixture:
    """An equal-weight mixture of isotropic Gaussians in the plane.

    centres: float64 [K, 2], read-only. std: the standard deviation of every mode, per axis.
    plot_limit: `plot` shows [-plot_limit, plot_limit]^2, the centres' extent plus a margin.
    """

    centres: np.ndarray
    std: float
    plot_limit: float

    def __post_init__(self):
        # A read-only copy: MIXTURES is shared by every caller, and the dataclass is frozen.
        centres = np.array(self.centres, dtype=np.float64)
        centres.setflags(write=False)
        object.__setattr__(self, "centres", centres)


def _ring(num_modes: int, radius: float, std: float, plot_limit: float) -> Mixture:
    # endpoint=False: with the endpoint, the last angle is 2*pi, the same point as angle 0, and the
    # ring would have only 7 distinct modes of which one is drawn twice as often.
    angles = np.linspace(0, 2 * np.pi, num_modes, endpoint=False)
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return Mixture(centres, std, plot_limit)


def _grid(coordinates: tuple[float, ...], std: float, plot_limit: float) -> Mixture:
    return Mixture(np.array(list(itertools.product(coordinates, repeat=2))), std, plot_limit)


MIXTURES = {
    "ring8": _ring(8, radius=1.0, std=0.01, plot_limit=1.5),
    "grid25": _grid((-4.0, -2.0, 0.0, 2.0, 4.0), std=0.05, plot_limit=5.5),
}


def _mixture(name: str) -> Mixture:
    if name not in MIXTURES:
        raise ValueError(f"unknown mixture {name!r}: choose one of {sorted(MIXTURES)}")
    return MIXTURES[name]


def draw(name: str, num: int, seed: int, step: int) -> np.ndarray:
    """float32 [num, 2]: `num` samples of mixture `name`, the same for the same (seed, step).

    Each sample picks its mode uniformly at random, so a batch's mode counts vary as they would for
    i.i.d. draws from the mixture. seed and step are non-negative integers.
    """
    mixture = _mixture(name)
    rng = np.random.default_rng([seed, step])
    modes = rng.integers(len(mixture.centres), size=num)
    samples = mixture.centres[modes] + mixture.std * rng.standard_normal((num, 2))
    return samples.astype(np.float32)


def evaluate(samples: np.ndarray, name: str) -> dict:
    """The PacGAN mode-coverage metrics of `samples`, float [N, 2] with N >= 1, against mixture `name`.

    Returns {"modes": int in [0, K], the modes captured;
             "high_quality": float in [0, 1], the fraction of samples within 3 std per axis of
                             their nearest mode (by Euclidean distance);
             "reverse_kl": float >= 0, KL(p || uniform) = sum_k p_k log(K p_k) with 0 log 0 = 0,
                           where p is the histogram of the high-quality samples over the K modes;
                           0 when they are spread evenly, log K when all lie on one mode, and nan
                           when no sample is high quality (p is then undefined)}.
    Samples with a non-finite coordinate count as not high quality.
    """
    mixture = _mixture(name)
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] != 2 or samples.shape[0] == 0:
        raise ValueError(f"samples must be [N, 2] with N >= 1, got shape {samples.shape}")
    finite = np.all(np.isfinite(samples), axis=1)
    samples = np.where(finite[:, None], samples, 0.0)  # placeholders, masked out below
    offsets = samples[:, None, :] - mixture.centres[None, :, :]  # [N, K, 2]
    nearest = np.argmin(np.sum(offsets**2, axis=-1), axis=1)  # [N]
    nearest_offsets = offsets[np.arange(len(samples)), nearest]  # [N, 2]
    high_quality = finite & np.all(np.abs(nearest_offsets) <= HIGH_QUALITY_STDS * mixture.std, axis=1)

    counts = np.bincount(nearest[high_quality], minlength=len(mixture.centres))
    return {"modes": int(np.count_nonzero(counts)), "high_quality": float(np.mean(high_quality)),
            "reverse_kl": kl_to_uniform(counts)}


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform) = sum_k p_k log(K p_k), 0 log 0 = 0, of the histogram `counts` int [K] over K modes.

    0 when the counts are equal, log K when one mode has them all; nan when every count is 0.
    """
    counts = np.asarray(counts)
    if counts.sum() == 0:
        return float("nan")
    p = counts[counts > 0] / counts.sum()
    return float(np.sum(p * np.log(p * len(counts))))


def plot(samples: np.ndarray, name: str, path: str, title: str = "") -> None:
    """Writes a PLOT_SIZE x PLOT_SIZE RGB PNG of `samples`, float [N, 2], over mixture `name`'s modes.

    Each mode is drawn as its high-quality box (3 std per axis) in red, each sample as a small
    translucent dark dot on top, so dense clusters show darker. The view is
    [-plot_limit, plot_limit]^2 with y upwards; samples outside it are clipped to its border (so a
    diverging generator shows as dots on the frame instead of vanishing), and samples with a
    non-finite coordinate are left out. `title`, if any, is written at the top left. The file is
    written through a rename, so it is never left half-written.
    """
    mixture = _mixture(name)
    limit = mixture.plot_limit
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    samples = np.clip(samples[np.all(np.isfinite(samples), axis=1)], -limit, limit)

    def to_pixels(points: np.ndarray) -> np.ndarray:
        """[M, 2] plane coordinates -> [M, 2] (column, row) pixel coordinates, rows downwards."""
        scale = (PLOT_SIZE - 1) / (2 * limit)
        return np.stack([(points[:, 0] + limit) * scale, (limit - points[:, 1]) * scale], axis=-1)

    image = Image.new("RGB", (PLOT_SIZE, PLOT_SIZE), "white")
    canvas = ImageDraw.Draw(image, "RGBA")  # RGBA drawing blends translucent fills into the RGB image
    box = HIGH_QUALITY_STDS * mixture.std * (PLOT_SIZE - 1) / (2 * limit)
    for x, y in to_pixels(mixture.centres):
        canvas.rectangle([x - box, y - box, x + box, y + box], outline=(220, 0, 0))
    for x, y in to_pixels(samples):
        canvas.rectangle([x - 1, y - 1, x + 1, y + 1], fill=(0, 0, 0, 96))
    if title:
        canvas.text((6, 4), title, fill=(0, 0, 0), font=ImageFont.load_default(size=14))
    sampling.save_png(path, np.asarray(image))
