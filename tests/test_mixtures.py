import math
import os

import numpy as np
import pytest
from PIL import Image

from jaxgan import mixtures


def test_ring_has_8_distinct_centres_at_radius_1():
    centres = mixtures.MIXTURES["ring8"].centres
    assert centres.shape == (8, 2) and centres.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 1.0, atol=1e-12)
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    # Neighbours on a ring of 8 are 2 sin(pi / 8) apart: no two centres coincide.
    assert distances[~np.eye(8, dtype=bool)].min() == pytest.approx(2 * math.sin(math.pi / 8))
    np.testing.assert_allclose(centres[2], [0.0, 1.0], atol=1e-12)


def test_grid_has_25_centres_on_the_lattice():
    centres = mixtures.MIXTURES["grid25"].centres
    assert centres.shape == (25, 2)
    assert {tuple(c) for c in centres} == {(x, y) for x in range(-4, 5, 2) for y in range(-4, 5, 2)}


def test_mixture_centres_are_read_only():
    with pytest.raises(ValueError):
        mixtures.MIXTURES["ring8"].centres[0, 0] = 5.0


@pytest.mark.parametrize("name", ["ring8", "grid25"])
@pytest.mark.parametrize("k", [1, 3])
def test_samples_on_k_modes(name, k):
    centres = mixtures.MIXTURES[name].centres
    samples = np.repeat(centres[:k], 4, axis=0)
    result = mixtures.evaluate(samples, name)
    assert result["modes"] == k
    assert result["high_quality"] == 1.0
    # Evenly spread over k of K modes: KL = log(K / k).
    assert result["reverse_kl"] == pytest.approx(math.log(len(centres) / k), abs=1e-12)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_uniform_histogram_has_zero_kl_and_one_mode_has_log_k(name):
    centres = mixtures.MIXTURES[name].centres
    uniform = mixtures.evaluate(np.repeat(centres, 3, axis=0), name)
    assert uniform["modes"] == len(centres)
    assert abs(uniform["reverse_kl"]) < 1e-9
    collapsed = mixtures.evaluate(np.repeat(centres[4:5], 10, axis=0), name)
    assert collapsed["modes"] == 1
    assert collapsed["reverse_kl"] == pytest.approx(math.log(len(centres)), abs=1e-12)


def test_mixed_case_by_hand():
    centres = mixtures.MIXTURES["ring8"].centres
    # 3 samples on mode 0, 1 on mode 1, 4 off every mode (the origin, 1 unit from all).
    samples = np.concatenate([np.repeat(centres[:1], 3, axis=0), centres[1:2], np.zeros((4, 2))])
    result = mixtures.evaluate(samples, "ring8")
    assert result["modes"] == 2
    assert result["high_quality"] == 0.5
    expected = 0.75 * math.log(0.75 * 8) + 0.25 * math.log(0.25 * 8)
    assert result["reverse_kl"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_far_samples_are_not_high_quality_and_have_nan_kl(name):
    samples = np.array([[10.0, 10.0], [0.5, -7.0], [-30.0, 0.0]])
    result = mixtures.evaluate(samples, name)
    assert result == {"modes": 0, "high_quality": 0.0, "reverse_kl": pytest.approx(float("nan"), nan_ok=True)}


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_high_quality_box_is_3_std_per_axis(name):
    mixture = mixtures.MIXTURES[name]
    centre, std = mixture.centres[3], mixture.std
    # A corner at 2.9 std per axis lies 4.1 std away, outside a 3-std circle: the box is per axis.
    inside = mixtures.evaluate((centre + [2.9 * std, -2.9 * std])[None], name)
    assert inside["high_quality"] == 1.0 and inside["modes"] == 1
    for offset in ([3.1, 0.0], [0.0, -3.1], [3.1, 3.1]):
        outside = mixtures.evaluate((centre + std * np.array(offset))[None], name)
        assert outside["high_quality"] == 0.0 and outside["modes"] == 0


def test_non_finite_samples_are_not_high_quality():
    centre = mixtures.MIXTURES["ring8"].centres[0]
    samples = np.array([centre, [np.nan, centre[1]], [np.inf, -np.inf], centre])
    result = mixtures.evaluate(samples, "ring8")
    assert result["high_quality"] == 0.5
    assert result["modes"] == 1
    assert result["reverse_kl"] == pytest.approx(math.log(8))


def test_bad_names_and_shapes_are_refused():
    with pytest.raises(ValueError, match="ring8"):
        mixtures.draw("ring7", 10, seed=0, step=0)
    with pytest.raises(ValueError, match="grid25"):
        mixtures.evaluate(np.zeros((3, 2)), "grid")
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        mixtures.evaluate(np.zeros((3, 3)), "ring8")
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        mixtures.evaluate(np.zeros((0, 2)), "ring8")


def test_draw_is_reproducible_from_seed_and_step():
    first = mixtures.draw("grid25", 64, seed=3, step=7)
    assert first.shape == (64, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, mixtures.draw("grid25", 64, seed=3, step=7))
    assert not np.array_equal(first, mixtures.draw("grid25", 64, seed=3, step=8))
    assert not np.array_equal(first, mixtures.draw("grid25", 64, seed=4, step=7))


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_real_samples_score_perfectly(name):
    samples = mixtures.draw(name, 10_000, seed=0, step=0)
    result = mixtures.evaluate(samples, name)
    assert result["modes"] == len(mixtures.MIXTURES[name].centres)
    # Per axis |N(0, 1)| <= 3 with probability 0.9973, so both axes with about 0.9946.
    assert result["high_quality"] >= 0.99
    assert result["reverse_kl"] < 0.01


def test_plot_writes_a_png_with_dots_where_the_samples_are(tmp_path):
    path = str(tmp_path / "ring.png")
    centre = mixtures.MIXTURES["ring8"].centres[0]  # (1, 0): column 3/4 of the way across, middle row
    samples = np.concatenate([np.repeat(centre[None], 50, axis=0), [[100.0, 100.0], [np.nan, 0.0]]])
    mixtures.plot(samples, "ring8", path, title="step 0")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (mixtures.PLOT_SIZE, mixtures.PLOT_SIZE)
        pixels = np.asarray(image.convert("RGB")).astype(int)
    last = mixtures.PLOT_SIZE - 1
    column = round((1.0 + 1.5) / 3.0 * last)
    row = round(last / 2)
    assert pixels[row - 1:row + 2, column - 1:column + 2].max(axis=-1).min() < 60  # dark: 50 dots stacked
    assert pixels[:16, :64].min() < 100  # the title
    assert pixels[0, last].max() < 255  # the far sample, clipped to the top right corner
    assert pixels[last, 0].min() == 255  # the bottom left corner is blank
    assert os.listdir(tmp_path) == ["ring.png"]  # no temporary file left behind


def test_kl_to_uniform_of_hand_made_histograms():
    assert mixtures.kl_to_uniform(np.full(1000, 26)) == pytest.approx(0.0, abs=1e-12)
    assert mixtures.kl_to_uniform(np.eye(1000, dtype=int)[3] * 26000) == pytest.approx(np.log(1000))
    assert mixtures.kl_to_uniform([3, 1, 0, 0]) == pytest.approx(0.75 * np.log(3) + 0.25 * np.log(1))
    assert np.isnan(mixtures.kl_to_uniform(np.zeros(8, int)))
