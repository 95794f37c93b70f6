"""Discriminator rejection sampling (DRS; Azadi et al. 2019): a trained GAN's samples, filtered by its D.

The discriminator that minimises the logistic (non-saturating) loss against a fixed generator has
logit(x) = log p_data(x) / p_g(x) (Goodfellow et al. 2014, prop. 1). Accepting a generated x with
probability exp(logit(x) - M), M >= every logit, then draws exactly from p_data. Two departures, as
in the paper: the trained D is a step behind the generator whose samples are drawn (and trained
against the raw G, not its EMA), so it is first calibrated, trained further against the frozen
generator (`calibrate_discriminator`); and M is a quantile of the logits rather than their maximum,
so that a sample above it is always accepted instead of almost every sample being rejected
(the paper's shift gamma plays that part).

A packed D (PacGAN, `model.d_pack` m > 1) judges m samples at once, and the optimal one's logit is
the sum of its members' log density ratios (m real samples drawn independently against m
generated ones). So a candidate is scored in packs with fixed partners, generated samples drawn
once: its logit there is its own log ratio plus the partners' sum, a constant that M's quantile
absorbs. Averaging over PARTNER_PACKS sets of partners evens out how the trained D departs from
the optimal one on any one set.

Only for unconditional GANs whose D scores each sample or pack on its own: no minibatch standard
deviation (`model.d_mbstd_group` 0), whose feature is a statistic of the whole group.
"""

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgan import losses, sampling, train
from jaxgan.errors import UserError

CHUNK = 500  # candidates per generator and discriminator call
BURN_IN = 10_000  # candidates whose logits set the threshold M (the paper's burn-in)
PARTNER_PACKS = 8  # sets of fixed partners a candidate of a packed D is scored with


def check_config(config: ml_collections.ConfigDict) -> None:
    """UserError unless DRS can score each sample of this config's GAN (alone or in packs)."""
    if config.data.label_key:
        raise UserError("rejection sampling is for unconditional GANs: set data.label_key to \"\"")
    if config.model.d_mbstd_group != 0:
        raise UserError("rejection sampling cannot score a sample through D's minibatch-stddev feature, a "
                        "statistic of its whole group: set model.d_mbstd_group=0")


def calibrate_discriminator(config: ml_collections.ConfigDict, generator, discriminator, state: train.TrainState,
                            g_params, real_batches: Iterator[dict], steps: int,
                            seed: int | None = None) -> tuple[object, object, np.ndarray]:
    """(D's params, D's spectral-norm vectors, the loss of each update float32 [steps]) after `steps`
    updates of `state`'s D against the frozen generator of `g_params` (the EMA or the raw one: the
    one the samples will come from) with `state.g_batch_stats`, in inference mode.

    Each update is one Adam step (the config's D rate and betas, a fresh optimizer state) on D's
    logistic loss, whatever loss trained the GAN: it is the loss whose optimal logit is the log
    density ratio. A packed D is calibrated on packs, as it was trained. No augmentation: D is
    calibrated on the images it will score. real_batches: the run's pipeline from where training
    stopped (`pipeline.batches(state.step, state.step + steps)`), images float32 [B, ...] in [-1,
    1]; update k's latents are train.py's of step state.step + k of `seed` (default config.seed),
    so calibration goes on with the data and noise the run would have seen next.
    """
    tx = optax.adam(config.optim.d_lr, b1=config.optim.b1, b2=config.optim.b2)
    num_packed = config.model.d_pack

    @jax.jit
    def update(d_state, g_params, g_batch_stats, real, z):
        d_params, d_batch_stats, opt_state = d_state
        fake = generator.apply({"params": g_params, "batch_stats": g_batch_stats}, z, None, train=False)

        def objective(d_params):
            logits, updates = discriminator.apply({"params": d_params, "batch_stats": d_batch_stats},
                                                  jnp.concatenate([train.pack(real, num_packed),
                                                                   train.pack(fake, num_packed)]),
                                                  None, update_stats=True,
                                                  mutable=["batch_stats"])
            real_logits, fake_logits = jnp.split(logits, 2)
            return losses.nonsaturating_d_loss(real_logits, fake_logits), updates.get("batch_stats", {})

        (loss, new_batch_stats), grads = jax.value_and_grad(objective, has_aux=True)(d_params)
        updates, opt_state = tx.update(grads, opt_state, d_params)
        return (optax.apply_updates(d_params, updates), new_batch_stats, opt_state), loss

    d_state = (state.d_params, state.d_batch_stats, tx.init(state.d_params))
    first = int(state.step)
    step_losses = []
    for k in range(steps):
        real = next(real_batches)["image"]
        z = train.step_latents(config, first + k, real.shape[0], seed)
        d_state, loss = update(d_state, g_params, state.g_batch_stats, real, z)
        step_losses.append(loss)
    return d_state[0], d_state[1], np.asarray(jax.device_get(step_losses), np.float32)


