"""Generates images from a trained run: grids, pictures per seed, variations, walks, style morphs, a page.

python sample.py --workdir DIR [--step N] [--num 64] [--seed 0] [--labels 0,3,7] [--truncation 1.0]
                 [--no-ema] [--out FILE]
python sample.py --workdir DIR --seeds 0-63 [--labels ink,watercolor] [--truncation 0.7] [--out DIR/]
python sample.py --workdir DIR --variations 42 --strength 0.3 [--num 16 | --seeds 0-15] [--labels ink]
python sample.py --workdir DIR --interpolate 3,17 [--frames 60] [--labels ink] --out walk.gif
python sample.py --workdir DIR --interpolate-labels ink,watercolor [--seeds 42] --out morph.gif
python sample.py --workdir DIR --serve [--port 8000]
python sample.py --from-image picture.png [--out again.png]

--out FILE.png: an image grid (one row per label); FILE.npy: the raw float32 array [N, H, W, C] in
[-1, 1]; DIR/ (with --seeds or --variations): one PNG per image, named seed0042_<style>.png, and
grid.png; for a 2-D mixture run (configs/ring8.py, grid25.py) FILE.npy holds the points float32
[N, 2] and FILE.png plots them over the modes; FILE.gif / FILE.mp4: the frames of a walk or morph.
Every PNG carries in its text chunks the run, step, seed, style and truncation, and the arguments
that make it again (--from-image). The same arguments give the same pixels every time and on any
number of devices.
"""

import argparse
import json
import math
import os
import re
import sys

# TensorFlow (used by TFDS) logs C++ info lines on import; keep the terminal for jaxgan.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

MAX_SEED = 2**32 - 1  # jaxgan.sampling.MAX_SEED, repeated here to check flags before JAX is imported
MAX_IMAGES = 100_000
PICTURE_SUFFIXES = (".png", ".npy")
ANIMATION_SUFFIXES = (".gif", ".mp4")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--workdir", help="directory of a run made by train.py")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--num", type=int, default=None, help="number of images (default 64)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the latents of a --num grid (default 0)")
    parser.add_argument("--seeds", default=None, help="one picture per seed: 0-63 or 3,17,42")
    parser.add_argument("--labels", default=None,
                        help="comma-separated classes (styles), by index or name (default: all, or the first)")
    parser.add_argument("--truncation", type=float, default=1.0,
                        help="psi >= 0: latents moved toward their mean (1: unchanged, 0: the mean picture)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA")
    parser.add_argument("--upscale", type=int, default=1, help="enlarge pictures k times (nearest), 1..32")
    parser.add_argument("--variations", type=int, default=None, metavar="SEED", help="pictures near SEED's")
    parser.add_argument("--strength", type=float, default=0.3,
                        help="how far variations go from their seed, 0..1 (default 0.3)")
    parser.add_argument("--interpolate", default=None, metavar="SEEDS", help="walk through these seeds: 3,17")
    parser.add_argument("--interpolate-labels", default=None, metavar="STYLES",
                        help="morph one seed through these styles: ink,watercolor")
    parser.add_argument("--frames", type=int, default=60, help="frames of a walk or morph (default 60)")
    parser.add_argument("--fps", type=float, default=20.0, help="frames per second of a .gif or .mp4")
    parser.add_argument("--serve", action="store_true", help="serve a page to explore the run")
    parser.add_argument("--host", default="127.0.0.1", help="address of the page (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port of the page (0: any free one)")
    parser.add_argument("--from-image", default=None, metavar="PNG", help="make a PNG written here again")
    parser.add_argument("--out", default=None,
                        help="output .png, .npy, DIR/, .gif or .mp4 (default: WORKDIR/sample.png or walk.gif)")
    return parser


def mode_of(args: argparse.Namespace) -> str:
    """Which kind of output the arguments ask for: grid, seeds, variations, walk, morph or serve."""
    modes = [name for name, asked in (("variations", args.variations is not None),
                                      ("walk", args.interpolate is not None),
                                      ("morph", args.interpolate_labels is not None),
                                      ("serve", args.serve)) if asked]
    if len(modes) > 1:
        raise ValueError(f"--{modes[0].replace('walk', 'interpolate')} and --{modes[1]} ask for different "
                         "outputs; give one of them")
    if modes:
        return modes[0]
    return "seeds" if args.seeds is not None else "grid"


