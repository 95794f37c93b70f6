"""Trains a GAN: `python train.py [--config configs/NAME.py] [--workdir DIR] [--config.KEY=VALUE ...]`.

A workdir that holds checkpoints is resumed from its latest one. See README.md.
"""

import os
import sys

# TensorFlow (used by TFDS) logs C++ info lines on import; keep the terminal for jaxgan.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Python config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the run (default: runs/<config stem>).")


def main(argv: list[str]) -> None:
    try:
        positional = flags.FLAGS(argv)[1:]
    except (flags.Error, KeyError, ValueError, AttributeError, TypeError) as e:
        sys.exit(f"train.py: error: {' '.join(str(e).split())}")
    if positional:
        sys.exit(f"train.py: error: unexpected argument {positional[0]!r}; "
                 f"the flags are --config FILE, --workdir DIR and --config.KEY=VALUE")

    from jaxgan.errors import UserError  # after flag parsing: importing JAX and TFDS takes seconds
    from jaxgan.train import train_and_evaluate

    config = _CONFIG.value
    config_path = config_flags.get_config_filename(flags.FLAGS["config"])
    workdir = _WORKDIR.value or os.path.join("runs", os.path.splitext(os.path.basename(config_path))[0])
    try:
        train_and_evaluate(config, workdir)
    except UserError as e:
        sys.exit(f"train.py: error: {e}")


if __name__ == "__main__":
    main(sys.argv)
