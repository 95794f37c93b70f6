"""ResNet generators and discriminators of SNGAN (Miyato et al. 2018) and BigGAN (Brock et al. 2019).

Same interface as `models.Generator` / `models.Discriminator`: G maps z float [N, latent_dim] and
labels (int [N], label weights float [N, num_classes], or None) to images float32 [N, S, S, C] in
[-1, 1]; D maps images and labels (int [N] or None) to logits float [N]. Both keep their
batch-norm statistics and spectral-norm power-iteration vectors in the `batch_stats` collection.

Sizes follow `models.num_upsamplings`: 28 (7x7 start, 2 blocks), 32 (4x4, 3 blocks), 64 (4x4, 4 blocks).
Channels (`_channels`): up to 32x32 every block has `width` channels, as the CIFAR-10 models of
both papers; from 64x64 on D doubles them with each halving of the resolution, from `width` to
width * 2^n, and G mirrors D, from width * 2^n at its start map down to `width` at full
resolution (with width 64, the channel counts of Mimicry's sngan_64, Lee & Town 2020). The hidden
convolution of a D block has the block's output width (BigGAN's "wide" blocks; SNGAN's has its
input width, the same wherever the width is constant).
"""

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.nn.initializers import Initializer

from jaxgan.models import ConditionalBatchNorm, class_lookup, minibatch_stddev, num_upsamplings

_GLOROT = nn.initializers.xavier_uniform()
# Miyato et al.'s code scales Glorot init by sqrt(2) inside G's residual branch (the ReLUs before
# each convolution halve the variance), so branch and shortcut start at comparable scales.
_GLOROT_RELU = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")
_ORTHOGONAL = nn.initializers.orthogonal()


def block_channels(n: int, width: int) -> list[int]:
    """Channels of D's n + 1 blocks for n halvings of the resolution; G's n + 1 maps are these reversed."""
    return [width if n <= 3 else width << i for i in range(n + 1)]


def _maybe_spectral_norm(layer: nn.Module, enabled: bool, update_stats: bool) -> Callable:
    """`layer`, with spectral norm if `enabled`: its weights divided by their largest singular value.

    The singular value is estimated by one power iteration per call; its vector (in `batch_stats`)
    is updated only when `update_stats`. Call from inside a compact method.
    """
    if not enabled:
        return layer
    normalized = nn.SpectralNorm(layer)
    return lambda x: normalized(x, update_stats=update_stats)


def _upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x upsampling: [N, H, W, C] -> [N, 2H, 2W, C]."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _downsample(x: jax.Array) -> jax.Array:
    """2x2 average pooling: [N, H, W, C] -> [N, H/2, W/2, C]."""
    return nn.avg_pool(x, (2, 2), (2, 2))


def _check_attention_resolution(resolution: int, block_resolutions: list[int]) -> None:
    """Raises ValueError unless `resolution` is 0 (no attention) or some block's output resolution."""
    if resolution and resolution not in block_resolutions:
        raise ValueError(f"attention_resolution {resolution} is not one of this model's block "
                         f"resolutions {block_resolutions} (0 turns attention off)")


