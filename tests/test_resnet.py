import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxgan import resnet

MODELS = {"sngan": (resnet.SNGANGenerator, resnet.SNGANDiscriminator),
          "biggan": (resnet.BigGANGenerator, resnet.BigGANDiscriminator)}
LATENT_DIM = 60  # a multiple of BigGAN's chunk counts 3, 4, 5 at sizes 28, 32, 64


# Flax initialisation draws every parameter with the default threefry PRNG, which XLA:CPU compiles
# slowly (seconds per draw on a busy machine); the "rbg" PRNG compiles in a fraction of that and the
# models never look at how their keys are implemented. Initialisation also runs eagerly, not under
# jit: its many small programs are compiled once and shared by every model of the same width.
def key(seed):
    return jax.random.key(seed, impl="rbg")


def latents(n, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((n, LATENT_DIM)), jnp.float32)


def noise(shape, seed=3):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def random_images(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape), jnp.float32)


def make_models(family, size, channels, num_classes, attention_resolution=0):
    generator_class, discriminator_class = MODELS[family]
    extra = {"shared_dim": 8, "attention_resolution": attention_resolution} if family == "biggan" else {}
    generator = generator_class(image_size=size, channels=channels, num_classes=num_classes, width=4, **extra)
    discriminator = discriminator_class(num_classes=num_classes, width=4, attention_resolution=attention_resolution)
    return generator, discriminator


@functools.cache
def initialised(family, size, channels, num_classes, attention_resolution=0):
    """(generator, its variables, discriminator, its variables), initialised once per session: do not mutate."""
    generator, discriminator = make_models(family, size, channels, num_classes, attention_resolution)
    labels = labels_for(num_classes)
    g_variables = generator.init(key(1), latents(2), labels)
    d_variables = discriminator.init(key(2), random_images((2, size, size, channels)), labels)
    return generator, g_variables, discriminator, d_variables


def labels_for(num_classes):
    return jnp.array([0, 2]) if num_classes else None


@pytest.mark.parametrize("config", [("sngan", 28, 1, 3), ("biggan", 28, 1, 3, 14)])
def test_shapes_and_ranges(config):
    generator, g_variables, discriminator, d_variables = initialised(*config)
    _, size, channels, num_classes, *_ = config
    z, labels = latents(2), labels_for(num_classes)
    images, _ = generator.apply(g_variables, z, labels, train=True, mutable=["batch_stats"])
    eval_images = generator.apply(g_variables, z, labels, train=False)
    for batch in (images, eval_images):
        assert batch.shape == (2, size, size, channels) and batch.dtype == jnp.float32
        assert float(batch.min()) >= -1.0 and float(batch.max()) <= 1.0
        assert float(batch.std()) > 0.0
    logits, _ = discriminator.apply(d_variables, images, labels, update_stats=True, mutable=["batch_stats"])
    assert logits.shape == (2,) and bool(jnp.all(jnp.isfinite(logits)))
    # No batch statistics in D: an image's logit does not depend on the rest of the batch.
    other_batch = images.at[1].set(eval_images[1])
    np.testing.assert_allclose(discriminator.apply(d_variables, other_batch, labels)[0],
                               discriminator.apply(d_variables, images, labels)[0], rtol=1e-6)


@pytest.mark.parametrize("family,size,num_classes", [("sngan", 32, 0), ("biggan", 32, 0), ("sngan", 64, 3),
                                                     ("biggan", 64, 0)])
def test_shapes_traced(family, size, num_classes):
    # Traced only (eval_shape): the unconditional models and the 64x64 layout without compiling them.
    generator, discriminator = make_models(family, size, 3, num_classes)
    z, labels = latents(2), labels_for(num_classes)
    g_variables = jax.eval_shape(generator.init, key(1), z, labels)
    images = jax.eval_shape(functools.partial(generator.apply, train=False), g_variables, z, labels)
    assert images.shape == (2, size, size, 3) and images.dtype == jnp.float32
    d_variables = jax.eval_shape(discriminator.init, key(2), images, labels)
    logits = jax.eval_shape(discriminator.apply, d_variables, images, labels)
    assert logits.shape == (2,)
    assert ("class_embedding" in d_variables["params"]) == (num_classes > 0)


