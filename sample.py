"""Generates images from a trained run.

python sample.py --workdir DIR [--step N] [--num 64] [--seed 0] [--labels 0,3,7] [--truncation 1.0]
                 [--no-ema] [--out FILE]

FILE ending .png: an image grid (one row per label when --num is a multiple of their count);
FILE ending .npy: the raw float32 array [N, H, W, C] in [-1, 1]. The same arguments give the same
bytes every time.
"""

import argparse
import os
import sys

# TensorFlow (used by TFDS) logs C++ info lines on import; keep the terminal for jaxgan.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="directory of a run made by train.py")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--num", type=int, default=64, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latents")
    parser.add_argument("--labels", default=None,
                        help="comma-separated classes, by index or name, in equal blocks (default: all)")
    parser.add_argument("--truncation", type=float, default=1.0, help="scale of the latents (0, 1]")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    parser.add_argument("--out", default=None, help="output .png or .npy (default: WORKDIR/sample.png)")
    args = parser.parse_args(argv)
    if args.num <= 0:
        parser.error(f"--num {args.num} must be positive")
    if not 0.0 < args.truncation:
        parser.error(f"--truncation {args.truncation} must be positive")
    args.out = args.out or os.path.join(args.workdir, "sample.png")
    if not args.out.endswith((".png", ".npy")):
        parser.error(f"--out {args.out} must end with .png (a grid) or .npy (the raw array)")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from jaxgan import checkpoint, sampling, trained  # after argument parsing: importing JAX takes seconds
    from jaxgan.errors import UserError

    checkpoint.leave_failures_to_exceptions()
    try:
        gan = trained.load(args.workdir, args.step)
        labels = sampling.parse_labels(args.labels, gan.class_names)
        images = gan.sample(args.seed, args.num, labels, args.truncation, use_ema=not args.no_ema)
    except UserError as e:
        sys.exit(f"sample.py: error: {e}")
    if args.out.endswith(".npy"):
        sampling.write_atomically(args.out, lambda f: np.save(f, images))
    else:
        columns = sampling.grid_columns(args.num, len(labels))
        sampling.save_png(args.out, sampling.image_grid(sampling.to_uint8(images), columns))
    print(f"Wrote {args.num} images from step {gan.step} of {args.workdir} to {args.out}.")


if __name__ == "__main__":
    main(sys.argv[1:])
