import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses


def test_nonsaturating_losses_on_hand_computed_logits():
    # D(x) = sigmoid(0) = 1/2 everywhere: each term is log 2.
    zeros = jnp.zeros(4)
    np.testing.assert_allclose(losses.nonsaturating_d_loss(zeros, zeros), 2 * np.log(2), rtol=1e-6)
    np.testing.assert_allclose(losses.nonsaturating_g_loss(zeros), np.log(2), rtol=1e-6)
    # real logit 2 -> -log sigmoid(2) = log(1 + e^-2); fake logit -1 -> -log(1 - sigmoid(-1)) = log(1 + e^-1)
    expected = np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))
    np.testing.assert_allclose(losses.nonsaturating_d_loss(jnp.array([2.0]), jnp.array([-1.0])), expected,
                               rtol=1e-6)
    np.testing.assert_allclose(losses.nonsaturating_g_loss(jnp.array([-1.0, 3.0])),
                               (np.log1p(np.exp(1.0)) + np.log1p(np.exp(-3.0))) / 2, rtol=1e-6)


def test_hinge_losses_on_hand_computed_logits():
    real, fake = jnp.array([2.0, 0.5]), jnp.array([-3.0, 0.25])
    # real: max(0, 1-2)=0, max(0, 1-0.5)=0.5 -> 0.25; fake: max(0, 1-3)=0, max(0, 1.25)=1.25 -> 0.625
    np.testing.assert_allclose(losses.hinge_d_loss(real, fake), 0.875, rtol=1e-6)
    np.testing.assert_allclose(losses.hinge_g_loss(fake), 1.375, rtol=1e-6)


def test_nonsaturating_loss_is_stable_for_large_logits():
    big = jnp.array([1e4])
    assert np.isfinite(float(losses.nonsaturating_d_loss(big, -big)))
    np.testing.assert_allclose(losses.nonsaturating_d_loss(big, -big), 0.0, atol=1e-6)


