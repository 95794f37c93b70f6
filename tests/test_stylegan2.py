import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxgan import stylegan2

_NHWC = ("NHWC", "HWIO", "NHWC")


def _explicit_modulated_conv(x, kernel, styles, demodulate):
    """One convolution per sample with its own scaled (and demodulated) kernel."""
    outputs = []
    for n in range(x.shape[0]):
        w = kernel * styles[n][None, None, :, None]
        if demodulate:
            w = w * lax.rsqrt(jnp.sum(jnp.square(w), axis=(0, 1, 2)) + 1e-8)
        outputs.append(lax.conv_general_dilated(x[n:n + 1], w, (1, 1), "SAME", dimension_numbers=_NHWC))
    return jnp.concatenate(outputs)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [False, True])
def test_modulated_conv_equals_per_sample_convolution(demodulate, up):
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (3, 5, 5, 4))
    kernel = jax.random.normal(keys[1], (3, 3, 4, 6))
    styles = 1.0 + jax.random.normal(keys[2], (3, 4))
    got = stylegan2.modulated_conv(x, kernel, styles, demodulate=demodulate, up=up)
    expected = _explicit_modulated_conv(stylegan2.upsample_2x(x) if up else x, kernel, styles, demodulate)
    assert got.shape == ((3, 10, 10, 6) if up else (3, 5, 5, 6))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_upsample_is_bilinear_and_downsample_is_average_pooling():
    x = jax.random.normal(jax.random.key(0), (2, 3, 5, 2))
    np.testing.assert_allclose(stylegan2.upsample_2x(x), jax.image.resize(x, (2, 6, 10, 2), "bilinear"),
                               atol=1e-6)
    y = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_allclose(stylegan2.downsample_2x(y)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])


# Flax initialisation draws every parameter with the default threefry PRNG, which XLA:CPU compiles
# slowly (seconds per draw on a busy machine); the "rbg" PRNG compiles in a fraction of that and the
# models never look at how their keys are implemented.
def _key(seed):
    return jax.random.key(seed, impl="rbg")


@pytest.mark.parametrize("size,channels,num_classes", [(28, 1, 3), (32, 3, 0), (64, 3, 2)])
def test_shapes(size, channels, num_classes):
    # Traced only (eval_shape): shapes and dtypes at every size without compiling three models.
    generator = stylegan2.StyleGAN2Generator(image_size=size, channels=channels, num_classes=num_classes,
                                             width=4, mapping_layers=2, max_width=16)
    discriminator = stylegan2.StyleGAN2Discriminator(num_classes=num_classes, width=4, max_width=16)
    z = jnp.zeros((4, 8))
    labels = jnp.arange(4) % num_classes if num_classes else None
    g_variables = jax.eval_shape(generator.init, _key(1), z, labels)
    assert set(g_variables) == {"params"}  # no batch_stats or other state
    images = jax.eval_shape(generator.apply, g_variables, z, labels)
    assert images.shape == (4, size, size, channels) and images.dtype == jnp.float32
    d_variables = jax.eval_shape(discriminator.init, _key(2), images, labels)
    assert set(d_variables) == {"params"}
    logits = jax.eval_shape(discriminator.apply, d_variables, images, labels)
    assert logits.shape == (4,) and logits.dtype == jnp.float32


def test_channel_rule():
    generator = stylegan2.StyleGAN2Generator(image_size=28, channels=1, num_classes=0, width=4, max_width=8,
                                             mapping_layers=1)
    params = jax.eval_shape(generator.init, _key(0), jnp.ones((1, 8)))["params"]
    assert params["const"].shape == (1, 7, 7, 8)  # 4 * 28 / 7 = 16, capped at 8
    assert params["b14_conv1"]["kernel"].shape == (3, 3, 8, 8)
    assert params["b28_conv0"]["kernel"].shape == (3, 3, 8, 4)
    assert params["b28_torgb"]["kernel"].shape == (1, 1, 4, 1)
    discriminator = stylegan2.StyleGAN2Discriminator(num_classes=0, width=4, max_width=8)
    params = jax.eval_shape(discriminator.init, _key(0), jnp.ones((2, 28, 28, 1)))["params"]
    assert params["fromrgb"]["kernel"].shape == (1, 1, 1, 4)
    assert params["b28_conv1"]["kernel"].shape == (3, 3, 4, 8)
    assert params["epilogue_conv"]["kernel"].shape == (3, 3, 9, 8)  # + the stddev channel


def _models(num_classes):
    # Compile time, not arithmetic, is the cost here: 14 px has one upsampling and one residual block,
    # the fewest layers that have both, and 8 channels everywhere (= latent width) keeps the distinct
    # shapes, each compiled separately, few.
    generator = stylegan2.StyleGAN2Generator(image_size=14, channels=1, num_classes=num_classes, width=8,
                                             mapping_layers=2, max_width=8)
    discriminator = stylegan2.StyleGAN2Discriminator(num_classes=num_classes, width=8, max_width=8)
    return generator, discriminator


