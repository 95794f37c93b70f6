"""Trains a GAN: `python train.py [--config configs/NAME.py] [--workdir DIR] [--config.KEY=VALUE ...]`.

A workdir that holds checkpoints is resumed from its latest one. See README.md.
"""

import os
import sys

# TensorFlow (used by TFDS) logs C++ info lines on import; keep the terminal for jaxgan.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags
from ml_collections import config_flags


def parse_flags(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> tuple:
    """Defines the flags in `flag_values` and parses `argv`; returns (config, workdir) or exits with one line."""
    try:
        # config_flags applies --config.KEY=VALUE overrides while defining the flag, so this is inside the try.
        config_flag = config_flags.DEFINE_config_file("config", "configs/default.py", "Python config file.",
                                                      flag_values=flag_values, lock_config=True, sys_argv=argv)
        workdir_flag = flags.DEFINE_string("workdir", None, "Directory of the run (default: runs/<config stem>).",
                                           flag_values=flag_values)
        flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for a run of several processes.",
                            flag_values=flag_values)
        flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.",
                             flag_values=flag_values)
        flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run, 0..num_processes-1.",
                             flag_values=flag_values)
        flags.DEFINE_bool("distributed", False, "Join a multi-process run whose settings the cluster provides "
                          "(Cloud TPU, SLURM, ...), detected by jax.distributed.initialize().",
                          flag_values=flag_values)
        positional = flag_values(argv)[1:]
    except (flags.Error, KeyError, ValueError, AttributeError, TypeError, OSError) as e:
        message = " ".join(str(e).replace('"', "").split())
        unknown = [a for a in argv[1:] if a.startswith("--config.") and message.strip("'") in
                   a.split("=")[0].split(".")]
        if isinstance(e, (KeyError, AttributeError)) and unknown:
            message = (f"unknown config key in {unknown[0]}; "
                       f"see the config file (default: configs/default.py) for the keys")
        sys.exit(f"train.py: error: {message}")
    if positional:
        sys.exit(f"train.py: error: unexpected argument {positional[0]!r}; "
                 f"the flags are --config FILE, --workdir DIR and --config.KEY=VALUE")
    config_path = config_flags.get_config_filename(flag_values["config"])
    if not os.path.isfile(config_path):
        sys.exit(f"train.py: error: no config file {config_path}; pass --config configs/NAME.py (see configs/)")
    try:
        config = config_flag.value
        config.keys()  # a config file that failed to load raises here
    except Exception as e:  # noqa: BLE001  (any error inside the user's config file)
        sys.exit(f"train.py: error: cannot load --config {config_path}: {' '.join(str(e).split())[:300]}")
    workdir = workdir_flag.value or os.path.join("runs", os.path.splitext(os.path.basename(config_path))[0])
    return config, workdir


def start_processes() -> None:
    """Joins the processes of a multi-process run (before any other JAX call), if asked to."""
    import jax

    f = flags.FLAGS
    if f.coordinator_address is None and not f.distributed:
        return
    # CPU devices of different processes talk through gloo; GPUs and TPUs use their own collectives.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f.coordinator_address, f.num_processes, f.process_id)


def main(argv: list[str]) -> None:
    config, workdir = parse_flags(argv)
    from jaxgan import checkpoint  # after flag parsing: importing JAX and TFDS takes seconds
    from jaxgan.errors import UserError
    from jaxgan.train import train_and_evaluate

    checkpoint.leave_failures_to_exceptions()
    try:
        start_processes()
        train_and_evaluate(config, workdir)
    except UserError as e:
        sys.exit(f"train.py: error: {e}")


if __name__ == "__main__":
    main(sys.argv)