def check_args(args: argparse.Namespace) -> None:
    """Raises ValueError (one line) for values no run can use; what needs the run is checked later."""
    if args.workdir is None:
        raise ValueError("--workdir is required (the directory of a run made by train.py)")
    mode = mode_of(args)
    for name in ("num", "seed", "variations"):
        value = getattr(args, name)
        low = 1 if name == "num" else 0
        high = MAX_IMAGES if name == "num" else MAX_SEED
        if value is not None and not low <= value <= high:
            raise ValueError(f"--{name} {value} must be a whole number {low}..{high:,}")
    if args.seed is not None and args.seeds is not None:
        raise ValueError("--seed numbers the images of a --num grid and --seeds names each picture's seed; "
                         "give one of them")
    if args.num is not None and args.seeds is not None:
        raise ValueError("--num and --seeds both say how many images; give one of them")
    if not math.isfinite(args.truncation) or args.truncation < 0:
        raise ValueError(f"--truncation {args.truncation} must be a finite number >= 0 (1: unchanged)")
    if not 0 <= args.strength <= 1:  # also refuses NaN
        raise ValueError(f"--strength {args.strength} must be between 0 and 1")
    if not 1 <= args.upscale <= 32:
        raise ValueError(f"--upscale {args.upscale} must be a whole number 1..32")
    if not 2 <= args.frames <= 10_000:
        raise ValueError(f"--frames {args.frames} must be a whole number 2..10000")
    if not 0 < args.fps <= 100:
        raise ValueError(f"--fps {args.fps} must be a number in (0, 100]")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} must be 0..65535")
    if mode == "serve":
        return
    default_name = "walk.gif" if mode in ("walk", "morph") else "sample.png"
    args.out = args.out or os.path.join(args.workdir, default_name)
    suffix = os.path.splitext(args.out)[1].lower()
    to_directory = args.out.endswith(os.sep) or os.path.isdir(args.out)
    if to_directory and mode not in ("seeds", "variations"):
        raise ValueError(f"--out {args.out} is a directory: one file per picture is for --seeds and --variations; "
                         "name a .png or .npy file")
    if suffix in ANIMATION_SUFFIXES and mode not in ("walk", "morph"):
        raise ValueError(f"--out {args.out}: a {suffix} is the animation of --interpolate or --interpolate-labels")
    if not to_directory and suffix not in PICTURE_SUFFIXES + ANIMATION_SUFFIXES:
        raise ValueError(f"--out {args.out} must end with .png (a grid), .npy (the raw array), "
                         ".gif or .mp4 (a walk), or / (a directory of PNGs)")
    if suffix == ".npy" and args.upscale != 1:
        raise ValueError("--upscale enlarges pictures; the raw .npy array keeps the generator's size")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.from_image is not None:
        defaults = vars(parser.parse_args([]))
        extra = [name for name, value in vars(args).items()
                 if name not in ("from_image", "workdir", "out") and value != defaults[name]]
        if extra:
            parser.error(f"--from-image makes the picture as it was made; drop --{extra[0].replace('_', '-')} "
                         "(only --workdir and --out go with it)")
        return args
    try:
        check_args(args)
    except ValueError as e:
        parser.error(str(e))
    return args


def arguments_of(args: argparse.Namespace) -> list[str]:
    """The sample.py arguments (without --workdir, --step and --out) that make these images again."""
    flags = []
    for name in ("seed", "num", "seeds", "labels", "variations", "interpolate", "interpolate_labels"):
        if getattr(args, name) is not None:
            flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    mode = mode_of(args)
    if mode == "variations":
        flags += ["--strength", repr(args.strength)]
    if mode in ("walk", "morph"):
        flags += ["--frames", str(args.frames), "--fps", repr(args.fps)]
    flags += ["--truncation", repr(args.truncation), "--upscale", str(args.upscale)]
    return flags + (["--no-ema"] if args.no_ema else [])


