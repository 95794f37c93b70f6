"""Orbax checkpoints of the whole TrainState, with the metadata needed to rebuild and verify it.

Each checkpoint WORKDIR/checkpoints/<step>/ holds two items: `state` (every array of the
TrainState) and `meta` (JSON: the resolved config, the image shape, the class names and a sha256
fingerprint of the state's arrays), so `sample.py` can rebuild the generator from a checkpoint alone.

Orbax writes each checkpoint to `<step>.orbax-checkpoint-tmp` and renames it when complete, so a
process killed mid-write leaves no `<step>/` behind, only a temporary directory that the next run
deletes. What the rename cannot guard against is a checkpoint damaged later (bytes flipped on disk,
files lost or mixed up in a copy): a flipped byte in compressed array data can decode to other
values without complaint, and another checkpoint's arrays read back fine, so every restore
recomputes the fingerprint and checks the arrays are finite, and a checkpoint that fails is
reported as unreadable instead of being used.
"""

import errno
import hashlib
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from jaxgan.errors import UserError


class UnreadableCheckpoint(Exception):
    """A checkpoint whose files cannot be read back into the state that was saved; the message says why."""


def open_manager(workdir: str, max_to_keep: int | None = None, read_only: bool = False,
                 best_metric: str | None = None, lower_is_better: bool = True) -> ocp.CheckpointManager:
    """The CheckpointManager of WORKDIR/checkpoints; asynchronous saves, the last `max_to_keep` kept.

    With `best_metric`, the `max_to_keep` checkpoints with the best value of that metric (passed to
    `save`) are kept instead of the last ones. A writable manager deletes the temporary directories
    of writes that never finished (a killed process, a full disk), which would otherwise hold their
    space forever.
    """
    best = {} if best_metric is None else {"best_fn": lambda metrics: metrics[best_metric],
                                           "best_mode": "min" if lower_is_better else "max",
                                           "keep_checkpoints_without_metrics": False}
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                           read_only=read_only, enable_async_checkpointing=True,
                                           cleanup_tmp_directories=not read_only, **best)
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                                 item_names=("state", "meta"), options=options)


def fingerprint(state: Any) -> str:
    """sha256 (hex) of every array of `state`: dtypes, shapes and bytes, in tree order.

    The state is replicated, so each process's first local shard is the whole array.
    """
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(state):
        array = np.ascontiguousarray(leaf.addressable_data(0))
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save(manager: ocp.CheckpointManager, state: Any, config: ml_collections.ConfigDict,
         image_shape: tuple[int, ...], class_names: tuple[str, ...], metrics: dict | None = None,
         extra_meta: dict | None = None) -> None:
    """Starts an asynchronous save of `state` at its step (the arrays are copied before this returns).

    `state.step`: a scalar, or one per run for runs trained together (benchmarks/mode_coverage.py;
    all at the same step). `metrics` (name -> float) rank the checkpoint in a manager opened with `best_metric`;
    `extra_meta`: more JSON-able keys for the metadata.
    """
    meta = {"config": config.to_dict(), "image_shape": list(image_shape), "class_names": list(class_names),
            "state_sha256": fingerprint(state), **(extra_meta or {})}
    step = int(state.step) if state.step.ndim == 0 else int(state.step[0])
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                 metrics=metrics)


def restore_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    """The JSON metadata saved with the checkpoint at `step`; UnreadableCheckpoint if it cannot be read."""
    try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001  (JSON, Unicode and OS errors of damaged or missing files)
        raise UnreadableCheckpoint(f"its metadata: {_first_line(e)}") from None
    if not (isinstance(meta, dict) and {"config", "image_shape", "class_names"} <= meta.keys()):
        raise UnreadableCheckpoint("its metadata lacks the config, image shape or class names")  # still JSON
    return meta


def restore(manager: ocp.CheckpointManager, step: int, meta: dict[str, Any], abstract_state: Any,
            sharding: jax.sharding.Sharding) -> Any:
    """The state saved at `step` (whose metadata is `meta`), laid out with `sharding`, verified.

    Raises UnreadableCheckpoint when the arrays cannot be read, differ from the ones saved (their
    fingerprint), or hold a NaN or Inf (never saved: training keeps non-finite updates out of the state).
    """
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_state)
    try:
        state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
    except Exception as e:  # noqa: BLE001  (TensorStore, JSON and OS errors of damaged or missing files)
        raise UnreadableCheckpoint(_first_line(e)) from None
    # Checkpoints written before fingerprints were saved have none: their arrays are only checked finite.
    if "state_sha256" in meta and fingerprint(state) != meta["state_sha256"]:
        raise UnreadableCheckpoint("its arrays differ from the ones saved: sha256 fingerprint mismatch")
    for path, leaf in jax.tree.leaves_with_path(state):
        if jnp.issubdtype(leaf.dtype, jnp.floating) and not np.isfinite(leaf.addressable_data(0)).all():
            raise UnreadableCheckpoint(f"NaN or Inf in {jax.tree_util.keystr(path, simple=True, separator='.')}")
    return state


