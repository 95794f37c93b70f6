"""StyleGAN2 generator and residual discriminator (Karras et al. 2020), with the interface of `models`.

Drop-in for `models.Generator` / `models.Discriminator` at 28..256 px: the same constructor fields
(plus a few of their own) and the same `__call__` signatures. Differences an integrator must know:

- G's images are the sum of its toRGB outputs with no tanh (StyleGAN2 has none): float32,
  approximately in [-1, 1] once trained but not clipped (at initialisation their std is about
  1.5). Consumers clip when converting to uint8.
- G draws per-sample noise from the rng stream "noise" when it is given one
  (`apply(..., rngs={"noise": key})`, as in training); without it every layer adds one fixed noise
  map shared by all samples, so sampling is deterministic and an image does not depend on the rest
  of its batch. Neither network has a `batch_stats` collection; `train` and `update_stats` are
  accepted for the interface and unused.
- D's minibatch standard deviation couples the logits of each group of `mbstd_group` consecutive
  images (see `models.minibatch_stddev`): run D on concat([real, fake]) with a half batch that is a
  multiple of the group size.

Every weight is drawn from N(0, 1) and scaled at run time by its He constant 1/sqrt(fan_in)
("equalized learning rate", Karras et al. 2018), so Adam's per-parameter steps move every layer at
the same relative speed (the mapping network's are 100x slower, see `_Dense`). Simplified against
NVIDIA's stylegan2-ada-pytorch: resampling is bilinear (the [1, 3, 3, 1] filter) or 2x2 average
pooling followed by a stride-1 convolution, instead of a transposed or strided convolution with an
FIR blur; no style mixing, no W average or truncation, no path length regularisation, no mixed
precision or activation clamping.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.models import class_lookup, minibatch_stddev, num_upsamplings

_NHWC = ("NHWC", "HWIO", "NHWC")


def upsample_2x(x: jax.Array) -> jax.Array:
    """Bilinear 2x upsampling, float [N, H, W, C] -> [N, 2H, 2W, C].

    This is the separable [1, 3, 3, 1] / 4 filter StyleGAN2 upsamples with (out[2i] = 3/4 x[i] +
    1/4 x[i-1], out[2i+1] = 3/4 x[i] + 1/4 x[i+1]), but with the edge pixels repeated rather than
    zero-padded, so a constant image stays constant. Equal to `jax.image.resize(..., "bilinear")`;
    written with slices because their gradients are cheap everywhere.
    """
    for axis in (1, 2):
        size = x.shape[axis]
        pad = [(0, 0)] * 4
        pad[axis] = (1, 1)
        padded = jnp.pad(x, pad, mode="edge")
        even = 0.75 * x + 0.25 * lax.slice_in_dim(padded, 0, size, axis=axis)
        odd = 0.75 * x + 0.25 * lax.slice_in_dim(padded, 2, size + 2, axis=axis)
        shape = list(x.shape)
        shape[axis] *= 2
        x = jnp.stack([even, odd], axis=axis + 1).reshape(shape)
    return x


def downsample_2x(x: jax.Array) -> jax.Array:
    """2x2 average pooling, float [N, H, W, C] with even H, W -> [N, H/2, W/2, C]."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def modulated_conv(x: jax.Array, kernel: jax.Array, styles: jax.Array, demodulate: bool = True,
                   up: bool = False) -> jax.Array:
    """StyleGAN2's modulated convolution: sample n is convolved with kernel * styles[n] (per input channel).

    With `demodulate`, each sample's modulated kernel is divided, per output channel, by its norm
    sqrt(sum over taps and inputs of w^2 + 1e-8), which restores unit output variance for unit
    input variance (Karras et al. 2020, eq. 3) without AdaIN's normalisation of the activations.
    Computed in the "scale the activations" form of NVIDIA's code: styles multiply the input and the
    demodulation factors the output of one ordinary convolution with the shared kernel. It equals
    the grouped convolution with per-sample kernels but keeps the batch a batch, so XLA uses its
    ordinary (and ordinarily differentiated) convolution. The norm of the modulated kernel is
    styles^2 @ sum_taps(kernel^2), never forming per-sample kernels.

    Args:
      x: float [N, H, W, C_in].
      kernel: float [k, k, C_in, C_out], k odd ("SAME" padding).
      styles: float [N, C_in].
      demodulate: divide by the modulated kernel's norm.
      up: first double the resolution with `upsample_2x`. StyleGAN2 uses a stride-2 transposed
        convolution followed by a [1, 3, 3, 1] blur; bilinear upsampling then a stride-1
        convolution applies the same low-pass filter, is simpler, and avoids transposed
        convolutions, whose gradients XLA:CPU runs very slowly. It costs 4x the multiplies of the
        transposed form in this layer.
    Returns:
      float [N, H', W', C_out], H' = 2H if `up` else H.
    """
    # The styles scale channels, which commutes with upsampling: scale the smaller map.
    x = x * styles[:, None, None, :]
    if up:
        x = upsample_2x(x)
    pad = kernel.shape[0] // 2
    y = lax.conv_general_dilated(x, kernel, (1, 1), ((pad, pad), (pad, pad)), dimension_numbers=_NHWC)
    if demodulate:
        norms = jnp.square(styles) @ jnp.sum(jnp.square(kernel), axis=(0, 1)) + 1e-8  # [N, C_out]
        y = y * lax.rsqrt(norms)[:, None, None, :]
    return y


