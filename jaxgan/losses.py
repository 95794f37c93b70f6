"""Adversarial losses: pure functions of discriminator logits (float [N]) returning a scalar.

Also the gradient penalties on D (WGAN-GP, R1), which take the discriminator itself.
"""

from typing import Callable

import jax
import jax.numpy as jnp


def nonsaturating_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """-log D(x) - log(1 - D(G(z))) with D = sigmoid(logits) (Goodfellow et al. 2014, eq. 1)."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def nonsaturating_g_loss(fake_logits: jax.Array) -> jax.Array:
    """-log D(G(z)): the generator loss that does not saturate early in training (Goodfellow et al. 2014, sec. 3)."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


def hinge_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017; Miyato et al. 2018, eq. 16)."""
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def hinge_g_loss(fake_logits: jax.Array) -> jax.Array:
    """-D(G(z)) (Miyato et al. 2018, eq. 17)."""
    return -jnp.mean(fake_logits)


def wasserstein_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """D(G(z)) - D(x): the critic's side of the Wasserstein-1 estimate (Arjovsky et al. 2017).

    Unbounded on its own: D must be kept (roughly) 1-Lipschitz, by `gradient_penalty` or spectral norm.
    """
    return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_g_loss(fake_logits: jax.Array) -> jax.Array:
    """-D(G(z)) (Arjovsky et al. 2017, algorithm 1)."""
    return -jnp.mean(fake_logits)


def least_squares_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2: LSGAN with targets a=0 (fake), b=1 (real) (Mao et al. 2017, eq. 2)."""
    return 0.5 * jnp.mean(jnp.square(real_logits - 1.0)) + 0.5 * jnp.mean(jnp.square(fake_logits))


def least_squares_g_loss(fake_logits: jax.Array) -> jax.Array:
    """1/2 (D(G(z)) - 1)^2: G pushes its samples towards the real target c=1 (Mao et al. 2017, eq. 2)."""
    return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0))


# A discriminator as the penalties see it: images float [N, H, W, C] -> logits float [N]. Sample i's
# logit must depend on image i alone (no batch statistics), or the gradient of the summed logits is
# not each sample's own gradient; it must also be pure (spectral norm with update_stats=False).
Discriminate = Callable[[jax.Array], jax.Array]


def _input_gradients(discriminate: Discriminate, images: jax.Array) -> jax.Array:
    """d D(x_i) / d x_i for every sample at once, float [N, H*W*C]: the gradient of the summed logits."""
    gradients = jax.grad(lambda x: jnp.sum(discriminate(x)))(images)
    return gradients.reshape(images.shape[0], -1)


def interpolate(real: jax.Array, fake: jax.Array, key: jax.Array) -> jax.Array:
    """eps * real + (1 - eps) * fake with eps ~ U[0, 1) drawn per sample from `key`.

    The random points on real-fake segments at which `gradient_penalty` evaluates D's gradient
    (Gulrajani et al. 2017, algorithm 1). real, fake: float [N, ...] of one shape; returns the same.
    """
    eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(discriminate: Discriminate, real: jax.Array, fake: jax.Array, key: jax.Array) -> jax.Array:
    """WGAN-GP's penalty mean_i (||grad D(x_hat_i)||_2 - 1)^2 (Gulrajani et al. 2017, eq. 3).

    x_hat = `interpolate(real, fake, key)`; the norm is over all pixels and channels of one sample.
    The caller multiplies by its weight (lambda = 10 in the paper). Differentiable w.r.t. whatever
    `discriminate` closes over (double backprop), so it can sit inside D's loss.

    Args:
      discriminate: images float [N, H, W, C] -> logits float [N]; see `Discriminate`.
      real, fake: float [N, H, W, C].
      key: PRNG key for the per-sample mixing weights.
    Returns:
      float scalar >= 0.
    """
    squared_norms = jnp.sum(jnp.square(_input_gradients(discriminate, interpolate(real, fake, key))), axis=1)
    # sqrt has an infinite derivative at 0 (a dead-ReLU D can give a zero gradient), which would turn
    # the parameter gradient into NaN; where the norm is 0 use the subgradient 0 instead.
    nonzero = squared_norms > 0
    norms = jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squared_norms, 1.0)), 0.0)
    return jnp.mean(jnp.square(norms - 1.0))


def r1_penalty(discriminate: Discriminate, real: jax.Array) -> jax.Array:
    """R1: mean_i ||grad D(x_i)||_2^2 on real images only (Mescheder et al. 2018, sec. 4.1).

    The caller multiplies by gamma / 2, and by k when it applies the penalty lazily, once every k D
    steps (StyleGAN2, Karras et al. 2020b, sec. 3.1). Differentiable w.r.t. what `discriminate`
    closes over, like `gradient_penalty`.

    Args:
      discriminate: images float [N, H, W, C] -> logits float [N]; see `Discriminate`.
      real: float [N, H, W, C].
    Returns:
      float scalar >= 0.
    """
    return jnp.mean(jnp.sum(jnp.square(_input_gradients(discriminate, real)), axis=1))


# loss.name -> (discriminator loss, generator loss)
LOSSES = {
    "nonsaturating": (nonsaturating_d_loss, nonsaturating_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
    "wasserstein": (wasserstein_d_loss, wasserstein_g_loss),
    "least_squares": (least_squares_d_loss, least_squares_g_loss),
}