class _SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019) in BigGAN's form: x + gamma * o(softmax(theta phi^T) g).

    theta, phi, g and o are spectrally normalised 1x1 convolutions; phi and g are max-pooled 2x2,
    so each of the H*W queries attends to H*W/4 keys. gamma starts at 0: the block starts as the
    identity and the network learns how much non-local evidence to mix in.
    """

    kernel_init: Initializer

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool) -> jax.Array:
        """x: float [N, H, W, C] -> float [N, H, W, C]."""
        n, h, w, c = x.shape
        keys, values = max(c // 8, 1), max(c // 2, 1)

        def conv(features, name):
            layer = nn.Conv(features, (1, 1), use_bias=False, kernel_init=self.kernel_init, name=name)
            return _maybe_spectral_norm(layer, True, update_stats)

        def pooled(y):  # SAME padding keeps the last row and column of odd maps such as 7x7
            return nn.max_pool(y, (2, 2), (2, 2), padding="SAME").reshape(n, -1, y.shape[-1])

        theta = conv(keys, "theta")(x).reshape(n, h * w, keys)
        phi = pooled(conv(keys, "phi")(x))
        g = pooled(conv(values, "g")(x))
        attention = jax.nn.softmax(jnp.einsum("nqc,nkc->nqk", theta, phi), axis=-1)
        o = conv(c, "o")(jnp.einsum("nqk,nkc->nqc", attention, g).reshape(n, h, w, values))
        return x + self.param("gamma", nn.initializers.zeros_init(), ()) * o


class _ProjectedBatchNorm(nn.Module):
    """BigGAN's conditional batch norm: x * (1 + gamma) + beta, gamma and beta linear in a condition.

    The condition is [z chunk, shared class embedding] (or the z chunk alone without classes); the
    two projections are spectrally normalised, with power iterations updated in training only.
    """

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array, train: bool) -> jax.Array:
        """x: float [N, H, W, C]; condition: float [N, D]. Returns float [N, H, W, C]."""
        features = x.shape[-1]
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, use_scale=False, use_bias=False)(x)

        def project(name):
            dense = nn.Dense(features, use_bias=False, kernel_init=_ORTHOGONAL, name=name)
            return _maybe_spectral_norm(dense, True, train)(condition)[:, None, None, :]

        return x * (1.0 + project("gamma")) + project("beta")


class _GBlock(nn.Module):
    """Pre-activation residual block doubling the resolution (Miyato et al. 2018, appendix).

    norm-ReLU-upsample-conv3x3-norm-ReLU-conv3x3, plus upsample-conv1x1 on the shortcut.
    """

    features: int
    norm: Callable[..., nn.Module]  # makes a batch norm called as norm(x, condition, train)
    kernel_init: Initializer
    shortcut_init: Initializer
    spectral_norm: bool

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array | None, train: bool) -> jax.Array:
        """x: float [N, H, W, C_in] -> float [N, 2H, 2W, features]."""

        def conv(size, name, init, use_bias=True):
            layer = nn.Conv(self.features, (size, size), use_bias=use_bias, kernel_init=init, name=name)
            return _maybe_spectral_norm(layer, self.spectral_norm, train)

        h = _upsample(nn.relu(self.norm(name="norm1")(x, condition, train)))
        h = conv(3, "conv1", self.kernel_init, use_bias=False)(h)  # batch norm follows: a bias would cancel
        h = conv(3, "conv2", self.kernel_init)(nn.relu(self.norm(name="norm2")(h, condition, train)))
        # A 1x1 convolution commutes with nearest upsampling: convolve first, on 4x fewer pixels.
        return h + _upsample(conv(1, "shortcut", self.shortcut_init)(x))


class _DBlock(nn.Module):
    """Residual block of D: (ReLU)-conv3x3-ReLU-conv3x3-(avgpool), shortcut (avgpool)-conv1x1.

    The first block has no pre-activation (a ReLU on the images would drop their negative half):
    SNGAN's "optimized" block. The shortcut is the identity where shapes already agree.
    """

    features: int
    downsample: bool
    preactivation: bool
    kernel_init: Initializer

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool) -> jax.Array:
        """x: float [N, H, W, C_in] -> float [N, H/2, W/2, features] (H, W if not `downsample`)."""

        def conv(size, name):
            layer = nn.Conv(self.features, (size, size), kernel_init=self.kernel_init, name=name)
            return _maybe_spectral_norm(layer, True, update_stats)

        h = conv(3, "conv1")(nn.relu(x) if self.preactivation else x)
        h = conv(3, "conv2")(nn.relu(h))
        shortcut = x
        if self.downsample:
            # Average pooling commutes with a 1x1 convolution: pool first, convolve 4x fewer pixels.
            h, shortcut = _downsample(h), _downsample(shortcut)
        if self.downsample or shortcut.shape[-1] != self.features:
            shortcut = conv(1, "shortcut")(shortcut)
        return h + shortcut


def _to_image(x: jax.Array, channels: int, spectral_norm: bool, kernel_init: Initializer, train: bool) -> jax.Array:
    """G's output layer: batch norm (never class-conditional, as in both papers) - ReLU - conv3x3 - tanh."""
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name="output_norm")(x))
    conv = nn.Conv(channels, (3, 3), kernel_init=kernel_init, name="output_conv")
    return jnp.tanh(_maybe_spectral_norm(conv, spectral_norm, train)(x))


