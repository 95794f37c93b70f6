import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import mlp


def _init_shapes(module, *inputs):
    """The variables `module.init` would make, as shapes only (nothing is computed)."""
    return jax.eval_shape(lambda: module.init(jax.random.key(0), *inputs))


def test_default_networks_are_pacgans():
    g_params = _init_shapes(mlp.MLPGenerator(), jnp.zeros((4, 2)))["params"]
    assert [g_params[f"Dense_{i}"]["kernel"].shape for i in range(5)] == [(2, 400)] + [(400, 400)] * 3 + [(400, 2)]
    assert "bias" not in g_params["Dense_0"]  # batch norm follows
    d_variables = _init_shapes(mlp.MLPDiscriminator(), jnp.zeros((4, 2)))
    assert set(d_variables) == {"params"}  # no batch_stats: the training step treats them as optional
    d_params = d_variables["params"]
    assert [d_params[f"Maxout_{i}"]["Dense_0"]["kernel"].shape for i in range(3)] == [(2, 1000), (200, 1000),
                                                                                      (200, 1000)]
    assert d_params["Dense_0"]["kernel"].shape == (200, 1)


def test_init_std_draws_every_weight_from_pacgans_normal_and_zero_keeps_lecun():
    z, x = jax.random.normal(jax.random.key(0), (4, 2)), jax.random.normal(jax.random.key(1), (4, 8))
    networks = [(mlp.MLPGenerator, z), (mlp.MLPDiscriminator, x)]
    for network, inputs in networks:
        pacgans = network(init_std=0.02).init(jax.random.key(2), inputs)["params"]
        kernels = [k for path, k in jax.tree_util.tree_leaves_with_path(pacgans) if "kernel" in str(path[-1])]
        assert len(kernels) == (5 if network is mlp.MLPGenerator else 4)
        for kernel in kernels:
            assert abs(float(jnp.std(kernel)) - 0.02) < 0.02 * 0.15 and abs(float(jnp.mean(kernel))) < 0.01
        lecun = network(init_std=0.0).init(jax.random.key(2), inputs)["params"]
        jax.tree.map(np.testing.assert_array_equal, lecun, network().init(jax.random.key(2), inputs)["params"])
    first = mlp.MLPDiscriminator().init(jax.random.key(2), x)["params"]["Maxout_0"]["Dense_0"]["kernel"]
    assert abs(float(jnp.std(first)) - 1 / np.sqrt(8)) < 0.05  # LeCun normal: 1 / sqrt(fan_in)


@pytest.mark.parametrize("num_classes", [0, 3])
def test_generator_shapes_and_batch_stats(num_classes):
    generator = mlp.MLPGenerator(width=16, depth=2, num_classes=num_classes)
    z = jax.random.normal(jax.random.key(0), (6, 2))
    labels = jnp.arange(6) % 3 if num_classes else None
    variables = generator.init(jax.random.key(1), z, labels)
    samples, updates = generator.apply(variables, z, labels, train=True, mutable=["batch_stats"])
    assert samples.shape == (6, 2) and samples.dtype == jnp.float32
    changed = jax.tree.map(lambda a, b: not np.allclose(a, b), variables["batch_stats"], updates["batch_stats"])
    assert all(jax.tree.leaves(changed))
    _, eval_updates = generator.apply(variables, z, labels, train=False, mutable=["batch_stats"])
    jax.tree.map(np.testing.assert_array_equal, variables["batch_stats"], eval_updates["batch_stats"])
    # In eval mode a sample does not depend on the rest of its batch.
    alone = generator.apply(variables, z[:1], None if labels is None else labels[:1], train=False)
    together = generator.apply(variables, z, labels, train=False)
    np.testing.assert_allclose(alone[0], together[0], rtol=1e-5, atol=1e-6)


def test_generator_output_is_linear():
    generator = mlp.MLPGenerator(width=8, depth=1)
    z = jax.random.normal(jax.random.key(0), (3, 2))
    variables = generator.init(jax.random.key(1), z)
    params = dict(variables["params"])
    params["Dense_1"] = {"kernel": jnp.zeros((8, 2)), "bias": jnp.array([4.5, -4.5])}
    samples = generator.apply({**variables, "params": params}, z, train=False)
    np.testing.assert_array_equal(samples, np.tile([4.5, -4.5], (3, 1)))  # beyond tanh's range


def test_conditional_generator_depends_on_the_label_and_takes_label_weights():
    generator = mlp.MLPGenerator(width=16, depth=2, num_classes=4)
    z = jnp.tile(jax.random.normal(jax.random.key(0), (1, 2)), (4, 1))
    labels = jnp.arange(4)
    variables = generator.init(jax.random.key(1), z, labels)
    by_label = generator.apply(variables, z, labels, train=False)
    assert not np.allclose(by_label[0], by_label[1])
    by_weights = generator.apply(variables, z, jax.nn.one_hot(labels, 4), train=False)
    np.testing.assert_array_equal(by_weights, by_label)


@pytest.mark.parametrize("features", [2, 6])  # a sample, or 3 samples packed
def test_discriminator_logits_are_per_sample(features):
    discriminator = mlp.MLPDiscriminator(width=8, depth=2, pieces=3)
    x = jax.random.normal(jax.random.key(0), (5, features))
    variables = discriminator.init(jax.random.key(1), x)
    logits = discriminator.apply(variables, x)
    assert logits.shape == (5,) and logits.dtype == jnp.float32
    np.testing.assert_array_equal(discriminator.apply(variables, x, update_stats=True), logits)
    changed = discriminator.apply(variables, x.at[0].add(1.0))
    assert changed[0] != logits[0]
    np.testing.assert_array_equal(changed[1:], logits[1:])


def test_mbstd_couples_only_the_consecutive_samples_of_a_group():
    discriminator = mlp.MLPDiscriminator(width=8, depth=2, pieces=3, mbstd_group=4)
    x = jax.random.normal(jax.random.key(0), (8, 2))
    variables = discriminator.init(jax.random.key(1), x)
    # The last maxout layer sees the width features plus the group's standard deviation.
    assert variables["params"]["Maxout_1"]["Dense_0"]["kernel"].shape == (9, 24)
    logits = np.asarray(discriminator.apply(variables, x))
    changed = np.asarray(discriminator.apply(variables, x.at[1].set(x[1] + 3.0)))
    assert np.all(changed[[0, 2, 3]] != logits[[0, 2, 3]])  # the rest of sample 1's group
    np.testing.assert_array_equal(changed[4:], logits[4:])  # the other group is untouched


def test_conditional_discriminator_depends_on_the_label():
    discriminator = mlp.MLPDiscriminator(width=8, depth=2, pieces=3, num_classes=5)
    x = jnp.tile(jax.random.normal(jax.random.key(0), (1, 2)), (5, 1))
    variables = discriminator.init(jax.random.key(1), x, jnp.zeros(5, jnp.int32))
    logits = discriminator.apply(variables, x, jnp.arange(5))
    assert logits.shape == (5,)
    assert len(np.unique(np.asarray(logits))) == 5