def test_channels_at_64x64():
    generator, discriminator = make_models("sngan", 64, 3, 0)
    g_params = jax.eval_shape(generator.init, key(1), latents(2))["params"]
    d_params = jax.eval_shape(discriminator.init, key(2), random_images((2, 64, 64, 3)))["params"]
    # Width 4: G halves from 4 * 16 channels at 4x4 to 4 at 64x64; D doubles from 4 to 4 * 16.
    assert g_params["linear"]["kernel"].shape[-1] == 4 * 4 * 64
    assert [g_params[f"block{i}"]["conv2"]["kernel"].shape[-1] for i in range(4)] == [32, 16, 8, 4]
    assert [d_params[f"block{i}"]["conv2"]["kernel"].shape[-1] for i in range(5)] == [4, 8, 16, 32, 64]


@pytest.mark.parametrize("config", [("sngan", 28, 1, 3), ("biggan", 28, 1, 3, 14)])
def test_labels_condition_generator_and_discriminator(config):
    generator, g_variables, discriminator, d_variables = initialised(*config)
    # SNGAN's class-conditional scales and offsets start at zero: give every class its own.
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: noise(p.shape) if "norm" in jax.tree_util.keystr(path) else p,
        g_variables["params"])
    g_variables = {**g_variables, "params": params}
    z, labels = jnp.repeat(latents(1), 2, axis=0), jnp.array([0, 1])
    images = generator.apply(g_variables, z, labels, train=False)
    images_from_weights = generator.apply(g_variables, z, jax.nn.one_hot(labels, 3), train=False)
    np.testing.assert_array_equal(images_from_weights, images)
    assert float(jnp.abs(images[0] - images[1]).max()) > 1e-3
    logits = discriminator.apply(d_variables, jnp.repeat(images[:1], 2, axis=0), labels)
    assert abs(float(logits[0] - logits[1])) > 1e-4


def test_spectral_norm_converges_to_largest_singular_value_of_every_weight():
    _, _, discriminator, variables = initialised("sngan", 28, 1, 3)
    images, labels = random_images((2, 28, 28, 1)), labels_for(3)

    @jax.jit
    def power_iterations(variables):
        def step(_, stats):
            _, updates = discriminator.apply({**variables, "batch_stats": stats}, images, labels,
                                             update_stats=True, mutable=["batch_stats"])
            return updates["batch_stats"]
        return jax.lax.fori_loop(0, 300, step, variables["batch_stats"])

    stats = traverse_util.flatten_dict(power_iterations(variables))
    sigmas = {}
    for path, value in stats.items():
        if path[-1].endswith("/sigma"):  # (..., "SpectralNorm_k", "conv1/kernel/sigma") -> (..., "conv1", "kernel")
            sigmas[path[:-2] + tuple(path[-1].split("/")[:-1])] = float(value)
    weights = {path: p for path, p in traverse_util.flatten_dict(variables["params"]).items() if p.ndim >= 2}
    assert sigmas.keys() == weights.keys()  # every convolution, dense layer and embedding is normalised
    for path, weight in weights.items():
        true_sigma = np.linalg.svd(np.asarray(weight).reshape(-1, weight.shape[-1]), compute_uv=False)[0]
        np.testing.assert_allclose(sigmas[path], true_sigma, rtol=1e-3, err_msg=str(path))


def test_biggan_generator_updates_batch_stats_only_in_training():
    generator, variables, _, _ = initialised("biggan", 28, 1, 3, 14)
    # Orthogonal weights have all singular values 1, so power iteration starts at its fixed point:
    # move the weights, as a training step would, to give it something to do.
    params = jax.tree_util.tree_map(lambda p: p + 0.1 * noise(p.shape), variables["params"])
    variables = {**variables, "params": params}
    z, labels = latents(2), labels_for(3)
    before = traverse_util.flatten_dict(variables["batch_stats"])
    after_train, after_eval = (
        traverse_util.flatten_dict(generator.apply(variables, z, labels, train=train, mutable=["batch_stats"])[1]
                                   ["batch_stats"]) for train in (True, False))
    assert any("SpectralNorm" in "/".join(path) for path in before)
    # Training moves every BN running statistic and every spectral-norm estimate (but 1-element
    # vectors, +-1 for good); eval moves none.
    moving = {path for path in before if not (path[-1].endswith("/u") and before[path].size == 1)}
    assert moving <= {path for path in before if not np.array_equal(before[path], after_train[path])}
    assert all(np.array_equal(before[path], after_eval[path]) for path in before)


def test_configuration_errors_name_the_fix():
    with pytest.raises(ValueError, match="latent_dim 10 must be a multiple of 4, e.g. 12"):
        resnet.BigGANGenerator(image_size=32).init(key(0), jnp.zeros((2, 10)), jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match=r"attention_resolution 8 is not one of .* \[14, 7\]"):
        resnet.BigGANDiscriminator(attention_resolution=8).init(key(0), jnp.zeros((2, 28, 28, 1)))