class SNGANGenerator(nn.Module):
    """SNGAN's ResNet generator (Miyato et al. 2018, appendix), class-conditional as cGAN-PD.

    Dense(z) -> [start, start, ch] -> n residual blocks, each doubling the resolution -> batch norm
    -> ReLU -> conv3x3 -> tanh. The class enters through every block's batch norm (class-conditional
    scale and offset; Miyato & Koyama 2018), not beside z. Channels as in the module docstring
    (Miyato et al.'s CIFAR-10 G: image_size 32, width 256).
    """

    image_size: int = 32
    channels: int = 3
    num_classes: int = 10
    width: int = 256

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = True) -> jax.Array:
        """z: float [N, latent_dim]; labels: int [N], label weights float [N, num_classes] or None.

        Returns images float32 [N, S, S, C] in [-1, 1].
        """
        n = num_upsamplings(self.image_size)
        start = self.image_size >> n
        channels = block_channels(n, self.width)[::-1]
        x = nn.Dense(start * start * channels[0], kernel_init=_GLOROT, name="linear")(z)
        x = x.reshape(z.shape[0], start, start, channels[0])
        norm = functools.partial(ConditionalBatchNorm, self.num_classes)
        for i, features in enumerate(channels[1:]):
            x = _GBlock(features, norm, _GLOROT_RELU, _GLOROT, spectral_norm=False, name=f"block{i}")(x, labels, train)
        return _to_image(x, self.channels, False, _GLOROT, train)


class BigGANGenerator(nn.Module):
    """BigGAN's generator (Brock et al. 2019) at small sizes, as BigGAN-PyTorch's 32x32 CIFAR model.

    z is split into n + 1 equal chunks (hierarchical latent): the first feeds the Dense layer to
    the start map, chunk i + 1 conditions block i, whose batch norms take their scale and offset
    from a linear projection of [chunk, shared class embedding (`shared_dim`)]. Every layer but the
    shared embedding is spectrally normalised (its power iterations advance only with train=True),
    weights start orthogonal (Saxe et al. 2014), and `attention_resolution` (0 = none) puts a SAGAN
    self-attention block after the residual block with that output resolution. Channels as in the
    module docstring (BigGAN-PyTorch's CIFAR-10 G: image_size 32, width 256).
    """

    image_size: int = 32
    channels: int = 3
    num_classes: int = 10
    width: int = 256
    shared_dim: int = 128
    attention_resolution: int = 0

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = True) -> jax.Array:
        """z: float [N, latent_dim], latent_dim a multiple of n + 1; labels: int [N], float [N, num_classes] or None.

        Returns images float32 [N, S, S, C] in [-1, 1].
        """
        n = num_upsamplings(self.image_size)
        start = self.image_size >> n
        _check_attention_resolution(self.attention_resolution, [start << (i + 1) for i in range(n)])
        if z.shape[-1] % (n + 1):
            raise ValueError(f"BigGANGenerator at image_size {self.image_size} splits z into {n + 1} equal chunks "
                             f"(one for the input layer, one per block): latent_dim {z.shape[-1]} must be a "
                             f"multiple of {n + 1}, e.g. {(z.shape[-1] // (n + 1) + 1) * (n + 1)}")
        chunks = jnp.split(z, n + 1, axis=-1)
        conditions = chunks[1:]
        if self.num_classes > 0:
            shared = class_lookup(nn.Embed(self.num_classes, self.shared_dim, embedding_init=_ORTHOGONAL,
                                           name="shared_embedding"), labels)
            conditions = [jnp.concatenate([chunk, shared], axis=-1) for chunk in conditions]
        channels = block_channels(n, self.width)[::-1]
        linear = nn.Dense(start * start * channels[0], kernel_init=_ORTHOGONAL, name="linear")
        x = _maybe_spectral_norm(linear, True, train)(chunks[0])
        x = x.reshape(z.shape[0], start, start, channels[0])
        for i, (features, condition) in enumerate(zip(channels[1:], conditions)):
            x = _GBlock(features, _ProjectedBatchNorm, _ORTHOGONAL, _ORTHOGONAL, spectral_norm=True,
                        name=f"block{i}")(x, condition, train)
            if x.shape[1] == self.attention_resolution:
                x = _SelfAttention(_ORTHOGONAL, name="attention")(x, update_stats=train)
        return _to_image(x, self.channels, True, _ORTHOGONAL, train)


