import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import models


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
