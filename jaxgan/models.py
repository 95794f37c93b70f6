"""Flax Linen generator and discriminator: pure `init` / `apply` functions of (variables, inputs).

Images are float32 [N, H, W, C] in [-1, 1]; labels are int32 [N] in [0, num_classes) or None for an
unconditional model. The generator also takes label weights, float [N, num_classes] (a one-hot row
is that class; a blend of rows blends the styles). It keeps batch-norm statistics in the
`batch_stats` collection.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


def subpixel_conv_transpose(inputs: jax.Array, kernel: jax.Array) -> jax.Array:
    """`flax.linen.ConvTranspose(kernel_size=(4, 4), strides=(2, 2), padding="SAME")` without its cost.

    XLA:CPU runs the gradient of a strided transposed convolution about 15x slower than an ordinary
    convolution. Each output phase (row parity, column parity) of a 4x4 stride-2 transposed
    convolution only ever sees 2x2 of the kernel's taps, so it is four stride-1 2x2 convolutions on
    the input, interleaved (depth-to-space). Along one axis, with taps k0..k3:
        out[2i]     = k0 * x[i-1] + k2 * x[i]
        out[2i + 1] = k1 * x[i]   + k3 * x[i+1]

    Args:
      inputs: float [N, H, W, C_in].
      kernel: float [4, 4, C_in, C_out], laid out as `nn.ConvTranspose`'s kernel (no flip).
    Returns:
      float [N, 2H, 2W, C_out], equal to `lax.conv_transpose(inputs, kernel, (2, 2), "SAME")`.
    """
    # (taps used, (pad before, pad after)) for the even and the odd output phase of one axis.
    phases = (((0, 2), (1, 0)), ((1, 3), (0, 1)))
    rows = []
    for taps_y, pad_y in phases:
        cols = []
        for taps_x, pad_x in phases:
            phase_kernel = kernel[jnp.array(taps_y)][:, jnp.array(taps_x)]
            cols.append(lax.conv_general_dilated(inputs, phase_kernel, (1, 1), (pad_y, pad_x),
                                                 dimension_numbers=_NHWC))
        rows.append(jnp.stack(cols, axis=3))  # [N, H, W, 2 (column phase), C_out]
    n, h, w, _ = inputs.shape
    out = jnp.stack(rows, axis=2)  # [N, H, 2 (row phase), W, 2 (column phase), C_out]
    return out.reshape(n, 2 * h, 2 * w, kernel.shape[-1])


class UpConv(nn.Module):
    """Doubles the resolution: a 4x4 stride-2 transposed convolution (sub-pixel form) plus bias."""

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (4, 4, x.shape[-1], self.features))
        y = subpixel_conv_transpose(x, kernel)
        return y + self.param("bias", nn.initializers.zeros_init(), (self.features,)) if self.use_bias else y


def class_lookup(embed: nn.Embed, labels: jax.Array) -> jax.Array:
    """Rows of `embed`'s table: labels int [N] -> [N, F]; label weights float [N, K] -> their weighted sum.

    A one-hot row gives exactly the looked-up row (products with 1 and 0 are exact), so a blend of
    styles starts and ends at the pictures of its two classes.
    """
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return embed(labels)
    return labels @ embed.embedding


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose scale and offset are looked up per class (de Vries et al. 2017).

    With `num_classes == 0` it is plain batch norm with a learned scale and offset. Statistics are
    taken over the whole global batch even when it is sharded over devices: under `jit` the mean is
    one reduction over the global array, so results do not depend on the device count.
    """

    num_classes: int
    momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None, train: bool) -> jax.Array:
        features = x.shape[-1]
        conditional = self.num_classes > 0
        x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                         use_scale=not conditional, use_bias=not conditional)(x)
        if not conditional:
            return x
        gamma = class_lookup(nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros_init(),
                                      name="gamma"), labels)
        beta = class_lookup(nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros_init(),
                                     name="beta"), labels)
        return x * (1.0 + gamma[:, None, None, :]) + beta[:, None, None, :]


def num_upsamplings(image_size: int) -> int:
    """How many 2x upsamplings reach `image_size` from a 4x4..7x7 start (28 -> 2, 32 -> 3, 64 -> 4)."""
    n = 0
    while image_size % 2 == 0 and image_size // 2 >= 4:
        image_size //= 2
        n += 1
    if n == 0 or image_size > 7:
        raise ValueError(f"image size {image_size * 2 ** n} is not 4..7 times a power of two (e.g. 28, 32, 64)")
    return n