def file_name(seed: int, style: str | None, noise_seed: int | None) -> str:
    """seed0042_ink.png; seed0042_var0007_ink.png for a variation; no style for an unconditional run."""
    parts = [f"seed{seed:04d}"] + ([f"var{noise_seed:04d}"] if noise_seed is not None else [])
    if style is not None:
        parts.append(re.sub(r"[^A-Za-z0-9_.-]+", "-", style))
    return "_".join(parts) + ".png"


def one_label(labels: list[int], gan, flag: str) -> int | None:
    """The single style of a walk or variations: the one in --labels, else the first class."""
    from jaxgan.errors import UserError

    if not gan.class_names:
        return None
    if len(labels) > 1:
        raise UserError(f"{flag} uses one style; give one in --labels")
    return labels[0] if labels else 0


def make_images(args: argparse.Namespace, gan) -> tuple[np.ndarray, list[dict]]:
    """float32 [N, H, W, C] images and, per image, what it is (seed, style, noise seed) for file names."""
    from jaxgan import sampling

    use_ema = not args.no_ema
    mode = mode_of(args)
    names = gan.class_names
    labels = sampling.parse_labels(args.labels, names)
    if mode == "grid":
        num = 64 if args.num is None else args.num
        images = gan.sample(args.seed or 0, num, labels, args.truncation, use_ema)
        return images, [{}] * num
    if mode == "seeds":
        seeds = sampling.parse_seeds(args.seeds)
        images = gan.seed_images(seeds, labels, args.truncation, use_ema)
        styles = [names[label] for label in labels] or [None]
        return images, [{"seed": seed, "style": style} for style in styles for seed in seeds]
    if mode == "variations":
        label = one_label(labels if args.labels else [], gan, "--variations")
        noise_seeds = (sampling.parse_seeds(args.seeds) if args.seeds is not None
                       else list(range(64 if args.num is None else args.num)))
        images = gan.variation_images(args.variations, noise_seeds, args.strength, label, args.truncation, use_ema)
        style = None if label is None else names[label]
        return images, [{"seed": args.variations, "style": style, "noise_seed": n} for n in noise_seeds]
    if mode == "walk":
        seeds = sampling.parse_seeds(args.interpolate, "--interpolate")
        if len(seeds) < 2:
            from jaxgan.errors import UserError
            raise UserError("--interpolate needs two or more seeds to walk between, e.g. 3,17")
        label = one_label(labels if args.labels else [], gan, "--interpolate")
        return gan.walk(seeds, label, args.frames, args.truncation, use_ema), [{}] * args.frames
    # morph
    from jaxgan.errors import UserError

    if not names:
        raise UserError("--interpolate-labels morphs between styles; this run is unconditional (it has none)")
    styles = sampling.parse_labels(args.interpolate_labels, names)
    if len(styles) < 2:
        raise UserError("--interpolate-labels needs two or more styles of a conditional run, e.g. ink,watercolor")
    seeds = sampling.parse_seeds(args.seeds) if args.seeds is not None else [args.seed or 0]
    if len(seeds) != 1:
        raise UserError("--interpolate-labels morphs one seed; give one in --seeds")
    return gan.morph(seeds[0], styles, args.frames, args.truncation, use_ema), [{}] * args.frames


def write_points(args: argparse.Namespace, gan, points: np.ndarray) -> str:
    """A 2-D mixture run's samples float32 [N, 2]: raw in FILE.npy, or plotted over the modes in FILE.png."""
    from jaxgan import mixtures, sampling
    from jaxgan.errors import UserError

    suffix = os.path.splitext(args.out)[1].lower()
    if mode_of(args) != "grid" or suffix not in PICTURE_SUFFIXES or args.out.endswith(os.sep):
        raise UserError(f"{args.workdir} makes 2-D points, not pictures: sample them with --num N and "
                        f"--out FILE.npy (the raw [N, 2] array) or FILE.png (a plot over the modes)")
    if suffix == ".npy":
        sampling.write_atomically(args.out, lambda f: np.save(f, points))
    else:
        mixtures.plot(points, gan.config.data.name, args.out, title=f"{gan.config.data.name}, step {gan.step}")
    return f"{len(points)} points"


