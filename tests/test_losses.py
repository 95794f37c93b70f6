import jax.numpy as jnp
import numpy as np

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
