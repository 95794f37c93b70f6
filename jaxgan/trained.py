"""A trained run, loaded from its checkpoint for sampling: `trained.load(workdir).sample(...)`."""

import dataclasses
import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxgan import checkpoint, sampling, train
from jaxgan.errors import UserError


@dataclasses.dataclass(frozen=True)
class TrainedGAN:
    """The generator of a checkpoint with what is needed to sample from it."""

    config: ml_collections.ConfigDict
    step: int
    class_names: tuple[str, ...]
    generator: Any
    state: train.TrainState

    def sample(self, seed: int, num: int, labels: list[int], truncation: float = 1.0,
               use_ema: bool = True, batch_size: int = 500) -> np.ndarray:
        """float32 [num, H, W, C] in [-1, 1]; image i has latent i of `seed` and label block i of `labels`."""
        z = sampling.latents(seed, num, self.config.model.latent_dim, truncation)
        label_array = jnp.asarray(sampling.block_labels(num, labels)) if labels else None
        params = self.state.ema_params if use_ema else self.state.g_params
        generate = train.make_generate(self.generator)
        chunks = [generate(params, self.state.g_batch_stats, z[i:i + batch_size],
                           None if label_array is None else label_array[i:i + batch_size])
                  for i in range(0, num, batch_size)]
        return np.concatenate(jax.device_get(chunks)).astype(np.float32)


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

    replicated = NamedSharding(train.make_mesh(), PartitionSpec())
    models_of = {}  # the checkpoints of a run share their models: build them (seconds) once

    def restore_step(restored_step):
        meta = checkpoint.restore_meta(manager, restored_step)
        key = json.dumps([meta["config"], meta["image_shape"], meta["class_names"]], sort_keys=True)
        if key not in models_of:
            config = ml_collections.ConfigDict(meta["config"])
            image_shape = tuple(meta["image_shape"])
            generator, discriminator = train.build_models(config, image_shape, len(meta["class_names"]))
            models_of[key] = config, generator, jax.eval_shape(
                lambda: train.init_state(config, generator, discriminator, image_shape))
        config, generator, abstract_state = models_of[key]
        state = checkpoint.restore(manager, restored_step, meta, abstract_state, replicated)
        return TrainedGAN(config, restored_step, tuple(meta["class_names"]), generator, state)

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