def rejection_sample(generator, discriminator, g_params, g_batch_stats, d_params, d_batch_stats, latent_dim: int,
                     num_samples: int, seed: int, quantile: float, num_packed: int = 1) -> tuple[np.ndarray, dict]:
    """`num_samples` generated samples that pass DRS, and how they were drawn.

    Candidates are images 0, 1, 2, ... of sample.py's `seed` (`sampling.latents`), CHUNK at a time;
    M is the `quantile` (in [0, 1)) of the first BURN_IN candidates' logits, and candidate i is
    accepted when u_i < exp(logit_i - M), u_i uniform from numpy's generator of `seed`: so the same
    arguments give the same samples, in candidate order. Expect to draw about num_samples / (1 -
    quantile) candidates or fewer (every candidate above M is accepted, and some below).

    num_packed: the m of a packed D (`model.d_pack`). For m > 1 a candidate's logit is its mean
    over PARTNER_PACKS packs of it first and m - 1 fixed partners, images 0, 1, ... of `seed` + 1.

    Returns (float32 [num_samples, ...] in the generator's range, {"threshold": M, "candidates":
    how many were drawn, "acceptance": the fraction of them accepted}).
    """
    if not 0 <= quantile < 1:
        raise UserError(f"rejection quantile {quantile}: use a value in [0, 1), e.g. 0.9")
    generate = train.make_generate(generator)
    partner_packs = None  # [PARTNER_PACKS, ..., (m - 1) * C]: each set joined as train.pack joins a pack
    if num_packed > 1:
        partners = generate(g_params, g_batch_stats,
                            sampling.latents(seed + 1, PARTNER_PACKS * (num_packed - 1), latent_dim), None)
        partner_packs = train.pack(partners, num_packed - 1)

    @jax.jit
    def logits_of(d_params, d_batch_stats, images):
        def judge(inputs):
            return discriminator.apply({"params": d_params, "batch_stats": d_batch_stats}, inputs, None)

        if partner_packs is None:
            return judge(images)

        def judge_with(partners):  # each candidate first in a pack with these partners
            broadcast = jnp.broadcast_to(partners, (*images.shape[:-1], partners.shape[-1]))
            return judge(jnp.concatenate([images, broadcast], axis=-1))

        return jnp.mean(jax.lax.map(judge_with, partner_packs), axis=0)

    uniforms = np.random.default_rng(seed)
    pending, accepted = [], []  # pending: (images, logits) of candidates not yet accepted or rejected
    candidates, num_accepted, threshold = 0, 0, None
    while num_accepted < num_samples:
        images = generate(g_params, g_batch_stats, sampling.latents(seed, CHUNK, latent_dim, start=candidates), None)
        candidates += CHUNK
        pending.append((np.asarray(images), np.asarray(logits_of(d_params, d_batch_stats, images), np.float64)))
        if threshold is None:
            if candidates < BURN_IN:
                continue
            threshold = float(np.quantile(np.concatenate([logits for _, logits in pending]), quantile))
        for chunk_images, chunk_logits in pending:  # the burn-in's candidates are candidates too
            accept = np.log(uniforms.random(len(chunk_logits))) < chunk_logits - threshold
            accepted.append(chunk_images[accept])
            num_accepted += int(accept.sum())
        pending = []
    return (np.concatenate(accepted)[:num_samples],
            {"threshold": threshold, "candidates": candidates, "acceptance": num_accepted / candidates})
