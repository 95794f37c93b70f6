"""Orbax checkpoints of the whole TrainState, with the metadata needed to rebuild its models.

Each checkpoint WORKDIR/checkpoints/<step>/ holds two items: `state` (every array of the
TrainState) and `meta` (JSON: the resolved config, the image shape and the class names), so
`sample.py` can rebuild the generator from a checkpoint alone. Orbax writes each checkpoint to a
temporary directory and renames it when complete, so a crash never leaves a partial one behind.
"""

import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from jaxgan.errors import UserError


def open_manager(workdir: str, max_to_keep: int | None = None, read_only: bool = False) -> ocp.CheckpointManager:
    """The CheckpointManager of WORKDIR/checkpoints; asynchronous saves, the last `max_to_keep` kept."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                           read_only=read_only, enable_async_checkpointing=True)
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                                 item_names=("state", "meta"), options=options)


def save(manager: ocp.CheckpointManager, state: Any, config: ml_collections.ConfigDict,
         image_shape: tuple[int, int, int], class_names: tuple[str, ...]) -> None:
    """Starts an asynchronous save of `state` at its step (the arrays are copied before this returns)."""
    meta = {"config": config.to_dict(), "image_shape": list(image_shape), "class_names": list(class_names)}
    manager.save(int(state.step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                          meta=ocp.args.JsonSave(meta)))


def restore_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    """The JSON metadata saved with the checkpoint at `step`."""
    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def restore(manager: ocp.CheckpointManager, step: int, abstract_state: Any,
            sharding: jax.sharding.Sharding, workdir: str) -> Any:
    """The state saved at `step`, laid out with `sharding`; a clear error if it belongs to another model."""
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_state)
    try:
        return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
    except (ValueError, KeyError, TypeError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"the checkpoint at step {step} in {workdir} does not fit this model ({first_line}); "
                        f"train with the config that made it or use a new --workdir") from None
