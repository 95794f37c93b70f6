"""Multilayer-perceptron generator and discriminator for 2-D data (`mixtures`), with the interface of `models`.

Samples are float32 [N, D] (D = 2 for the mixtures); labels are int32 [N] in [0, num_classes) or
None for an unconditional model. The defaults are PacGAN's networks for its 2-D experiments
(Lin et al. 2018; fjxmlzn/PacGAN, synthetic_data_experiments/2DGrid_GAN&PacGAN/pacgan_task.py and
config.py): G has 4 hidden layers of 400 ReLU units with batch norm and a linear output, D has 3
hidden maxout layers of 200 units with 5 pieces each and a linear logit. PacGAN initialises every
weight from N(0, 0.02^2) (`init_std=0.02`); `init_std=0` keeps Flax's default (LeCun normal).

Packing (PacGAN's m samples judged jointly) is not done here: the training step reshapes the
packed samples to [N / m, m * D] before D, which takes any feature width.
"""

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import class_lookup, minibatch_stddev


class MLPGenerator(nn.Module):
    """[z, embed(label)] -> depth x (Dense(width), batch norm, ReLU) -> Dense(out_dim).

    The output is linear, not tanh: the grid's modes lie at +-4. Batch-norm statistics live in the
    `batch_stats` collection.
    """

    out_dim: int = 2
    width: int = 400
    depth: int = 4
    num_classes: int = 0
    init_std: float = 0.0  # > 0: every weight from N(0, init_std^2), as PacGAN's code; 0: LeCun normal

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = True) -> jax.Array:
        """z: float [N, latent_dim]; labels: int [N], label weights float [N, num_classes] or None.

        Returns samples float [N, out_dim], unbounded. With `train` the batch norms use (and
        update) the batch's statistics, otherwise their running averages.
        """
        x = z
        if self.num_classes > 0:
            class_embedding = nn.Embed(self.num_classes, z.shape[-1], name="class_embedding")
            x = jnp.concatenate([z, class_lookup(class_embedding, labels)], -1)
        for _ in range(self.depth):
            # No biases before batch norm: it would subtract them again.
            x = nn.Dense(self.width, use_bias=False, kernel_init=kernel_init(self.init_std))(x)
            x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
        return nn.Dense(self.out_dim, kernel_init=kernel_init(self.init_std))(x)


def kernel_init(init_std: float) -> Callable:
    """N(0, init_std^2) for init_std > 0 (PacGAN's initialisation), else Flax's default (LeCun normal)."""
    return nn.initializers.normal(init_std) if init_std > 0 else nn.linear.default_kernel_init


class Maxout(nn.Module):
    """Dense(features * pieces), then the maximum over each unit's `pieces` (Goodfellow et al. 2013)."""

    features: int
    pieces: int
    init_std: float = 0.0  # as MLPGenerator's

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: float [N, F_in] -> float [N, features]."""
        y = nn.Dense(self.features * self.pieces, kernel_init=kernel_init(self.init_std))(x)
        return jnp.max(y.reshape(x.shape[0], self.features, self.pieces), axis=-1)


class MLPDiscriminator(nn.Module):
    """depth maxout layers -> Dense(1), with a projection head (Miyato & Koyama 2018) for classes.

    With `mbstd_group` > 0 the minibatch standard deviation of the features (`minibatch_stddev`,
    groups of `mbstd_group` consecutive samples) is appended as one more feature before the last
    maxout layer, so that layer can weigh it against the sample's own features (as in StyleGAN,
    where it precedes the last convolution). The logits of a group then depend on each other: run D on
    concat([real, fake]) with a half batch that is a multiple of the group size. Without it each
    sample's logit depends on that sample alone. There is no `batch_stats` collection.
    """

    width: int = 200
    depth: int = 3
    pieces: int = 5
    num_classes: int = 0
    mbstd_group: int = 0
    init_std: float = 0.0  # as MLPGenerator's

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, update_stats: bool = False) -> jax.Array:
        """x: float [N, F] (F = 2, or 2m for packed samples); labels: int [N] or None.

        Returns logits float [N]. `update_stats` is accepted for the interface of
        `models.Discriminator` and unused: nothing here keeps statistics.
        """
        h = x
        for layer in range(self.depth):
            if self.mbstd_group > 0 and layer == self.depth - 1:
                h = minibatch_stddev(h[:, None, None, :], self.mbstd_group)[:, 0, 0, :]
            h = Maxout(self.width, self.pieces, self.init_std)(h)
        logits = nn.Dense(1, kernel_init=kernel_init(self.init_std))(h)[:, 0]
        if self.num_classes > 0:
            embedding = nn.Embed(self.num_classes, h.shape[-1],
                                 embedding_init=nn.initializers.normal(1.0 / math.sqrt(h.shape[-1])))
            logits = logits + jnp.sum(embedding(labels) * h, axis=-1)
        return logits