def _lrelu(x: jax.Array) -> jax.Array:
    """Leaky ReLU 0.2 times sqrt(2), which keeps unit variance (StyleGAN's `def_gain`)."""
    return nn.leaky_relu(x, 0.2) * math.sqrt(2.0)


class _Dense(nn.Module):
    """Equalized-learning-rate dense layer.

    With `lr_mul` < 1 the parameters are stored 1/lr_mul times larger and scaled back by lr_mul at
    run time, so the same optimiser step moves the layer lr_mul times as far (StyleGAN's mapping
    network learns 100x slower than the rest). `bias_init` is the effective initial bias.
    """

    features: int
    lr_mul: float = 1.0
    bias_init: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.normal(1.0 / self.lr_mul), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.constant(self.bias_init / self.lr_mul), (self.features,))
        return x @ (kernel * (self.lr_mul / math.sqrt(x.shape[-1]))) + bias * self.lr_mul


class _Conv(nn.Module):
    """Equalized-learning-rate k x k convolution, stride 1, "SAME" padding."""

    features: int
    kernel_size: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, x.shape[-1], self.features))
        y = lax.conv_general_dilated(x, kernel / math.sqrt(k * k * x.shape[-1]), (1, 1), "SAME",
                                     dimension_numbers=_NHWC)
        return y + self.param("bias", nn.initializers.zeros_init(), (self.features,)) if self.use_bias else y


