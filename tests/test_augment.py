import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import augment

# policy static, probability traced: the way the train step calls it.
_jitted = jax.jit(augment.diffaugment, static_argnames="policy")


def diffaugment(images, key, policy, probability=1.0):
    # Always a float32 array, so tests on one shape share one compiled program.
    return _jitted(images, key, policy, jnp.float32(probability))


def random_images(seed, shape=(6, 8, 8, 3)):
    """float32 in [-1, 1), drawn by NumPy so that each shape costs no JAX compilation."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)


def changed_samples(before, after):
    return np.any(np.asarray(before) != np.asarray(after), axis=(1, 2, 3))


def test_probability_zero_is_the_identity_bit_for_bit():
    images = random_images(0)
    out = diffaugment(images, jax.random.key(1), augment.OPS, 0.0)
    np.testing.assert_array_equal(out, images)


def test_same_key_same_output_different_key_different_output():
    images = random_images(0)
    first = diffaugment(images, jax.random.key(1), augment.OPS, 1.0)
    np.testing.assert_array_equal(first, diffaugment(images, jax.random.key(1), augment.OPS, 1.0))
    assert np.all(changed_samples(first, diffaugment(images, jax.random.key(2), augment.OPS, 1.0)))


def shifted(images, dy, dx):
    """out[:, i, j] = images[:, i + dy, j + dx], zero outside: the reference's translation, by np.roll."""
    h, w = images.shape[1:3]
    rows, cols = np.arange(h) + dy, np.arange(w) + dx
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    return np.roll(images, (-dy, -dx), axis=(1, 2)) * inside[None, :, :, None]


# 16 x 8 images: shifts of up to 16 // 8 = 2 rows and 8 // 8 = 1 column, 15 in all.
SHIFTS = [(dy, dx) for dy in range(-2, 3) for dx in range(-1, 2)]


def test_translation_moves_a_one_hot_pixel():
    # The pixel is far enough from the border to stay in the image.
    images = np.zeros((256, 16, 8, 2), np.float32)
    images[:, 7, 4, :] = 1.0
    out = np.asarray(diffaugment(jnp.asarray(images), jax.random.key(0), ("translation",)))
    positions = set()
    for sample in out:
        (row,), (col,) = np.nonzero(sample[..., 0])
        np.testing.assert_array_equal(sample[..., 1], sample[..., 0])
        assert sample[row, col, 0] == 1.0  # moved, not blurred; everything else is the zero padding
        positions.add((int(row) - 7, int(col) - 4))
    # Content at p lands at p - (dy, dx); every shift occurs (each misses with chance (14/15)^256).
    assert positions == {(-dy, -dx) for dy, dx in SHIFTS}


def test_translation_is_a_zero_padded_shift_per_sample():
    images = random_images(0, (256, 16, 8, 2))
    out = np.asarray(diffaugment(jnp.asarray(images), jax.random.key(1), ("translation",)))
    matches = np.stack([np.all(out == shifted(images, dy, dx), axis=(1, 2, 3)) for dy, dx in SHIFTS], axis=1)
    np.testing.assert_array_equal(matches.sum(axis=1), 1)  # each sample is exactly one shift of its input
    assert np.all(matches.any(axis=0))  # and every shift occurs