def test_wasserstein_losses_on_hand_computed_logits():
    real, fake = jnp.array([2.0, -1.0, 0.5]), jnp.array([0.25, -3.0])
    # mean(real) = 1.5 / 3 = 0.5; mean(fake) = -2.75 / 2 = -1.375
    np.testing.assert_allclose(losses.wasserstein_d_loss(real, fake), -1.375 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(losses.wasserstein_g_loss(fake), 1.375, rtol=1e-6)


def test_least_squares_losses_on_hand_computed_logits():
    real, fake = jnp.array([2.0, 0.0]), jnp.array([0.5, -1.0])
    # real: (2-1)^2 = 1, (0-1)^2 = 1 -> mean 1; fake: 0.25, 1 -> mean 0.625; D = 0.5 * 1 + 0.5 * 0.625
    np.testing.assert_allclose(losses.least_squares_d_loss(real, fake), 0.8125, rtol=1e-6)
    # G: (0.5-1)^2 = 0.25, (-1-1)^2 = 4 -> mean 2.125, halved
    np.testing.assert_allclose(losses.least_squares_g_loss(fake), 1.0625, rtol=1e-6)


def test_losses_table_names_every_loss():
    assert set(losses.LOSSES) == {"nonsaturating", "hinge", "wasserstein", "least_squares"}
    assert losses.LOSSES["wasserstein"] == (losses.wasserstein_d_loss, losses.wasserstein_g_loss)
    assert losses.LOSSES["least_squares"] == (losses.least_squares_d_loss, losses.least_squares_g_loss)


@pytest.mark.parametrize("name", ["nonsaturating", "hinge"])
def test_published_signs(name):
    # Logits inside the hinge's margin, where its terms are not flat.
    d_loss, g_loss = losses.LOSSES[name]
    real, fake = jnp.array([0.3, -0.2]), jnp.array([-0.4, 0.1])
    d_real, d_fake = jax.grad(d_loss, argnums=(0, 1))(real, fake)
    assert np.all(d_real < 0)  # D's loss falls as real logits rise ...
    assert np.all(d_fake > 0)  # ... and as fake logits fall,
    assert np.all(jax.grad(g_loss)(fake) < 0)  # G's loss falls as fake logits rise.
    assert d_loss(real + 0.1, fake - 0.1) < d_loss(real, fake)
    assert g_loss(fake + 0.1) < g_loss(fake)


# Penalties. Images are tiny: [3, 4, 4, 2].
SHAPE = (3, 4, 4, 2)


def real_and_fake():
    rng = np.random.default_rng(1)
    return rng.normal(size=SHAPE).astype(np.float32), rng.normal(size=SHAPE).astype(np.float32)


def linear_discriminator(w, b):
    return lambda x: jnp.sum(w * x, axis=(1, 2, 3)) + b


@jax.jit
def linear_penalties(w, real, fake, key):
    """(GP, R1, dGP/dw, dR1/dw) for the linear D, in one compiled program."""
    gp = lambda w: losses.gradient_penalty(linear_discriminator(w, 0.7), real, fake, key)  # noqa: E731
    r1 = lambda w: losses.r1_penalty(linear_discriminator(w, 0.7), real)  # noqa: E731
    return gp(w), r1(w), jax.grad(gp)(w), jax.grad(r1)(w)


def test_penalties_on_a_linear_discriminator_are_exact():
    # D(x) = <w, x> + b has input gradient w at every x, for every sample.
    w = np.random.default_rng(0).normal(size=SHAPE[1:]).astype(np.float32)
    real, fake = real_and_fake()
    norm = np.linalg.norm(w.astype(np.float64))
    assert abs(norm - 1) > 0.5  # a non-trivial penalty
    gp, r1, gp_grad, r1_grad = linear_penalties(w, real, fake, jax.random.key(3))
    np.testing.assert_allclose(gp, (norm - 1) ** 2, rtol=1e-5)
    np.testing.assert_allclose(r1, norm ** 2, rtol=1e-5)
    # Double backprop: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||; d/dw ||w||^2 = 2 w.
    np.testing.assert_allclose(gp_grad, 2 * (norm - 1) * w / norm, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r1_grad, 2 * w, rtol=1e-5)


def mlp_params():
    rng = np.random.default_rng(2)
    size = int(np.prod(SHAPE[1:]))
    return {"w1": rng.normal(size=(size, 5)).astype(np.float32) / np.float32(np.sqrt(size)),
            "b1": rng.normal(size=5).astype(np.float32), "w2": rng.normal(size=5).astype(np.float32)}


def mlp(params, x):
    """A tiny nonlinear D in JAX: tanh(x W1 + b1) . w2 per sample."""
    return jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"]) @ params["w2"]


def mlp_float64(params, image):
    """The same D on one image, in NumPy float64."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    return np.tanh(image.reshape(-1) @ p["w1"] + p["b1"]) @ p["w2"]


def finite_difference_gradient_norms(params, images, step=1e-5):
    """||d D(x_i) / d x_i||_2 per sample by central differences in float64."""
    norms = []
    for image in np.asarray(images, np.float64):
        grad = np.zeros(image.size)
        for j in range(image.size):
            delta = np.zeros(image.size)
            delta[j] = step
            delta = delta.reshape(image.shape)
            grad[j] = (mlp_float64(params, image + delta) - mlp_float64(params, image - delta)) / (2 * step)
        norms.append(np.linalg.norm(grad))
    return np.array(norms)


def test_interpolate_draws_one_eps_per_sample_in_the_unit_interval():
    real32, fake32 = real_and_fake()
    x_hat = losses.interpolate(real32, fake32, jax.random.key(3))
    np.testing.assert_array_equal(x_hat, losses.interpolate(real32, fake32, jax.random.key(3)))  # pure in key
    x_hat, real, fake = (np.asarray(a, np.float64) for a in (x_hat, real32, fake32))
    # x_hat - fake = eps (real - fake) with one eps per sample, in [0, 1).
    eps = np.sum((x_hat - fake) * (real - fake), axis=(1, 2, 3)) / np.sum((real - fake) ** 2, axis=(1, 2, 3))
    assert np.all((eps >= 0) & (eps < 1)) and len(set(np.round(eps, 4))) == SHAPE[0]
    np.testing.assert_allclose(x_hat, fake + eps[:, None, None, None] * (real - fake), atol=1e-6)


def test_penalties_match_finite_differences_on_a_nonlinear_discriminator():
    params = mlp_params()
    real, fake = real_and_fake()
    key = jax.random.key(3)
    gp, r1 = jax.jit(lambda params: (losses.gradient_penalty(lambda x: mlp(params, x), real, fake, key),
                                     losses.r1_penalty(lambda x: mlp(params, x), real)))(params)
    r1_norms = finite_difference_gradient_norms(params, real)
    np.testing.assert_allclose(r1, np.mean(r1_norms ** 2), rtol=1e-4)
    # At the penalty's own interpolates (checked against their definition above).
    gp_norms = finite_difference_gradient_norms(params, losses.interpolate(real, fake, key))
    np.testing.assert_allclose(gp, np.mean((gp_norms - 1) ** 2), rtol=1e-4)


@pytest.mark.parametrize("penalty", ["gradient_penalty", "r1_penalty"])
def test_penalties_are_differentiable_in_the_discriminator_params(penalty):
    params = mlp_params()
    real, fake = real_and_fake()

    def objective(params):
        discriminate = lambda x: mlp(params, x)  # noqa: E731
        if penalty == "gradient_penalty":
            return losses.gradient_penalty(discriminate, real, fake, jax.random.key(3))
        return losses.r1_penalty(discriminate, real)

    grads = jax.jit(jax.grad(objective))(params)
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(leaf)) and np.any(leaf != 0)


def test_gradient_penalty_has_a_finite_param_gradient_where_the_input_gradient_vanishes():
    # w = 0: ||grad|| = 0, where sqrt's derivative is infinite; the penalty is 1 and its gradient 0.
    real = jnp.ones(SHAPE)
    w = jnp.zeros(SHAPE[1:])
    value, grad = jax.jit(jax.value_and_grad(
        lambda w: losses.gradient_penalty(linear_discriminator(w, 0.0), real, -real, jax.random.key(0))))(w)
    assert float(value) == 1.0
    np.testing.assert_array_equal(grad, 0.0)