@pytest.fixture(scope="module")
def conditional():
    generator, discriminator = _models(3)
    z = jax.random.normal(jax.random.key(0), (4, 8))
    labels = jnp.array([0, 1, 2, 0])
    g_params = generator.init(_key(1), z, labels)["params"]
    d_params = discriminator.init(_key(2), jnp.zeros((4, 14, 14, 1)), labels)["params"]
    return generator, discriminator, g_params, d_params, z, labels


def test_initial_values(conditional):
    generator, discriminator, g_params, d_params, z, labels = conditional
    assert float(g_params["b14_conv0"]["noise_strength"]) == 0.0
    np.testing.assert_array_equal(g_params["b14_conv0"]["affine"]["bias"], 1.0)  # identity modulation
    images = generator.apply({"params": g_params}, z, labels)
    assert images.shape == (4, 14, 14, 1) and bool(jnp.all(jnp.isfinite(images)))
    assert float(images.std()) > 0.0
    logits = discriminator.apply({"params": d_params}, images, labels, update_stats=True)
    assert logits.shape == (4,) and bool(jnp.all(jnp.isfinite(logits)))


def test_unconditional_models_run(conditional):
    _, _, _, _, z, _ = conditional
    generator, discriminator = _models(0)
    g_variables = generator.init(_key(1), z)
    images = generator.apply(g_variables, z)
    logits = discriminator.apply(discriminator.init(_key(2), images), images)
    assert images.shape == (4, 14, 14, 1) and logits.shape == (4,)
    assert bool(jnp.all(jnp.isfinite(images))) and bool(jnp.all(jnp.isfinite(logits)))


def test_labels_matter_and_one_hot_equals_int(conditional):
    generator, discriminator, g_params, d_params, z, labels = conditional
    same_z = jnp.repeat(z[:1], 4, axis=0)
    images = generator.apply({"params": g_params}, same_z, labels)
    assert float(jnp.abs(images[0] - images[1]).max()) > 1e-3
    # Same z and label at another batch position: XLA:CPU's kernels round differently by position.
    np.testing.assert_allclose(images[0], images[3], rtol=1e-5, atol=1e-5)
    one_hot = jax.nn.one_hot(labels, 3)
    np.testing.assert_array_equal(generator.apply({"params": g_params}, same_z, one_hot), images)
    same_images = jnp.repeat(images[:1], 4, axis=0)
    logits = discriminator.apply({"params": d_params}, same_images, labels)
    assert abs(float(logits[0] - logits[1])) > 1e-4


def _with_noise_strength(params, value):
    return jax.tree_util.tree_map_with_path(
        lambda path, p: jnp.full_like(p, value) if "noise_strength" in jax.tree_util.keystr(path) else p, params)


def test_constant_noise_is_deterministic_and_batch_invariant(conditional):
    generator, _, g_params, _, z, labels = conditional
    variables = {"params": _with_noise_strength(g_params, 0.5)}
    batch = generator.apply(variables, z, labels, train=False)
    np.testing.assert_array_equal(generator.apply(variables, z, labels, train=False), batch)
    alone = generator.apply(variables, z[2:3], labels[2:3], train=False)
    # Equal up to float rounding (see above): about 1e-6 relative.
    np.testing.assert_allclose(alone[0], batch[2], rtol=1e-5, atol=1e-5)


def test_noise_rng_gives_per_sample_noise(conditional):
    generator, _, g_params, _, z, labels = conditional
    variables = {"params": _with_noise_strength(g_params, 0.5)}
    same_z = jnp.repeat(z[:1], 4, axis=0)
    same_labels = jnp.repeat(labels[:1], 4)
    one = generator.apply(variables, same_z, same_labels, rngs={"noise": _key(1)})
    np.testing.assert_array_equal(generator.apply(variables, same_z, same_labels, rngs={"noise": _key(1)}), one)
    assert float(jnp.abs(one[0] - one[1]).max()) > 1e-3  # per-sample noise
    two = generator.apply(variables, same_z, same_labels, rngs={"noise": _key(2)})
    assert float(jnp.abs(one - two).max()) > 1e-3
    # At the initial strength 0 the noise has no effect.
    initial = {"params": g_params}
    np.testing.assert_array_equal(generator.apply(initial, same_z, same_labels, rngs={"noise": _key(1)}),
                                  generator.apply(initial, same_z, same_labels))


def test_gradients_reach_every_generator_parameter(conditional):
    generator, discriminator, g_params, d_params, z, labels = conditional

    def mean_logit(params):
        images = generator.apply({"params": params}, z, labels, rngs={"noise": _key(3)})
        return jnp.mean(discriminator.apply({"params": d_params}, images, labels))

    grads = jax.jit(jax.grad(mean_logit))(g_params)
    assert any(name.startswith("mapping_") for name in grads) and "const" in grads
    for path, grad in jax.tree_util.tree_leaves_with_path(grads):
        assert bool(jnp.all(jnp.isfinite(grad))), jax.tree_util.keystr(path)
        assert float(jnp.abs(grad).max()) > 0.0, jax.tree_util.keystr(path)
