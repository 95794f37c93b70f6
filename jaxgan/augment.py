"""Differentiable augmentation of the images D sees, real and fake alike, and ADA's strength controller.

The ops are DiffAugment's (Zhao et al. 2020), written as in its reference code, which also works on
images in [-1, 1]. Each op is applied to each sample with a probability p: p = 1 is DiffAugment; a
p < 1 set by `ada_update` is the adaptive strength of ADA (Karras et al. 2020a). Augment the images
of both D's and G's losses: every op is differentiable in the images, and augmenting only the reals
teaches G to produce augmented-looking images (Zhao et al. 2020, sec. 3).

Images are float [N, H, W, C] in [-1, 1] (the ops may take values outside that range).
"""

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

# The op names a policy may use, in the order DiffAugment's papers list them.
OPS = ("color", "translation", "cutout")

# ADA's reference constants (stylegan2-ada-pytorch: train.py's ada_target, training_loop.py's
# ada_interval and ada_kimg): the target E[sign(D(x_real))], the number of D steps between updates
# of p, and the number of real images over which p may move by 1.
ADA_TARGET = 0.6
ADA_INTERVAL = 4
ADA_ADJUST_IMAGES = 500_000


def validate_policy(policy: Sequence[str]) -> tuple[str, ...]:
    """Returns `policy` as a tuple (hashable, for a static jit argument), or raises ValueError naming the bad ops."""
    if isinstance(policy, str):
        raise ValueError(f"augmentation policy {policy!r} must be a sequence of op names such as "
                         f"{OPS!r}, not one string")
    unknown = [op for op in policy if op not in OPS]
    if unknown:
        raise ValueError(f"unknown augmentation op(s) {', '.join(map(repr, unknown))}: "
                         f"use any of {', '.join(OPS)}")
    return tuple(policy)


def _as_factor(draws: jax.Array, images: jax.Array) -> jax.Array:
    """float [N] -> [N, 1, 1, 1] in the images' dtype, to broadcast over one sample's pixels."""
    return draws.astype(images.dtype)[:, None, None, None]


def _uniform_int(draws: jax.Array, low: int, high: int) -> jax.Array:
    """Integers uniform in [low, high) from U[0, 1) draws (the min guards against float rounding up to high)."""
    return low + jnp.minimum(jnp.floor(draws * (high - low)).astype(jnp.int32), high - low - 1)


def _color(images: jax.Array, draws: jax.Array) -> jax.Array:
    """Brightness + U(-0.5, 0.5); saturation x U(0, 2) around each pixel's channel mean; contrast x U(0.5, 1.5)
    around each image's mean; in this order, from draws[0], draws[1], draws[2] (U[0, 1), [N] each)."""
    x = images + (_as_factor(draws[0], images) - 0.5)
    mean = jnp.mean(x, axis=3, keepdims=True)
    x = (x - mean) * (_as_factor(draws[1], images) * 2.0) + mean
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (_as_factor(draws[2], images) + 0.5) + mean


def _translation(images: jax.Array, draws: jax.Array) -> jax.Array:
    """out[i, j] = in[i + dy, j + dx], zero outside; dy, dx integers uniform in [-size // 8, size // 8] per sample."""
    _, h, w, c = images.shape
    max_dy, max_dx = h // 8, w // 8
    dy = _uniform_int(draws[0], -max_dy, max_dy + 1)
    dx = _uniform_int(draws[1], -max_dx, max_dx + 1)
    # Padding by the largest shift makes every window in range, so the zeros come from the padding.
    padded = jnp.pad(images, ((0, 0), (max_dy, max_dy), (max_dx, max_dx), (0, 0)))
    return jax.vmap(lambda image, top, left: lax.dynamic_slice(image, (top, left, 0), (h, w, c)))(
        padded, dy + max_dy, dx + max_dx)


def _cutout(images: jax.Array, draws: jax.Array) -> jax.Array:
    """Zeroes an (H // 2) x (W // 2) rectangle per sample, clipped at the borders.

    The centre is drawn as in the reference: uniform in [0, size + 1 - cut % 2) along each axis, so
    the rectangle may hang over any border.
    """
    _, h, w, _ = images.shape
    cut_h, cut_w = h // 2, w // 2
    top = _uniform_int(draws[0], 0, h + 1 - cut_h % 2)[:, None] - cut_h // 2
    left = _uniform_int(draws[1], 0, w + 1 - cut_w % 2)[:, None] - cut_w // 2
    rows, cols = jnp.arange(h), jnp.arange(w)
    in_rows = (rows >= top) & (rows < top + cut_h)  # [N, H]
    in_cols = (cols >= left) & (cols < left + cut_w)  # [N, W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return images * keep[..., None].astype(images.dtype)


# name -> op(images, draws U[0, 1) float32 [3, N]) -> images; an op reads the rows it needs.
_OP_FUNCTIONS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diffaugment(images: jax.Array, key: jax.Array, policy: Sequence[str],
                probability: float | jax.Array = 1.0) -> jax.Array:
    """Applies the ops of `policy` in order, each to each sample independently with `probability`.

    A sample an op does not pick keeps its pixels exactly (so probability 0 is the identity, bit for
    bit). Draws are per sample, so one call on reals and fakes concatenated is as good as two calls.
    Jit with `policy` static (`validate_policy` makes it a tuple); `probability` may be traced.

    Args:
      images: float [N, H, W, C] in [-1, 1].
      key: PRNG key; the result is a function of (images, key, policy, probability).
      policy: op names from `OPS`, e.g. ("color", "translation", "cutout") as in DiffAugment.
      probability: float scalar in [0, 1], the chance that an op is applied to a sample.
    Returns:
      float [N, H, W, C], differentiable w.r.t. `images`.
    """
    policy = validate_policy(policy)
    # All random numbers in one draw: each separate draw adds its own copy of the generator to the
    # compiled program, which makes compiling several times slower. Row 0 picks samples, rows 1-3 are the op's.
    draws = jax.random.uniform(key, (len(policy), 4, images.shape[0]))
    for op, op_draws in zip(policy, draws):
        picked = (op_draws[0] < probability)[:, None, None, None]
        images = jnp.where(picked, _OP_FUNCTIONS[op](images, op_draws[1:]), images)
    return images


def ada_update(p: float | jax.Array, real_logits_sign_mean: float | jax.Array,
               images_seen_per_update: int | jax.Array, target: float = ADA_TARGET,
               adjust_images: int = ADA_ADJUST_IMAGES) -> jax.Array:
    """ADA's controller: p + sign(r_t - target) * images_seen_per_update / adjust_images, clipped to [0, 1].

    r_t = E[sign(D(x_real))] over the real images seen since the last update (Karras et al. 2020a,
    sec. 3): near 1 when D is overfitting the reals, so p rises; below the target it falls. The
    reference updates every ADA_INTERVAL D steps with images_seen_per_update = batch size x
    ADA_INTERVAL, and clamps p only at 0; the clip at 1 keeps p a probability and stops it winding up.

    Args:
      p: float scalar, the current probability.
      real_logits_sign_mean: float scalar in [-1, 1], mean of sign(D(augmented real images)).
      images_seen_per_update: real images D saw since the last update.
      target: the r_t that p settles at.
      adjust_images: real images over which p may move by 1 (ada_kimg = 500 in the reference).
    Returns:
      float scalar in [0, 1], the new p.
    """
    adjust = jnp.sign(real_logits_sign_mean - target) * images_seen_per_update / adjust_images
    return jnp.clip(p + adjust, 0.0, 1.0)
