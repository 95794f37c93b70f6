"""Training: the state pytree, ONE jit-compiled update step, and the loop around it.

Read top to bottom: `build_models` and `build_optimizers` turn a config into the static parts,
`init_state` makes the whole TrainState, `make_step` is the GAN update (D step, G step, EMA of G),
and `train_and_evaluate` runs it with logging, sample grids and Orbax checkpoints in WORKDIR.
"""

import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding, PartitionSpec

from jaxgan import augment, checkpoint, data, losses, mixtures, mlp, models, resnet, sampling, stylegan2
from jaxgan.errors import UserError

# Config keys that may change when a run is resumed: they do not alter the computation.
RESUMABLE_KEYS = ("steps", "log_every", "checkpoint_every", "keep_checkpoints", "sample_every",
                  "eval_every", "data.data_dir", "data.cache_mb", "data.workers", "data.prefetch")


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly: checkpointed whole.

    The data position is `step` itself (see `jaxgan.data`) and the RNG is `fold_in(key(seed), step)`,
    so neither needs a field of its own.
    """

    step: jax.Array  # int32 [], generator updates done
    g_params: Any
    g_batch_stats: Any  # running batch-norm statistics of G
    d_params: Any
    d_batch_stats: Any  # spectral-norm power-iteration vectors of D (empty without spectral norm)
    g_opt_state: Any
    d_opt_state: Any
    ema_params: Any  # exponential moving average of g_params, what sample grids and sample.py use
    augment_p: jax.Array  # float32 [] in [0, 1], the augmentation strength (ADA's p; 1 for plain DiffAugment)


# config.model.name -> (generator class, discriminator class), all with the interface of models.py:
# G(z, labels, train) -> images, D(images, labels, update_stats) -> logits.
MODELS = {
    "dcgan": (models.Generator, models.Discriminator),
    "sngan": (resnet.SNGANGenerator, resnet.SNGANDiscriminator),
    "biggan": (resnet.BigGANGenerator, resnet.BigGANDiscriminator),
    "stylegan2": (stylegan2.StyleGAN2Generator, stylegan2.StyleGAN2Discriminator),
    "mlp": (mlp.MLPGenerator, mlp.MLPDiscriminator),  # for 2-D samples (the mixtures), not images
}
# Generators that draw per-pixel noise from the "noise" rng stream while training.
NOISE_INPUT_MODELS = ("stylegan2",)


def model_classes(config: ml_collections.ConfigDict) -> tuple[type[nn.Module], type[nn.Module]]:
    """(generator class, discriminator class) of `config.model.name`; a UserError naming the choices."""
    if config.model.name not in MODELS:
        raise UserError(f"unknown model '{config.model.name}': set --config.model.name to one of {', '.join(MODELS)}")
    return MODELS[config.model.name]


def misfit_model(model_name: str, samples: str) -> UserError:
    """The error for `--config.model.name` `model_name` on data whose `samples` ("(2,)", "image") it cannot take."""
    return UserError(f"--config.model.name={model_name} does not fit the data's {samples} samples; use mlp for "
                     f"the 2-D mixtures (ring8, grid25) and dcgan, sngan, biggan or stylegan2 for images")


def build_models(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
                 num_classes: int) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator for `config.model` and a dataset of `image_shape` images
    (H, W, C), or of 2-D samples (2,) for the "mlp" model."""
    m = config.model
    generator_class, discriminator_class = model_classes(config)
    if (m.name == "mlp") != (len(image_shape) == 1):
        raise misfit_model(m.name, str(image_shape))
    if m.d_pack > 1 and num_classes:
        raise UserError(f"--config.model.d_pack={m.d_pack} packs unconditional samples only (PacGAN); "
                        f"set --config.data.label_key='' or --config.model.d_pack=1")
    if m.name == "mlp":
        return (generator_class(out_dim=image_shape[0], width=m.g_width, num_classes=num_classes,
                                init_std=m.mlp_init_std),
                discriminator_class(width=m.d_width, num_classes=num_classes, mbstd_group=m.d_mbstd_group,
                                    init_std=m.mlp_init_std))
    height, width, channels = image_shape
    if height != width:
        raise UserError(f"images are {height}x{width}; jaxgan's models need square images")
    try:
        models.num_upsamplings(height)
    except ValueError as e:
        raise UserError(f"{e}; pick a dataset or image size such as 28, 32 or 64") from None
    g_options, d_options = {}, {}
    if m.name == "dcgan":
        d_options = {"spectral_norm": m.d_spectral_norm}
    elif m.name == "biggan":
        g_options = {"attention_resolution": m.attention_resolution}
        d_options = dict(g_options)
    elif m.name == "stylegan2":
        g_options = {"mapping_layers": m.mapping_layers}
    # StyleGAN2's D always has the layer (groups of 4); the others only when asked for.
    if m.d_mbstd_group or m.name != "stylegan2":
        d_options["mbstd_group"] = m.d_mbstd_group
    generator = generator_class(image_size=height, channels=channels, num_classes=num_classes, width=m.g_width,
                                **g_options)
    discriminator = discriminator_class(num_classes=num_classes, width=m.d_width, **d_options)
    return generator, discriminator


def build_optimizers(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, ...]:
    """Adam for G and for D, each with its own learning rate (TTUR when they differ).

    With `optim.lr_decay = "linear"` both rates fall linearly to 0 at `steps` (as Mimicry's SNGAN
    recipe does); D's schedule counts its `n_dis` updates per step.
    """
    o = config.optim

    def adam(learning_rate, updates_per_step):
        if o.lr_decay == "linear":
            learning_rate = optax.linear_schedule(learning_rate, 0.0, config.steps * updates_per_step)
        return optax.adam(learning_rate, b1=o.b1, b2=o.b2)

    return adam(o.g_lr, 1), adam(o.d_lr, o.n_dis)


