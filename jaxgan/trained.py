"""A trained run, loaded from its checkpoint for sampling: `trained.load(workdir).seed_images(...)`.

Every picture goes through one compiled generator at one batch size (GENERATE_BATCH, the last batch
padded), so a picture's pixels do not depend on what else is generated with it: the image of seed
42 is the same in a grid of 64, alone, in a walk or on the explorer page. (XLA's kernels differ
between batch sizes in the last bits of float32.) Labels enter as label weights (one-hot rows,
blends for style morphs) for the same reason: one program for every kind of picture.
"""

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgan import checkpoint, sampling, train
from jaxgan.errors import UserError

GENERATE_BATCH = 16  # as many images per second as larger batches on a CPU; small enough for one picture


@dataclasses.dataclass(frozen=True)
class TrainedGAN:
    """The generator of a checkpoint with what is needed to sample from it."""

    workdir: str
    config: ml_collections.ConfigDict
    step: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    state: train.TrainState
    generate_batch: Any  # compiled (g_params, g_batch_stats, z, label_weights) -> images

    @property
    def latent_dim(self) -> int:
        return self.config.model.latent_dim

    def generate(self, z: np.ndarray, label_weights: np.ndarray | None, use_ema: bool = True) -> np.ndarray:
        """float32 [N, H, W, C] in [-1, 1] from latents z [N, latent_dim] and label weights [N, classes].

        `label_weights` is None for an unconditional model; a one-hot row is that class's picture.
        """
        z = np.asarray(z, np.float32)
        if self.class_names:
            label_weights = np.asarray(label_weights, np.float32)
        params = self.state.ema_params if use_ema else self.state.g_params
        chunks = []
        for start in range(0, len(z), GENERATE_BATCH):
            z_chunk = _pad(z[start:start + GENERATE_BATCH])
            w_chunk = None if label_weights is None else _pad(label_weights[start:start + GENERATE_BATCH])
            images = self.generate_batch(params, self.state.g_batch_stats, z_chunk, w_chunk)
            chunks.append(np.asarray(images)[:len(z) - start])
        return np.concatenate(chunks).astype(np.float32)

    def one_hot(self, labels: Sequence[int]) -> np.ndarray | None:
        """float32 [N, classes] label weights for class indices; None for an unconditional model."""
        if not self.class_names:
            return None
        return np.eye(len(self.class_names), dtype=np.float32)[np.asarray(labels, np.int64)]

    def sample(self, seed: int, num: int, labels: list[int], truncation: float = 1.0,
               use_ema: bool = True) -> np.ndarray:
        """float32 [num, H, W, C]; image i has latent i of `seed` and label block i of `labels`."""
        z = sampling.latents(seed, num, self.latent_dim, truncation)
        return self.generate(z, self.one_hot(sampling.block_labels(num, labels)) if labels else None, use_ema)

    def seed_images(self, seeds: Sequence[int], labels: Sequence[int], truncation: float = 1.0,
                    use_ema: bool = True) -> np.ndarray:
        """float32 [L * S, H, W, C]: every seed in every label, label-major (one row of seeds per label).

        Truncation moves each latent toward the latent mean (zero) by `truncation` (1: unchanged,
        0: the mean); the class enters beside the latent, so this is the truncation toward each
        class's own mean picture.
        """
        z = truncation * sampling.seed_latents(seeds, self.latent_dim)
        if not self.class_names:
            return self.generate(z, None, use_ema)
        z = np.tile(z, (len(labels), 1))
        return self.generate(z, self.one_hot(np.repeat(labels, len(seeds))), use_ema)

    def variation_images(self, seed: int, noise_seeds: Sequence[int], strength: float, label: int | None,
                         truncation: float = 1.0, use_ema: bool = True) -> np.ndarray:
        """float32 [len(noise_seeds), H, W, C]: pictures near `seed`'s, one per noise seed.

        Variation n is the point `strength` of the way along the walk from `seed` to noise seed n
        (0: the seed's picture, 1: the noise seed's).
        """
        start = sampling.seed_latents([seed], self.latent_dim)[0]
        ends = sampling.seed_latents(noise_seeds, self.latent_dim)
        z = truncation * np.stack([sampling.slerp(start, end, np.array([strength]))[0] for end in ends])
        return self.generate(z, self.one_hot([label] * len(z)), use_ema)

    def walk(self, seeds: Sequence[int], label: int | None, frames: int, truncation: float = 1.0,
             use_ema: bool = True) -> np.ndarray:
        """float32 [frames, H, W, C]: a spherical walk through the latents of `seeds`, in order.

        The first frame is the first seed's picture and the last frame the last seed's.
        """
        stops = sampling.seed_latents(seeds, self.latent_dim)
        segment, fraction = sampling.walk_positions(len(seeds), frames)
        z = truncation * np.stack([sampling.slerp(stops[s], stops[s + 1], np.array([t]))[0]
                                   for s, t in zip(segment, fraction)])
        return self.generate(z, self.one_hot([label] * frames), use_ema)

    def morph(self, seed: int, labels: Sequence[int], frames: int, truncation: float = 1.0,
              use_ema: bool = True) -> np.ndarray:
        """float32 [frames, H, W, C]: one seed morphing through the styles `labels`, in order.

        The class embeddings (and batch-norm scales) are blended linearly; the first frame is the
        seed's picture in the first style and the last frame its picture in the last style.
        """
        stops = self.one_hot(labels)
        segment, fraction = sampling.walk_positions(len(labels), frames)
        fraction = fraction[:, None].astype(np.float32)
        weights = (1.0 - fraction) * stops[segment] + fraction * stops[segment + 1]
        z = np.repeat(truncation * sampling.seed_latents([seed], self.latent_dim), frames, axis=0)
        return self.generate(z, weights, use_ema)


