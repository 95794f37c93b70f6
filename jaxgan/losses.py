"""Adversarial losses: pure functions of discriminator logits (float [N]) returning a scalar."""

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


# loss.name -> (discriminator loss, generator loss)
LOSSES = {
    "nonsaturating": (nonsaturating_d_loss, nonsaturating_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
}