class SNGANDiscriminator(nn.Module):
    """SNGAN's ResNet discriminator with a projection head (Miyato et al. 2018; Miyato & Koyama 2018).

    Residual blocks halve the resolution down to the 4x4..7x7 map (num_upsamplings(H) halvings,
    mirroring G; Miyato et al.'s 32x32 D stops halving at 8x8), one more block keeps it, then
    h = sum over positions of ReLU(x) and logit = w . h + embed(label) . h. Every convolution, w
    and the class embedding are spectrally normalised, with one power iteration per call with
    `update_stats=True` (vectors in `batch_stats`). No batch norm: with `mbstd_group` 0 (the
    default) each image's logit depends on that image alone. Channels as in the module docstring
    (Miyato et al.'s CIFAR-10 D: width 128). `kernel_init` and `attention_resolution` are what
    BigGANDiscriminator changes.

    With `mbstd_group` > 0 the minibatch standard deviation (`minibatch_stddev`, groups of
    `mbstd_group` consecutive images) is appended as one more channel to the 4x4..7x7 map that
    the last halving block (and its attention, if at that resolution) outputs, before the block
    that keeps the resolution: as in StyleGAN2's D, where it precedes the last 3x3 convolution,
    that block's convolutions combine it with the image's own features. Its shortcut becomes a
    1x1 convolution (C + 1 channels in, C out). The logits of a group then depend on each other:
    run D on concat([real, fake]) with a half batch that is a multiple of the group size.
    """

    num_classes: int = 10
    width: int = 128
    kernel_init: Initializer = _GLOROT
    attention_resolution: int = 0
    mbstd_group: int = 0

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None,
                 update_stats: bool = False) -> jax.Array:
        """images: float [N, H, W, C] in [-1, 1]; labels: int [N] or None. Returns logits float [N]."""
        n = num_upsamplings(images.shape[1])
        _check_attention_resolution(self.attention_resolution, [images.shape[1] >> (i + 1) for i in range(n)])
        x = images
        for i, features in enumerate(block_channels(n, self.width)):
            if i == n and self.mbstd_group > 0:
                x = minibatch_stddev(x, self.mbstd_group)
            x = _DBlock(features, downsample=i < n, preactivation=i > 0, kernel_init=self.kernel_init,
                        name=f"block{i}")(x, update_stats)
            if i < n and x.shape[1] == self.attention_resolution:
                x = _SelfAttention(self.kernel_init, name="attention")(x, update_stats)
        pooled = jnp.sum(nn.relu(x), axis=(1, 2))
        linear = nn.Dense(1, kernel_init=self.kernel_init, name="linear")
        logits = _maybe_spectral_norm(linear, True, update_stats)(pooled)[:, 0]
        if self.num_classes > 0:
            embedding = nn.Embed(self.num_classes, pooled.shape[-1], embedding_init=self.kernel_init,
                                 name="class_embedding")
            logits = logits + jnp.sum(_maybe_spectral_norm(embedding, True, update_stats)(labels) * pooled, axis=-1)
        return logits


class BigGANDiscriminator(SNGANDiscriminator):
    """BigGAN's discriminator (Brock et al. 2019) at small sizes: SNGAN's, with orthogonal init.

    `attention_resolution` (0 = none; e.g. 16 for 32x32 images) puts a SAGAN self-attention block
    after the residual block that halves the resolution to it. Width 256 is BigGAN-PyTorch's CIFAR-10 D.
    """

    width: int = 256
    kernel_init: Initializer = _ORTHOGONAL