def cutout_masks(h, w):
    """Every zero pattern the reference's cutout can make: an (h//2) x (w//2) box clipped at the borders."""
    cut_h, cut_w = h // 2, w // 2
    masks = []
    # The reference draws the centre in [0, size + 1 - cut % 2) and starts the box cut // 2 before it.
    for top in range(-(cut_h // 2), h + 1 - cut_h % 2 - cut_h // 2):
        for left in range(-(cut_w // 2), w + 1 - cut_w % 2 - cut_w // 2):
            mask = np.zeros((h, w), bool)
            mask[max(top, 0):top + cut_h, max(left, 0):left + cut_w] = True
            masks.append(mask)
    return np.array(masks)


def test_cutout_zeroes_one_clipped_half_size_box_per_sample():
    # 8 x 6: a 4 x 3 box (even and odd sides); ones make the zeroed pixels easy to see.
    n, h, w = 2048, 8, 6
    out = np.asarray(diffaugment(jnp.ones((n, h, w, 2)), jax.random.key(0), ("cutout",)))
    assert set(np.unique(out)) == {0.0, 1.0}
    zeros = out[..., 0] == 0
    np.testing.assert_array_equal(out[..., 1] == 0, zeros)  # the same box in every channel
    allowed = cutout_masks(h, w)
    matches = np.all(zeros[:, None] == allowed[None], axis=(2, 3))  # [n, len(allowed)]
    np.testing.assert_array_equal(matches.sum(axis=1), 1)
    # Every box occurs (each misses with chance (53/54)^2048), those clipped at each border included.
    assert np.all(matches.any(axis=0))
    assert allowed.sum(axis=(1, 2)).min() < (h // 2) * (w // 2)


def test_color_on_gray_images_is_brightness_and_contrast():
    # Equal channels: saturation keeps them. Then out - mean(out) = c (x - mean(x)), c in [0.5, 1.5),
    # and mean(out) - mean(x) = brightness in [-0.5, 0.5).
    images = np.repeat(random_images(0, (1000, 4, 4, 1)), 3, axis=3)
    out = np.asarray(diffaugment(jnp.asarray(images), jax.random.key(1), ("color",)), np.float64)
    x = images.astype(np.float64)
    centred_in = x - x.mean(axis=(1, 2, 3), keepdims=True)
    centred_out = out - out.mean(axis=(1, 2, 3), keepdims=True)
    contrast = np.sum(centred_out * centred_in, axis=(1, 2, 3)) / np.sum(centred_in ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(centred_out, contrast[:, None, None, None] * centred_in, atol=1e-5)
    assert np.all((contrast >= 0.5 - 1e-5) & (contrast < 1.5 + 1e-5))
    brightness = out.mean(axis=(1, 2, 3)) - x.mean(axis=(1, 2, 3))
    assert np.all((brightness >= -0.5 - 1e-5) & (brightness < 0.5 + 1e-5))
    assert np.ptp(brightness) > 0.3 and np.ptp(contrast) > 0.3  # drawn per sample


def test_color_scales_saturation_around_the_channel_mean():
    # Channels (v, -v, 0): after brightness b, saturation s and contrast c, out = (b + c s v, b - c s v, b)
    # with c s in [0, 3), b one number per sample.
    v = random_images(0, (1000, 4, 4, 1)).astype(np.float64)
    images = np.concatenate([v, -v, np.zeros_like(v)], axis=3).astype(np.float32)
    out = np.asarray(diffaugment(jnp.asarray(images), jax.random.key(1), ("color",)), np.float64)
    b = out[:, :1, :1, 2:]
    np.testing.assert_allclose(out[..., 2:], np.broadcast_to(b, v.shape), atol=1e-5)
    cs = np.sum((out[..., :1] - b) * v, axis=(1, 2, 3)) / np.sum(v ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(out[..., :1], b + cs[:, None, None, None] * v, atol=1e-5)
    np.testing.assert_allclose(out[..., 1:2], b - cs[:, None, None, None] * v, atol=1e-5)
    assert np.all((cs >= -1e-5) & (cs < 3 + 1e-5)) and np.ptp(cs) > 0.5


def test_color_changes_every_sample_deterministically():
    images = random_images(0, (1000, 4, 4, 3))
    out = diffaugment(images, jax.random.key(1), ("color",))
    assert np.all(changed_samples(images, out))
    np.testing.assert_array_equal(out, diffaugment(images, jax.random.key(1), ("color",)))


def test_probability_half_leaves_about_half_the_samples_untouched():
    images = random_images(0, (1000, 4, 4, 3))
    out = diffaugment(images, jax.random.key(1), ("color",), 0.5)
    untouched = int(np.sum(~changed_samples(images, out)))
    # Binomial(1000, 1/2): sd 15.8, so +-80 is 5 sd.
    assert 420 <= untouched <= 580
    assert not np.any(~changed_samples(images, diffaugment(images, jax.random.key(1), ("color",), 1.0)))


def test_gradients_reach_the_images():
    images = random_images(0)
    weights = random_images(1)
    objective = lambda x: jnp.sum(weights * augment.diffaugment(x, jax.random.key(2), augment.OPS))  # noqa: E731
    grad = jax.jit(jax.grad(objective))(images)
    assert np.all(np.isfinite(grad)) and np.all(np.any(grad != 0, axis=(1, 2, 3)))


def test_unknown_ops_are_rejected_with_the_valid_names():
    assert augment.validate_policy(["color", "cutout"]) == ("color", "cutout")
    with pytest.raises(ValueError, match="'rotate'.*color, translation, cutout"):
        augment.validate_policy(("color", "rotate"))
    with pytest.raises(ValueError, match="sequence of op names"):
        augment.diffaugment(random_images(0), jax.random.key(0), "color,cutout")
    np.testing.assert_array_equal(augment.diffaugment(random_images(0), jax.random.key(0), ()), random_images(0))


ada_update = jax.jit(functools.partial(augment.ada_update, images_seen_per_update=64 * augment.ADA_INTERVAL))


def test_ada_update_follows_the_sign_of_the_overfitting_heuristic():
    step = 64 * 4 / 500_000
    np.testing.assert_allclose(ada_update(0.3, 0.9), 0.3 + step, rtol=1e-6)  # r_t > 0.6: D overfits, p rises
    np.testing.assert_allclose(ada_update(0.3, 0.2), 0.3 - step, rtol=1e-6)
    np.testing.assert_allclose(ada_update(0.3, 0.6), 0.3, rtol=1e-6)
    assert float(ada_update(0.0, -1.0)) == 0.0
    assert float(ada_update(1.0, 1.0)) == 1.0
    assert float(ada_update(step / 2, -1.0)) == 0.0
    assert float(ada_update(1.0 - step / 2, 1.0)) == 1.0
    np.testing.assert_allclose(augment.ada_update(0.5, 0.5, 1000, target=0.4, adjust_images=10_000), 0.6, rtol=1e-6)
