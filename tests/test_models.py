import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxgan import models

# Compiled whole: one XLA compilation each instead of one per operation and shape (compile time,
# not arithmetic, is what these tiny tests spend).
_minibatch_stddev = jax.jit(models.minibatch_stddev, static_argnums=(1, 2))


@pytest.mark.parametrize("size,c_in,c_out", [(7, 16, 8), (4, 3, 5), (14, 8, 1)])
def test_subpixel_conv_transpose_equals_flax_conv_transpose(size, c_in, c_out):
    x = jax.random.normal(jax.random.key(0), (3, size, size, c_in))
    layer = nn.ConvTranspose(c_out, (4, 4), strides=(2, 2), padding="SAME")
    params = layer.init(jax.random.key(1), x)["params"]
    expected = layer.apply({"params": params}, x)
    got = models.subpixel_conv_transpose(x, params["kernel"]) + params["bias"]
    assert got.shape == (3, 2 * size, 2 * size, c_out)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_subpixel_gradient_equals_flax_conv_transpose_gradient():
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 4))
    kernel = jax.random.normal(jax.random.key(1), (4, 4, 4, 3))
    reference = lambda k, x: jnp.sum(jnp.sin(jax.lax.conv_transpose(x, k, (2, 2), "SAME",
                                                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))))
    ours = lambda k, x: jnp.sum(jnp.sin(models.subpixel_conv_transpose(x, k)))
    for expected, got in zip(jax.grad(reference, (0, 1))(kernel, x), jax.grad(ours, (0, 1))(kernel, x)):
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("size,channels,num_classes", [(28, 1, 10), (32, 3, 0), (64, 3, 4)])
def test_generator_shapes_and_range(size, channels, num_classes):
    generator = models.Generator(image_size=size, channels=channels, num_classes=num_classes, width=8)
    z = 3.0 * jax.random.normal(jax.random.key(0), (5, 16))
    labels = jnp.arange(5) % max(num_classes, 1) if num_classes else None
    variables = generator.init(jax.random.key(1), z, labels)
    images, _ = generator.apply(variables, z, labels, train=True, mutable=["batch_stats"])
    assert images.shape == (5, size, size, channels)
    assert images.dtype == jnp.float32
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0
    assert float(images.std()) > 0.0  # not a constant image
    eval_images = generator.apply(variables, z, labels, train=False)
    assert eval_images.shape == images.shape


def test_generator_class_conditioning_changes_the_image():
    generator = models.Generator(image_size=28, channels=1, num_classes=10, width=8)
    z = jax.random.normal(jax.random.key(0), (2, 8))
    variables = generator.init(jax.random.key(1), z, jnp.array([0, 1]))
    # Class scales and offsets start at zero; give class 1 its own so the label must matter.
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p.at[1].set(0.5) if "gamma" in jax.tree_util.keystr(path) else p, variables["params"])
    same_z = jnp.repeat(z[:1], 2, axis=0)
    images = generator.apply({**variables, "params": params}, same_z, jnp.array([0, 1]), train=False)
    assert float(jnp.abs(images[0] - images[1]).max()) > 1e-3


def test_discriminator_logits_and_spectral_norm():
    discriminator = models.Discriminator(num_classes=10, width=8, spectral_norm=True)
    images = jax.random.uniform(jax.random.key(0), (6, 28, 28, 1), minval=-1, maxval=1)
    labels = jnp.arange(6)
    variables = discriminator.init(jax.random.key(1), images, labels)
    assert "batch_stats" in variables  # the power-iteration state
    # Many power iterations converge: each normalised layer then has spectral norm 1.
    for _ in range(60):
        _, updates = discriminator.apply(variables, images, labels, update_stats=True, mutable=["batch_stats"])
        variables = {**variables, **updates}
    logits = discriminator.apply(variables, images, labels)
    assert logits.shape == (6,)
    kernel = variables["params"]["Conv_0"]["kernel"]
    sigma = variables["batch_stats"]["SpectralNorm_0"]["Conv_0/kernel/sigma"]
    true_sigma = np.linalg.svd(np.asarray(kernel).reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    np.testing.assert_allclose(sigma, true_sigma, rtol=1e-3)


def test_image_size_must_be_small_times_power_of_two():
    assert [models.num_upsamplings(s) for s in (28, 32, 64, 128)] == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="not 4..7 times a power of two"):
        models.num_upsamplings(30)