def write_outputs(args: argparse.Namespace, gan, images: np.ndarray, pictures: list[dict]) -> str:
    """Writes the images where --out says; returns what was written, for the closing line."""
    from jaxgan import sampling

    if images.ndim == 2:
        return write_points(args, gan, images)
    pixels = sampling.upscale(sampling.to_uint8(images), args.upscale)
    count = f"{len(images)} image{'s' if len(images) > 1 else ''}"
    suffix = os.path.splitext(args.out)[1].lower()
    if suffix in ANIMATION_SUFFIXES:
        sampling.save_animation(args.out, pixels, args.fps)
        return f"a {len(images)}-frame animation"
    if suffix == ".npy" and not args.out.endswith(os.sep):
        sampling.write_atomically(args.out, lambda f: np.save(f, images))
        return count

    def picture_text(picture: dict) -> dict[str, str]:
        noise_seed = picture.get("noise_seed")
        return sampling.picture_provenance(
            gan.workdir, gan.step, picture["seed"] if noise_seed is None else noise_seed, picture["style"],
            args.truncation, args.upscale, not args.no_ema,
            None if noise_seed is None else (picture["seed"], args.strength))

    labels = sampling.parse_labels(args.labels, gan.class_names)
    rows = len(labels) if mode_of(args) in ("grid", "seeds") else 1
    if len(pixels) == 1 and pictures[0]:
        # One picture is written as itself, with its own provenance: the file a picture's own
        # arguments make (--from-image) is the same file, byte for byte.
        grid, grid_text = pixels[0], picture_text(pictures[0])
    else:
        grid = sampling.image_grid(pixels, sampling.grid_columns(len(images), rows))
        grid_text = sampling.provenance_text(gan.workdir, gan.step, arguments_of(args))
    if not (args.out.endswith(os.sep) or os.path.isdir(args.out)):
        sampling.save_png(args.out, grid, grid_text)
        return count
    for picture, image in zip(pictures, pixels):
        name = file_name(picture["seed"], picture["style"], picture.get("noise_seed"))
        sampling.save_png(os.path.join(args.out, name), image, picture_text(picture))
    sampling.save_png(os.path.join(args.out, "grid.png"), grid, grid_text)
    return f"{count} and their grid.png"


def from_image_args(args: argparse.Namespace) -> argparse.Namespace:
    """The arguments stored in --from-image's PNG, with this command's --workdir and --out."""
    from jaxgan import sampling
    from jaxgan.errors import UserError

    text = sampling.read_png_text(args.from_image)
    if sampling.ARGUMENTS_KEY not in text:
        raise UserError(f"{args.from_image} carries no jaxgan provenance; only PNGs written by sample.py "
                        "(or its page) can be made again")
    try:
        stored = json.loads(text[sampling.ARGUMENTS_KEY])
        workdir_index = stored.index("--workdir") + 1
    except (ValueError, AttributeError):
        stored = None
    if not isinstance(stored, list) or not all(isinstance(item, str) for item in stored):
        raise UserError(f"the provenance in {args.from_image} is damaged; it cannot be made again")
    workdir = args.workdir or stored[workdir_index]
    if not os.path.isdir(workdir):
        raise UserError(f"{args.from_image} was made from the run in {workdir}, which is not there; "
                        "pass --workdir with the run's new place")
    stem, _ = os.path.splitext(args.from_image)
    out = args.out or f"{stem}_again.png"
    return parse_args(stored + ["--workdir", workdir, "--out", out])


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from jaxgan import checkpoint, trained  # after argument parsing: importing JAX takes seconds
    from jaxgan.errors import UserError

    checkpoint.leave_failures_to_exceptions()
    try:
        if args.from_image is not None:
            args = from_image_args(args)
        gan = trained.load(args.workdir, args.step)
        if args.serve:
            from jaxgan import explorer

            explorer.serve(gan, args.host, args.port, use_ema=not args.no_ema)
            return
        images, pictures = make_images(args, gan)
        written = write_outputs(args, gan, images, pictures)
    except UserError as e:
        sys.exit(f"sample.py: error: {e}")
    print(f"Wrote {written} from step {gan.step} of {args.workdir} to {args.out}.")


if __name__ == "__main__":
    main(sys.argv[1:])