@pytest.mark.parametrize("part", ["generator", "discriminator"])
def test_self_attention_starts_as_identity(part):
    generator, g_variables, discriminator, d_variables = initialised("biggan", 28, 1, 3, 14)
    plain_generator, plain_discriminator = make_models("biggan", 28, 1, 3)
    if part == "generator":
        model, plain, variables, inputs, kwargs = generator, plain_generator, g_variables, latents(2), {"train": False}
    else:
        model, plain, variables, inputs, kwargs = (discriminator, plain_discriminator, d_variables,
                                                   random_images((2, 28, 28, 1)), {})
    labels = labels_for(3)
    assert float(variables["params"]["attention"]["gamma"]) == 0.0
    without_attention = {collection: {name: tree for name, tree in trees.items() if name != "attention"}
                         for collection, trees in variables.items()}
    output = model.apply(variables, inputs, labels, **kwargs)
    np.testing.assert_array_equal(output, plain.apply(without_attention, inputs, labels, **kwargs))
    attending = {**variables, "params": {**variables["params"],
                                         "attention": {**variables["params"]["attention"], "gamma": 0.5}}}
    output_attending = model.apply(attending, inputs, labels, **kwargs)
    assert output_attending.shape == output.shape and bool(jnp.all(jnp.isfinite(output_attending)))
    assert float(jnp.abs(output_attending - output).max()) > 1e-4  # the block is wired in


@pytest.mark.parametrize("family,num_classes", [("sngan", 3), ("biggan", 0)])
def test_mbstd_couples_only_the_images_of_a_group(family, num_classes):
    images = random_images((8, 16, 16, 1))
    labels = jnp.arange(8) % 3 if num_classes else None
    # Groups of 4 consecutive images, 0-3 and 4-7; without the option image 1 is on its own.
    for mbstd_group, coupled in ((0, [1]), (4, [0, 1, 2, 3])):
        discriminator = MODELS[family][1](num_classes=num_classes, width=8, mbstd_group=mbstd_group)
        # Standard-normal variables in init's shapes: the coupling holds for any values, and
        # compiling the initialisers would take seconds.
        rng = np.random.default_rng(1)
        shapes = jax.eval_shape(discriminator.init, key(1), images, labels)
        variables = jax.tree_util.tree_map(lambda s: jnp.asarray(rng.standard_normal(s.shape), s.dtype), shapes)
        apply = jax.jit(lambda images: discriminator.apply(variables, images, labels, update_stats=True,
                                                           mutable=["batch_stats"])[0])
        logits, changed = np.asarray(apply(images)), np.asarray(apply(images.at[1].multiply(-1.0)))
        assert np.all(changed[coupled] != logits[coupled]), mbstd_group
        others = np.setdiff1d(np.arange(8), coupled)
        np.testing.assert_array_equal(changed[others], logits[others])


@pytest.mark.parametrize("family,attention_resolution", [("sngan", 0), ("biggan", 4)])
def test_mbstd_widens_only_the_block_that_keeps_the_resolution(family, attention_resolution):
    images, labels = random_images((8, 16, 16, 1)), jnp.zeros(8, jnp.int32)

    def shapes(mbstd_group):
        discriminator = MODELS[family][1](num_classes=3, width=8, attention_resolution=attention_resolution,
                                          mbstd_group=mbstd_group)
        variables = jax.eval_shape(discriminator.init, key(0), images, labels)
        return {"/".join(path): leaf.shape for path, leaf in traverse_util.flatten_dict(variables).items()}

    off, on = shapes(0), shapes(4)
    # Off (the default), the variables are those the network had before the option, so existing
    # checkpoints restore: block2, at 4x4, takes block1's 8 channels through an identity shortcut.
    assert off["params/block2/conv1/kernel"] == (3, 3, 8, 8) and not any("block2/shortcut" in path for path in off)
    # On, block2 takes 9 channels and learns a 1x1 shortcut. Nothing else changes: not block1, nor
    # the 4x4 attention block, which comes before the standard deviation.
    assert on == {**off, "params/block2/conv1/kernel": (3, 3, 9, 8), "params/block2/shortcut/kernel": (1, 1, 9, 8),
                  "params/block2/shortcut/bias": (8,), "batch_stats/block2/SpectralNorm_2/shortcut/kernel/sigma": (),
                  "batch_stats/block2/SpectralNorm_2/shortcut/kernel/u": (1, 8)}
    assert ("params/attention/o/kernel" in on) == (attention_resolution > 0)