def restore_newest_readable(manager: ocp.CheckpointManager, workdir: str, restore_step: Callable[[int], Any],
                            action: str) -> tuple[Any, list[int]]:
    """Calls `restore_step(step)` on the checkpoints from the newest back until one is readable.

    `restore_step` raises UnreadableCheckpoint for a damaged checkpoint; each one skipped is named in a
    warning on stderr ending "; {action} step J." Returns (what restore_step(J) returned, the steps
    skipped); a clear error if none is readable.
    """
    unreadable = []
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            restored = restore_step(step)
        except UnreadableCheckpoint as e:
            unreadable.append((step, str(e)))
            continue
        if jax.process_index() == 0:
            for bad_step, reason in unreadable:
                print(f"Warning: the checkpoint at step {bad_step} in {workdir} is unreadable ({reason}); "
                      f"{action} step {step}.", file=sys.stderr, flush=True)
        return restored, [bad_step for bad_step, _ in unreadable]
    reasons = "; ".join(f"step {step}: {reason}" for step, reason in unreadable)
    raise UserError(f"no checkpoint in {workdir} is readable ({reasons}); move {workdir}/checkpoints away "
                    f"to start again from step 0, or pass another --workdir")


def set_aside(manager: ocp.CheckpointManager, workdir: str, steps: list[int]) -> str:
    """Moves the checkpoints at `steps` to WORKDIR/unreadable_checkpoints/ and returns that path.

    Training redoes those steps and must be able to save them again; the damaged files are kept for
    whoever wants to look at them. Process 0 moves them, then every process re-reads the step list.
    """
    destination = os.path.join(workdir, "unreadable_checkpoints")
    if jax.process_index() == 0:
        os.makedirs(destination, exist_ok=True)
        for step in steps:
            target, copy = os.path.join(destination, str(step)), 1
            while os.path.exists(target):  # the same step damaged in an earlier run too
                copy += 1
                target = os.path.join(destination, f"{step}-{copy}")
            os.replace(os.path.join(str(manager.directory), str(step)), target)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("jaxgan: unreadable checkpoints set aside")
    manager.reload()
    return destination


# Errors of writes that a full disk, a quota or a read-only or locked-down directory cause.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def write_failure(error: BaseException) -> str | None:
    """The OS's words for a failed write behind `error` ("No space left on device"), else None.

    Python's own writes raise OSError; Orbax's go through TensorStore, whose errors are ValueErrors
    carrying "[os_error_code='28']", possibly as the cause of another exception. A UserError is
    already its own one line.
    """
    if isinstance(error, UserError):
        return None
    while error is not None:
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            return os.strerror(error.errno)
        code = re.search(r"os_error_code='?(\d+)", str(error))
        if code and int(code.group(1)) in WRITE_ERRNOS:
            return os.strerror(int(code.group(1)))
        error = error.__cause__ or error.__context__
    return None


def raise_if_write_failure(error: BaseException, manager: ocp.CheckpointManager, workdir: str) -> None:
    """Raises a one-line UserError if `error` is a failed write (`write_failure`) while training saved
    checkpoints to `manager` in `workdir`, naming the newest checkpoint left intact; else returns."""
    reason = write_failure(error)
    if reason is None:
        return
    manager.reload()  # the steps whose directories are complete on disk
    kept = manager.latest_step()
    if kept is None:
        outcome = "no checkpoint was written yet; free some space or make it writable, then run the same command"
    else:
        outcome = (f"its checkpoints up to step {kept} are intact; free some space or make it writable, then "
                   f"run the same command to continue from step {kept}")
    raise UserError(f"cannot write in {workdir} ({reason}); {outcome}") from None


def _first_line(error: BaseException) -> str:
    """The first line of an error's message, at most 200 characters (TensorStore's run to pages).

    TensorStore's pointer to its "full details" (the repr of a bound method) is dropped.
    """
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    line = line.split(" See full TensorStore details")[0]
    return line if len(line) <= 200 else line[:197] + "..."


def leave_failures_to_exceptions() -> None:
    """Keeps a failed checkpoint read or write from printing pages of tracebacks (for train.py and sample.py).

    Orbax does its I/O in background threads and asyncio loops: when a write fails (a full disk) or
    a read fails (a damaged file), Orbax logs each failed thread with its traceback, asyncio logs the
    futures left unretrieved, and TensorStore threads calling back into loops already closed print
    "RuntimeError: Event loop is closed" through sys.unraisablehook, dozens of times. The failure
    itself reaches the caller as an exception, which the scripts report in one line (or, if it is
    not a failure they know, with its traceback), so these records are dropped; all others are kept.
    """
    logging.getLogger("absl").addFilter(lambda record: "/orbax/" not in record.pathname.replace(os.sep, "/"))
    logging.getLogger("asyncio").addFilter(lambda record: "exception was never retrieved" not in record.getMessage())
    previous = sys.unraisablehook

    def hook(unraisable):
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            previous(unraisable)

    sys.unraisablehook = hook