def minibatch_stddev(x: jax.Array, group_size: int, num_channels: int = 1) -> jax.Array:
    """Appends the minibatch standard deviation as features (Karras et al. 2018), [N, H, W, C] -> [N, H, W, C + F].

    The batch is split into groups of G consecutive samples, G the largest divisor of N that is at
    most `group_size`, and the channels into F = `num_channels` groups (F must divide C). Each sample gets, per
    channel group, the standard deviation over its sample group averaged over pixels and channels:
    D can see when a group of fakes lacks the variety of real images.

    Groups are consecutive samples (x.reshape(N // G, G, ...)), not NVIDIA's strided ones
    (x.reshape(G, N // G, ...)): jaxgan runs D on concat([real, fake]), and with a half batch that
    is a multiple of G consecutive groups never mix real with fake images, so each half gets the
    same statistics as if it were run alone. Strided groups would pair every real image with fakes.
    """
    n, h, w, c = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    y = x.reshape(n // g, g, h, w, num_channels, c // num_channels)
    std = jnp.sqrt(jnp.var(y, axis=1) + 1e-8)  # [N/G, H, W, F, C/F]
    std = jnp.mean(std, axis=(1, 2, 4))  # [N/G, F]
    std = jnp.broadcast_to(std[:, None, None, None, :], (n // g, g, h, w, num_channels))
    return jnp.concatenate([x, std.reshape(n, h, w, num_channels)], axis=-1)


class Generator(nn.Module):
    """DCGAN generator (Radford et al. 2016) with class-conditional batch norm.

    [z, embed(label)] -> Dense -> [start, start, width * 2^(n-1)] -> n transposed 4x4 stride-2
    convolutions, each halving the width, the last one producing the image channels -> tanh.
    """

    image_size: int = 28
    channels: int = 1
    num_classes: int = 10
    width: int = 64

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = True) -> jax.Array:
        """z: float [N, latent_dim]; labels: int [N], label weights float [N, num_classes] or None.

        Returns images float [N, S, S, C] in [-1, 1].
        """
        n = num_upsamplings(self.image_size)
        start = self.image_size >> n
        width = self.width * 2 ** (n - 1)
        if self.num_classes > 0:
            # The class enters twice: as an embedding beside z (Mirza & Osindero 2014) and through
            # every batch norm, so G is told the class from its first layer on.
            class_embedding = nn.Embed(self.num_classes, z.shape[-1], name="class_embedding")
            z = jnp.concatenate([z, class_lookup(class_embedding, labels)], -1)
        # No biases before batch norm: it would subtract them again.
        x = nn.Dense(start * start * width, use_bias=False)(z).reshape(z.shape[0], start, start, width)
        x = nn.relu(ConditionalBatchNorm(self.num_classes)(x, labels, train))
        for _ in range(n - 1):
            width //= 2
            x = UpConv(width, use_bias=False)(x)
            x = nn.relu(ConditionalBatchNorm(self.num_classes)(x, labels, train))
        return jnp.tanh(UpConv(self.channels)(x))


class Discriminator(nn.Module):
    """DCGAN discriminator with a projection head (Miyato & Koyama 2018) for class conditioning.

    4x4 stride-2 convolutions with leaky ReLU, doubling the width, down to a 4x4..7x7 map h, then
    logit = w . flatten(h) + embed(label) . sum_pool(h). With `spectral_norm` every layer's weight is divided by its
    largest singular value (Miyato et al. 2018), estimated by one power iteration per call with
    `update_stats=True`; the iteration vectors live in the `batch_stats` collection. There is no
    batch normalisation: with `mbstd_group` 0 (the default) each image's logit depends on that
    image alone, so real and fake images go through D in one call.

    With `mbstd_group` > 0 the minibatch standard deviation (`minibatch_stddev`, groups of
    `mbstd_group` consecutive images) is appended to h as one more channel after the last
    convolution (StyleGAN's place: at the lowest resolution, before the output layers), and both
    terms of the logit see it. Only linear layers follow it here, so it adds to each logit a
    multiple of its group's standard deviation (a class-dependent one with classes). The logits of
    a group then depend on each other: run D on concat([real, fake]) with a half batch that is a
    multiple of the group size.
    """

    num_classes: int = 10
    width: int = 64
    spectral_norm: bool = True
    mbstd_group: int = 0

    def _layer(self, layer: nn.Module):
        return nn.SpectralNorm(layer) if self.spectral_norm else layer

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None,
                 update_stats: bool = False) -> jax.Array:
        """images: float [N, H, W, C] in [-1, 1]; labels: int [N] or None. Returns logits float [N]."""

        def apply(layer, x):
            return layer(x, update_stats=update_stats) if self.spectral_norm else layer(x)

        x = images
        width = self.width
        for _ in range(num_upsamplings(images.shape[1])):
            conv = self._layer(nn.Conv(width, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1))))
            x = nn.leaky_relu(apply(conv, x), 0.2)
            width *= 2
        if self.mbstd_group > 0:
            x = minibatch_stddev(x, self.mbstd_group)
        logits = apply(self._layer(nn.Dense(1)), x.reshape(x.shape[0], -1))[:, 0]
        if self.num_classes > 0:
            # The class term sees spatially pooled features (as in SNGAN's projection D): a class
            # vector per pixel of the last map would let D memorise the few real images per class.
            pooled = jnp.sum(x, axis=(1, 2))
            embedding = nn.Embed(self.num_classes, pooled.shape[-1],
                                 embedding_init=nn.initializers.normal(1.0 / math.sqrt(pooled.shape[-1])))
            logits = logits + jnp.sum(apply(self._layer(embedding), labels) * pooled, axis=-1)
        return logits