def _pad(rows: np.ndarray) -> np.ndarray:
    """rows [n, ...] -> [GENERATE_BATCH, ...], zeros after row n."""
    padding = [(0, GENERATE_BATCH - len(rows))] + [(0, 0)] * (rows.ndim - 1)
    return np.pad(rows, padding)


def load(workdir: str, step: int | None = None) -> TrainedGAN:
    """Restores the checkpoint at `step` (default: the newest readable one) of the run in `workdir`.

    Without `step`, an unreadable newer checkpoint is named in a warning and an older one is used;
    an unreadable checkpoint asked for by `step` is a clear error.
    """
    try:
        manager = checkpoint.open_manager(workdir, read_only=True)
    except (FileNotFoundError, ValueError):
        manager = None
    steps = manager.all_steps() if manager else []
    if not steps:
        raise UserError(f"no checkpoint in {workdir}/checkpoints; train it first with "
                        f"`python train.py --workdir {workdir}`")
    if step is not None and step not in steps:
        raise UserError(f"no checkpoint at step {step} in {workdir}; it has steps {sorted(steps)}")

    replicated = train.make_shardings().replicated
    models_of = {}  # the checkpoints of a run share their models: build them (seconds) once

    def restore_step(restored_step):
        meta = checkpoint.restore_meta(manager, restored_step)
        key = json.dumps([meta["config"], meta["image_shape"], meta["class_names"]], sort_keys=True)
        if key not in models_of:
            config = ml_collections.ConfigDict(train.complete_saved_config(meta["config"]))
            image_shape = tuple(meta["image_shape"])
            generator, discriminator = train.build_models(config, image_shape, len(meta["class_names"]))
            models_of[key] = config, generator, jax.eval_shape(
                lambda: train.init_state(config, generator, discriminator, image_shape))
        config, generator, abstract_state = models_of[key]
        state = checkpoint.restore(manager, restored_step, meta, abstract_state, replicated)
        return TrainedGAN(workdir, config, restored_step, tuple(meta["class_names"]), tuple(meta["image_shape"]),
                          state, train.make_generate(generator))

    try:
        if step is None:
            return checkpoint.restore_newest_readable(manager, workdir, restore_step, "sampling from")[0]
        try:
            return restore_step(step)
        except checkpoint.UnreadableCheckpoint as e:
            raise UserError(f"the checkpoint at step {step} in {workdir} is unreadable ({e}); pick another "
                            f"--step of {sorted(steps)}, or leave it out for the newest readable one") from None
    finally:
        manager.close()