class _SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution -> noise -> bias -> leaky ReLU, styled by w."""

    features: int
    up: bool
    index: int  # the layer's number in G: the seed of its fixed noise map

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        # Styles start at 1 (bias_init) so the initial modulation is the identity.
        styles = _Dense(x.shape[-1], bias_init=1.0, name="affine")(w)
        kernel = self.param("kernel", nn.initializers.normal(1.0), (3, 3, x.shape[-1], self.features))
        x = modulated_conv(x, kernel, styles, demodulate=True, up=self.up)
        n, h, wd, _ = x.shape
        if self.has_rng("noise"):
            noise = jax.random.normal(self.make_rng("noise"), (n, h, wd, 1))
        else:
            # Drawn by NumPy while tracing, so the program holds a constant rather than a threefry
            # computation that every sampling program would compile.
            noise = np.random.default_rng(self.index).standard_normal((1, h, wd, 1), dtype=np.float32)
        # Zero strength at first: G learns how much stochastic detail each resolution gets.
        x = x + noise * self.param("noise_strength", nn.initializers.zeros_init(), ())
        return _lrelu(x + self.param("bias", nn.initializers.zeros_init(), (self.features,)))


class _ToRGB(nn.Module):
    """Modulated 1x1 convolution to image channels, not demodulated (its output is the image)."""

    channels: int

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        # Without demodulation the He constant must be applied; it goes on the styles, as in NVIDIA's.
        styles = _Dense(x.shape[-1], bias_init=1.0, name="affine")(w) / math.sqrt(x.shape[-1])
        kernel = self.param("kernel", nn.initializers.normal(1.0), (1, 1, x.shape[-1], self.channels))
        y = modulated_conv(x, kernel, styles, demodulate=False)
        return y + self.param("bias", nn.initializers.zeros_init(), (self.channels,))


def _channels(width: int, max_width: int, image_size: int, resolution: int) -> int:
    """Feature maps at `resolution`: `width` at the image resolution, doubling per halving, at most `max_width`."""
    return min(max_width, width * (image_size // resolution))


class StyleGAN2Generator(nn.Module):
    """StyleGAN2 generator (Karras et al. 2020), config E/F's "skip" architecture.

    Mapping: [pixel_norm(z), pixel_norm(embed(label))] -> `mapping_layers` equalized dense layers
    (leaky ReLU, learning rate x 0.01) -> w [N, w_dim]; `w_dim` 0 means z's own width. Synthesis: a
    learned constant at the 4x4..7x7 start resolution, then per resolution two modulated 3x3
    convolutions (the first upsampling, except at the start), each followed by per-pixel noise,
    bias and leaky ReLU, and a toRGB layer whose output is added to the bilinearly upsampled image
    so far. Every layer is styled by the same w. Channels at resolution r are
    min(max_width, width * image_size / r), like NVIDIA's min(channel_base / r, channel_max).
    """

    image_size: int = 28
    channels: int = 1
    num_classes: int = 10
    width: int = 64
    mapping_layers: int = 8
    w_dim: int = 0
    max_width: int = 512

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = True) -> jax.Array:
        """z: float [N, latent_dim]; labels: int [N], label weights float [N, num_classes] or None.

        Returns images float32 [N, S, S, C], approximately in [-1, 1] (not clipped; consumers clip
        when converting to uint8). `train` is unused: the noise follows the "noise" rng stream.
        """
        if self.mapping_layers < 1:
            raise ValueError(f"mapping_layers must be at least 1, got {self.mapping_layers}")
        w_dim = self.w_dim or z.shape[-1]

        def pixel_norm(v):
            return v * lax.rsqrt(jnp.mean(jnp.square(v), axis=-1, keepdims=True) + 1e-8)

        w = pixel_norm(z.astype(jnp.float32))
        if self.num_classes > 0:
            # An embedding row is the FC layer NVIDIA applies to a one-hot label; class_lookup makes
            # one-hot weights give the same row bitwise.
            embedding = nn.Embed(self.num_classes, w_dim, embedding_init=nn.initializers.normal(1.0),
                                 name="class_embedding")
            w = jnp.concatenate([w, pixel_norm(class_lookup(embedding, labels))], axis=-1)
        for i in range(self.mapping_layers):
            w = _lrelu(_Dense(w_dim, lr_mul=0.01, name=f"mapping_{i}")(w))

        n = num_upsamplings(self.image_size)
        resolution = self.image_size >> n
        features = _channels(self.width, self.max_width, self.image_size, resolution)
        const = self.param("const", nn.initializers.normal(1.0), (1, resolution, resolution, features))
        x = jnp.broadcast_to(const, (z.shape[0],) + const.shape[1:])
        x = _SynthesisLayer(features, up=False, index=0, name=f"b{resolution}_conv1")(x, w)
        image = _ToRGB(self.channels, name=f"b{resolution}_torgb")(x, w)
        for i in range(n):
            resolution *= 2
            features = _channels(self.width, self.max_width, self.image_size, resolution)
            x = _SynthesisLayer(features, up=True, index=2 * i + 1, name=f"b{resolution}_conv0")(x, w)
            x = _SynthesisLayer(features, up=False, index=2 * i + 2, name=f"b{resolution}_conv1")(x, w)
            image = upsample_2x(image) + _ToRGB(self.channels, name=f"b{resolution}_torgb")(x, w)
        return image


class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2's residual discriminator (Karras et al. 2020, config E/F), with a projection head.

    fromRGB (1x1) -> per resolution a residual block [3x3 conv, 2x2 average pool, 3x3 conv] plus a
    pooled 1x1 shortcut, summed times 1/sqrt(2) to keep unit variance -> at the 4x4..7x7 map the
    minibatch standard deviation, a 3x3 conv, a dense layer and the output layer. Channels as in
    `StyleGAN2Generator` (min(max_width, width * image_size / r)). Conditioning as in
    stylegan2-ada: the output layer gives a vector of cmap_dim = last channel count, and the logit
    is its dot product with the label's embedding over sqrt(cmap_dim) (a projection discriminator,
    Miyato & Koyama 2018; NVIDIA maps the label through an MLP, here it is the table alone).
    """

    num_classes: int = 10
    width: int = 64
    max_width: int = 512
    mbstd_group: int = 4
    mbstd_channels: int = 1

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None,
                 update_stats: bool = False) -> jax.Array:
        """images: float [N, H, W, C] in [-1, 1]; labels: int [N] or None. Returns logits float [N].

        `update_stats` is unused (no spectral norm here), kept for `models.Discriminator`'s interface.
        """
        size = images.shape[1]

        def channels(resolution):
            return _channels(self.width, self.max_width, size, resolution)

        x = _lrelu(_Conv(channels(size), 1, name="fromrgb")(images))
        resolution = size
        for _ in range(num_upsamplings(size)):
            out = channels(resolution // 2)
            shortcut = _Conv(out, 1, use_bias=False, name=f"b{resolution}_skip")(downsample_2x(x))
            x = _lrelu(_Conv(channels(resolution), 3, name=f"b{resolution}_conv0")(x))
            x = _lrelu(_Conv(out, 3, name=f"b{resolution}_conv1")(downsample_2x(x)))
            x = (x + shortcut) * math.sqrt(0.5)
            resolution //= 2

        features = x.shape[-1]
        if self.mbstd_channels > 0:
            x = minibatch_stddev(x, self.mbstd_group, self.mbstd_channels)
        x = _lrelu(_Conv(features, 3, name="epilogue_conv")(x))
        x = _lrelu(_Dense(features, name="epilogue_fc")(x.reshape(x.shape[0], -1)))
        if self.num_classes == 0:
            return _Dense(1, name="out")(x)[:, 0]
        x = _Dense(features, name="out")(x)
        embedding = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.normal(1.0),
                             name="class_embedding")
        return jnp.sum(x * class_lookup(embedding, labels), axis=-1) / math.sqrt(features)