def test_minibatch_stddev_by_hand():
    # Four 1x1 samples with two channels: groups {0, 1} and {2, 3} (NVIDIA's strided groups would be
    # {0, 2} and {1, 3}, whose stddevs are [0.5, 1.5] in both).
    x = jnp.array([[0.0, 0.0], [2.0, 4.0], [1.0, 1.0], [1.0, 1.0]]).reshape(4, 1, 1, 2)
    out = _minibatch_stddev(x, 2, 1)
    assert out.shape == (4, 1, 1, 3)
    np.testing.assert_array_equal(out[..., :2], x)
    # Per-channel stddevs of {0, 1} are [1, 2], averaged 1.5; {2, 3} is constant: sqrt(1e-8).
    np.testing.assert_allclose(out[:, 0, 0, 2], [1.5, 1.5, 1e-4, 1e-4], rtol=1e-6)
    # Two stddev channels: each averages its own channel group, here one channel each.
    np.testing.assert_allclose(_minibatch_stddev(x, 2, 2)[:, 0, 0, 2:], [[1, 2], [1, 2], [1e-4, 1e-4], [1e-4, 1e-4]],
                               rtol=1e-6)
    # A batch of 6 with group size 4 uses groups of 3 (the largest divisor of 6 that is at most 4).
    x6 = jax.random.normal(jax.random.key(0), (6, 2, 2, 2))
    out = _minibatch_stddev(x6, 4, 1)
    np.testing.assert_allclose(out[0, 0, 0, 2], np.mean(np.sqrt(np.var(np.asarray(x6[:3]), axis=0) + 1e-8)),
                               rtol=1e-6)


def test_minibatch_stddev_never_mixes_real_and_fake_halves():
    real = jax.random.normal(jax.random.key(0), (4, 3, 3, 2))
    fake = jax.random.normal(jax.random.key(1), (4, 3, 3, 2))
    joint = _minibatch_stddev(jnp.concatenate([real, fake]), 2, 1)
    np.testing.assert_array_equal(joint[:4], _minibatch_stddev(real, 2, 1))
    np.testing.assert_array_equal(joint[4:], _minibatch_stddev(fake, 2, 1))
    # Changing a fake does not change any real image's features.
    moved = _minibatch_stddev(jnp.concatenate([real, fake.at[0].add(5.0)]), 2, 1)
    np.testing.assert_array_equal(moved[:4], joint[:4])


def _logits_changing_image_1(discriminator, images, labels):
    """D's logits (float [N]) for `images`, and for `images` with image 1 negated, in training mode.

    The variables are standard normal in the shapes `init` gives: what the tests check holds for
    any values, and compiling the initialisers would take seconds.
    """
    rng = np.random.default_rng(1)
    shapes = jax.eval_shape(discriminator.init, jax.random.key(1), images, labels)
    variables = jax.tree_util.tree_map(lambda s: jnp.asarray(rng.standard_normal(s.shape), s.dtype), shapes)
    apply = jax.jit(lambda images: discriminator.apply(variables, images, labels, update_stats=True,
                                                       mutable=["batch_stats"])[0])
    return np.asarray(apply(images)), np.asarray(apply(images.at[1].multiply(-1.0)))


@pytest.mark.parametrize("num_classes", [0, 3])
def test_discriminator_mbstd_couples_only_the_images_of_a_group(num_classes):
    images = jax.random.uniform(jax.random.key(0), (8, 16, 16, 1), minval=-1, maxval=1)
    labels = jnp.arange(8) % 3 if num_classes else None
    # Groups of 4 consecutive images, 0-3 and 4-7; without the option image 1 is on its own.
    for mbstd_group, coupled in ((0, [1]), (4, [0, 1, 2, 3])):
        discriminator = models.Discriminator(num_classes=num_classes, width=8, mbstd_group=mbstd_group)
        logits, changed = _logits_changing_image_1(discriminator, images, labels)
        assert np.all(changed[coupled] != logits[coupled]), mbstd_group
        others = np.setdiff1d(np.arange(8), coupled)
        np.testing.assert_array_equal(changed[others], logits[others])


def test_discriminator_mbstd_widens_only_the_output_layers():
    images, labels = jnp.zeros((8, 16, 16, 1)), jnp.zeros(8, jnp.int32)

    def shapes(mbstd_group):
        discriminator = models.Discriminator(num_classes=3, width=8, mbstd_group=mbstd_group)
        variables = jax.eval_shape(discriminator.init, jax.random.key(0), images, labels)
        return {"/".join(path): leaf.shape for path, leaf in traverse_util.flatten_dict(variables).items()}

    off, on = shapes(0), shapes(4)
    # Off (the default), the parameters are those the network had before the option, so existing
    # checkpoints restore: the 4x4 map h has 16 channels.
    assert {path: shape for path, shape in off.items() if path.startswith("params/")} == {
        "params/Conv_0/kernel": (4, 4, 1, 8), "params/Conv_0/bias": (8,), "params/Conv_1/kernel": (4, 4, 8, 16),
        "params/Conv_1/bias": (16,), "params/Dense_0/kernel": (4 * 4 * 16, 1), "params/Dense_0/bias": (1,),
        "params/Embed_0/embedding": (3, 16)}
    # On, h has a 17th channel, which both terms of the logit see; the convolutions are unchanged.
    assert on == {**off, "params/Dense_0/kernel": (4 * 4 * 17, 1), "params/Embed_0/embedding": (3, 17),
                  "batch_stats/SpectralNorm_3/Embed_0/embedding/u": (1, 17)}