def pack(samples: jax.Array, num_packed: int) -> jax.Array:
    """PacGAN's packing (Lin et al. 2018): D judges `num_packed` consecutive samples jointly.

    samples: float [N, ..., C] with N a multiple of num_packed. Returns [N / m, ..., m * C]: each
    group's samples joined along the last (channel or coordinate) axis, sample 0 of a group first.
    """
    if num_packed == 1:
        return samples
    n, *inner, channels = samples.shape
    grouped = jnp.moveaxis(samples.reshape(n // num_packed, num_packed, *inner, channels), 1, -2)
    return grouped.reshape(n // num_packed, *inner, num_packed * channels)


def init_state(config: ml_collections.ConfigDict, generator: models.Generator,
               discriminator: models.Discriminator, image_shape: tuple[int, int, int],
               seed: int | jax.Array | None = None) -> TrainState:
    """A fresh TrainState from `seed` (default `config.seed`; a traced int32 for many seeds at once,
    as under `jax.vmap`). Pure: call under `jax.jit` or `jax.eval_shape`."""
    g_key, d_key = jax.random.split(jax.random.fold_in(jax.random.key(_seed(config, seed)), 0))
    z = jnp.zeros((2, config.model.latent_dim))
    labels = jnp.zeros((2,), jnp.int32)
    g_variables = generator.init(g_key, z, labels)
    images = pack(jnp.zeros((2 * config.model.d_pack, *image_shape)), config.model.d_pack)
    d_variables = discriminator.init(d_key, images, labels)
    if "batch_stats" in d_variables:
        # As torch's spectral_norm does: start training with converged power-iteration vectors, not
        # random ones, so D's first steps are not taken with underestimated spectral norms.
        def power_iteration(_, variables):
            _, updates = discriminator.apply(variables, images, labels, update_stats=True, mutable=["batch_stats"])
            return {**variables, **updates}

        d_variables = jax.lax.fori_loop(0, 15, power_iteration, d_variables)  # D traced once, not 15 times
    g_tx, d_tx = build_optimizers(config)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_variables["params"],
        g_batch_stats=g_variables.get("batch_stats", {}),
        d_params=d_variables["params"],
        d_batch_stats=d_variables.get("batch_stats", {}),
        g_opt_state=g_tx.init(g_variables["params"]),
        d_opt_state=d_tx.init(d_variables["params"]),
        ema_params=jax.tree.map(jnp.copy, g_variables["params"]),  # own buffers: the step donates both
        # ADA starts unaugmented and lets D's overfitting raise p; plain DiffAugment always augments.
        augment_p=jnp.asarray(0.0 if config.augment.ada_target > 0 else 1.0, jnp.float32),
    )


def _seed(config: ml_collections.ConfigDict, seed: int | jax.Array | None) -> int | jax.Array:
    return config.seed if seed is None else seed


def step_latents(config: ml_collections.ConfigDict, step: jax.Array | int, batch_size: int,
                 seed: int | jax.Array | None = None) -> jax.Array:
    """float32 [batch_size, latent_dim]: the generator's input at `step`, N(0, I) from fold_in(seed, step)."""
    step_root = jax.random.fold_in(jax.random.key(_seed(config, seed)), 1)
    return jax.random.normal(jax.random.fold_in(step_root, step), (batch_size, config.model.latent_dim))


def augment_policy(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """`augment.policy` "color,translation" -> ("color", "translation"); () when empty."""
    return tuple(op.strip() for op in config.augment.policy.split(",") if op.strip())


# The random keys of one D update (the G update uses those of the last): indices into its row of keys.
KEY_LATENT, KEY_NOISE, KEY_AUGMENT_REAL, KEY_AUGMENT_FAKE, KEY_PENALTY, KEY_AUGMENT_G = range(6)
NUM_KEYS = 6


def make_step(config: ml_collections.ConfigDict, generator: nn.Module, discriminator: nn.Module) -> Callable:
    """Returns the pure update `step(state, batch, seed=None) -> (state, metrics)`.

    `seed` defaults to `config.seed`; a traced int32 there lets one program train many seeds at
    once (benchmarks/mode_coverage.py: vmapped or side by side), each exactly as its own run would.

    batch: {"image": float32 [B * n_dis, H, W, C] in [-1, 1], "label": int32 [B * n_dis]}, B being
    `batch_size` and n_dis `optim.n_dis`; row r feeds D update r % n_dis, so each device's rows stay
    on that device. One call does n_dis discriminator updates, each on its own real images and new
    fakes, then one generator update against the updated discriminator, then the EMA of G. The
    fakes of the last D update are the ones whose gradient trains G (through `jax.vjp`), as in the
    classic DCGAN loop, so that G forward pass is not repeated.

    Every image D sees (real or fake, in its loss and its penalties) first goes through
    `augment.diffaugment` with strength `state.augment_p` when `augment.policy` is set; with
    `augment.ada_target > 0` that strength follows ADA's controller after each step.

    With `optim.grad_accum = k > 1` every update averages the gradients of k micro-batches of B / k
    rows, computed one after another (`lax.scan`), so only one micro-batch's activations are alive
    at a time. The latents and images are those of the full batch, so the update equals the full
    batch's up to round-off, except where the batch itself enters: batch-norm statistics are those
    of each micro-batch (the running averages take their mean), and augmentation, noise inputs and
    penalty interpolation draw per micro-batch. The last D update's fakes are generated again for
    G's gradient (one more G forward pass per step) instead of being kept for all micro-batches.
    """
    d_loss_fn, g_loss_fn = losses.LOSSES[config.loss.name]
    g_tx, d_tx = build_optimizers(config)
    conditional = generator.num_classes > 0
    n_dis = config.optim.n_dis
    accum = config.optim.grad_accum
    num_packed = config.model.d_pack
    policy = augment_policy(config)
    lazy_r1_weight = config.loss.r1_gamma / 2 * config.loss.r1_every

    def see(images, key, p):
        """What D sees of `images`: augmented when a policy is set."""
        return augment.diffaugment(images, key, policy, p) if policy else images

    def generate(g_params, g_batch_stats, z, labels, noise_key):
        # Only generators with noise inputs get the stream: passing unused rngs doubles XLA:CPU's compile time.
        rngs = {"noise": noise_key} if config.model.name in NOISE_INPUT_MODELS else {}
        fake, updates = generator.apply({"params": g_params, "batch_stats": g_batch_stats}, z, labels, train=True,
                                        mutable=["batch_stats"], rngs=rngs)
        return fake, updates.get("batch_stats", {})

    def micro_keys(keys, index):
        """The random keys of micro-batch `index`: the batch's own keys when it is not split."""
        return keys if accum == 1 else jax.vmap(lambda key: jax.random.fold_in(key, index))(keys)

    def accumulate(fn, *batched):
        """The mean of `fn(index, *micro_batch)` over the `accum` micro-batches of `batched`.

        batched: arrays [B, ...]; micro-batch j holds rows j, j + accum, ..., so a device's rows stay on it.
        """
        if accum == 1:
            return fn(0, *batched)
        micro = [jnp.moveaxis(x.reshape(x.shape[0] // accum, accum, *x.shape[1:]), 1, 0) for x in batched]

        def add(total, inputs):
            out = fn(*inputs)
            return jax.tree.map(lambda t, o: t + o / accum, total, out), None

        shapes = jax.eval_shape(fn, jnp.int32(0), *[x[0] for x in micro])
        zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
        total, _ = jax.lax.scan(add, zeros, (jnp.arange(accum), *micro))
        return total

    def d_gradients(d_params, d_batch_stats, real, fake, labels, keys, update_index, p):
        """D's gradient on real and (fixed) fake images, its loss terms and its new spectral-norm vectors."""
        real_seen = see(real, keys[KEY_AUGMENT_REAL], p)
        fake_seen = see(jax.lax.stop_gradient(fake), keys[KEY_AUGMENT_FAKE], p)

        def d_objective(d_params):
            both_labels = None if labels is None else jnp.concatenate([labels, labels])
            # Real and fake in one call: one power iteration of spectral norm per D update (it starts
            # from the stored vectors, so every micro-batch of an update gets the same new ones).
            logits, updates = discriminator.apply(
                {"params": d_params, "batch_stats": d_batch_stats},
                jnp.concatenate([pack(real_seen, num_packed), pack(fake_seen, num_packed)]),
                both_labels, update_stats=True, mutable=["batch_stats"])
            new_batch_stats = updates.get("batch_stats", {})
            real_logits, fake_logits = jnp.split(logits, 2)

            def discriminate(images):
                return discriminator.apply({"params": d_params, "batch_stats": new_batch_stats},
                                           pack(images, num_packed), labels)

            penalties = {}
            if config.loss.gp_weight:
                penalties["gp"] = config.loss.gp_weight * losses.gradient_penalty(
                    discriminate, real_seen, fake_seen, keys[KEY_PENALTY])
            if config.loss.r1_gamma:
                penalties["r1"] = jax.lax.cond(update_index % config.loss.r1_every == 0,
                                               lambda: lazy_r1_weight * losses.r1_penalty(discriminate, real_seen),
                                               lambda: jnp.zeros((), jnp.float32))
            loss = d_loss_fn(real_logits, fake_logits) + sum(penalties.values())
            # Means only: they are what the metrics, ADA and the micro-batch average need.
            terms = {"d_loss": loss, "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits),
                     "real_sign": jnp.mean(jnp.sign(real_logits)), **penalties}
            return loss, (terms, new_batch_stats)

        (_, (terms, new_batch_stats)), grads = jax.value_and_grad(d_objective, has_aux=True)(d_params)
        return grads, terms, new_batch_stats

    def apply_d_gradients(d_state, grads, new_batch_stats):
        d_params, _, d_opt_state = d_state
        d_updates, d_opt_state = d_tx.update(grads, d_opt_state, d_params)
        return optax.apply_updates(d_params, d_updates), new_batch_stats, d_opt_state

    def generating_d_update(d_state, g_params, g_batch_stats, real, labels, z, keys, update_index, p):
        """One D update against new fakes of latents `z`: (d_state, G's batch stats, terms, D's gradient)."""
        d_params, d_batch_stats, _ = d_state

        def micro(index, real, labels, z):
            labels = labels if conditional else None
            keys_j = micro_keys(keys, index)
            fake, new_g_batch_stats = generate(g_params, g_batch_stats, z, labels, keys_j[KEY_NOISE])
            grads, terms, new_d_batch_stats = d_gradients(d_params, d_batch_stats, real, fake, labels, keys_j,
                                                          update_index, p)
            return grads, terms, new_d_batch_stats, new_g_batch_stats

        grads, terms, new_d_batch_stats, g_batch_stats = accumulate(micro, real, labels, z)
        return apply_d_gradients(d_state, grads, new_d_batch_stats), g_batch_stats, terms, grads

    def step(state: TrainState, batch: dict[str, jax.Array],
             seed: int | jax.Array | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
        seed = _seed(config, seed)
        batch_size = batch["image"].shape[0] // n_dis
        reals = batch["image"].reshape(batch_size, n_dis, *batch["image"].shape[1:])
        all_labels = batch["label"].reshape(batch_size, n_dis)
        # All of the step's keys in one threefry call (each call costs XLA:CPU about a second of compilation).
        keys = jax.random.split(jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 2), state.step),
                                (n_dis, NUM_KEYS))
        p = state.augment_p
        d_state = (state.d_params, state.d_batch_stats, state.d_opt_state)
        g_batch_stats = state.g_batch_stats

        # D updates 0 .. n_dis - 2, each against fakes of its own latents.
        def early_d_update(carry, inputs):
            d_state, g_batch_stats = carry
            real, labels, index = inputs
            z = jax.random.normal(keys[index, KEY_LATENT], (batch_size, config.model.latent_dim))
            d_state, g_batch_stats, _, _ = generating_d_update(d_state, state.g_params, g_batch_stats, real, labels,
                                                               z, keys[index], state.step * n_dis + index, p)
            return (d_state, g_batch_stats), None

        if n_dis > 1:
            # Unrolled: XLA:CPU ran these convolutions inside a while loop 16x slower (SNGAN at width
            # 16, n_dis 5: 31 s per step rolled, 1.9 s unrolled); unrolling costs a little compile time.
            (d_state, g_batch_stats), _ = jax.lax.scan(
                early_d_update, (d_state, g_batch_stats),
                (jnp.moveaxis(reals[:, :-1], 1, 0), jnp.moveaxis(all_labels[:, :-1], 1, 0), jnp.arange(n_dis - 1)),
                unroll=True)

        real, labels = reals[:, -1], all_labels[:, -1]
        last_keys = keys[n_dis - 1]
        last_index = state.step * n_dis + n_dis - 1
        z = step_latents(config, state.step, batch_size, seed)

        def g_gradients(fake_and_vjp, labels, keys):
            """G's loss and gradient against the updated D, from its fakes and their pullback to G's parameters."""
            fake, g_vjp = fake_and_vjp
            d_params, d_batch_stats, _ = d_state

            def g_objective(fake_images):
                return g_loss_fn(discriminator.apply({"params": d_params, "batch_stats": d_batch_stats},
                                                     pack(see(fake_images, keys[KEY_AUGMENT_G], p), num_packed),
                                                     labels))

            g_loss, fake_grad = jax.value_and_grad(g_objective)(fake)
            (g_grads,) = g_vjp(fake_grad)
            return g_loss, g_grads

        if accum == 1:
            # The last D update and the G update share one G forward pass.
            labels = labels if conditional else None
            fake, g_vjp, g_batch_stats = jax.vjp(
                lambda g_params: generate(g_params, g_batch_stats, z, labels, last_keys[KEY_NOISE]), state.g_params,
                has_aux=True)
            d_grads, d_terms, new_d_batch_stats = d_gradients(*d_state[:2], real, fake, labels, last_keys,
                                                              last_index, p)
            d_state = apply_d_gradients(d_state, d_grads, new_d_batch_stats)
            g_loss, g_grads = g_gradients((fake, g_vjp), labels, last_keys)
        else:
            d_state, _, d_terms, d_grads = generating_d_update(d_state, state.g_params, g_batch_stats, real, labels, z,
                                                               last_keys, last_index, p)

            def g_micro(index, labels, z):
                labels = labels if conditional else None
                keys_j = micro_keys(last_keys, index)
                # The same fakes (same latents, statistics and noise) as the last D update's micro-batch.
                fake, g_vjp, new_g_batch_stats = jax.vjp(
                    lambda g_params: generate(g_params, g_batch_stats, z, labels, keys_j[KEY_NOISE]),
                    state.g_params, has_aux=True)
                return *g_gradients((fake, g_vjp), labels, keys_j), new_g_batch_stats

            g_loss, g_grads, g_batch_stats = accumulate(g_micro, labels, z)
        d_params, d_batch_stats, d_opt_state = d_state
        g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, g_updates)

        # EMA with warm-up: early on the average follows G closely instead of remembering its init.
        t = state.step.astype(jnp.float32)
        decay = jnp.minimum(config.optim.ema_decay, (1.0 + t) / (10.0 + t))
        ema_params = jax.tree.map(lambda e, g: decay * e + (1.0 - decay) * g, state.ema_params, g_params)

        if config.augment.ada_target > 0:
            # ADA's overfitting heuristic r_t = E[sign D(real)] (Karras et al. 2020a), here after every step.
            p = augment.ada_update(p, d_terms["real_sign"], images_seen_per_update=batch_size * n_dis,
                                   target=config.augment.ada_target, adjust_images=config.augment.ada_images)

        updated = state.replace(g_params=g_params, g_batch_stats=g_batch_stats, d_params=d_params,
                                d_batch_stats=d_batch_stats, g_opt_state=g_opt_state, d_opt_state=d_opt_state,
                                ema_params=ema_params, augment_p=p)
        # A NaN or Inf anywhere in the losses, the gradients or the updated state (finite gradients can
        # still overflow Adam's second moments or the parameters): keep the old state, count the step as skipped.
        checks = {"d_loss": d_terms["d_loss"], "g_loss": g_loss, "d_gradients": d_grads, "g_gradients": g_grads,
                  "updated_state": updated}
        # One check of each tree raveled into a vector: a check per leaf costs XLA:CPU a kernel per leaf,
        # which made StyleGAN2's step (hundreds of leaves) compile six times slower.
        finite = {name: jnp.all(jnp.isfinite(ravel_pytree(tree)[0])) for name, tree in checks.items()}
        all_finite = jnp.all(jnp.array(list(finite.values())))
        new_state = jax.tree.map(lambda new, old: jnp.where(all_finite, new, old), updated, state)
        new_state = new_state.replace(step=state.step + 1)  # the data and RNG of the next step, either way
        metrics = {"g_loss": g_loss,
                   # The penalty terms as added to D's loss (lazy R1: 0 on the updates without it).
                   **{name: value for name, value in d_terms.items() if name != "real_sign"},
                   **({"augment_p": p} if policy else {}),
                   "skipped": 1.0 - all_finite.astype(jnp.float32),
                   **{f"nonfinite_{name}": 1.0 - ok.astype(jnp.float32) for name, ok in finite.items()}}
        return new_state, metrics

    return step


class Shardings(NamedTuple):
    """Where arrays lie on the mesh of all devices of all processes (one "data" axis)."""

    replicated: NamedSharding  # the state, metrics and sampling inputs: whole on every device
    batch: NamedSharding  # batches: their rows split over the devices


def make_shardings() -> Shardings:
    """Batches sharded over every device of every process; everything else replicated."""
    # Auto axes: XLA propagates shardings from the explicit in/out shardings of the step.
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    return Shardings(NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data")))


def jit_step(step: Callable, shardings: Shardings) -> Callable:
    """`step` compiled with explicit shardings, the input state donated (updated in place)."""
    return jax.jit(step, in_shardings=(shardings.replicated, shardings.batch),
                   out_shardings=(shardings.replicated, shardings.replicated), donate_argnums=0)


def make_generate(generator: models.Generator) -> Callable:
    """Compiled `generate(g_params, g_batch_stats, z, labels) -> images` in inference mode."""

    @jax.jit
    def generate(g_params, g_batch_stats, z, labels):
        return generator.apply({"params": g_params, "batch_stats": g_batch_stats}, z, labels, train=False)

    return generate


def flat_config(config: ml_collections.ConfigDict | dict, prefix: str = "") -> dict[str, Any]:
    """{"model.g_width": 64, ...}: the config as one flat dict of dotted keys."""
    items = config.items() if isinstance(config, dict) else config.to_dict().items()
    flat = {}
    for key, value in items:
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# Config keys added after runs were saved, with the value that computes what those runs computed.
ADDED_KEYS = {"model.d_pack": 1, "model.d_mbstd_group": 0, "model.mlp_init_std": 0.0, "optim.grad_accum": 1}


def complete_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A run's saved config (a nested dict) with the keys added since it was saved, at their old behaviour."""
    completed = json.loads(json.dumps(saved))
    for key, value in ADDED_KEYS.items():
        *parents, leaf = key.split(".")
        node = completed
        for parent in parents:
            node = node.setdefault(parent, {})
        node.setdefault(leaf, value)
    return completed


def check_resumable(config: ml_collections.ConfigDict, saved: dict[str, Any], workdir: str,
                    elsewhere: str = "a new --workdir") -> list[str]:
    """Refuses to resume a run whose saved config differs in keys that change the computation; the
    error's fix is to pass the same config or to use `elsewhere`.

    Returns the allowed changes (RESUMABLE_KEYS), as "key: old -> new" lines.
    """
    new, old = flat_config(config), flat_config(complete_saved_config(saved))
    changed = sorted(k for k in set(new) | set(old) if new.get(k, "<absent>") != old.get(k, "<absent>"))
    describe = [f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in changed]
    resumable = set(RESUMABLE_KEYS)
    if config.optim.lr_decay != "constant":
        resumable.remove("steps")  # the learning-rate schedule ends at `steps`
    refused = [d for k, d in zip(changed, describe) if k not in resumable]
    if refused:
        raise UserError(f"{workdir} holds a run with another config ({', '.join(refused)}); "
                        f"pass the same config to resume it or use {elsewhere}")
    return describe


def prepare_workdir(workdir: str) -> None:
    """Creates `workdir` or fails with a clear message, before anything is written in it."""
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --workdir {workdir} ({e.strerror}); pick a writable directory") from None
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise UserError(f"--workdir {workdir} is not writable; pick a writable directory")


# Largest int32: the step counter is int32 on the device, and sizes beyond it are mistakes, not plans.
MAX_INT32 = 2 ** 31 - 1
# Far beyond any GAN's channel count or latent size; larger values only overflow shape arithmetic.
MAX_WIDTH = 2 ** 14


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks config values that would otherwise fail deep inside JAX, NumPy or Optax."""
    if config.loss.name not in losses.LOSSES:
        raise UserError(f"unknown loss '{config.loss.name}': set --config.loss.name to one of "
                        f"{', '.join(losses.LOSSES)}")
    for key in ("steps", "batch_size", "log_every", "checkpoint_every", "sample_every", "keep_checkpoints"):
        if not 0 < config[key] <= MAX_INT32:
            raise UserError(f"--config.{key}={config[key]} must be a positive integer (at most {MAX_INT32})")
    model_classes(config)
    two_d = data.is_mixture(config.data)
    if (config.model.name == "mlp") != two_d:  # before the model's keys: e.g. mlp_init_std
        raise misfit_model(config.model.name, "(2,)" if two_d else "image")
    for key in ("latent_dim", "g_width", "d_width", "mapping_layers"):
        if not 0 < config.model[key] <= MAX_WIDTH:
            raise UserError(f"--config.model.{key}={config.model[key]} must be an integer from 1 to {MAX_WIDTH}")
    if not 0 <= config.model.attention_resolution <= MAX_WIDTH:
        raise UserError(f"--config.model.attention_resolution={config.model.attention_resolution} must be 0 (none) "
                        f"or a resolution of the model, e.g. 16")
    if not 0 < config.optim.n_dis <= 100:
        raise UserError(f"--config.optim.n_dis={config.optim.n_dis} must be an integer from 1 to 100 (SNGAN uses 5)")
    if config.optim.lr_decay not in ("constant", "linear"):
        raise UserError(f"--config.optim.lr_decay={config.optim.lr_decay!r} must be 'constant' or 'linear'")
    for key in ("gp_weight", "r1_gamma"):
        if not 0 <= _as_float32(config.loss[key]) < np.inf:
            raise UserError(f"--config.loss.{key}={config.loss[key]} must be a finite number >= 0 (0 = off)")
    if not 0 < config.loss.r1_every <= MAX_INT32:
        raise UserError(f"--config.loss.r1_every={config.loss.r1_every} must be a positive integer (16: lazy R1)")
    try:
        augment.validate_policy(augment_policy(config))
    except ValueError as e:
        raise UserError(f"--config.augment.policy={config.augment.policy!r}: {e}, comma-separated") from None
    if not 0 <= config.augment.ada_target < 1:
        raise UserError(f"--config.augment.ada_target={config.augment.ada_target} must be in [0, 1) "
                        f"(0 = fixed strength, ADA uses 0.6)")
    if config.augment.ada_target and not augment_policy(config):
        raise UserError("--config.augment.ada_target is set but --config.augment.policy is empty; "
                        "name the ops to adapt, e.g. --config.augment.policy=color,translation,cutout")
    if not 0 < config.augment.ada_images <= 2 ** 62:
        raise UserError(f"--config.augment.ada_images={config.augment.ada_images} must be a positive integer")
    if not 0 <= config.seed < 2 ** 63:
        raise UserError(f"--config.seed={config.seed} must be an integer from 0 to 2**63 - 1")
    # Checked as the float32 the step computes with, in comparisons that NaN fails.
    for key in ("g_lr", "d_lr"):
        if not 0 <= _as_float32(config.optim[key]) < np.inf:
            raise UserError(f"--config.optim.{key}={config.optim[key]} must be a number from 0 to the float32 "
                            f"maximum 3.4e38 (e.g. 2e-4)")
    for key in ("b1", "b2"):
        if not 0 <= _as_float32(config.optim[key]) < 1:  # 1 - 1e-9 rounds to 1: Adam would divide by 0
            raise UserError(f"--config.optim.{key}={config.optim[key]} must be in [0, 1) as a float32 "
                            f"(Adam's decay rates, e.g. 0.999)")
    if not 0 <= config.optim.ema_decay <= 1:
        raise UserError(f"--config.optim.ema_decay={config.optim.ema_decay} must be in [0, 1] (e.g. 0.999)")
    if config.optim.nonfinite not in ("skip", "stop"):
        raise UserError(f"--config.optim.nonfinite={config.optim.nonfinite!r} must be 'skip' or 'stop'")
    validate_eval(config)
    if config.batch_size % jax.device_count():
        raise UserError(f"--config.batch_size={config.batch_size} is not divisible by the "
                        f"{jax.device_count()} devices; use a multiple of {jax.device_count()}")
    if not 0 < config.optim.grad_accum <= config.batch_size:
        raise UserError(f"--config.optim.grad_accum={config.optim.grad_accum} must be an integer from 1 to "
                        f"--config.batch_size={config.batch_size}")
    if not 0 < config.model.d_pack <= config.batch_size or not 0 <= config.model.d_mbstd_group <= MAX_WIDTH:
        raise UserError(f"--config.model.d_pack={config.model.d_pack} must be from 1 (off) to the batch size and "
                        f"--config.model.d_mbstd_group={config.model.d_mbstd_group} >= 0 (0 = off, 4 = StyleGAN's)")
    if config.model.mlp_init_std < 0 or (config.model.mlp_init_std and config.model.name != "mlp"):
        raise UserError(f"--config.model.mlp_init_std={config.model.mlp_init_std} must be >= 0 and is for "
                        f"--config.model.name=mlp only (PacGAN's 0.02; 0 = LeCun normal)")
    per_device = config.batch_size // jax.device_count()
    if per_device % config.optim.grad_accum:
        raise UserError(f"--config.optim.grad_accum={config.optim.grad_accum} does not divide the batch of "
                        f"{per_device} per device (--config.batch_size={config.batch_size} over "
                        f"{jax.device_count()} devices); use a divisor of {per_device}")
    per_micro_batch = per_device // config.optim.grad_accum
    if per_micro_batch % config.model.d_pack:
        raise UserError(f"--config.model.d_pack={config.model.d_pack} does not divide the {per_micro_batch} samples "
                        f"of each device's (micro-)batch; use a batch size that makes it a multiple of "
                        f"{config.model.d_pack}")
    judged = config.batch_size // config.optim.grad_accum // config.model.d_pack  # D inputs per half batch
    if config.model.d_mbstd_group and judged % config.model.d_mbstd_group:
        raise UserError(f"--config.model.d_mbstd_group={config.model.d_mbstd_group} does not divide the {judged} "
                        f"real (and fake) inputs D judges at once, so its groups would mix real and fake ones; "
                        f"use a divisor of {judged}")


# eval.best_metric -> (the eval.metrics entry that computes it, whether lower is better)
BEST_METRICS = {"fid": ("fid", True), "kid_mean": ("kid", True), "precision": ("pr", False), "recall": ("pr", False),
                "density": ("dc", False), "coverage": ("dc", False), "is_mean": ("is", False), "acc": ("acc", False)}


def validate_eval(config: ml_collections.ConfigDict) -> None:
    """Checks `eval_every` and `eval.*`; what needs the data (the feature network, the reference) is
    checked when the evaluator is built, still before anything is written."""
    from jaxgan import evaluate  # jaxgan.evaluate imports this module (through jaxgan.trained)

    if not 0 <= config.eval_every <= MAX_INT32:
        raise UserError(f"--config.eval_every={config.eval_every} must be 0 (never) or a positive integer")
    if not config.eval_every:
        return
    if data.is_mixture(config.data):
        raise UserError(f"--config.eval_every evaluates pictures; the 2-D mixture {config.data.name} is scored by "
                        f"benchmarks/mode_coverage.py; set --config.eval_every=0")
    try:
        names = evaluate.parse_metrics(config.eval.metrics)
    except UserError as e:
        raise UserError(f"--config.eval.metrics={config.eval.metrics!r}: {e}") from None
    best = config.eval.best_metric
    if best not in BEST_METRICS or BEST_METRICS[best][0] not in names:
        computed = [m for m, (name, _) in BEST_METRICS.items() if name in names]
        raise UserError(f"--config.eval.best_metric={best!r} is not computed by --config.eval.metrics="
                        f"{config.eval.metrics!r}; pick one of {', '.join(computed)}")
    if not 0 < config.eval.num_samples <= 10 ** 6 or not 0 < config.eval.keep_best <= MAX_INT32:
        raise UserError(f"--config.eval.num_samples={config.eval.num_samples} must be from 1 to 1000000 and "
                        f"--config.eval.keep_best={config.eval.keep_best} positive")
    if jax.process_count() > 1:
        raise UserError("evaluation during training runs in single-process runs only; set --config.eval_every=0 "
                        "and evaluate checkpoints with python -m jaxgan.evaluate")


def _as_float32(value: float) -> np.float32:
    """`value` as the float32 the step computes with: infinite when it overflows, NaN stays NaN."""
    with np.errstate(over="ignore"):
        return np.float32(value)


def device_memory_bytes() -> int:
    """Memory of one local device: the accelerator's limit, or on CPUs the host's RAM shared by its devices."""
    stats = jax.local_devices()[0].memory_stats()
    if stats and "bytes_limit" in stats:
        return stats["bytes_limit"]
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // jax.local_device_count()


def compile_step(config: ml_collections.ConfigDict, generator: models.Generator, discriminator: models.Discriminator,
                 shardings: Shardings, abstract_state: TrainState, image_shape: tuple[int, int, int]):
    """The step compiled for `abstract_state` and batches of `image_shape`, before any array exists.

    Refuses, with a clear error, a step that does not fit in one device's memory, so that a huge batch
    or model stops here instead of failing while allocating: first by the size of the state and the
    batch alone (XLA itself crashes compiling shapes of trillions of elements), then by XLA's count
    of every buffer of the compiled step, temporaries included.
    """
    rows = config.batch_size * config.optim.n_dis
    batch = {"image": jax.ShapeDtypeStruct((rows, *image_shape), jnp.float32),
             "label": jax.ShapeDtypeStruct((rows,), jnp.int32)}
    inputs_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract_state))
    inputs_bytes += sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(batch)) // jax.device_count()
    _refuse_if_over_memory(inputs_bytes, config)
    compiled = jit_step(make_step(config, generator, discriminator), shardings).lower(abstract_state, batch).compile()
    memory = compiled.memory_analysis()
    _refuse_if_over_memory(memory.argument_size_in_bytes + memory.output_size_in_bytes - memory.alias_size_in_bytes
                           + memory.temp_size_in_bytes, config)
    return compiled


def _refuse_if_over_memory(needed_bytes: int, config: ml_collections.ConfigDict) -> None:
    available = device_memory_bytes()
    if needed_bytes > available:
        raise UserError(f"one train step needs {needed_bytes / 2 ** 30:.1f} GiB on each device (a batch of "
                        f"{config.batch_size // jax.device_count()} per device) but a {jax.devices()[0].platform} "
                        f"device has {available / 2 ** 30:.1f} GiB; lower --config.batch_size or "
                        f"--config.model.g_width / d_width / latent_dim")


class MetricsLog:
    """Appends one JSON object per line to WORKDIR/metrics.jsonl (process 0 only)."""

    def __init__(self, workdir: str, resume_step: int):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.enabled = jax.process_index() == 0
        if self.enabled and os.path.exists(self.path):
            # Lines after the restored checkpoint belong to steps that are about to be redone.
            with open(self.path) as f:
                kept = [line for line in f if _logged_step(line) <= resume_step]
            sampling.write_atomically(self.path, lambda f: f.write("".join(kept).encode()))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _logged_step(line: str) -> float:
    """The step of one metrics.jsonl line; infinity for a line cut short (a killed process, a full disk)."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def format_duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains (or resumes) the run in `workdir` up to `config.steps` and returns the final state."""
    validate(config)
    if jax.process_index() == 0:
        dataset = data.open_dataset(config.data)  # builds jaxgan's local datasets once, for every process
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("jaxgan: dataset ready")
    if jax.process_index() != 0:
        dataset = data.open_dataset(config.data)
    pipeline = data.make_pipeline(dataset, config)
    image_shape = pipeline.image_shape
    generator, discriminator = build_models(config, image_shape, dataset.num_classes)
    saved_config_path = os.path.join(workdir, "config.json")
    allowed_changes = []
    if os.path.exists(saved_config_path):
        with open(saved_config_path) as f:
            allowed_changes = check_resumable(config, json.load(f), workdir)
    shardings = make_shardings()
    try:
        # Traced once: its output shapes are the abstract state, and it is compiled only for a fresh start.
        traced_init = jax.jit(lambda: init_state(config, generator, discriminator, image_shape),
                              out_shardings=shardings.replicated).trace()
    except ValueError as e:  # a model option that does not fit these images (latent chunks, attention resolution)
        raise UserError(f"--config.model: {e}") from None
    abstract_state = traced_init.out_info
    compile_start = time.perf_counter()
    # Before anything is written: a step too big for the memory leaves no trace in the workdir.
    step_fn = compile_step(config, generator, discriminator, shardings, abstract_state, image_shape)
    compile_seconds = time.perf_counter() - compile_start
    evaluator = None
    if config.eval_every:
        from jaxgan import evaluate  # see validate_eval

        evaluator = evaluate.Evaluator.for_run(config, dataset.class_names, image_shape,
                                               config.eval.metrics.split(","), config.eval.num_samples,
                                               config.eval.features, workdir=workdir)
    prepare_workdir(workdir)
    is_main = jax.process_index() == 0
    if allowed_changes and is_main:
        print(f"Config changes since the last run of {workdir}: {', '.join(allowed_changes)}.", flush=True)

    manager = checkpoint.open_manager(workdir, config.keep_checkpoints)
    try:
        try:
            return _resume_and_train(config, workdir, pipeline, generator, shardings, manager, traced_init, step_fn,
                                     compile_seconds, evaluator)
        finally:
            manager.close()  # waits for the checkpoint being written, also after an error (a non-finite stop)
    except Exception as error:
        checkpoint.raise_if_write_failure(error, manager, workdir)
        raise


def _resume_and_train(config, workdir, pipeline, generator, shardings, manager, traced_init, step_fn,
                      compile_seconds, evaluator):
    """Restores the newest readable checkpoint or starts afresh (`traced_init`: the traced, replicated
    `init_state`), then trains with `step_fn`; returns the last state."""
    is_main = jax.process_index() == 0

    def restore_step(step):
        meta = checkpoint.restore_meta(manager, step)
        check_resumable(config, meta["config"], workdir)  # checkpoints copied without their config.json
        return checkpoint.restore(manager, step, meta, traced_init.out_info, shardings.replicated)

    state = None
    if manager.all_steps():
        state, unreadable = checkpoint.restore_newest_readable(manager, workdir, restore_step, "resuming from")
        if unreadable:
            moved_to = checkpoint.set_aside(manager, workdir, unreadable)
            if is_main:
                print(f"Moved the unreadable checkpoint(s) of step(s) {', '.join(map(str, unreadable))} "
                      f"to {moved_to}.", flush=True)
        if is_main:
            print(f"Resumed {workdir} from step {int(state.step)}.", flush=True)
    start = 0 if state is None else int(state.step)
    if start >= config.steps:
        if is_main:
            print(f"{workdir} is already trained to step {start} of {config.steps}; nothing to do "
                  f"(raise --config.steps to train further, or pass another --workdir).", flush=True)
        return state

    if is_main:
        print(f"Compiled the train step in {compile_seconds:.1f} s; "
              f"training {workdir} from step {start} to {config.steps} "
              f"on {jax.device_count()} {jax.devices()[0].platform} device(s).", flush=True)
    if state is None:
        state = traced_init.lower().compile()()
    if is_main:
        sampling.write_atomically(os.path.join(workdir, "config.json"),
                                  lambda f: f.write(config.to_json(indent=2).encode()))
    best_manager = None
    if evaluator is not None:
        best_metric = config.eval.best_metric
        best_manager = checkpoint.open_manager(os.path.join(workdir, "best"), config.eval.keep_best,
                                               best_metric=best_metric, lower_is_better=BEST_METRICS[best_metric][1])
    try:
        return _train_loop(config, workdir, pipeline, generator, shardings, manager, step_fn, state, start, evaluator,
                           best_manager)
    finally:
        if best_manager is not None:
            best_manager.close()


def _train_loop(config, workdir, pipeline, generator, shardings, manager, step_fn, state, start, evaluator,
                best_manager):
    """Steps from `start` to `config.steps`, logging, sampling, evaluating and checkpointing; returns the last state.

    `evaluator` and `best_manager` (WORKDIR/best) are None unless `eval_every` > 0.
    """
    is_main = jax.process_index() == 0
    metrics_log = MetricsLog(workdir, start)
    if evaluator and is_main:
        # TensorFlow is imported only here: its import costs seconds, and runs without in-training
        # evaluation (and machines without TensorFlow) never need it.
        import tensorflow as tf

        tensorboard = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
    class_names = pipeline.dataset.class_names
    mixture = pipeline.dataset.name if isinstance(pipeline.dataset, data.MixtureDataset) else None
    grid_z, grid_labels, grid_columns = _grid_inputs(config, len(class_names), mixture)
    # The same values on every process, laid out over all devices like the parameters.
    grid_z, grid_labels = jax.device_put((np.asarray(grid_z), grid_labels), shardings.replicated)
    generate = make_generate(generator)
    batches = (data.to_global(b, shardings.batch) for b in pipeline.batches(start, config.steps))
    batch = next(batches)

    window_start, window_sums, window_steps = time.perf_counter(), None, 0
    with StopRequest() as stop:
        for step in range(start + 1, config.steps + 1):
            state, metrics = step_fn(state, batch)
            if config.optim.nonfinite == "stop" and float(metrics["skipped"]):
                _stop_on_nonfinite(metrics, step, manager.latest_step())
            if step < config.steps:
                batch = next(batches)  # prepared by the pipeline's threads while the device computes
            window_sums = metrics if window_sums is None else _add_metrics(window_sums, metrics)
            window_steps += 1
            last = step == config.steps

            if step % config.log_every == 0 or last:
                sums = jax.device_get(window_sums)
                means = {k: float(v) / window_steps for k, v in sums.items() if not k.startswith("nonfinite_")}
                means["skipped"] = int(sums["skipped"])  # a count over the window, not a mean
                elapsed = time.perf_counter() - window_start
                steps_per_s = window_steps / elapsed
                record = {"step": step, **means, "steps_per_s": steps_per_s,
                          "images_per_s": steps_per_s * config.batch_size * config.optim.n_dis}
                metrics_log.write(record)
                if is_main:
                    eta = format_duration((config.steps - step) / steps_per_s)
                    extra = f"  augment p {means['augment_p']:.3f}" if "augment_p" in means else ""
                    extra += f"  skipped {means['skipped']} (non-finite)" if means["skipped"] else ""
                    print(f"step {step}/{config.steps}  d_loss {means['d_loss']:.3f}  "
                          f"g_loss {means['g_loss']:.3f}  {steps_per_s:.2f} steps/s  "
                          f"{record['images_per_s']:.0f} img/s  ETA {eta}{extra}", flush=True)
                window_start, window_sums, window_steps = time.perf_counter(), None, 0

            if step % config.sample_every == 0 or last:
                images = generate(state.ema_params, state.g_batch_stats, grid_z, grid_labels)
                path = os.path.join(workdir, "samples", f"step_{step:07d}.png")
                if is_main and mixture:
                    mixtures.plot(np.asarray(jax.device_get(images)), mixture, path, title=f"step {step}")
                elif is_main:
                    grid = sampling.image_grid(sampling.to_uint8(jax.device_get(images)), grid_columns)
                    sampling.save_png(path, grid)

            if evaluator and (step % config.eval_every == 0 or last):
                evaluation_start = time.perf_counter()
                results = evaluator(lambda z, weights: np.asarray(
                    generate(state.ema_params, state.g_batch_stats, z, weights)))
                seconds = time.perf_counter() - evaluation_start
                scores = {f"eval/{name}": float(value) for name, value in results.items() if np.isscalar(value)}
                metrics_log.write({"step": step, **scores, "eval_seconds": seconds})
                if is_main:
                    with tensorboard.as_default(step=step):
                        for name, value in scores.items():
                            tf.summary.scalar(name, value)
                    tensorboard.flush()
                    print(f"step {step}/{config.steps}  " + "  ".join(f"{k} {v:.4g}" for k, v in scores.items())
                          + f"  ({seconds:.1f} s)", flush=True)
                checkpoint.save(best_manager, state, config, pipeline.image_shape, class_names,
                                metrics={config.eval.best_metric: results[config.eval.best_metric]})
                window_start += time.perf_counter() - evaluation_start  # steps/s counts training alone

            if step % config.checkpoint_every == 0 or last or stop.signal_name:
                checkpoint.save(manager, state, config, pipeline.image_shape, class_names)
            if stop.signal_name and not last:
                if is_main:
                    print(f"Stopped by {stop.signal_name} after step {step} of {config.steps}; its checkpoint "
                          f"is saved in {workdir}. Run the same command to continue.", flush=True)
                break
    return state


# One compiled call per step, where adding metric by metric dispatches each addition on its own.
_add_metrics = jax.jit(lambda sums, metrics: jax.tree.map(jnp.add, sums, metrics))


def _stop_on_nonfinite(metrics: dict[str, jax.Array], step: int, last_checkpoint: int | None) -> None:
    """Raises the error of `optim.nonfinite = "stop"`, naming what was not finite.

    The update of that step was not applied, so the state and its checkpoints hold no NaN or Inf.
    """
    bad = [name[len("nonfinite_"):] for name, v in metrics.items() if name.startswith("nonfinite_") and v]
    kept = (f"the last checkpoint (step {last_checkpoint}) intact" if last_checkpoint is not None
            else "no checkpoint written")
    raise UserError(f"non-finite {' and '.join(bad)} at step {step}; stopped with {kept}. Lower the "
                    f"learning rates, or pass --config.optim.nonfinite=skip to skip such steps")


class StopRequest:
    """Turns SIGTERM and SIGINT (preemption, Ctrl-C) into a request the loop honours after its step.

    Single-process runs only: a signal reaching one process of several cannot stop the others at the
    same step, so there the default handlers stay.
    """

    def __enter__(self) -> "StopRequest":
        self.signal_name = None
        self.previous = {}
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                self.previous[number] = signal.signal(number, self._request)
        return self

    def _request(self, number, frame):
        del frame
        self.signal_name = signal.Signals(number).name

    def __exit__(self, *exc_info) -> None:
        # Also on errors (a non-finite stop, say): the caller gets its own handlers back.
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def _grid_inputs(config, num_classes, mixture):
    """Fixed latents and labels for the sample grids: one row per class (first 10), 10 columns; for
    a 2-D mixture, the 2,500 samples of its evaluation protocol, plotted over the modes."""
    if mixture:
        labels = np.zeros(mixtures.PROTOCOL_SAMPLES, np.int32)
        columns = 0
    elif num_classes:
        labels = np.repeat(np.arange(min(num_classes, 10), dtype=np.int32), 10)
        columns = 10
    else:
        labels = np.zeros(64, np.int32)
        columns = 8
    z = sampling.latents(config.seed, len(labels), config.model.latent_dim)
    return z, (labels if num_classes else None), columns
