"""What artists rely on: a seed is one picture wherever it is made; walks, morphs and variations
start and end where they say; seeds, labels and truncation are parsed strictly."""

import numpy as np
import pytest

from jaxgan import sampling, trained
from jaxgan.errors import UserError


@pytest.fixture(scope="module")
def gan(trained_workdir):
    return trained.load(trained_workdir)


def test_a_seed_is_the_same_picture_alone_in_a_list_and_in_a_range(gan):
    many = gan.seed_images(sampling.parse_seeds("0-41"), [2, 7])  # 84 pictures: six batches, the last padded
    alone = gan.seed_images([17], [7])
    listed = gan.seed_images(sampling.parse_seeds("3,17,40"), [7])
    assert many.shape == (84,) + gan.image_shape
    np.testing.assert_array_equal(alone[0], many[42 + 17])  # label-major: label 7's row starts at 42
    np.testing.assert_array_equal(listed[1], alone[0])
    assert not np.array_equal(many[17], many[42 + 17])  # the label matters
    assert not np.array_equal(many[16], many[17])  # the seed matters


def test_the_picture_of_a_seed_is_image_0_of_that_seed(gan):
    np.testing.assert_array_equal(gan.seed_images([5], [3])[0], gan.sample(5, 1, [3])[0])


def test_walk_starts_and_ends_at_its_seeds_and_passes_through_the_middle_one(gan):
    frames = gan.walk([3, 17, 40], 4, frames=9)
    seeds = gan.seed_images([3, 17, 40], [4])
    assert frames.shape == (9,) + gan.image_shape
    for frame, seed in ((0, 0), (4, 1), (8, 2)):  # 9 frames over 2 segments: frame 4 is the middle stop
        np.testing.assert_array_equal(frames[frame], seeds[seed])
    assert not np.array_equal(frames[1], frames[0])


def test_style_morph_starts_and_ends_at_the_two_labels_pictures(gan):
    frames = gan.morph(42, [1, 8], frames=5)
    np.testing.assert_array_equal(frames[0], gan.seed_images([42], [1])[0])
    np.testing.assert_array_equal(frames[-1], gan.seed_images([42], [8])[0])
    assert not np.array_equal(frames[2], frames[0]) and not np.array_equal(frames[2], frames[-1])


def test_variations_go_from_the_seed_at_strength_0_to_the_noise_seed_at_1(gan):
    np.testing.assert_array_equal(gan.variation_images(42, [1, 2], 0.0, 5), gan.seed_images([42, 42], [5]))
    np.testing.assert_array_equal(gan.variation_images(42, [1, 2], 1.0, 5), gan.seed_images([1, 2], [5]))
    near = gan.variation_images(42, [1, 2], 0.3, 5)
    assert not np.array_equal(near[0], near[1])


def test_truncation_zero_gives_each_class_its_mean_picture(gan):
    mean = gan.seed_images([0, 1, 99], [2, 6], truncation=0.0)
    np.testing.assert_array_equal(mean[0], mean[2])  # every seed of class 2 is the same picture
    np.testing.assert_array_equal(mean[3], mean[5])
    assert not np.array_equal(mean[0], mean[3])  # per class
    half = gan.seed_images([0, 1], [2], truncation=0.5)
    assert not np.array_equal(half[0], half[1])


def test_slerp_ends_exactly_at_its_endpoints_and_keeps_gaussian_norms():
    start, end = np.asarray(sampling.seed_latents([3, 17], 128))
    path = sampling.slerp(start, end, np.linspace(0, 1, 11))
    np.testing.assert_array_equal(path[0], start)
    np.testing.assert_array_equal(path[-1], end)
    # Nearly orthogonal Gaussian vectors of similar norm: the great circle keeps the norm, the chord does not.
    middle_norm = np.linalg.norm(path[5])
    assert abs(middle_norm - np.linalg.norm(start)) < 0.1 * np.linalg.norm(start)
    assert np.linalg.norm((start + end) / 2) < 0.8 * middle_norm
    np.testing.assert_array_equal(sampling.slerp(start, start, np.array([0.0, 0.5, 1.0])), np.stack([start] * 3))


def test_seed_lists_and_ranges():
    assert sampling.parse_seeds("0-3") == sampling.parse_seeds("0,1,2,3") == [0, 1, 2, 3]
    assert sampling.parse_seeds("7, 2-3,4294967295") == [7, 2, 3, 4294967295]
    for bad in ("-1", "3-1", "x", "1.5", "", "4294967296", "0-200000", "٣"):
        with pytest.raises(UserError, match="--seeds"):
            sampling.parse_seeds(bad)


def test_labels_by_name_or_index_and_unknown_ones_are_clear_errors():
    names = ("brick", "grass", "gravel")
    assert sampling.parse_labels("gravel,0", names) == [2, 0]
    for bad in ("3", "sand", "²", "-1"):
        with pytest.raises(UserError, match="unknown class"):
            sampling.parse_labels(bad, names)


def test_upscale_repeats_pixels():
    image = np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1)
    big = sampling.upscale(image, 3)
    assert big.shape == (1, 6, 6, 1)
    np.testing.assert_array_equal(big[0, :3, :3, 0], np.zeros((3, 3)))
    np.testing.assert_array_equal(big[0, 3:, 3:, 0], np.full((3, 3), 3))


def test_provenance_round_trips_through_png_text(tmp_path):
    text = sampling.picture_provenance("runs/x", 500, 42, "ink", 0.7, upscale=2, use_ema=False)
    path = str(tmp_path / "p.png")
    sampling.save_png(path, np.zeros((4, 4, 3), np.uint8), text)
    read = sampling.read_png_text(path)
    assert read == text
    assert read["seed"] == "42" and read["label"] == "ink" and read["truncation"] == "0.7" and read["step"] == "500"
